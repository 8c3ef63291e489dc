"""Image.prune and Home.usage: what prune removes and keeps, and usage against stat."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest
from conftest import IMAGE, MIB, stopped_sandbox

import microsnap


def stray_blob(home: microsnap.Home, content: bytes) -> tuple[str, Path]:
    """A blob nothing names, an hour old (prune never removes younger blobs than itself)."""
    hexdigest = hashlib.sha256(content).hexdigest()
    path = home.path / "images" / "blobs" / "sha256" / hexdigest
    path.write_bytes(content)
    old = time.time() - 3600
    os.utime(path, (old, old))
    return f"sha256:{hexdigest}", path


def test_prune_removes_only_what_nothing_needs(home):
    stopped_sandbox(home, "sb")
    digest, path = stray_blob(home, b"nothing names this blob")

    allocated = path.stat().st_blocks * 512
    dry = home.Image.prune(dry_run=True)
    assert isinstance(dry, microsnap.ImagePruneReport)
    assert dry.dry_run and [b.digest for b in dry.removed] == [digest]
    assert path.exists(), "a dry run removes nothing"

    report = home.Image.prune()
    assert not report.dry_run
    assert [(b.digest, b.size) for b in report.removed] == [(digest, 23)]
    assert report.bytes_freed == report.removed[0].allocated_bytes == allocated
    assert report.blobs_kept == 3, "the tagged, pinned image: manifest, config, layer"
    assert report.logical_bytes_freed == 23
    assert not path.exists()
    # The image still works.
    with home.Sandbox.create("after", image=IMAGE, size=64 * MIB):
        pass


def test_prune_refuses_when_a_snapshot_pin_is_unreadable(home):
    digest, path = stray_blob(home, b"would go")
    broken = home.path / "snapshots" / "broken"
    broken.mkdir()
    (broken / "manifest.json").write_text("{")
    with pytest.raises(microsnap.InvalidManifest, match="broken"):
        home.Image.prune()
    assert path.exists()


def test_prune_honours_a_cancel_that_already_fired(home):
    _, path = stray_blob(home, b"stays")
    cancel = microsnap.Cancel()
    cancel.cancel()
    with pytest.raises(microsnap.Cancelled):
        home.Image.prune(cancel=cancel)
    assert path.exists()


def stat_space(directory: Path) -> tuple[int, int]:
    logical = allocated = 0
    for p in directory.rglob("*"):
        st = p.lstat()
        if p.is_file() and not p.is_symlink():
            logical += st.st_size
            allocated += st.st_blocks * 512
    return logical, allocated


def test_usage_matches_stat(home):
    stopped_sandbox(home, "sb")
    home.Snapshot.create("sb", name="snap")
    # With merkle integrity, create records the leaf list push and pull use,
    # in the home's cache/.
    home.Snapshot.create(
        "sb",
        name="listed",
        record_integrity=True,
        integrity_algorithm="microsnap-merkle-sha256-v1",
    )
    u = home.usage()
    assert isinstance(u, microsnap.Usage)
    assert [s.name for s in u.sandboxes] == ["sb"]
    assert sorted(s.name for s in u.snapshots) == ["listed", "snap"]
    assert [i.name for i in u.images] == [IMAGE]
    for item in (*u.sandboxes, *u.snapshots):
        assert item.path is not None
        assert (item.logical_bytes, item.allocated_bytes) == stat_space(item.path), item.name
    sb = u.sandboxes[0]
    # Snapshot create reflinks where the filesystem can (XFS, btrfs): then the
    # sandbox and its snapshot share the same extents; on ext4 neither shares.
    assert sb.shared_bytes == u.snapshots[0].shared_bytes
    assert sb.digest is None and sb.logical_bytes >= 64 * MIB
    assert 2 * MIB <= sb.allocated_bytes < 64 * MIB, "the upper is sparse"
    image = u.images[0]
    assert image.path is None and image.digest and image.logical_bytes > 0
    cache = stat_space(Path(home.path) / "cache")
    assert cache[0] > 0, "the leaf list is in the cache"
    assert (u.cache.logical_bytes, u.cache.allocated_bytes) == cache
    rows = sum(i.allocated_bytes for i in (*u.sandboxes, *u.snapshots, *u.images))
    assert u.total.allocated_bytes == rows + u.cache.allocated_bytes
    assert u.unreferenced_images == microsnap.Space(0, 0, 0)
