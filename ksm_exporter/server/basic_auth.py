"""HTTP basic auth against bcrypt hashes, as aiohttp middleware.

bcrypt is slow on purpose (tens to hundreds of milliseconds per check), and Prometheus sends
the same credentials on every scrape. A password that passed bcrypt once is remembered as a
keyed digest (HMAC with a key that lives only in this process, so the cache holds nothing
an attacker could crack offline) and later scrapes compare digests in constant time. Checks
run in a worker thread, one at a time, so wrong passwords cannot stall the event loop or
take every core.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
from collections.abc import Awaitable, Callable, Mapping
from typing import Protocol

from aiohttp import BasicAuth as BasicAuthHeader
from aiohttp import hdrs, web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

REALM = "ksm-exporter"


class Guard(Protocol):
    """What stands in front of every path: basic auth, or the web configuration followed."""

    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse: ...


class BasicAuth:
    def __init__(self, users: Mapping[str, str]) -> None:
        self._users = {user: hashed.encode() for user, hashed in users.items()}
        # Checked for unknown users too, at the same cost, so a response's timing does not
        # tell which users exist.
        cost = min((int(h[4:6]) for h in self._users.values()), default=10)
        import bcrypt  # noqa: PLC0415 - loaded only where basic auth is configured (memory)

        self._unknown_user_hash = bcrypt.gensalt(cost) + b"." * 31
        self._key = secrets.token_bytes(32)
        self._verified: dict[str, bytes] = {}
        self._one_check_at_a_time = asyncio.Lock()
        self.bcrypt_checks = 0

    async def allows(self, authorization: str | None) -> bool:
        if not authorization:
            return False
        try:
            credentials = BasicAuthHeader.decode(authorization, encoding="utf-8")
        except ValueError:
            return False
        user, password = credentials.login, credentials.password.encode()
        digest = hmac.new(self._key, password, hashlib.sha256).digest()
        remembered = self._verified.get(user)
        if remembered is not None and hmac.compare_digest(remembered, digest):
            return True
        hashed = self._users.get(user, self._unknown_user_hash)
        async with self._one_check_at_a_time:
            self.bcrypt_checks += 1
            matches = await asyncio.to_thread(checkpw, password, hashed)
        if matches and user in self._users:
            self._verified[user] = digest
            return True
        return False

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if await self.allows(request.headers.get(hdrs.AUTHORIZATION)):
            return await handler(request)
        return web.Response(
            status=401,
            text="Unauthorized\n",
            headers={hdrs.WWW_AUTHENTICATE: f'Basic realm="{REALM}"'},
        )


def checkpw(password: bytes, hashed: bytes) -> bool:
    import bcrypt  # noqa: PLC0415 - loaded only where basic auth is configured (memory)

    try:
        return bcrypt.checkpw(password, hashed)
    except ValueError:  # longer than bcrypt's 72 bytes: cannot match any hash
        return False
