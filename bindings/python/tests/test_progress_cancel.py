"""Progress callbacks, Cancel tokens, and Ctrl-C (SIGINT) during long calls."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from conftest import PACKAGE_SRC, stopped_sandbox

import microsnap


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


def test_progress_reports_phases_in_order(home):
    h = stopped_sandbox(home, "baseline")
    events: list[tuple[str, int, int]] = []
    art = h.snapshot("x", record_integrity=True, progress=lambda *e: events.append(e))
    phases = [p for p, _, _ in events]
    assert phases[0] == "copy" and phases[-1] == "hash"
    assert phases == sorted(phases, key=["copy", "hash"].index), "copy then hash"
    for phase in ("copy", "hash"):
        seen = [(d, t) for p, d, t in events if p == phase]
        assert all(isinstance(d, int) and isinstance(t, int) for d, t in seen)
        assert [d for d, _ in seen] == sorted(d for d, _ in seen), "done never goes back"
        assert seen[-1][0] == seen[-1][1] > 0, "each phase ends at its total"
    verify_events: list[tuple[str, int, int]] = []
    art.verify(progress=lambda *e: verify_events.append(e))
    assert verify_events and verify_events[-1][1] == verify_events[-1][2] > 0


def test_progress_on_sandbox_create_from_snapshot(home):
    stopped_sandbox(home, "baseline").snapshot("x", record_integrity=True)
    events: list[str] = []
    with home.Sandbox.create("w", snapshot="x", progress=lambda p, d, t: events.append(p)):
        pass
    assert "copy" in events and "hash" in events


class Boom(Exception):
    pass


def test_exception_in_progress_cancels_and_is_reraised(home):
    h = stopped_sandbox(home, "baseline")
    calls = []

    def progress(phase, done, total):
        calls.append(done)
        if done > 0:
            raise Boom("stop here")

    with pytest.raises(Boom, match="stop here"):
        h.snapshot("x", record_integrity=True, progress=progress)
    assert len(calls) == 2, "no further callbacks after the exception"
    assert leftovers(home.path / "snapshots") == []
    assert home.Snapshot.list() == []


def test_exception_in_progress_of_sandbox_create_leaves_nothing(home):
    stopped_sandbox(home, "baseline").snapshot("x")

    def progress(phase, done, total):
        if done > 0:
            raise Boom()

    with pytest.raises(Boom):
        home.Sandbox.create("w", snapshot="x", progress=progress)
    assert [s.name for s in home.Sandbox.list()] == ["baseline"]
    assert leftovers(home.path / "sandboxes") == ["baseline"]


def test_cancel_before_start(home):
    h = stopped_sandbox(home, "baseline")
    cancel = microsnap.Cancel()
    cancel.cancel()
    assert cancel.cancelled
    with pytest.raises(microsnap.Cancelled) as e:
        h.snapshot("x", cancel=cancel)
    assert e.value.code == "cancelled" and e.value.status == 13
    assert leftovers(home.path / "snapshots") == []


def test_cancel_from_the_callback(home):
    h = stopped_sandbox(home, "baseline")
    cancel = microsnap.Cancel()
    seen = []

    def progress(phase, done, total):
        seen.append(done)
        if done > 0:
            cancel.cancel()

    with pytest.raises(microsnap.Cancelled):
        h.snapshot("x", record_integrity=True, progress=progress, cancel=cancel)
    assert len(seen) == 2
    assert leftovers(home.path / "snapshots") == []


def test_cancel_from_another_thread_stops_several_calls(home):
    stopped_sandbox(home, "a").snapshot("sa", record_integrity=True)
    stopped_sandbox(home, "b").snapshot("sb", record_integrity=True)
    cancel = microsnap.Cancel()
    started = threading.Barrier(3)
    release = threading.Event()
    outcomes: dict[str, BaseException | None] = {}

    def progress(phase, done, total):
        if done == 0 and not release.is_set():
            started.wait(timeout=10)
            release.wait(timeout=10)

    def run(ref):
        try:
            home.Snapshot.verify(ref, progress=progress, cancel=cancel)
            outcomes[ref] = None
        except BaseException as e:  # noqa: BLE001
            outcomes[ref] = e

    threads = [threading.Thread(target=run, args=(r,)) for r in ("sa", "sb")]
    for t in threads:
        t.start()
    started.wait(timeout=10)  # both calls are inside the library
    cancel.cancel()
    release.set()
    for t in threads:
        t.join(timeout=30)
    assert all(isinstance(outcomes[r], microsnap.Cancelled) for r in ("sa", "sb")), outcomes
    # the token stays cancelled; a fresh token works again
    with pytest.raises(microsnap.Cancelled):
        home.Snapshot.verify("sa", cancel=cancel)
    assert home.Snapshot.verify("sa", cancel=microsnap.Cancel()).verified


def test_cancel_after_success_changes_nothing(home):
    h = stopped_sandbox(home, "baseline")
    cancel = microsnap.Cancel()
    art = h.snapshot("x", cancel=cancel)
    cancel.cancel()
    assert home.Snapshot.open("x") == art


def test_bad_progress_and_cancel_arguments(home):
    h = stopped_sandbox(home, "baseline")
    with pytest.raises(TypeError):
        h.snapshot("x", progress=42)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        h.snapshot("x", cancel=True)  # type: ignore[arg-type]


# ---- Ctrl-C ----

CHILD = r"""
import json, os, sys, threading, time
sys.path.insert(0, sys.argv[1])
import microsnap
home = microsnap.Home(sys.argv[2])
what = sys.argv[3]
calls = []
threads = set()

def progress(phase, done, total):
    calls.append(done)
    threads.add(threading.current_thread() is threading.main_thread())
    if len(calls) == 1:
        print("started", flush=True)
    time.sleep(0.5)  # slow enough that Ctrl-C lands mid-operation

result = {"what": what}
try:
    if what == "snapshot":
        home.Snapshot.create("baseline", name="x", record_integrity=True, progress=progress)
    elif what == "verify":
        home.Snapshot.verify("base", progress=progress)
    elif what == "sandbox":
        home.Sandbox.create("worker", snapshot="base", progress=progress)
    elif what == "export":
        home.Snapshot.export("base", home.path / "out.tar", plain_tar=True, progress=progress)
    elif what == "import":
        home.Snapshot.import_(sys.argv[4], dest=home.path / "imported", progress=progress)
    result["outcome"] = "returned"
except KeyboardInterrupt:
    result["outcome"] = "KeyboardInterrupt"
except BaseException as e:
    result["outcome"] = repr(e)
result["calls"] = len(calls)
result["callback_on_main_thread"] = sorted(threads)
result["snapshots"] = sorted(os.listdir(home.path / "snapshots"))
result["sandboxes"] = sorted(os.listdir(home.path / "sandboxes"))
result["indexed"] = sorted(h.name for h in home.Snapshot.list())
result["sandbox_records"] = sorted(s.name for s in home.Sandbox.list())
result["home"] = sorted(os.listdir(home.path))
imported = home.path / "imported"
result["imported"] = sorted(os.listdir(imported)) if imported.exists() else []
print(json.dumps(result), flush=True)
"""


@pytest.mark.parametrize("what", ["snapshot", "verify", "sandbox", "export", "import"])
def test_sigint_cancels_cleanly(home, what, tmp_path):
    stopped_sandbox(home, "baseline").snapshot("base", record_integrity=True)
    archive = home.Snapshot.export("base", tmp_path / "base.tar", plain_tar=True).path
    home_before = sorted(os.listdir(home.path))
    env = dict(os.environ)
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(PACKAGE_SRC), str(home.path), what, str(archive)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "started"
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=60)
    finally:
        child.kill()
    assert child.returncode == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    assert result["outcome"] == "KeyboardInterrupt", result
    # The main thread only waited: the interrupt reached it there, not
    # through a callback, and it cancelled the native call.
    assert result["callback_on_main_thread"] == [False], result
    # copy+hash of 4 MiB in 1 MiB steps is ~10 callbacks; the interrupt stopped it early
    assert result["calls"] <= 3, result
    assert result["snapshots"] == ["base"], "nothing left behind"
    assert result["indexed"] == ["base"]
    assert result["sandboxes"] == ["baseline"]
    assert result["sandbox_records"] == ["baseline"]
    assert result["home"] == home_before, "no export file, no import directory"
    assert result["imported"] == []


def test_interrupt_that_lands_after_success_still_releases_the_sandbox(home, monkeypatch):
    """Ctrl-C just as the library returned success: KeyboardInterrupt, and no held lock."""
    from microsnap import _call

    real = _call._run_interruptibly

    def interrupted_after_success(run, on_interrupt):
        value, _ = real(run, on_interrupt)
        return value, True

    monkeypatch.setattr(_call, "_run_interruptibly", interrupted_after_success)
    with pytest.raises(KeyboardInterrupt):
        home.Sandbox.create("late", image="alpine:3.20", size=1 << 20)
    monkeypatch.undo()
    assert home.Sandbox.get("late").state == "stopped", "stopped and freed, not left running"
    with home.Sandbox.start("late"):
        pass


CHILD_OWN_HANDLER = r"""
import signal, sys, time
sys.path.insert(0, sys.argv[1])
import microsnap
home = microsnap.Home(sys.argv[2])
got = []
signal.signal(signal.SIGINT, lambda signum, frame: got.append(signum))

def progress(phase, done, total):
    if done == 0 and phase == "hash":
        print("started", flush=True)
        time.sleep(0.5)

report = home.Snapshot.verify("base", progress=progress)
print(report.upper.kind, len(got), flush=True)
"""


def test_a_program_sigint_handler_is_left_alone(home):
    """With its own SIGINT handler installed, the program decides: the call is not cancelled."""
    stopped_sandbox(home, "baseline").snapshot("base", record_integrity=True)
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD_OWN_HANDLER, str(PACKAGE_SRC), str(home.path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "started"
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=60)
    finally:
        child.kill()
    assert child.returncode == 0, err
    assert out.split() == ["verified", "1"]


def test_progress_passes_every_report_through_unchanged():
    """"done never goes back" is the engine's rule (docs/abi.md), not the binding's.

    The binding forwards each report as the library made it, so a rule kept
    in one place cannot be kept differently in two. What users observe on
    real calls is checked by test_progress_reports_phases_in_order.
    """
    from microsnap._call import _Progress

    reports = [(b"hash", 0), (b"hash", 1), (b"hash", 3), (b"hash", 2), (b"hash", 4),
               (b"copy", 0), (b"copy", 2), (b"copy", 1), (b"copy", 0), (b"copy", 1)]
    seen: list[tuple[str, int, int]] = []
    tracker = _Progress(lambda *e: seen.append(e))
    for phase, done in reports:
        assert tracker._trampoline(phase, done, 4, None) == 0
    assert seen == [(phase.decode(), done, 4) for phase, done in reports]
