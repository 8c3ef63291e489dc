"""Calling the library: JSON in, JSON or an exception out.

Short calls run on the caller's thread. Long calls (those that take a cancel
token and a progress callback) additionally:

- always run with a fresh native cancel token of their own, which the
  caller's :class:`Cancel` (if any) triggers;
- wrap the progress callable in a C callback kept alive for the call; an
  exception raised by it cancels the operation and is re-raised once the
  call has returned;
- on the main thread, run the native call on a worker thread while the main
  thread waits, so Ctrl-C is seen at once: it triggers the native cancel,
  waits for the call to return (the library then leaves nothing behind),
  and raises KeyboardInterrupt. ctypes releases the GIL during foreign
  calls, so the worker costs nothing while the library works.
"""

from __future__ import annotations

import ctypes
import json
import queue
import signal
import threading
from collections.abc import Callable, Sequence
from typing import Any

from . import _lib
from ._cancel import Cancel
from ._errors import Error, error_from

#: ``progress(phase, bytes_done, bytes_total)``; its return value is ignored.
ProgressCallback = Callable[[str, int, int], object]


def encode_args(args: dict[str, Any] | None) -> bytes:
    """The JSON arguments object; ``None`` values mean "absent" and are dropped."""
    clean = {k: v for k, v in (args or {}).items() if v is not None}
    return json.dumps(clean).encode("utf-8")


def take_string(p: Any) -> str:
    """Copy a library-owned string and free it. NULL reads as ""."""
    if not p:
        return ""
    try:
        return ctypes.string_at(p).decode("utf-8", errors="replace")
    finally:
        _lib.lib().msnap_string_free(p)


def check_status(status: int) -> None:
    """For status-only functions: raise on a non-zero status."""
    if status != 0:
        raise error_from(status, "")


def _argv(args: Sequence[Any], out: Any, out_at: int) -> list[Any]:
    argv = list(args)
    argv.insert(out_at, ctypes.byref(out))
    return argv


def call(func: Any, *args: Any, out_at: int = 0) -> Any:
    """``func(..., &out, ...)`` with ``out`` at position ``out_at``: the parsed result."""
    out = _lib.OwnedString()
    status = func(*_argv(args, out, out_at))
    text = take_string(out)
    if status != 0:
        raise error_from(status, text)
    return json.loads(text)


class _Progress:
    """The C progress callback for one call, and the exception it caught.

    Every report is passed on as the library made it: that ``done`` never
    goes back within a phase is the library's guarantee (docs/abi.md), kept
    there once rather than re-checked here.
    """

    def __init__(self, progress: ProgressCallback | None) -> None:
        self.failure: BaseException | None = None
        self._progress = progress
        # Kept on self: ctypes must not collect the thunk while C holds it.
        self.c_function = _lib.PROGRESS_FN(self._trampoline) if progress else _lib.PROGRESS_FN()

    def _trampoline(self, phase: bytes | None, done: int, total: int, _payload: Any) -> int:
        if self.failure is not None or self._progress is None:
            return 1
        try:
            self._progress((phase or b"").decode("utf-8", errors="replace"), done, total)
            return 0
        except BaseException as e:  # noqa: BLE001 - re-raised on the caller's thread
            self.failure = e
            return 1


def _run_interruptibly(run: Callable[[], Any], on_interrupt: Callable[[], None]) -> tuple[Any, bool]:
    """Run ``run()`` on a worker thread; Ctrl-C calls ``on_interrupt`` and keeps waiting.

    Returns (what run returned, whether an interrupt came). Exceptions from
    ``run`` are re-raised here.

    While waiting, SIGINT gets a handler that only records the interrupt and
    cancels. Catching KeyboardInterrupt around the wait is not enough: when
    the kernel delivers SIGINT to another thread, Python raises it in the
    main thread at the next bytecode, which may lie outside any ``try``,
    and the call would run on uncancelled. A handler installed by the
    program itself (not Python's default) is left alone.
    """
    results: queue.SimpleQueue[tuple[bool, Any]] = queue.SimpleQueue()

    def worker() -> None:
        try:
            results.put((True, run()))
        except BaseException as e:  # noqa: BLE001 - handed to the waiting thread
            results.put((False, e))

    interrupted = False

    def interrupt() -> None:
        nonlocal interrupted
        if not interrupted:
            interrupted = True
            # Cancel, then keep waiting for the library to return: it cleans
            # up before it does, and nothing it uses may be freed before that.
            on_interrupt()

    previous = signal.getsignal(signal.SIGINT)
    ours = previous is signal.default_int_handler
    if ours:
        signal.signal(signal.SIGINT, lambda _signum, _frame: interrupt())
    try:
        threading.Thread(target=worker, name="microsnap-call", daemon=True).start()
        while True:
            try:
                ok, value = results.get(timeout=0.1)
                break
            except queue.Empty:
                continue
            except KeyboardInterrupt:
                # Only reached with a program-installed handler that raises.
                interrupt()
    finally:
        if ours:
            signal.signal(signal.SIGINT, previous)
    if not ok:
        raise value
    return value, interrupted


def call_long(
    func: Any,
    *args: Any,
    out_at: int = 0,
    cancel: Cancel | None = None,
    progress: ProgressCallback | None = None,
) -> Any:
    """A long call: ``args`` then (cancel, progress, payload) are passed.

    Raises the progress callback's exception if it raised, KeyboardInterrupt
    if interrupted (even when the call finished anyway: Ctrl-C means stop),
    else the library's error. A success that raced a Cancel token is kept.
    """
    if cancel is not None and not isinstance(cancel, Cancel):
        raise TypeError(f"cancel must be a microsnap.Cancel, not {type(cancel).__name__}")
    if progress is not None and not callable(progress):
        raise TypeError(f"progress must be callable, not {type(progress).__name__}")
    lib = _lib.lib()
    token = _lib.CancelPtr()
    check_status(lib.msnap_cancel_new(ctypes.byref(token)))
    listener = None
    try:

        def trigger() -> None:
            lib.msnap_cancel_trigger(token)

        if cancel is not None:
            listener = cancel._attach(trigger)
        tracker = _Progress(progress)
        out = _lib.OwnedString()
        argv = _argv(args, out, out_at) + [token, tracker.c_function, None]

        def run() -> int:
            return int(func(*argv))

        if threading.current_thread() is threading.main_thread():
            status, interrupted = _run_interruptibly(run, trigger)
        else:
            status, interrupted = run(), False
        text = take_string(out)
    finally:
        if listener is not None and cancel is not None:
            cancel._detach(listener)
        # A Cancel.cancel() racing this may still trigger the freed token:
        # the library checks handles, so that is an ignored error, not a crash.
        lib.msnap_cancel_free(token)
    if tracker.failure is not None:
        raise tracker.failure
    if interrupted:
        raise KeyboardInterrupt
    if status != 0:
        raise error_from(status, text)
    return json.loads(text)


__all__ = ["Error", "ProgressCallback", "call", "call_long", "check_status", "encode_args", "take_string"]
