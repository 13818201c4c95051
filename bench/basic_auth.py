"""What basic auth costs per scrape: a bcrypt check against the remembered-digest path.

Usage: .venv/bin/python bench/basic_auth.py [cost ...]   (default costs: 10 12)
Prints, for each bcrypt cost, the median time of a check that runs bcrypt and of one that
finds the password already verified, and their ratio.
"""

from __future__ import annotations

import asyncio
import base64
import statistics
import sys
import time

import bcrypt

from ksm_exporter.server.basic_auth import BasicAuth

HEADER = "Basic " + base64.b64encode(b"prometheus:secret").decode()


async def median_seconds(auth: BasicAuth, fresh: bool, rounds: int) -> float:
    timings = []
    for _ in range(rounds):
        if fresh:
            auth._verified.clear()  # forget, so the next check runs bcrypt
        started = time.perf_counter()
        assert await auth.allows(HEADER)
        timings.append(time.perf_counter() - started)
    return statistics.median(timings)


async def main(costs: list[int]) -> None:
    print(f"{'cost':>4} {'bcrypt check':>14} {'remembered':>12} {'ratio':>9}")
    for cost in costs:
        auth = BasicAuth({"prometheus": bcrypt.hashpw(b"secret", bcrypt.gensalt(cost)).decode()})
        bcrypt_s = await median_seconds(auth, fresh=True, rounds=5)
        cached_s = await median_seconds(auth, fresh=False, rounds=2000)
        print(
            f"{cost:>4} {bcrypt_s * 1e3:>11.1f} ms {cached_s * 1e6:>9.1f} µs "
            f"{bcrypt_s / cached_s:>8.0f}x"
        )


if __name__ == "__main__":
    asyncio.run(main([int(a) for a in sys.argv[1:]] or [10, 12]))
