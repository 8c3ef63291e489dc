//! Push and pull against a real registry (docker-registry 2.8.2 from
//! support/registry.rs), checked by tools that are not microsnap: what we
//! push, `skopeo inspect --raw` shows; `skopeo copy` carries it between
//! registries and into an `oci:` layout, and we pull the copies back;
//! `docker-registry garbage-collect` after the parent's tags are gone
//! leaves a child that still pulls. Then auth end to end: htpasswd
//! (Basic) and token (Bearer) registries with explicit credentials and
//! with docker's config.json, and wrong or missing credentials ending in
//! `unauthorized`; TLS verified against the test CA.
use crate::support::registry::{self, Config, TestRegistry};
use crate::support::*;
use microsnap::distribution::{
    self, PullOptions, PullReport, PushOptions, PushReport, RemoteOptions,
};
use microsnap::error::ErrorCode;
use microsnap::progress::Monitor;
use microsnap::snapshot::{self, CreateOptions, SnapshotHandle};
use sha2::{Digest, Sha256};
use std::fs;
use std::process::Command;

const LEAF: u64 = 64 * 1024;

/// A snapshot `name` with integrity of a sandbox whose 16 MiB upper has
/// `chunks` distinct 64 KiB chunks of data (every 5th chunk).
fn snapshot_with_chunks(
    t: &TestHome,
    name: &str,
    chunks: u64,
    seed: u64,
) -> microsnap::artifact::Artifact {
    let sb = t.sandbox(&format!("sb-{name}"), 16 * MIB);
    for i in 0..chunks {
        write_at(
            &sb.upper_path,
            i * 5 * LEAF,
            &pseudo_random(LEAF as usize, seed + i),
        );
    }
    create_with_integrity(t, &sb.name, name)
}

/// A child of `parent` with a 4 KiB write into each chunk of `changes`.
fn child_of(
    t: &TestHome,
    parent: &str,
    name: &str,
    changes: &[u64],
) -> microsnap::artifact::Artifact {
    let sb = t
        .sandbox_from(&format!("sb-{name}"), parent)
        .expect("sandbox from parent");
    for (i, chunk) in changes.iter().enumerate() {
        write_at(
            &sb.upper_path,
            chunk * LEAF + 4096,
            &pseudo_random(4096, 500 + i as u64),
        );
    }
    create_with_integrity(t, &sb.name, name)
}

fn create_with_integrity(t: &TestHome, sandbox: &str, name: &str) -> microsnap::artifact::Artifact {
    snapshot::create(
        &t.home,
        sandbox,
        &CreateOptions {
            name: Some(name.into()),
            record_integrity: true,
            ..CreateOptions::default()
        },
        &Monitor::none(),
    )
    .expect("create snapshot")
}

fn push_opts(remote: RemoteOptions) -> PushOptions {
    PushOptions {
        remote,
        ..PushOptions::default()
    }
}

fn pull_opts(remote: RemoteOptions) -> PullOptions {
    PullOptions {
        remote,
        ..PullOptions::default()
    }
}

fn push(t: &TestHome, name: &str, reference: &str, options: &PushOptions) -> PushReport {
    distribution::push(&t.home, name, reference, options, &Monitor::none())
        .unwrap_or_else(|e| panic!("push {name} {reference}: {e}"))
}

fn pull(t: &TestHome, reference: &str, options: &PullOptions) -> (SnapshotHandle, PullReport) {
    distribution::pull(&t.home, reference, None, options, &Monitor::none())
        .unwrap_or_else(|e| panic!("pull {reference}: {e}"))
}

/// Pulled `handle` is the snapshot `art`: same digest, same upper bytes,
/// and `verify` passes on it.
fn assert_same_snapshot(
    t: &TestHome,
    handle: &SnapshotHandle,
    art: &microsnap::artifact::Artifact,
) {
    assert_eq!(handle.digest, art.digest);
    let pulled = microsnap::artifact::open_dir(&handle.path).expect("open pulled");
    assert_eq!(
        fs::read(pulled.upper_path()).expect("pulled upper"),
        fs::read(art.upper_path()).expect("source upper"),
        "pulled upper differs"
    );
    snapshot::verify(&t.home, &handle.digest, &Monitor::none()).expect("pulled snapshot verifies");
}

fn sha256_digest(bytes: &[u8]) -> String {
    let hex: String = Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256:{hex}")
}

/// Run skopeo (required: .ci/run installs it); its stdout, or a panic
/// with its stderr.
fn skopeo(args: &[&str]) -> Vec<u8> {
    let out = Command::new("skopeo")
        .args(args)
        .output()
        .expect("skopeo is needed by the registry interop tests (.ci/run installs it)");
    assert!(
        out.status.success(),
        "skopeo {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[test]
fn skopeo_inspect_shows_the_manifest_we_pushed() {
    let r = TestRegistry::start(Config::plain());
    let t = TestHome::new();
    let art = snapshot_with_chunks(&t, "base", 20, 1);
    let reference = r.reference("snaps/base:v1");
    let report = push(&t, "base", &reference, &push_opts(r.remote()));
    assert_eq!(report.snapshot_digest, art.digest);
    assert_eq!(report.chunks_uploaded, 20, "{report:?}");

    let docker = format!("docker://{reference}");
    let raw = skopeo(&["inspect", "--raw", "--tls-verify=false", &docker]);
    assert_eq!(
        sha256_digest(&raw),
        report.manifest_digest,
        "skopeo got other manifest bytes"
    );
    let manifest: serde_json::Value = serde_json::from_slice(&raw).expect("manifest json");
    assert_eq!(manifest["schemaVersion"], 2);
    assert_eq!(
        manifest["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(
        manifest["artifactType"],
        "application/vnd.microsnap.snapshot.v1"
    );
    assert_eq!(manifest["config"]["digest"], art.digest.as_str());
    assert_eq!(
        manifest["annotations"]["dev.microsnap.snapshot.digest"],
        art.digest.as_str()
    );
    // The config skopeo fetches is the snapshot's manifest.json, byte for byte.
    let config = skopeo(&[
        "inspect",
        "--raw",
        "--config",
        "--tls-verify=false",
        &docker,
    ]);
    assert_eq!(config, fs::read(art.path.join("manifest.json")).unwrap());
    assert_eq!(
        r.manifest_digest("snaps/base", "v1").as_deref(),
        Some(report.manifest_digest.as_str())
    );

    let other = TestHome::new();
    let (handle, pulled) = pull(&other, &reference, &pull_opts(r.remote()));
    assert_eq!(pulled.manifest_digest, report.manifest_digest);
    assert_eq!(pulled.chunks_downloaded, 20, "{pulled:?}");
    assert_same_snapshot(&other, &handle, &art);
}

/// oras, as `make oras-bin` installs it into the clone (`go install`).
fn oras(args: &[&str]) -> Vec<u8> {
    let bin = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/tools/bin/oras");
    let out = Command::new(&bin)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}; run `make oras-bin`", bin.display()));
    assert!(
        out.status.success(),
        "oras {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[test]
fn oras_fetches_the_manifest_json_bytes_as_the_config() {
    let r = TestRegistry::start(Config::plain());
    let t = TestHome::new();
    let art = snapshot_with_chunks(&t, "base", 3, 2);
    let reference = r.reference("snaps/oras:v1");
    let report = push(&t, "base", &reference, &push_opts(r.remote()));
    let config = oras(&["manifest", "fetch-config", "--plain-http", &reference]);
    assert_eq!(config, fs::read(art.path.join("manifest.json")).unwrap());
    let manifest = oras(&["manifest", "fetch", "--plain-http", &reference]);
    assert_eq!(sha256_digest(&manifest), report.manifest_digest);
}

#[test]
fn skopeo_copy_between_registries_carries_a_snapshot_we_pull_back() {
    let a = TestRegistry::start(Config::plain());
    let b = TestRegistry::start(Config::plain());
    let t = TestHome::new();
    let art = snapshot_with_chunks(&t, "base", 12, 2);
    let pushed = push(&t, "base", &a.reference("x/snap:t"), &push_opts(a.remote()));

    skopeo(&[
        "copy",
        "--quiet",
        "--preserve-digests",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        &format!("docker://{}", a.reference("x/snap:t")),
        &format!("docker://{}", b.reference("y/copy:t")),
    ]);
    assert_eq!(
        b.manifest_digest("y/copy", "t").as_deref(),
        Some(pushed.manifest_digest.as_str())
    );

    let other = TestHome::new();
    let (handle, report) = pull(&other, &b.reference("y/copy:t"), &pull_opts(b.remote()));
    assert_eq!(report.manifest_digest, pushed.manifest_digest);
    assert_same_snapshot(&other, &handle, &art);
}

#[test]
fn skopeo_copy_into_an_oci_layout_carries_a_snapshot_we_pull_back() {
    let r = TestRegistry::start(Config::plain());
    let t = TestHome::new();
    let art = snapshot_with_chunks(&t, "base", 12, 3);
    let pushed = push(&t, "base", &r.reference("x/snap:t"), &push_opts(r.remote()));

    let layout = t.outside("layout");
    skopeo(&[
        "copy",
        "--quiet",
        "--preserve-digests",
        "--src-tls-verify=false",
        &format!("docker://{}", r.reference("x/snap:t")),
        &format!("oci:{}:t", layout.display()),
    ]);

    let other = TestHome::new();
    let (handle, report) = pull(
        &other,
        &format!("oci:{}:t", layout.display()),
        &PullOptions::default(),
    );
    assert_eq!(report.manifest_digest, pushed.manifest_digest);
    assert_same_snapshot(&other, &handle, &art);
}

/// DESIGN: "deleting a parent's tag and running the registry's garbage
/// collector never breaks a child". With --delete-untagged the parent's
/// manifest (and its index and config) really goes; the child's manifest
/// still names the parent's packs, so they stay and the child pulls.
#[test]
fn a_child_survives_garbage_collection_after_its_parent_lost_its_tags() {
    let r = TestRegistry::start(Config::plain());
    let t = TestHome::new();
    let parent = snapshot_with_chunks(&t, "parent", 30, 4);
    let child = child_of(&t, "parent", "child", &[0, 5, 60]);
    let repo = "fleet/snap";
    push(
        &t,
        "parent",
        &r.reference(&format!("{repo}:parent")),
        &push_opts(r.remote()),
    );
    let pushed = push(
        &t,
        "child",
        &r.reference(&format!("{repo}:child")),
        &PushOptions {
            with_parents: true,
            remote: r.remote(),
            ..PushOptions::default()
        },
    );
    assert!(
        pushed.chunks_uploaded <= 3,
        "the parent's chunks were there: {pushed:?}"
    );
    let parent_tag = parent.digest.replacen(':', "-", 1);
    let tags = r.tags(repo);
    assert!(
        tags.contains(&parent_tag) && tags.contains(&"parent".to_string()),
        "{tags:?}"
    );
    let parent_manifest = r.manifest_digest(repo, "parent").expect("parent manifest");

    // Every tag of the parent goes; the child keeps its own tags.
    for tag in tags.iter().filter(|t| **t == "parent" || **t == parent_tag) {
        r.untag(repo, tag);
    }
    let blobs_before = r.stored_blobs();
    let out = r.garbage_collect(true);
    assert_eq!(
        r.manifest_digest(repo, &parent_manifest),
        None,
        "GC kept the parent:\n{out}"
    );
    let blobs_after = r.stored_blobs();
    assert!(
        blobs_after.len() < blobs_before.len(),
        "GC deleted nothing: {blobs_after:?}"
    );
    assert!(
        !blobs_after.contains(&parent.digest),
        "the parent's config should be gone with its manifest"
    );

    let empty = TestHome::new();
    let (handle, report) = pull(
        &empty,
        &r.reference(&format!("{repo}:child")),
        &pull_opts(r.remote()),
    );
    assert_eq!(report.bytes_copied_locally, 0, "{report:?}");
    assert_same_snapshot(&empty, &handle, &child);
}

/// Push with `right`, pull with `right` into a fresh home; then every
/// wrong way in ends in `unauthorized` without the secret in the message.
fn auth_end_to_end(r: &TestRegistry, secret: &str) {
    let t = TestHome::new();
    let art = snapshot_with_chunks(&t, "base", 8, 5);
    let reference = r.reference("team/snap:v1");

    let anonymous = distribution::push(
        &t.home,
        "base",
        &reference,
        &push_opts(r.remote_anonymous()),
        &Monitor::none(),
    );
    let msg = expect_code(anonymous, ErrorCode::Unauthorized);
    assert!(!msg.contains(secret), "{msg}");

    let mut wrong = r.remote();
    wrong.password = Some(format!("{secret}-wrong"));
    let denied = distribution::push(
        &t.home,
        "base",
        &reference,
        &push_opts(wrong.clone()),
        &Monitor::none(),
    );
    let msg = expect_code(denied, ErrorCode::Unauthorized);
    assert!(!msg.contains(secret), "{msg}");
    assert!(r.manifest_digest("team/snap", "v1").is_none());

    push(&t, "base", &reference, &push_opts(r.remote()));
    assert!(r.manifest_digest("team/snap", "v1").is_some());

    // Explicit credentials.
    let one = TestHome::new();
    let (handle, _) = pull(&one, &reference, &pull_opts(r.remote()));
    assert_same_snapshot(&one, &handle, &art);

    // docker's config.json `auths` (base64 user:password), no explicit ones.
    let (user, password) = r.config().credentials().expect("credentials");
    let mut from_config = r.remote_anonymous();
    from_config.docker_config = Some(registry::write_docker_config(
        &r.scratch("docker"),
        r.host(),
        user,
        password,
    ));
    let two = TestHome::new();
    let (handle, _) = pull(&two, &reference, &pull_opts(from_config));
    assert_same_snapshot(&two, &handle, &art);

    // Wrong or missing credentials: unauthorized, and the home unchanged.
    let three = TestHome::new();
    let before = three.state(&[]);
    for remote in [wrong, r.remote_anonymous()] {
        let result = distribution::pull(
            &three.home,
            &reference,
            None,
            &pull_opts(remote),
            &Monitor::none(),
        );
        let msg = expect_code(result, ErrorCode::Unauthorized);
        assert!(!msg.contains(secret), "{msg}");
    }
    assert_eq!(three.state(&[]), before, "a refused pull changed the home");
}

#[test]
fn htpasswd_registry_end_to_end() {
    let r = TestRegistry::start(Config::htpasswd("alice", "basic-S3cret"));
    auth_end_to_end(&r, "basic-S3cret");
}

#[test]
fn token_registry_end_to_end() {
    let r = TestRegistry::start(Config::token("bob", "bearer-S3cret"));
    auth_end_to_end(&r, "bearer-S3cret");
    let server = r.token_server().unwrap();
    assert!(server.tokens_issued() >= 3, "{:?}", server.requests());
    // The client asked for the repository it used.
    assert!(
        server.requests().iter().any(
            |q| q["status"] == 200 && q["scopes"].to_string().contains("repository:team/snap:")
        ),
        "{:?}",
        server.requests()
    );
}

#[test]
fn tls_registry_is_verified_against_the_ca_file() {
    let r = TestRegistry::start(Config::htpasswd("carol", "tls-pw").with_tls());
    let t = TestHome::new();
    let art = snapshot_with_chunks(&t, "base", 6, 6);
    let reference = r.reference("tls/snap:v1");

    // Without the CA: the system roots do not know it.
    let mut no_ca = r.remote();
    no_ca.ca_file = None;
    let result = distribution::push(
        &t.home,
        "base",
        &reference,
        &push_opts(no_ca),
        &Monitor::none(),
    );
    expect_code(result, ErrorCode::RegistryError);
    // plain_http against the TLS port is no way around it either.
    let mut plain = r.remote();
    plain.plain_http = true;
    let result = distribution::push(
        &t.home,
        "base",
        &reference,
        &push_opts(plain),
        &Monitor::none(),
    );
    assert!(result.is_err(), "plain HTTP to a TLS registry must fail");
    assert!(r.manifest_digest("tls/snap", "v1").is_none());

    push(&t, "base", &reference, &push_opts(r.remote()));
    let other = TestHome::new();
    let (handle, _) = pull(&other, &reference, &pull_opts(r.remote()));
    assert_same_snapshot(&other, &handle, &art);
}

#[test]
fn https_is_the_default_and_plain_http_is_never_implied() {
    let r = TestRegistry::start(Config::plain());
    let t = TestHome::new();
    snapshot_with_chunks(&t, "base", 2, 7);
    let mut https = r.remote();
    https.plain_http = false;
    let result = distribution::push(
        &t.home,
        "base",
        &r.reference("p/snap:v1"),
        &push_opts(https),
        &Monitor::none(),
    );
    expect_code(result, ErrorCode::RegistryError);
    assert!(r.tags("p/snap").is_empty());
}

/// A monitor whose callback, the first time `phase` has made progress,
/// sleeps `pause`: the operation's token expires in the middle of it.
fn pausing_monitor(phase: &'static str, pause: std::time::Duration) -> Monitor<'static> {
    let mut paused = false;
    Monitor::new(
        None,
        Some(Box::new(move |name: &str, done: u64, _total: u64| {
            if name == phase && done > 0 && !paused {
                paused = true;
                std::thread::sleep(pause);
            }
            true
        })),
    )
}

/// Tokens that expire mid-transfer (the registry answers 401 to the old
/// one): push and pull re-authenticate and finish. The push is a child's,
/// which reads its parent's manifest (first token) before packing (the
/// pause) and uploading; the pull fetches 25 MiB in 4 MiB runs, one at a
/// time, so runs are still to come after the pause.
#[test]
fn push_and_pull_outlive_their_first_token() {
    let r = TestRegistry::start(Config {
        auth: registry::Auth::Token(registry::TokenAuth {
            user: "erin".into(),
            password: "short-lived-pw".into(),
            anonymous_pull: false,
            lifetime_seconds: 3,
        }),
        tls: false,
    });
    let server = r.token_server().unwrap();
    let t = TestHome::new();
    let sb = t.sandbox("sb-parent", 64 * MIB);
    write_at(&sb.upper_path, 0, &pseudo_random(400 * LEAF as usize, 9));
    let parent = create_with_integrity(&t, &sb.name, "parent");
    let child = child_of(&t, "parent", "child", &[3, 300]);
    let remote = RemoteOptions {
        max_in_flight: Some(1),
        ..r.remote()
    };
    let pause = std::time::Duration::from_millis(3500);
    push(
        &t,
        "parent",
        &r.reference("exp/snap:parent"),
        &push_opts(remote.clone()),
    );

    let before = server.tokens_issued();
    distribution::push(
        &t.home,
        "child",
        &r.reference("exp/snap:child"),
        &push_opts(remote.clone()),
        &pausing_monitor("push", pause),
    )
    .unwrap_or_else(|e| panic!("push across a token expiry: {e}"));
    assert!(
        server.tokens_issued() >= before + 2,
        "push: no new token after the first expired: {:?}",
        server.requests()
    );
    assert!(r.manifest_digest("exp/snap", "child").is_some());
    // The registry did refuse the expired token: the 401 path ran.
    let refusals = || r.log().matches("invalid token").count();
    assert!(
        refusals() >= 1,
        "no expired token reached the registry:\n{}",
        r.log()
    );
    let after_push = refusals();

    let other = TestHome::new();
    let before = server.tokens_issued();
    let (handle, _) = distribution::pull(
        &other.home,
        &r.reference("exp/snap:parent"),
        None,
        &pull_opts(remote),
        &pausing_monitor("pull", pause),
    )
    .unwrap_or_else(|e| panic!("pull across a token expiry: {e}"));
    assert!(
        server.tokens_issued() >= before + 2,
        "pull: no new token after the first expired: {:?}",
        server.requests()
    );
    assert!(
        refusals() > after_push,
        "pull: no expired token reached the registry"
    );
    assert_same_snapshot(&other, &handle, &parent);
    assert!(
        r.manifest_digest("exp/snap", "child").is_some(),
        "{child:?}"
    );
}
