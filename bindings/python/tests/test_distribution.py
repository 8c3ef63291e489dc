"""Snapshot.push / pull / pull_with_report: arguments, errors, and round trips through oci: layouts."""

from __future__ import annotations

import http.server
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from conftest import REPO, stopped_sandbox, write_pattern

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


@pytest.fixture
def other(tmp_path) -> Iterator[microsnap.Home]:
    """A second, empty home to pull into."""
    with microsnap.Home(tmp_path / "other") as h:
        yield h


def test_push_and_pull_through_an_oci_layout(home, other, snap, tmp_path):
    layout = f"oci:{tmp_path / 'layout'}:v1"
    events: list[str] = []
    report = home.Snapshot.push(snap, layout, progress=lambda p, d, t: events.append(p))
    assert isinstance(report, microsnap.PushReport)
    assert (report.reference, report.snapshot_digest) == (layout, snap.digest)
    assert report.manifest_digest.startswith("sha256:") and report.bytes_uploaded > 0
    assert report.chunks_uploaded > 0 and report.chunks_uploaded + report.chunks_reused == report.chunks_total
    assert [s.snapshot_digest for s in report.snapshots] == [snap.digest] and "v1" in report.snapshots[0].tags
    assert "push" in events
    # A child pushed into the layout that holds its parent sends its new chunk only.
    with home.Sandbox.create("w", snapshot="s") as sb:
        write_pattern(sb.info().upper_path, {30 << 20: b"child" * 1000})
    child = home.Sandbox.get("w").snapshot("c", record_integrity=True)
    child_report = home.Snapshot.push("c", f"oci:{tmp_path / 'layout'}:c")
    assert child_report.chunks_uploaded == 1 and child_report.chunks_reused == child_report.chunks_total - 1

    events.clear()
    pulled = other.Snapshot.pull_with_report(f"oci:{tmp_path / 'layout'}:c", progress=lambda p, d, t: events.append(p))
    assert isinstance(pulled, microsnap.PullResult) and "pull" in events
    head, r = pulled.head, pulled.report
    assert head.digest == child.digest and head.name == "c" and r.path == head.path
    assert not r.already_present and r.chunks_downloaded > 0 and r.bytes_downloaded > 0
    assert r.chunks_downloaded + r.chunks_reused == r.chunks_total == child_report.chunks_total
    assert other.Snapshot.get(child.digest).path == head.path
    assert head.open().verify().verified
    again = other.Snapshot.pull_with_report(f"oci:{tmp_path / 'layout'}:c")
    assert again.report.already_present and again.report.chunks_downloaded == 0
    dest = tmp_path / "elsewhere"
    named = other.Snapshot.pull(layout, dest, name="parent")
    assert (named.path, named.digest) == (dest / "parent", snap.digest)


def test_a_cancelled_pull_leaves_nothing(home, other, snap, tmp_path):
    layout = f"oci:{tmp_path / 'layout'}:v1"
    home.Snapshot.push(snap, layout)
    cancel = microsnap.Cancel()
    cancel.cancel()
    with pytest.raises(microsnap.Cancelled):
        other.Snapshot.pull(layout, cancel=cancel)
    midway = microsnap.Cancel()

    def cancel_at_pull(phase: str, done: int, total: int) -> None:
        if phase == "pull":
            midway.cancel()

    with pytest.raises(microsnap.Cancelled):
        other.Snapshot.pull(layout, progress=cancel_at_pull, cancel=midway)
    assert other.Snapshot.list() == []


class _Refusing(http.server.BaseHTTPRequestHandler):
    """A registry that refuses every credential."""

    def _refuse(self) -> None:
        self.send_response(401)
        self.send_header("WWW-Authenticate", 'Basic realm="test"')
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = _refuse

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def refusing_registry() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Refusing)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_registry_failures_have_their_classes(home, snap, refusing_registry):
    creds = dict(plain_http=True, username="ci", password="hunter2-secret", timeout_seconds=5)
    with pytest.raises(microsnap.Unauthorized) as refused:
        home.Snapshot.push("s", f"{refusing_registry}/sandboxes/s:v1", **creds)
    with pytest.raises(microsnap.Unauthorized):
        home.Snapshot.pull(f"{refusing_registry}/sandboxes/s:v1", **creds)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = f"127.0.0.1:{s.getsockname()[1]}"
    with pytest.raises(microsnap.RegistryError) as down:
        home.Snapshot.pull(f"{closed}/sandboxes/s:v1", **creds)
    for e in (refused.value, down.value):
        assert "hunter2" not in str(e) and "hunter2" not in repr(e.details)
    assert [h.name for h in home.Snapshot.list()] == ["s"]


REGISTRY_BIN = REPO / "target" / "registry" / "bin" / "docker-registry"


@pytest.fixture
def htpasswd_registry(tmp_path) -> Iterator[tuple[str, str, str]]:
    """docker-registry on 127.0.0.1 with Basic auth: (host:port, user, password)."""
    if not REGISTRY_BIN.exists():
        pytest.skip(f"{REGISTRY_BIN} is missing: run `make registry-bin`")
    user, password = "ci", "s3cret-pw-for-the-test"
    try:
        line = subprocess.run(["htpasswd", "-Bbn", user, password], check=True, capture_output=True).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        pytest.skip(f"htpasswd (apache2-utils): {e}")
    root = tmp_path / "registry"
    root.mkdir()
    (root / "htpasswd").write_bytes(line)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        host = f"127.0.0.1:{s.getsockname()[1]}"
    (root / "config.yml").write_text(
        "version: 0.1\n"
        "log:\n  level: warn\n  accesslog:\n    disabled: true\n"
        f"storage:\n  filesystem:\n    rootdirectory: {root / 'storage'}\n"
        f"http:\n  addr: {host}\n  secret: microsnap-python-test\n"
        f"auth:\n  htpasswd:\n    realm: microsnap-test\n    path: {root / 'htpasswd'}\n"
    )
    log = open(root / "registry.log", "wb")
    proc = subprocess.Popen([str(REGISTRY_BIN), "serve", str(root / "config.yml")], stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                urllib.request.urlopen(f"http://{host}/v2/", timeout=1)
            except urllib.error.HTTPError as e:
                if e.code == 401:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                pytest.fail(f"docker-registry did not start: {(root / 'registry.log').read_text()}")
            time.sleep(0.05)
        yield host, user, password
    finally:
        proc.kill()
        proc.wait()
        log.close()


def test_push_and_pull_through_a_registry(home, other, snap, htpasswd_registry, tmp_path):
    host, user, password = htpasswd_registry
    empty_config = tmp_path / "docker-config.json"
    empty_config.write_text("{}")
    remote = dict(plain_http=True, docker_config=empty_config)
    ref = f"{host}/sandboxes/s:v1"
    report = home.Snapshot.push("s", ref, username=user, password=password, max_in_flight=2, **remote)
    assert report.reference == ref and report.chunks_uploaded > 0
    pulled = other.Snapshot.pull_with_report(ref, username=user, password=password, **remote)
    assert pulled.head.digest == snap.digest and pulled.head.name == "v1" and pulled.report.chunks_downloaded > 0
    with pytest.raises(microsnap.Unauthorized) as wrong:
        other.Snapshot.pull(ref, name="w", username=user, password="wrong-" + password, **remote)
    with pytest.raises(microsnap.Unauthorized):
        other.Snapshot.pull(ref, name="anon", **remote)
    assert password not in str(wrong.value) and password not in repr(wrong.value.details)
