//! The registry store (src/distribution/registry/) against a real
//! docker-registry (support/registry.rs) and against small fake servers
//! for what a real one does not do: stall, speak garbage, answer outside
//! the protocol.
use crate::support::registry::{write_docker_config, Auth, Config, TestRegistry, TokenAuth};
use microsnap::distribution::media_types;
use microsnap::distribution::registry;
use microsnap::distribution::store::{Access, Store};
use microsnap::distribution::RemoteOptions;
use microsnap::error::{Error, ErrorCode};
use microsnap::progress::{CancelToken, Monitor};
use sha2::{Digest, Sha256};
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const PIECE: usize = 8 << 20;

fn digest(bytes: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(bytes))
}

/// Bytes that differ from test to test (so blobs never collide across
/// repositories by accident).
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2654435761).to_le_bytes()[i % 4] ^ seed)
        .collect()
}

fn plain() -> RemoteOptions {
    RemoteOptions {
        plain_http: true,
        timeout_seconds: Some(10),
        ..Default::default()
    }
}

fn with_credentials(mut remote: RemoteOptions, user: &str, password: &str) -> RemoteOptions {
    remote.username = Some(user.to_string());
    remote.password = Some(password.to_string());
    remote
}

fn open(r: &TestRegistry, repo: &str, remote: &RemoteOptions, access: Access) -> Box<dyn Store> {
    registry::open(r.host(), repo, remote, access).expect("open registry store")
}

/// Upload sessions the registry's storage still holds for `repo`: those
/// with a `startedat` file. distribution 2.8's DELETE of a session removes
/// its `data` and `startedat` but leaves an empty `hashstates` tree behind;
/// without `startedat` the session is unknown to it (a GET of its Location
/// is 404 BLOB_UPLOAD_UNKNOWN) and its purger removes the rest.
fn open_sessions(r: &TestRegistry, repo: &str) -> Vec<String> {
    let dir = r
        .storage_dir()
        .join("docker/registry/v2/repositories")
        .join(repo)
        .join("_uploads");
    crate::support::names_in(&dir)
        .into_iter()
        .filter(|s| dir.join(s).join("startedat").is_file())
        .collect()
}

fn assert_code<T: std::fmt::Debug>(result: Result<T, Error>, code: ErrorCode) -> String {
    match result {
        Err(e) => {
            assert_eq!(e.code(), code, "{e}");
            format!("{e} {e:?}")
        }
        Ok(v) => panic!("expected {code}, got Ok({v:?})"),
    }
}

fn assert_no_secret(text: &str, secrets: &[&str]) {
    for secret in secrets {
        assert!(!text.contains(secret), "{secret:?} appears in: {text}");
    }
}

#[test]
fn blobs_go_up_whole_and_in_pieces_and_come_back_whole_and_in_ranges() {
    let r = TestRegistry::start(Config::plain());
    let store = open(&r, "client/blobs", &plain(), Access::Write);
    let monitor = Monitor::none();

    // Small: one PUT.
    let small = pattern(1000, 1);
    let small_digest = digest(&small);
    assert_eq!(store.blob_size(&small_digest).unwrap(), None);
    assert_eq!(
        store
            .put_blob_bytes(&small_digest, &small, &monitor)
            .unwrap(),
        1000
    );
    assert_eq!(store.blob_size(&small_digest).unwrap(), Some(1000));
    assert_eq!(
        store.get_blob(&small_digest, 1000, &monitor).unwrap(),
        small
    );

    // Larger than a piece: PATCHes, then the closing PUT.
    let big = pattern(2 * PIECE + 12345, 2);
    let big_digest = digest(&big);
    let file = r.scratch("big.blob");
    std::fs::write(&file, &big).unwrap();
    let sent = store
        .put_blob_file(&big_digest, &file, big.len() as u64, &monitor)
        .unwrap();
    assert_eq!(sent, big.len() as u64);
    assert_eq!(
        store.blob_size(&big_digest).unwrap(),
        Some(big.len() as u64)
    );
    assert_eq!(
        store
            .get_blob(&big_digest, big.len() as u64, &monitor)
            .unwrap(),
        big
    );
    assert!(r.stored_blobs().contains(&big_digest));

    // Present: a HEAD and nothing sent.
    assert_eq!(
        store
            .put_blob_file(&big_digest, &file, big.len() as u64, &monitor)
            .unwrap(),
        0
    );
    assert_eq!(
        store
            .put_blob_bytes(&small_digest, &small, &monitor)
            .unwrap(),
        0
    );
    assert!(open_sessions(&r, "client/blobs").is_empty());

    // Ranges, across a piece boundary and at both ends.
    for (offset, len) in [
        (0u64, 1u64),
        (PIECE as u64 - 10, 20),
        (big.len() as u64 - 7, 7),
        (5, 0),
    ] {
        let got = store
            .get_blob_range(&big_digest, offset, len, &monitor)
            .unwrap();
        assert_eq!(
            got,
            &big[offset as usize..(offset + len) as usize],
            "{offset}+{len}"
        );
    }
    assert_code(
        store.get_blob_range(&big_digest, big.len() as u64, 10, &monitor),
        ErrorCode::RegistryError,
    );

    // Bounded reads and missing blobs.
    assert_code(
        store.get_blob(&big_digest, 1 << 20, &monitor),
        ErrorCode::RegistryError,
    );
    let missing = digest(b"never uploaded");
    assert_eq!(store.blob_size(&missing).unwrap(), None);
    let text = assert_code(
        store.get_blob(&missing, 100, &monitor),
        ErrorCode::RegistryError,
    );
    assert!(text.contains("not found"), "{text}");
    assert_code(
        store.get_blob_range(&missing, 0, 10, &monitor),
        ErrorCode::RegistryError,
    );

    // A digest that is not one never reaches a URL.
    assert_code(
        store.blob_size("sha256:../../v2"),
        ErrorCode::InvalidArgument,
    );
}

/// A registry that ignores Range (as some storage backends do) sends the
/// whole blob with 200; the store takes the range out of it.
#[test]
fn a_full_answer_to_a_range_request_is_cut_to_the_range() {
    let blob = pattern(100_000, 3);
    let body = blob.clone();
    let server = FakeServer::start(move |request| {
        if request.starts_with("GET /v2/r/blobs/") {
            http_response("200 OK", &[], &body)
        } else {
            http_response("404 Not Found", &[], b"")
        }
    });
    let store = registry::open(&server.host(), "r", &plain(), Access::Read).unwrap();
    let got = store
        .get_blob_range(&digest(&blob), 70_000, 1000, &Monitor::none())
        .unwrap();
    assert_eq!(got, &blob[70_000..71_000]);
    assert_code(
        store.get_blob_range(&digest(&blob), 99_990, 20, &Monitor::none()),
        ErrorCode::RegistryError,
    );
}

/// Ranged reads, as pull makes them by the hundred, share connections:
/// each gives its connection back once it has read its range, so a run of
/// them opens as few as are in flight at once, not one each (which costs a
/// TCP and, over HTTPS, a TLS handshake per read).
#[test]
fn ranged_reads_reuse_their_connections() {
    let r = TestRegistry::start(Config::plain());
    let blob = pattern(1 << 20, 9);
    let blob_digest = digest(&blob);
    open(&r, "client/reuse", &plain(), Access::Write)
        .put_blob_bytes(&blob_digest, &blob, &Monitor::none())
        .unwrap();
    let proxy = CountingProxy::start(r.host());
    let store = registry::open(&proxy.host(), "client/reuse", &plain(), Access::Read).unwrap();
    for i in 0..40u64 {
        let (offset, len) = (i * 20_000, 10_000 + i * 100);
        let got = store
            .get_blob_range(&blob_digest, offset, len, &Monitor::none())
            .unwrap();
        assert_eq!(got, &blob[offset as usize..(offset + len) as usize]);
    }
    let connections = proxy.connections();
    assert!(
        (1..=2).contains(&connections),
        "40 ranged reads opened {connections} connections"
    );
}

/// A TCP proxy to `target` that counts the connections made through it.
struct CountingProxy {
    host: String,
    accepted: Arc<std::sync::atomic::AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl CountingProxy {
    fn start(target: &str) -> CountingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let host = listener.local_addr().unwrap().to_string();
        let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (count, halt, target) = (accepted.clone(), stop.clone(), target.to_string());
        std::thread::spawn(move || {
            while !halt.load(Ordering::Relaxed) {
                let Ok((client, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(2));
                    continue;
                };
                count.fetch_add(1, Ordering::Relaxed);
                client.set_nonblocking(false).unwrap();
                let server = TcpStream::connect(&target).unwrap();
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Write);
                    });
                }
            }
        });
        CountingProxy {
            host,
            accepted,
            stop,
        }
    }

    fn host(&self) -> String {
        self.host.clone()
    }

    fn connections(&self) -> usize {
        self.accepted.load(Ordering::Relaxed)
    }
}

impl Drop for CountingProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn image_manifest(config: (&str, usize), layer: (&str, usize)) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media_types::IMAGE_MANIFEST,
        "config": {"mediaType": media_types::CONFIG, "digest": config.0, "size": config.1},
        "layers": [{"mediaType": media_types::PACK, "digest": layer.0, "size": layer.1}],
    }))
    .unwrap()
}

#[test]
fn manifests_are_put_by_tag_and_read_by_tag_and_digest() {
    let r = TestRegistry::start(Config::plain());
    let store = open(&r, "client/manifests", &plain(), Access::Write);
    let monitor = Monitor::none();
    let config = br#"{"snapshot":"test"}"#.to_vec();
    let layer = pattern(5000, 4);
    store
        .put_blob_bytes(&digest(&config), &config, &monitor)
        .unwrap();
    store
        .put_blob_bytes(&digest(&layer), &layer, &monitor)
        .unwrap();
    let manifest = image_manifest(
        (&digest(&config), config.len()),
        (&digest(&layer), layer.len()),
    );

    store
        .put_manifest("v1", &manifest, media_types::IMAGE_MANIFEST)
        .unwrap();
    store.commit(&Monitor::none()).unwrap();
    assert_eq!(
        store.get_manifest("v1", 1 << 20).unwrap().as_deref(),
        Some(&manifest[..])
    );
    let manifest_digest = digest(&manifest);
    assert_eq!(
        r.manifest_digest("client/manifests", "v1"),
        Some(manifest_digest.clone())
    );
    assert_eq!(
        store
            .get_manifest(&manifest_digest, 1 << 20)
            .unwrap()
            .as_deref(),
        Some(&manifest[..])
    );
    assert_eq!(store.get_manifest("v2", 1 << 20).unwrap(), None);
    assert_eq!(
        store
            .get_manifest(&digest(b"no such manifest"), 1 << 20)
            .unwrap(),
        None
    );
    assert_code(store.get_manifest("v1", 10), ErrorCode::RegistryError);
    assert_code(store.get_manifest("../x", 10), ErrorCode::InvalidArgument);

    // A manifest naming a blob the registry lacks is refused, with the
    // registry's error code in the message.
    let missing = digest(b"absent layer");
    let bad = image_manifest((&digest(&config), config.len()), (&missing, 12));
    let text = assert_code(
        store.put_manifest("v3", &bad, media_types::IMAGE_MANIFEST),
        ErrorCode::RegistryError,
    );
    assert!(
        text.contains("BLOB_UNKNOWN") || text.contains("MANIFEST_BLOB_UNKNOWN"),
        "{text}"
    );

    // Read access sees what was written.
    let reader = open(&r, "client/manifests", &plain(), Access::Read);
    assert_eq!(
        reader.get_manifest("v1", 1 << 20).unwrap().as_deref(),
        Some(&manifest[..])
    );
}

#[test]
fn blobs_are_mounted_across_repositories() {
    let r = TestRegistry::start(Config::plain());
    let monitor = Monitor::none();
    let a = open(&r, "client/mount-a", &plain(), Access::Write);
    let b = open(&r, "client/mount-b", &plain(), Access::Write);
    let blob = pattern(3000, 5);
    a.put_blob_bytes(&digest(&blob), &blob, &monitor).unwrap();

    assert!(b.mount_blob(&digest(&blob), "client/mount-a").unwrap());
    assert_eq!(b.blob_size(&digest(&blob)).unwrap(), Some(3000));
    assert_eq!(
        b.put_blob_bytes(&digest(&blob), &blob, &monitor).unwrap(),
        0
    );

    // Not in the source: the registry opens a session instead; the
    // upload of that digest goes through it, and none is left after.
    let other = pattern(4000, 6);
    assert!(!b.mount_blob(&digest(&other), "client/mount-a").unwrap());
    assert_eq!(open_sessions(&r, "client/mount-b").len(), 1);
    assert_eq!(
        b.put_blob_bytes(&digest(&other), &other, &monitor).unwrap(),
        4000
    );
    assert_eq!(b.get_blob(&digest(&other), 4000, &monitor).unwrap(), other);
    assert!(open_sessions(&r, "client/mount-b").is_empty());

    // An unused session from a failed mount goes at commit.
    let third = pattern(10, 7);
    assert!(!b.mount_blob(&digest(&third), "client/mount-a").unwrap());
    assert_eq!(open_sessions(&r, "client/mount-b").len(), 1);
    b.commit(&Monitor::none()).unwrap();
    assert!(open_sessions(&r, "client/mount-b").is_empty());
}

#[test]
fn basic_auth_takes_the_right_password_and_refuses_others() {
    let password = "pw-Basic-SECRET-81";
    let r = TestRegistry::start(Config::htpasswd("alice", password));
    let monitor = Monitor::none();
    let blob = pattern(2000, 8);

    let good = open(
        &r,
        "client/basic",
        &with_credentials(plain(), "alice", password),
        Access::Write,
    );
    assert_eq!(
        good.put_blob_bytes(&digest(&blob), &blob, &monitor)
            .unwrap(),
        2000
    );
    assert_eq!(good.get_blob(&digest(&blob), 2000, &monitor).unwrap(), blob);

    let wrong_password = "wrong-Basic-SECRET-17";
    let wrong = open(
        &r,
        "client/basic",
        &with_credentials(plain(), "alice", wrong_password),
        Access::Read,
    );
    let text = assert_code(wrong.blob_size(&digest(&blob)), ErrorCode::Unauthorized);
    assert_no_secret(&text, &[wrong_password, password]);

    let anonymous = open(&r, "client/basic", &plain(), Access::Read);
    assert_code(
        anonymous.get_manifest("latest", 1000),
        ErrorCode::Unauthorized,
    );

    // The same credentials from docker's config.json, by explicit path.
    let config = write_docker_config(&r.scratch("docker"), r.host(), "alice", password);
    let from_config = RemoteOptions {
        docker_config: Some(config),
        ..plain()
    };
    let store = open(&r, "client/basic", &from_config, Access::Read);
    assert_eq!(store.blob_size(&digest(&blob)).unwrap(), Some(2000));

    // A config with an entry for another host only: anonymous, refused.
    let elsewhere = write_docker_config(&r.scratch("docker2"), "127.0.0.1:1", "alice", password);
    let store = open(
        &r,
        "client/basic",
        &RemoteOptions {
            docker_config: Some(elsewhere),
            ..plain()
        },
        Access::Read,
    );
    assert_code(store.blob_size(&digest(&blob)), ErrorCode::Unauthorized);
}

/// The environment variable that makes `helper_credential_helpers` run.
const ENV_HELPER_DIR: &str = "MICROSNAP_TEST_CREDENTIAL_HELPER_DIR";

/// docker's `credHelpers` and `credsStore` run `docker-credential-NAME get`
/// found on PATH. A real helper (a script that answers for one registry and
/// logs what it was asked) is put on PATH in a child test process only, so
/// the PATH of this multi-threaded process is never changed.
#[test]
fn credential_helpers_and_stores_give_the_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let status = Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "registry_client::helper_credential_helpers",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ENV_HELPER_DIR, dir.path())
        .status()
        .unwrap();
    assert!(status.success(), "helper process: {status}");
    assert!(
        dir.path().join("done").exists(),
        "the helper process did not run its checks"
    );
}

#[test]
#[ignore = "helper process of credential_helpers_and_stores_give_the_credentials"]
fn helper_credential_helpers() {
    let Some(dir) = std::env::var_os(ENV_HELPER_DIR).map(std::path::PathBuf::from) else {
        return;
    };
    let password = "pw-Helper-SECRET-55";
    let r = TestRegistry::start(Config::htpasswd("alice", password));
    let blob = pattern(1500, 4);
    open(
        &r,
        "client/helper",
        &with_credentials(plain(), "alice", password),
        Access::Write,
    )
    .put_blob_bytes(&digest(&blob), &blob, &Monitor::none())
    .unwrap();

    // docker-credential-msnaptest: `get` reads the server on stdin, logs
    // it, and answers with the user and the secret in $HELPER_SECRET_FILE.
    let bin = dir.join("bin");
    fs::create_dir_all(&bin).unwrap();
    let log = dir.join("asked");
    let secret_file = dir.join("secret");
    let script = format!(
        "#!/bin/sh\n\
         [ \"$1\" = get ] || exit 1\n\
         read server\n\
         echo \"$server\" >> {log}\n\
         printf '{{\"ServerURL\":\"%s\",\"Username\":\"alice\",\"Secret\":\"%s\"}}' \"$server\" \"$(cat {secret})\"\n",
        log = log.display(),
        secret = secret_file.display(),
    );
    let helper = bin.join("docker-credential-msnaptest");
    fs::write(&helper, script).unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&helper, fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    // Only in this single-test child process.
    std::env::set_var("PATH", path);

    let check = |config: serde_json::Value, secret: &str| {
        fs::write(&secret_file, secret).unwrap();
        let file = dir.join("config.json");
        fs::write(&file, serde_json::to_vec(&config).unwrap()).unwrap();
        let remote = RemoteOptions {
            docker_config: Some(file),
            ..plain()
        };
        open(&r, "client/helper", &remote, Access::Read).blob_size(&digest(&blob))
    };
    let per_host = serde_json::json!({ "credHelpers": { r.host(): "msnaptest" } });
    let store_wide = serde_json::json!({ "credsStore": "msnaptest" });
    assert_eq!(check(per_host.clone(), password).unwrap(), Some(1500));
    assert_eq!(check(store_wide.clone(), password).unwrap(), Some(1500));
    let asked = fs::read_to_string(&log).unwrap();
    assert_eq!(
        asked.lines().collect::<Vec<_>>(),
        [r.host(), r.host()],
        "the helper was asked for the registry's host"
    );
    // A helper that hands out a wrong secret: unauthorized, secret unsaid.
    let wrong = "wrong-Helper-SECRET-66";
    let text = assert_code(check(per_host, wrong), ErrorCode::Unauthorized);
    assert_no_secret(&text, &[wrong, password]);
    // A helper that is not installed: a clear error, not anonymous.
    let text = assert_code(
        check(
            serde_json::json!({ "credsStore": "msnaptest-absent" }),
            password,
        ),
        ErrorCode::Unauthorized,
    );
    assert_no_secret(&text, &[password]);
    fs::write(dir.join("done"), b"").unwrap();
}

#[test]
fn bearer_tokens_are_fetched_cached_and_renewed_once() {
    let password = "pw-Token-SECRET-29";
    let r = TestRegistry::start(Config {
        auth: Auth::Token(TokenAuth {
            user: "bob".into(),
            password: password.into(),
            anonymous_pull: false,
            lifetime_seconds: 2,
        }),
        tls: false,
    });
    let server = r.token_server().expect("token server");
    let monitor = Monitor::none();
    let remote = with_credentials(plain(), "bob", password);
    let store = open(&r, "client/token", &remote, Access::Write);

    let blob = pattern(PIECE + 100, 9);
    let file = r.scratch("token.blob");
    std::fs::write(&file, &blob).unwrap();
    assert_eq!(
        store
            .put_blob_file(&digest(&blob), &file, blob.len() as u64, &monitor)
            .unwrap(),
        blob.len() as u64
    );
    let after_upload = server.tokens_issued();
    assert!(after_upload >= 1, "no token was asked for");
    // Cached: more requests, no new token while it is valid.
    assert_eq!(
        store.blob_size(&digest(&blob)).unwrap(),
        Some(blob.len() as u64)
    );
    assert_eq!(
        store
            .get_blob_range(&digest(&blob), 10, 10, &monitor)
            .unwrap(),
        &blob[10..20]
    );
    assert_eq!(server.tokens_issued(), after_upload);

    // Expired: the registry answers 401, the store gets a new token once
    // and the request succeeds.
    std::thread::sleep(Duration::from_millis(3200));
    assert_eq!(
        store
            .get_blob(&digest(&blob), blob.len() as u64, &monitor)
            .unwrap(),
        blob
    );
    assert_eq!(server.tokens_issued(), after_upload + 1);

    // A mount needs pull on the source repository too: the store asks
    // for a token with both scopes.
    let other = open(&r, "client/token-b", &remote, Access::Write);
    assert!(other.mount_blob(&digest(&blob), "client/token").unwrap());
    assert_eq!(
        other.blob_size(&digest(&blob)).unwrap(),
        Some(blob.len() as u64)
    );

    // Wrong password: the token service refuses.
    let wrong_password = "wrong-Token-SECRET-55";
    let wrong = open(
        &r,
        "client/token",
        &with_credentials(plain(), "bob", wrong_password),
        Access::Read,
    );
    let text = assert_code(wrong.blob_size(&digest(&blob)), ErrorCode::Unauthorized);
    assert_no_secret(&text, &[wrong_password, password]);

    // Anonymous: the token service gives nothing without credentials.
    let anonymous = open(&r, "client/token", &plain(), Access::Read);
    let text = assert_code(
        anonymous.get_manifest("latest", 1000),
        ErrorCode::Unauthorized,
    );
    assert_no_secret(&text, &[password]);
}

#[test]
fn tls_is_verified_against_the_ca_file_only() {
    let r = TestRegistry::start(Config::plain().with_tls());
    let ca = r.ca_file().expect("ca file").to_path_buf();
    let monitor = Monitor::none();
    let blob = pattern(500, 10);

    let verified = RemoteOptions {
        ca_file: Some(ca.clone()),
        timeout_seconds: Some(10),
        ..Default::default()
    };
    let store = open(&r, "client/tls", &verified, Access::Write);
    assert_eq!(
        store
            .put_blob_bytes(&digest(&blob), &blob, &monitor)
            .unwrap(),
        500
    );
    assert_eq!(store.get_blob(&digest(&blob), 500, &monitor).unwrap(), blob);

    // The system roots do not know the test CA.
    let system_roots = RemoteOptions {
        timeout_seconds: Some(10),
        ..Default::default()
    };
    let text = assert_code(
        open(&r, "client/tls", &system_roots, Access::Read).blob_size(&digest(&blob)),
        ErrorCode::RegistryError,
    );
    assert!(
        text.to_lowercase().contains("tls") || text.contains("certificate"),
        "{text}"
    );

    // A CA file of another CA is as bad.
    let other = TestRegistry::start(Config::plain().with_tls());
    let wrong_ca = RemoteOptions {
        ca_file: other.ca_file().map(Path::to_path_buf),
        timeout_seconds: Some(10),
        ..Default::default()
    };
    assert_code(
        open(&r, "client/tls", &wrong_ca, Access::Read).blob_size(&digest(&blob)),
        ErrorCode::RegistryError,
    );

    // plain_http to the TLS port: the server's answer is not HTTP we can use.
    assert_code(
        open(&r, "client/tls", &plain(), Access::Read).blob_size(&digest(&blob)),
        ErrorCode::RegistryError,
    );

    // A CA file that is no PEM is a bad argument, said at open.
    let junk = r.scratch("junk.pem");
    std::fs::write(&junk, "not a certificate").unwrap();
    let bad = RemoteOptions {
        ca_file: Some(junk),
        ..Default::default()
    };
    assert!(matches!(
        registry::open(r.host(), "client/tls", &bad, Access::Read).map(|_| ()),
        Err(Error::InvalidArgument(_))
    ));
}

#[test]
fn https_to_a_plain_port_fails_clearly() {
    let r = TestRegistry::start(Config::plain());
    let remote = RemoteOptions {
        timeout_seconds: Some(5),
        ..Default::default()
    };
    let started = Instant::now();
    let text = assert_code(
        open(&r, "client/nottls", &remote, Access::Read).blob_size(&digest(b"x")),
        ErrorCode::RegistryError,
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(text.contains(r.host()), "{text}");
}

#[test]
fn a_dead_port_is_a_registry_error_at_once() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let store = registry::open(
        &format!("127.0.0.1:{port}"),
        "client/dead",
        &plain(),
        Access::Read,
    )
    .unwrap();
    let started = Instant::now();
    let text = assert_code(store.blob_size(&digest(b"x")), ErrorCode::RegistryError);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert!(text.contains("refused"), "{text}");
}

#[test]
fn a_stalled_server_times_out() {
    // Accepts, reads, never answers.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let host = listener.local_addr().unwrap().to_string();
    let stop = Arc::new(AtomicBool::new(false));
    let held = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut conns = Vec::new();
            listener.set_nonblocking(true).unwrap();
            while !stop.load(Ordering::Relaxed) {
                if let Ok((c, _)) = listener.accept() {
                    conns.push(c);
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };
    let remote = RemoteOptions {
        timeout_seconds: Some(1),
        ..plain()
    };
    let store = registry::open(&host, "client/slow", &remote, Access::Write).unwrap();
    for attempt in 0..2 {
        let started = Instant::now();
        let text = match attempt {
            0 => assert_code(store.get_manifest("latest", 1000), ErrorCode::RegistryError),
            _ => assert_code(
                store.put_blob_bytes(&digest(b"abc"), b"abc", &Monitor::none()),
                ErrorCode::RegistryError,
            ),
        };
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(900) && took < Duration::from_secs(4),
            "{took:?}"
        );
        assert!(text.contains("timed out"), "{text}");
    }
    stop.store(true, Ordering::Relaxed);
    held.join().unwrap();
}

#[test]
fn a_server_speaking_garbage_is_a_registry_error() {
    let server = FakeServer::start(|_| b"SSH-2.0-OpenSSH_9.2\r\nthis is not http\r\n\r\n".to_vec());
    let store = registry::open(&server.host(), "client/garbage", &plain(), Access::Read).unwrap();
    assert_code(store.blob_size(&digest(b"x")), ErrorCode::RegistryError);
    assert_code(store.get_manifest("latest", 100), ErrorCode::RegistryError);
}

/// Answers a registry may give that the protocol does not allow: a 5xx,
/// a 202 without Location, a token service that sends no JSON, a 401
/// without a challenge. None may leak the upload state or a credential.
#[test]
fn answers_outside_the_protocol_are_registry_errors_without_secrets() {
    let monitor = Monitor::none();
    let state = "STATE-SECRET-42";

    let server = FakeServer::start(move |request| {
        let location = format!("/v2/r/blobs/uploads/u1?_state={state}");
        if request.starts_with("HEAD ") {
            http_response("404 Not Found", &[], b"")
        } else if request.starts_with("POST ") {
            http_response("202 Accepted", &[("Location", &location)], b"")
        } else {
            http_response(
                "500 Internal Server Error",
                &[],
                b"{\"errors\":[{\"code\":\"UNKNOWN\"}]}",
            )
        }
    });
    let store = registry::open(&server.host(), "r", &plain(), Access::Write).unwrap();
    let text = assert_code(
        store.put_blob_bytes(&digest(b"abc"), b"abc", &monitor),
        ErrorCode::RegistryError,
    );
    assert!(text.contains("500"), "{text}");
    assert_no_secret(&text, &[state]);
    store.abandon();

    let server = FakeServer::start(|request| {
        if request.starts_with("HEAD ") {
            http_response("404 Not Found", &[], b"")
        } else {
            http_response("202 Accepted", &[], b"")
        }
    });
    let store = registry::open(&server.host(), "r", &plain(), Access::Write).unwrap();
    let text = assert_code(
        store.put_blob_bytes(&digest(b"abc"), b"abc", &monitor),
        ErrorCode::RegistryError,
    );
    assert!(text.contains("Location"), "{text}");

    let password = "pw-Fake-SECRET-63";
    let server = bearer_fake(b"<html>not json</html>");
    let store = registry::open(
        &server.host(),
        "r",
        &with_credentials(plain(), "carol", password),
        Access::Read,
    )
    .unwrap();
    let text = assert_code(store.get_manifest("latest", 100), ErrorCode::RegistryError);
    assert!(text.contains("token"), "{text}");
    assert_no_secret(&text, &[password]);

    let server = FakeServer::start(|_| http_response("401 Unauthorized", &[], b""));
    let store = registry::open(&server.host(), "r", &plain(), Access::Read).unwrap();
    assert_code(store.get_manifest("latest", 100), ErrorCode::RegistryError);

    // A token endpoint that takes the credentials, and a registry that
    // refuses every token: one renewal, then unauthorized.
    let server = bearer_fake(b"{\"token\":\"tok-Fake-SECRET-77\"}");
    let store = registry::open(
        &server.host(),
        "r",
        &with_credentials(plain(), "carol", password),
        Access::Read,
    )
    .unwrap();
    let text = assert_code(store.get_manifest("latest", 100), ErrorCode::Unauthorized);
    assert_no_secret(&text, &[password, "tok-Fake-SECRET-77"]);
    assert_eq!(server.requests_matching("GET /token"), 1);
    assert_eq!(server.requests_matching("GET /v2/r/manifests/latest"), 2);
}

/// Registries send blob reads to their storage: GET and HEAD follow the
/// redirect, without our credentials.
#[test]
fn blob_reads_follow_redirects_to_storage_without_credentials() {
    let blob = pattern(3000, 11);
    let body = blob.clone();
    let storage = FakeServer::start(move |request| {
        if request.starts_with("GET /bucket/") {
            http_response("200 OK", &[], &body)
        } else {
            http_response("404 Not Found", &[], b"")
        }
    });
    let target = format!("http://{}/bucket/object?X-Signature=abc", storage.host());
    let registry_server = FakeServer::start(move |request| {
        if request
            .to_ascii_lowercase()
            .contains("authorization: basic")
        {
            http_response("307 Temporary Redirect", &[("Location", &target)], b"")
        } else {
            http_response(
                "401 Unauthorized",
                &[("WWW-Authenticate", "Basic realm=\"r\"")],
                b"",
            )
        }
    });
    let password = "pw-Redirect-SECRET-3";
    let store = registry::open(
        &registry_server.host(),
        "r",
        &with_credentials(plain(), "dave", password),
        Access::Read,
    )
    .unwrap();
    assert_eq!(
        store
            .get_blob(&digest(&blob), 3000, &Monitor::none())
            .unwrap(),
        blob
    );
    assert_eq!(
        store
            .get_blob_range(&digest(&blob), 100, 50, &Monitor::none())
            .unwrap(),
        &blob[100..150]
    );
    let leaked = storage
        .heads()
        .iter()
        .any(|h| h.to_ascii_lowercase().contains("authorization"));
    assert!(
        !leaked,
        "credentials went to the storage host: {:?}",
        storage.heads()
    );
}

#[test]
fn a_forbidden_answer_is_unauthorized() {
    let server = FakeServer::start(|_| {
        http_response(
            "403 Forbidden",
            &[],
            b"{\"errors\":[{\"code\":\"DENIED\"}]}",
        )
    });
    let store = registry::open(&server.host(), "r", &plain(), Access::Write).unwrap();
    assert_code(store.get_manifest("latest", 100), ErrorCode::Unauthorized);
    assert_code(
        store.put_blob_bytes(&digest(b"x"), b"x", &Monitor::none()),
        ErrorCode::Unauthorized,
    );
}

#[test]
fn a_cancel_mid_upload_stops_within_a_second_and_abandon_deletes_the_session() {
    let r = TestRegistry::start(Config::plain());
    let repo = "client/cancel";
    let store = open(&r, repo, &plain(), Access::Write);
    // Big enough that the upload is surely under way when it is cancelled.
    let len: u64 = 1 << 30;
    let file = r.scratch("cancel.blob");
    std::fs::File::create(&file).unwrap().set_len(len).unwrap();
    let token = CancelToken::new();
    let monitor = Monitor::with_cancel(token.clone());

    std::thread::scope(|scope| {
        let watcher = scope.spawn(|| {
            // Cancel once the registry holds part of the upload.
            let deadline = Instant::now() + Duration::from_secs(60);
            let uploads = r
                .storage_dir()
                .join("docker/registry/v2/repositories")
                .join(repo)
                .join("_uploads");
            while Instant::now() < deadline {
                let written: u64 = crate::support::names_in(&uploads)
                    .iter()
                    .filter_map(|s| std::fs::metadata(uploads.join(s).join("data")).ok())
                    .map(|m| m.len())
                    .sum();
                if written > 0 {
                    break;
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            token.cancel();
            Instant::now()
        });
        let result =
            store.put_blob_file(&format!("sha256:{}", "0".repeat(64)), &file, len, &monitor);
        let returned = Instant::now();
        let cancelled_at = watcher.join().unwrap();
        assert!(matches!(result, Err(Error::Cancelled)), "{result:?}");
        let took = returned.saturating_duration_since(cancelled_at);
        assert!(took < Duration::from_secs(1), "cancel took {took:?}");
    });
    assert_eq!(open_sessions(&r, repo).len(), 1, "the upload did not start");
    store.abandon();
    assert!(
        open_sessions(&r, repo).is_empty(),
        "{:?}",
        open_sessions(&r, repo)
    );
}

/// The whole stack through this store: push a snapshot to a TLS registry
/// with token auth, pull it into another home, same bytes; a second push
/// sends no pack (HEAD finds them all).
#[test]
fn a_snapshot_goes_through_a_tls_token_registry_and_back() {
    use crate::support::{pseudo_random, write_at, TestHome, MIB};
    use microsnap::distribution::{PullOptions, PushOptions};
    use microsnap::snapshot::{self, CreateOptions};

    let password = "pw-E2E-SECRET-5";
    let r = TestRegistry::start(Config::token("erin", password).with_tls());
    let remote = RemoteOptions {
        username: Some("erin".into()),
        password: Some(password.into()),
        ca_file: r.ca_file().map(Path::to_path_buf),
        timeout_seconds: Some(20),
        ..Default::default()
    };
    let a = TestHome::new();
    let sb = a.sandbox("sb-e2e", 32 * MIB);
    for i in 0..20u64 {
        write_at(&sb.upper_path, i * 5 * 65536, &pseudo_random(65536, 77 + i));
    }
    let art = snapshot::create(
        &a.home,
        &sb.name,
        &CreateOptions {
            name: Some("e2e".into()),
            record_integrity: true,
            ..CreateOptions::default()
        },
        &Monitor::none(),
    )
    .expect("create snapshot");
    let reference = r.reference("client/e2e:v1");
    let push_options = PushOptions {
        remote: remote.clone(),
        ..Default::default()
    };
    let pushed =
        microsnap::distribution::push(&a.home, "e2e", &reference, &push_options, &Monitor::none())
            .unwrap_or_else(|e| panic!("push: {e}"));
    assert_eq!(pushed.snapshot_digest, art.digest);
    assert!(pushed.bytes_uploaded > 0);
    assert_eq!(
        r.manifest_digest("client/e2e", "v1").as_deref(),
        Some(pushed.manifest_digest.as_str())
    );

    let again =
        microsnap::distribution::push(&a.home, "e2e", &reference, &push_options, &Monitor::none())
            .unwrap_or_else(|e| panic!("second push: {e}"));
    assert_eq!(again.chunks_uploaded, 0, "{again:?}");

    let b = TestHome::new();
    let pull_options = PullOptions {
        remote,
        ..Default::default()
    };
    let (handle, report) =
        microsnap::distribution::pull(&b.home, &reference, None, &pull_options, &Monitor::none())
            .unwrap_or_else(|e| panic!("pull: {e}"));
    assert_eq!(handle.digest, art.digest);
    assert_eq!(report.chunks_downloaded, 20, "{report:?}");
    let upper = |path: &Path| {
        std::fs::read(microsnap::artifact::open_dir(path).unwrap().upper_path()).unwrap()
    };
    assert_eq!(upper(&handle.path), upper(&art.path));

    // Without the credentials: unauthorized, and the password of the
    // others never shows.
    let c = TestHome::new();
    let anonymous = PullOptions {
        remote: RemoteOptions {
            ca_file: r.ca_file().map(Path::to_path_buf),
            ..Default::default()
        },
        ..Default::default()
    };
    let text = assert_code(
        microsnap::distribution::pull(&c.home, &reference, None, &anonymous, &Monitor::none())
            .map(|(h, _)| h.digest),
        ErrorCode::Unauthorized,
    );
    assert_no_secret(&text, &[password]);
}

// ---------------------------------------------------------------------------
// A fake HTTP server: one answer per request from a function of the request
// head, connection closed after each.

struct FakeServer {
    host: String,
    stop: Arc<AtomicBool>,
    seen: Arc<std::sync::Mutex<Vec<String>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// A fake registry that challenges every request for a Bearer token from
/// its own `/token`, which answers `token_body`.
fn bearer_fake(token_body: &'static [u8]) -> FakeServer {
    FakeServer::start_with_self(move |request, me| {
        if request.starts_with("GET /token") {
            http_response("200 OK", &[], token_body)
        } else {
            let challenge = format!("Bearer realm=\"http://{me}/token\",service=\"fake\"");
            http_response("401 Unauthorized", &[("WWW-Authenticate", &challenge)], b"")
        }
    })
}

fn http_response(status: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    let mut out = out.into_bytes();
    out.extend_from_slice(body);
    out
}

impl FakeServer {
    fn start(answer: impl Fn(&str) -> Vec<u8> + Send + 'static) -> FakeServer {
        Self::start_with_self(move |request, _| answer(request))
    }

    /// `answer(request head, "127.0.0.1:PORT")`.
    fn start_with_self(answer: impl Fn(&str, &str) -> Vec<u8> + Send + 'static) -> FakeServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let host = listener.local_addr().unwrap().to_string();
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let thread = {
            let (stop, seen, me) = (stop.clone(), seen.clone(), host.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((conn, _)) => {
                            // Recorded before the answer goes out, so a
                            // test that got its answer sees the request.
                            serve(conn, |head| {
                                seen.lock().unwrap().push(head.to_string());
                                answer(head, &me)
                            });
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
            })
        };
        FakeServer {
            host,
            stop,
            seen,
            thread: Some(thread),
        }
    }

    fn host(&self) -> String {
        self.host.clone()
    }

    fn heads(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }

    fn requests_matching(&self, prefix: &str) -> usize {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|h| h.starts_with(prefix))
            .count()
    }
}

/// Read one request (head and a Content-Length body), answer, close.
fn serve(conn: TcpStream, answer: impl Fn(&str) -> Vec<u8>) -> Option<String> {
    conn.set_nonblocking(false).ok()?;
    conn.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut reader = BufReader::new(conn.try_clone().ok()?);
    let mut head = String::new();
    let mut content_length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            content_length = v.trim().parse().unwrap_or(0);
        }
        let end = line == "\r\n" || line == "\n";
        head.push_str(&line);
        if end {
            break;
        }
    }
    let mut body = vec![0u8; content_length];
    reader.read_exact(&mut body).ok()?;
    let mut conn = conn;
    let _ = conn.write_all(&answer(&head));
    let _ = conn.flush();
    Some(head)
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
