"""Snapshot.push / pull / pull_with_report: arguments, errors, and round trips through oci: layouts."""

from __future__ import annotations

import pytest
from conftest import stopped_sandbox

import microsnap

BAD_REFERENCES = [
    "sandboxes/s:v1",  # no registry host: microsnap never guesses one
    "docker://localhost:5000/s:v1",  # skopeo's transport prefix
    "localhost:5000/S:v1",  # repositories are lowercase
    "localhost:5000/s@sha256:short",  # not a digest
    "",
]


@pytest.fixture
def snap(home: microsnap.Home) -> microsnap.SnapshotArtifact:
    return stopped_sandbox(home, "base").snapshot("s", record_integrity=True)


@pytest.mark.parametrize("ref", BAD_REFERENCES)
def test_a_malformed_reference_is_invalid_argument(home, snap, ref):
    with pytest.raises(microsnap.InvalidArgument, match="invalid reference"):
        home.Snapshot.push("s", ref)
    with pytest.raises(microsnap.InvalidArgument, match="invalid reference"):
        home.Snapshot.pull(ref)
    with pytest.raises(microsnap.InvalidArgument, match="invalid reference"):
        home.Snapshot.pull_with_report(ref, name="x")
    assert [h.name for h in home.Snapshot.list()] == ["s"]


def test_every_option_reaches_the_library_under_its_name(home, snap, tmp_path):
    """The library refuses a member it does not know before it reads the reference,
    so an option sent under a wrong name would fail as "unknown field", not as the
    reference it is given."""
    remote = dict(
        plain_http=True,
        username="ci",
        password="hunter2-secret",
        ca_file=tmp_path / "ca.pem",
        docker_config=tmp_path / "config.json",
        max_in_flight=2,
        timeout_seconds=5,
    )
    with pytest.raises(microsnap.InvalidArgument) as pushed:
        home.Snapshot.push(snap, "sandboxes/s:v1", with_parents=True, since="s", **remote)
    with pytest.raises(microsnap.InvalidArgument) as pulled:
        home.Snapshot.pull("sandboxes/s:v1", tmp_path / "dest", name="n", with_parents=True, **remote)
    for e in (pushed.value, pulled.value):
        assert "invalid reference" in e.message and "unknown field" not in e.message
        assert "hunter2" not in str(e) and "hunter2" not in repr(e.details)


def test_arguments_are_checked_before_the_call(home):
    with pytest.raises(TypeError, match="ref must be a str"):
        home.Snapshot.push("s", None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="ref must be a str"):
        home.Snapshot.pull(b"oci:/x")  # type: ignore[arg-type]
    with pytest.raises(microsnap.InvalidArgument, match="max_in_flight must be 1 to"):
        home.Snapshot.push("s", "oci:/x", max_in_flight=0)
    with pytest.raises(TypeError, match="timeout_seconds must be an int, not bool"):
        home.Snapshot.pull("oci:/x", timeout_seconds=True)
    with pytest.raises(microsnap.InvalidArgument, match="timeout_seconds must be 1 to"):
        home.Snapshot.pull("oci:/x", timeout_seconds=-1)
    with pytest.raises(TypeError):
        home.Snapshot.push("s", "oci:/x", ca_file=3)  # type: ignore[arg-type]


def test_the_new_codes_have_their_classes():
    from microsnap import _errors

    err = _errors.error_from(15, '{"code":"unauthorized","message":"unauthorized: localhost:5000/s: pull refused"}')
    assert type(err) is microsnap.Unauthorized and err.status == 15
    err = _errors.error_from(16, '{"code":"registry_error","message":"registry error: connection refused"}')
    assert type(err) is microsnap.RegistryError and err.code == "registry_error"
