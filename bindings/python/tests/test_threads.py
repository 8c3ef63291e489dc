"""Eight threads at once on one Home, and on the module-level API."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from conftest import IMAGE, UPPER_SIZE, data_chunks, write_pattern

import microsnap

THREADS = 8


def workflow(api: Any, i: int) -> tuple[str, str]:
    """One thread's life: sandbox, data, snapshot with integrity, verify, boot a worker."""
    name = f"sb{i}"
    progress_threads = set()
    with api.Sandbox.create(name, image=IMAGE, size=UPPER_SIZE) as sb:
        write_pattern(sb.info().upper_path, data_chunks(i, count=2))
    art = api.Sandbox.get(name).snapshot(
        f"snap{i}",
        record_integrity=True,
        progress=lambda *_: progress_threads.add(threading.get_ident()),
    )
    assert progress_threads, "progress reached this thread's callback"
    assert api.Snapshot.verify(f"snap{i}").upper.digest == art.integrity.digest
    assert api.Snapshot.get(art.digest).name == f"snap{i}"
    with api.Sandbox.create(f"worker{i}", snapshot=f"snap{i}") as w:
        assert w.info().from_snapshot == art.digest
    api.Snapshot.list()
    api.Sandbox.list()
    return f"snap{i}", art.digest


def run_all(api) -> list[tuple[str, str]]:
    barrier = threading.Barrier(THREADS)

    def start(i):
        barrier.wait(timeout=30)  # all eight begin together
        return workflow(api, i)

    with ThreadPoolExecutor(THREADS) as pool:
        return list(pool.map(start, range(THREADS)))


def test_eight_threads_on_one_home(home):
    results = run_all(home)
    assert len({d for _, d in results}) == THREADS, "distinct data, distinct digests"
    listed = {h.name: h.digest for h in home.Snapshot.list()}
    assert listed == dict(results)
    assert len(home.Sandbox.list()) == 2 * THREADS
    assert all(s.state == "stopped" for s in home.Sandbox.list())


def test_eight_threads_on_the_module_level_api(default_home):
    results = run_all(microsnap)
    assert {h.name for h in microsnap.Snapshot.list()} == {n for n, _ in results}


def test_cancel_one_of_eight(home):
    for i in range(THREADS):
        with home.Sandbox.create(f"c{i}", image=IMAGE, size=UPPER_SIZE) as sb:
            write_pattern(sb.info().upper_path, data_chunks(i, count=2))
    cancel = microsnap.Cancel()

    def snap(i):
        if i == 3:
            def progress(phase, done, total):
                cancel.cancel()

            try:
                home.Snapshot.create(f"c{i}", name=f"s{i}", progress=progress, cancel=cancel)
            except microsnap.Cancelled:
                return "cancelled"
            return "done"
        home.Snapshot.create(f"c{i}", name=f"s{i}")
        return "done"

    with ThreadPoolExecutor(THREADS) as pool:
        outcomes = list(pool.map(snap, range(THREADS)))
    assert outcomes == ["done"] * 3 + ["cancelled"] + ["done"] * 4
    assert sorted(h.name for h in home.Snapshot.list()) == sorted(f"s{i}" for i in range(THREADS) if i != 3)
