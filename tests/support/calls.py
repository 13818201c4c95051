"""Counting the calls of a method or function, to check what a reader did without it
keeping counters of its own."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import pytest


class Calls:
    """Replaces `owner.name`, for the test, with a wrapper that counts its calls."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, owner: object, name: str) -> None:
        self.count = 0
        wrapped: Callable[..., Any] = getattr(owner, name)

        @functools.wraps(wrapped)
        def counted(*args: Any, **kwargs: Any) -> Any:
            self.count += 1
            return wrapped(*args, **kwargs)

        monkeypatch.setattr(owner, name, counted)
