"""Running a child without the capabilities that let root read any file."""

from __future__ import annotations

import os

from harness.tools import require


def without_file_capabilities() -> list[str]:
    """A command prefix: root then reads files as their mode says, like any other user.

    As another user the child could not reach this Python or this checkout (under /root on
    some hosts); dropping CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH from root keeps both.
    """
    if os.geteuid() != 0:
        return []
    setpriv = require("setpriv", "util-linux")
    return [setpriv, "--bounding-set=-dac_override,-dac_read_search", "--"]
