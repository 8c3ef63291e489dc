//! Push and pull against a real registry (Debian's docker-registry on
//! loopback, tests/engine/support/registry.rs): dedup against a parent in
//! the same repository and, mounted, in another one; a pull onto the
//! parent's host; cancel removing its upload sessions; and a registry that
//! answers nonsense. Interop with skopeo, auth and TLS are in
//! `registry_interop`.
use crate::distribution::{child_of, scattered_snapshot, upper_bytes, LEAF};
use crate::support::registry::{Config, TestRegistry};
use crate::support::*;
use microsnap::distribution::{self, PullOptions, PushOptions, RemoteOptions};
use microsnap::error::ErrorCode;
use microsnap::progress::{CancelToken, Monitor};
use microsnap::snapshot;

fn push_options(remote: RemoteOptions) -> PushOptions {
    PushOptions {
        remote,
        ..PushOptions::default()
    }
}

fn pull_options(remote: RemoteOptions) -> PullOptions {
    PullOptions {
        remote,
        ..PullOptions::default()
    }
}

#[test]
fn a_child_uploads_only_its_new_chunks_and_pulls_only_those_onto_the_parents_host() {
    let registry = TestRegistry::start(Config::plain());
    let t = TestHome::new();
    scattered_snapshot(&t, "parent", 50, 21);
    child_of(&t, "parent", "child", &[0, 7, 1, 2]);
    let options = push_options(registry.remote());
    let parent = distribution::push(
        &t.home,
        "parent",
        &registry.reference("fleet/app:parent"),
        &options,
        &Monitor::none(),
    )
    .expect("push parent");
    assert_eq!(parent.chunks_uploaded, 50);
    let child = distribution::push(
        &t.home,
        "child",
        &registry.reference("fleet/app:child"),
        &options,
        &Monitor::none(),
    )
    .expect("push child");
    assert_eq!(child.chunks_uploaded, 4, "{child:?}");
    assert_eq!(child.chunks_reused, 48, "{child:?}");
    assert!(child.bytes_uploaded < 4 * LEAF + 64 * 1024, "{child:?}");
    let tags = registry.tags("fleet/app");
    for tag in [
        "parent",
        "child",
        &child.snapshot_digest.replacen(':', "-", 1),
    ] {
        assert!(tags.iter().any(|t| t == tag), "tag {tag} missing: {tags:?}");
    }

    let host = TestHome::new();
    let pull = pull_options(registry.remote());
    distribution::pull(
        &host.home,
        &registry.reference("fleet/app:parent"),
        None,
        &pull,
        &Monitor::none(),
    )
    .expect("pull parent");
    let (handle, report) = distribution::pull(
        &host.home,
        &registry.reference("fleet/app:child"),
        None,
        &pull,
        &Monitor::none(),
    )
    .expect("pull child");
    assert_eq!(report.chunks_downloaded, 4, "{report:?}");
    assert_eq!(report.bytes_copied_locally, 48 * LEAF, "{report:?}");
    assert_eq!(
        upper_bytes(&handle.path),
        upper_bytes(&t.home.snapshots_dir().join("child"))
    );
    snapshot::verify(&host.home, "child", &Monitor::none()).expect("verify");

    // By digest: the manifest digest pins it and is checked.
    let by_digest = format!(
        "{}@{}",
        registry.reference("fleet/app"),
        child.manifest_digest
    );
    let other = TestHome::new();
    let (pinned, _) = distribution::pull(&other.home, &by_digest, None, &pull, &Monitor::none())
        .expect("pull by digest");
    assert_eq!(pinned.digest, child.snapshot_digest);
}

#[test]
fn a_parent_in_another_repository_of_the_registry_is_mounted_not_uploaded() {
    let registry = TestRegistry::start(Config::plain());
    let t = TestHome::new();
    scattered_snapshot(&t, "parent", 30, 22);
    child_of(&t, "parent", "child", &[0]);
    let options = push_options(registry.remote());
    distribution::push(
        &t.home,
        "parent",
        &registry.reference("team-a/base:v1"),
        &options,
        &Monitor::none(),
    )
    .expect("push parent");
    let child = distribution::push(
        &t.home,
        "child",
        &registry.reference("team-b/app:v1"),
        &options,
        &Monitor::none(),
    )
    .expect("push child to another repository");
    assert_eq!(child.chunks_uploaded, 1, "{child:?}");
    assert_eq!(child.chunks_reused, 29, "{child:?}");
    // team-b alone is enough to pull the child into an empty home.
    let host = TestHome::new();
    let (handle, report) = distribution::pull(
        &host.home,
        &registry.reference("team-b/app:v1"),
        None,
        &pull_options(registry.remote()),
        &Monitor::none(),
    )
    .expect("pull child from its own repository");
    assert_eq!(report.chunks_downloaded, 30, "{report:?}");
    assert_eq!(
        upper_bytes(&handle.path),
        upper_bytes(&t.home.snapshots_dir().join("child"))
    );
}

/// Upload sessions the registry holds open (`_uploads/<id>` with data).
fn open_uploads(registry: &TestRegistry) -> Vec<String> {
    open_uploads_under(&registry.storage_dir())
}

fn open_uploads_under(storage: &std::path::Path) -> Vec<String> {
    let root = storage.join("docker/registry/v2/repositories");
    let mut found = Vec::new();
    let mut stack = vec![root];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.file_name().is_some_and(|n| n == "_uploads") {
                // distribution 2.8 cancels a session by deleting its data
                // and leaves the rest (startedat, hash states) to its purger.
                found.extend(
                    names_in(&path)
                        .into_iter()
                        .filter(|id| path.join(id).join("data").exists()),
                );
            } else if path.is_dir() {
                stack.push(path);
            }
        }
    }
    found
}

#[test]
fn a_push_cancelled_mid_upload_stops_promptly_publishes_nothing_and_deletes_its_upload_session() {
    let registry = TestRegistry::start(Config::plain());
    let t = TestHome::new();
    // About 70 MiB of incompressible chunks: the first pack (64 MiB) goes
    // up in pieces while the rest is packed.
    scattered_snapshot(&t, "big", 1100, 23);
    let cancel = CancelToken::new();
    let cancelled_at = std::sync::Arc::new(std::sync::Mutex::new(None));
    let watcher = {
        let (cancel, cancelled_at) = (cancel.clone(), cancelled_at.clone());
        let uploads = registry.storage_dir();
        std::thread::spawn(move || {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
            while std::time::Instant::now() < deadline {
                if !open_uploads_under(&uploads).is_empty() {
                    *cancelled_at.lock().unwrap() = Some(std::time::Instant::now());
                    cancel.cancel();
                    return true;
                }
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
            false
        })
    };
    let mut options = push_options(registry.remote());
    options.remote.max_in_flight = Some(1);
    let result = distribution::push(
        &t.home,
        "big",
        &registry.reference("c/x:v"),
        &options,
        &Monitor::with_cancel(cancel),
    );
    let returned = std::time::Instant::now();
    assert!(watcher.join().unwrap(), "no upload session was ever seen");
    let err = result.unwrap_err();
    assert_eq!(err.code(), ErrorCode::Cancelled, "{err}");
    let latency = returned - cancelled_at.lock().unwrap().unwrap();
    assert!(latency.as_millis() < 1000, "cancel took {latency:?}");
    assert!(
        registry.tags("c/x").is_empty(),
        "a cancelled push tagged something"
    );
    assert!(
        open_uploads(&registry).is_empty(),
        "sessions left: {:?}; registry log:\n{}",
        open_uploads(&registry),
        registry.log()
    );
    // And the registry says so: the session is unknown.
    for id in names_in(
        &registry
            .storage_dir()
            .join("docker/registry/v2/repositories/c/x/_uploads"),
    ) {
        let status = registry.get(&format!("/v2/c/x/blobs/uploads/{id}")).status;
        assert_eq!(status, 404, "upload {id} still known to the registry");
    }
}

#[test]
fn a_registry_that_is_down_or_speaks_nonsense_is_a_registry_error() {
    let t = TestHome::new();
    scattered_snapshot(&t, "base", 2, 24);
    // Nothing listens on this port.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let remote = RemoteOptions {
        plain_http: true,
        timeout_seconds: Some(2),
        docker_config: Some(t.outside("none.json")),
        ..RemoteOptions::default()
    };
    std::fs::write(t.outside("none.json"), "{}").unwrap();
    let down = format!("127.0.0.1:{port}/x:v");
    let err = distribution::push(
        &t.home,
        "base",
        &down,
        &push_options(remote.clone()),
        &Monitor::none(),
    )
    .unwrap_err();
    assert_eq!(err.code(), ErrorCode::RegistryError, "{err}");
    let err = distribution::pull(
        &t.home,
        &down,
        None,
        &pull_options(remote.clone()),
        &Monitor::none(),
    )
    .unwrap_err();
    assert_eq!(err.code(), ErrorCode::RegistryError, "{err}");

    // A server that answers every request with garbage.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for stream in listener.incoming().flatten().take(50) {
            let mut stream = stream;
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let _ = stream.write_all(b"SSH-2.0-nonsense\r\n\r\n");
        }
    });
    let nonsense = format!("127.0.0.1:{port}/x:v");
    let before = t.state(&[]);
    let err = distribution::pull(
        &t.home,
        &nonsense,
        None,
        &pull_options(remote),
        &Monitor::none(),
    )
    .unwrap_err();
    assert_eq!(err.code(), ErrorCode::RegistryError, "{err}");
    assert_eq!(t.state(&[]), before);
}
