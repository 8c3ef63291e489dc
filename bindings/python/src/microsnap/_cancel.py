"""Cancel: a token that stops long operations from any thread."""

from __future__ import annotations

import threading
from collections.abc import Callable


class Cancel:
    """Pass as ``cancel=`` to long operations; call :meth:`cancel` from anywhere.

    One token may serve several operations at once, and cancelling it stops
    all of them. Each operation runs with its own native token that this one
    triggers, so an interrupt (Ctrl-C) of one call never marks the shared
    token cancelled. A token cancelled before an operation starts makes the
    operation fail at once with ``microsnap.Cancelled``.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cancelled = False
        self._listeners: dict[int, Callable[[], None]] = {}
        self._next_id = 0

    def cancel(self) -> None:
        """Ask every operation using this token to stop. Idempotent."""
        with self._lock:
            self._cancelled = True
            listeners = list(self._listeners.values())
        for trigger in listeners:
            trigger()

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    def _attach(self, trigger: Callable[[], None]) -> int:
        """Run ``trigger`` on cancel (now, if already cancelled). Returns an id."""
        with self._lock:
            self._next_id += 1
            ident = self._next_id
            self._listeners[ident] = trigger
            already = self._cancelled
        if already:
            trigger()
        return ident

    def _detach(self, ident: int) -> None:
        with self._lock:
            self._listeners.pop(ident, None)

    def __repr__(self) -> str:
        return f"Cancel(cancelled={self._cancelled})"
