"""Every exception class: its code, its place in the hierarchy, and a real trigger."""

from __future__ import annotations

import json

import pytest
from conftest import IMAGE, qcow2_upper, stopped_sandbox

import microsnap
from microsnap import _errors

EXPECTED = {
    "SnapshotNotFound": ("snapshot_not_found", 1, LookupError),
    "SandboxNotFound": ("sandbox_not_found", 2, LookupError),
    "ImageNotFound": ("image_not_found", 3, LookupError),
    "AlreadyExists": ("already_exists", 4, None),
    "SandboxRunning": ("sandbox_running", 5, None),
    "HasChildren": ("has_children", 6, None),
    "IntegrityMismatch": ("integrity_mismatch", 7, None),
    "InvalidArgument": ("invalid_argument", 8, ValueError),
    "InvalidManifest": ("invalid_manifest", 9, None),
    "InvalidArchive": ("invalid_archive", 10, None),
    "Unsupported": ("unsupported", 11, None),
    "IoError": ("io", 12, None),
    "Cancelled": ("cancelled", 13, None),
    "InternalError": ("internal", 14, None),
    "Unauthorized": ("unauthorized", 15, None),
    "RegistryError": ("registry_error", 16, None),
}


def test_every_class_is_exported_with_its_code():
    assert sorted(c.__name__ for c in _errors.ERROR_CLASSES) == sorted(EXPECTED)
    for name, (code, status, also) in EXPECTED.items():
        cls = getattr(microsnap, name)
        assert issubclass(cls, microsnap.Error)
        assert (cls.CODE, cls.STATUS) == (code, status)
        if also is not None:
            assert issubclass(cls, also)
    not_lookup = [n for n, (_, _, also) in EXPECTED.items() if also is not LookupError]
    assert not any(issubclass(getattr(microsnap, n), LookupError) for n in not_lookup)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_error_object_maps_to_its_class(name):
    code, status, _ = EXPECTED[name]
    text = json.dumps({"code": code, "message": f"something about {name}", "extra": 1})
    err = _errors.error_from(status, text)
    assert type(err) is getattr(microsnap, name)
    assert (err.code, err.status, err.message) == (code, status, f"something about {name}")
    assert err.details["extra"] == 1
    assert name in repr(err) and code in str(err)


def test_unknown_status_is_a_plain_error():
    err = _errors.error_from(99, '{"code": "from_the_future", "message": "new"}')
    assert type(err) is microsnap.Error
    assert (err.code, err.status, err.message) == ("from_the_future", 99, "new")
    garbled = _errors.error_from(8, "not json")
    assert isinstance(garbled, microsnap.InvalidArgument) and garbled.message == "not json"


def test_real_triggers(home, tmp_path):
    """Each code that a caller can provoke through the API, provoked."""
    with pytest.raises(microsnap.SnapshotNotFound):
        home.Snapshot.get("nope")
    with pytest.raises(microsnap.SandboxNotFound):
        home.Sandbox.get("nope")
    with pytest.raises(microsnap.ImageNotFound):
        home.Sandbox.create("x", image="busybox:1")
    h = stopped_sandbox(home, "baseline")
    with pytest.raises(microsnap.AlreadyExists):
        home.Sandbox.create("baseline", image=IMAGE)
    with home.Sandbox.start("baseline"), pytest.raises(microsnap.SandboxRunning):
        home.Sandbox.remove("baseline")
    parent = h.snapshot("p", record_integrity=True)
    with home.Sandbox.create("w", snapshot="p"):
        pass
    home.Sandbox.get("w").snapshot("c")
    with pytest.raises(microsnap.HasChildren):
        home.Snapshot.remove("p")
    with open(parent.upper_path, "r+b") as f:
        f.write(b"corrupt")
    with pytest.raises(microsnap.IntegrityMismatch):
        parent.verify()
    with pytest.raises(microsnap.InvalidArgument) as e:
        home.Sandbox.create("", image=IMAGE)
    assert isinstance(e.value, ValueError)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "manifest.json").write_text("[]")
    with pytest.raises(microsnap.InvalidManifest):
        home.Snapshot.open(str(tmp_path / "bad"))
    with pytest.raises(microsnap.Unsupported):
        home.Sandbox.create("q", image=IMAGE, upper=qcow2_upper(tmp_path / "q.qcow2", backing_offset=512), fstype="ext4")
    (tmp_path / "a-file").write_text("not a directory")
    with pytest.raises(OSError) as io_error:
        home.Snapshot.list_dir(tmp_path / "a-file" / "sub")
    assert type(io_error.value) is microsnap.IoError and io_error.value.errno is None
    cancel = microsnap.Cancel()
    cancel.cancel()
    with pytest.raises(microsnap.Cancelled):
        h.snapshot("never", cancel=cancel)
    (tmp_path / "junk.tar.zst").write_bytes(b"\0junk" * 1000)
    with pytest.raises(microsnap.InvalidArchive):
        home.Snapshot.import_(tmp_path / "junk.tar.zst")
    # InternalError is only a caught panic: its mapping is tested above.


def test_io_error_is_an_os_error():
    assert issubclass(microsnap.IoError, OSError)
    err = _errors.error_from(12, json.dumps({"code": "io", "message": "open /x: No such file or directory"}))
    assert isinstance(err, OSError) and isinstance(err, microsnap.Error)
    # The engine's io error object carries no errno today, so there is none to give.
    assert err.errno is None
    assert str(err) == "open /x: No such file or directory [io]"
    with_errno = _errors.error_from(12, json.dumps({"code": "io", "message": "m", "errno": 2}))
    assert with_errno.errno == 2 and type(with_errno) is microsnap.IoError
    with pytest.raises(OSError):
        raise err
    not_io = [c for c in _errors.ERROR_CLASSES if c is not microsnap.IoError]
    assert not any(issubclass(c, OSError) for c in not_io)


def test_public_names_are_exactly_all():
    public = {n for n in dir(microsnap) if not n.startswith("_")}
    assert public == set(microsnap.__all__)
    assert all(hasattr(microsnap, n) for n in microsnap.__all__)


@pytest.mark.parametrize("cls", [microsnap.Error, microsnap.LibraryError, *_errors.ERROR_CLASSES],
                         ids=lambda c: c.__name__)
def test_exception_classes_show_as_microsnap(cls):
    import pickle
    import traceback

    assert (cls.__module__, cls.__qualname__) == ("microsnap", cls.__name__)
    assert getattr(microsnap, cls.__name__) is cls
    err = cls("boom")
    assert traceback.format_exception_only(err)[-1].startswith(f"microsnap.{cls.__name__}: ")
    # The name it shows is a real one: pickle finds the class by it.
    again = pickle.loads(pickle.dumps(err))
    assert type(again) is cls and str(again) == str(err)
