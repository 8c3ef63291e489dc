"""Snapshot.prune: the retention policy through the binding."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from conftest import IMAGE, UPPER_SIZE, stopped_sandbox

import microsnap


def names(entries) -> list[str]:
    return [e.name for e in entries]


def reasons(report: microsnap.PruneReport) -> dict[str, tuple[str, ...]]:
    return {k.name: k.reasons for k in report.kept}


@pytest.fixture
def chain(home):
    """base -> child (through sandbox "worker", kept), then s1, s2, s3 of "baseline"."""
    stopped_sandbox(home, "baseline")
    home.Snapshot.create("baseline", name="base", labels={"ci": "1"})
    with home.Sandbox.create("worker", snapshot="base"):
        pass
    home.Snapshot.create("worker", name="child")
    for n in ("s1", "s2", "s3"):
        time.sleep(0.005)
        home.Snapshot.create("baseline", name=n, labels={"ci": "1"})
    return home


def test_keep_last_dry_run_then_real_run(chain):
    home = chain
    dry = home.Snapshot.prune(keep_last=1, dry_run=True)
    assert isinstance(dry, microsnap.PruneReport) and dry.dry_run
    assert names(dry.removed) == ["s1", "s2"]
    assert reasons(dry) == {
        "s3": ("keep_last",),
        "child": ("keep_last",),
        "base": ("has_children:child", "used_by_sandbox:worker"),
    }
    assert len(home.Snapshot.list()) == 5
    real = home.Snapshot.prune(keep_last=1)
    assert not real.dry_run
    assert names(real.removed) == names(dry.removed)
    assert real.bytes_freed == sum(s.allocated_bytes for s in real.removed)
    for s in real.removed:
        assert 0 < s.allocated_bytes < UPPER_SIZE
        assert s.group == "baseline" and s.created_at is not None
        assert not s.path.exists()
    assert sorted(h.name for h in home.Snapshot.list()) == ["base", "child", "s3"]


def test_labels_older_than_timedelta_force_and_progress(chain):
    home = chain
    home.Sandbox.remove("worker")
    assert home.Snapshot.prune(older_than="1h").removed == ()
    assert home.Snapshot.prune(older_than=timedelta(hours=1), dry_run=True).removed == ()
    report = home.Snapshot.prune(older_than=timedelta(0), labels={"ci": "1"})
    assert names(report.removed) == ["s1", "s2", "s3"]
    assert reasons(report) == {"child": ("not_selected",), "base": ("has_children:child",)}
    events = []
    report = home.Snapshot.prune(
        older_than="0s", labels={"ci": "1"}, force=True, progress=lambda *e: events.append(e)
    )
    assert names(report.removed) == ["base"]
    assert events and events[0] == ("prune", 0, report.bytes_freed)
    assert events[-1] == ("prune", report.bytes_freed, report.bytes_freed)


def test_group_by_label(home):
    stopped_sandbox(home, "baseline")
    for n, tier in (("x1", "x"), ("y1", "y"), ("x2", "x"), ("y2", "y")):
        time.sleep(0.005)
        home.Snapshot.create("baseline", name=n, labels={"tier": tier})
    report = home.Snapshot.prune(keep_last=1, group_by="label:tier")
    assert names(report.removed) == ["x1", "y1"]
    assert [s.group for s in report.removed] == ["x", "y"]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({}, microsnap.InvalidArgument, "give a retention rule"),
        ({"labels": {"ci": "1"}}, microsnap.InvalidArgument, "labels only choose"),
        ({"older_than": "7"}, microsnap.InvalidArgument, 'older_than: invalid duration "7"'),
        ({"keep_within": "1y"}, microsnap.InvalidArgument, "months and years"),
        ({"keep_last": 0}, microsnap.InvalidArgument, "keep_last must be 1 to"),
        ({"keep_last": "3"}, TypeError, "keep_last must be an int"),
        ({"older_than": 3600}, TypeError, "older_than must be a str or datetime.timedelta"),
        ({"older_than": timedelta(seconds=-1)}, microsnap.InvalidArgument, "must not be negative"),
        ({"keep_last": 1, "group_by": "host"}, microsnap.InvalidArgument, "label:KEY"),
    ],
)
def test_bad_options_are_refused(chain, kwargs, error, match):
    with pytest.raises(error, match=match):
        chain.Snapshot.prune(**kwargs)
    assert len(chain.Snapshot.list()) == 5


def test_a_cancelled_prune_removes_nothing(chain):
    cancel = microsnap.Cancel()
    cancel.cancel()
    with pytest.raises(microsnap.Cancelled):
        chain.Snapshot.prune(keep_last=1, cancel=cancel)
    assert len(chain.Snapshot.list()) == 5


def test_the_default_home_prunes_too(default_home):
    with microsnap.Sandbox.create("b", image=IMAGE, size=UPPER_SIZE):
        pass
    for n in ("a", "b2"):
        time.sleep(0.005)
        microsnap.Snapshot.create("b", name=n)
    assert names(microsnap.Snapshot.prune(keep_last=1).removed) == ["a"]
