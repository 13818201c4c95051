"""What keeps abusive or broken clients from starving the scrapes that matter.

aiohttp already answers oversized request lines and headers with 400 (its parser's 8190-byte
line and field limits, 128 headers) and unknown paths and methods with 404 and 405. What it
leaves to the application: how long a connection may hold a slot without sending a complete
request (aiohttp's keep-alive timer, armed from the connection's start and again after each
response, closes such connections; it is the idle timeout below), and how many connections
the process may hold at all.
"""

from __future__ import annotations

import logging
import resource

log = logging.getLogger(__name__)


def raise_open_files_limit() -> int:
    """Raise the soft limit on open files to the hard limit, as Go programs do at start.

    Each connection costs a descriptor; service managers often start processes with a soft
    limit of 1024, which a few hundred idle or slow connections would exhaust, leaving no
    descriptor to accept Prometheus' scrape. Returns the limit now in force.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft >= hard:
        return soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (OSError, ValueError) as err:
        log.warning("cannot raise the open files limit", extra={"limit": soft, "err": err})
        return soft
    return hard
