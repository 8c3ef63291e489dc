//! A real registry for the distribution tests: Debian's docker-registry
//! (distribution 2.8.2, unpacked by tools/registry/fetch.sh under
//! target/registry) on 127.0.0.1, on a free port, with a config written
//! into a temporary directory: no auth, htpasswd (Basic) or a token server
//! (Bearer, tests/registry/token_server.py), each over plain HTTP or TLS
//! with a CA made for the test. Stopped by its pid when dropped.
//!
//! The harness's own requests (`get`, `delete_manifest`, readiness) go
//! through ureq, the HTTP client the crate already links, authenticated as
//! the configured user; they never touch an address but loopback.
use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How the registry authenticates clients.
#[derive(Clone, Debug)]
pub enum Auth {
    None,
    /// Basic auth against an htpasswd file (bcrypt, `htpasswd -Bbn`).
    Htpasswd {
        user: String,
        password: String,
    },
    /// Bearer tokens from a token server the harness starts.
    Token(TokenAuth),
}

/// The token server's configuration.
#[derive(Clone, Debug)]
pub struct TokenAuth {
    pub user: String,
    pub password: String,
    /// Anonymous callers get `pull` tokens (otherwise 401).
    pub anonymous_pull: bool,
    /// Seconds the registry accepts a token (the server subtracts the
    /// registry's 60 s leeway from `exp`); small values make a token
    /// expire mid-transfer.
    pub lifetime_seconds: u64,
}

#[derive(Clone, Debug)]
pub struct Config {
    pub auth: Auth,
    /// HTTPS with a certificate for IP 127.0.0.1 signed by a CA made for
    /// this registry (`ca_file`); the token server then speaks HTTPS too.
    pub tls: bool,
}

impl Config {
    /// No auth, plain HTTP.
    pub fn plain() -> Config {
        Config {
            auth: Auth::None,
            tls: false,
        }
    }

    pub fn htpasswd(user: &str, password: &str) -> Config {
        Config {
            auth: Auth::Htpasswd {
                user: user.to_string(),
                password: password.to_string(),
            },
            tls: false,
        }
    }

    pub fn token(user: &str, password: &str) -> Config {
        Config {
            auth: Auth::Token(TokenAuth {
                user: user.to_string(),
                password: password.to_string(),
                anonymous_pull: false,
                lifetime_seconds: 300,
            }),
            tls: false,
        }
    }

    pub fn with_tls(mut self) -> Config {
        self.tls = true;
        self
    }

    /// The configured user and password, if any.
    pub fn credentials(&self) -> Option<(&str, &str)> {
        match &self.auth {
            Auth::None => None,
            Auth::Htpasswd { user, password } => Some((user, password)),
            Auth::Token(t) => Some((&t.user, &t.password)),
        }
    }
}

/// The token service and issuer names the registry and the token server agree on.
pub const TOKEN_SERVICE: &str = "microsnap-test-registry";
pub const TOKEN_ISSUER: &str = "microsnap-test-token-issuer";

/// How long a registry or token server may take to answer after start.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A running docker-registry. Fields drop in order: the processes are
/// stopped (Drop) before the directory goes.
pub struct TestRegistry {
    child: Child,
    token_server: Option<TokenServer>,
    host: String,
    config: Config,
    agent: ureq::Agent,
    ca_file: Option<PathBuf>,
    dir: tempfile::TempDir,
}

/// The registry binary tools/registry/fetch.sh unpacks.
pub fn registry_binary() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target/registry/bin/docker-registry")
}

fn require_binary() -> PathBuf {
    let bin = registry_binary();
    assert!(
        bin.is_file(),
        "{} is missing: run tools/registry/fetch.sh (or `make registry-bin`) to fetch \
         Debian's docker-registry; the registry tests need it",
        bin.display()
    );
    bin
}

impl TestRegistry {
    pub fn start(config: Config) -> TestRegistry {
        let bin = require_binary();
        let dir = tempfile::tempdir().expect("registry tempdir");
        let root = dir.path();
        fs::create_dir_all(root.join("storage")).expect("storage dir");

        let tls = config.tls.then(|| make_tls_files(root));
        let ca_file = tls.as_ref().map(|t| t.ca.clone());
        let agent = http_agent(ca_file.as_deref());

        let mut token_server = None;
        let auth_yaml = match &config.auth {
            Auth::None => String::new(),
            Auth::Htpasswd { user, password } => {
                let line = run_tool(Command::new("htpasswd").args(["-Bbn", user, password]));
                fs::write(root.join("htpasswd"), line.trim_end().to_string() + "\n")
                    .expect("write htpasswd");
                format!(
                    "auth:\n  htpasswd:\n    realm: microsnap-test\n    path: {}\n",
                    yaml_str(&root.join("htpasswd"))
                )
            }
            Auth::Token(t) => {
                let server = TokenServer::start(root, t, tls.as_ref());
                let yaml = format!(
                    "auth:\n  token:\n    realm: {}\n    service: {TOKEN_SERVICE}\n    \
                     issuer: {TOKEN_ISSUER}\n    rootcertbundle: {}\n",
                    yaml_str(&server.realm),
                    yaml_str(&server.cert)
                );
                token_server = Some(server);
                yaml
            }
        };
        let tls_yaml = match &tls {
            Some(t) => format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                yaml_str(&t.cert),
                yaml_str(&t.key)
            ),
            None => String::new(),
        };

        // A free port can be taken between probing and the registry's
        // bind by another test; then the registry exits and we try anew.
        let mut last_log = String::new();
        for _attempt in 0..5 {
            let port = free_port();
            let config_yml = format!(
                "version: 0.1\n\
                 log:\n  level: warn\n  formatter: text\n  accesslog:\n    disabled: true\n\
                 storage:\n  filesystem:\n    rootdirectory: {storage}\n  delete:\n    enabled: true\n  \
                 maintenance:\n    uploadpurging:\n      enabled: false\n\
                 http:\n  addr: 127.0.0.1:{port}\n  secret: microsnap-test-{pid}-{port}\n{tls_yaml}\
                 health:\n  storagedriver:\n    enabled: false\n\
                 {auth_yaml}",
                storage = yaml_str(&root.join("storage")),
                pid = std::process::id(),
            );
            fs::write(root.join("config.yml"), &config_yml).expect("write config.yml");
            let log = fs::File::create(root.join("registry.log")).expect("registry.log");
            let child = Command::new(&bin)
                .arg("serve")
                .arg(root.join("config.yml"))
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("dup log"))
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("start {}: {e}", bin.display()));
            let mut child = child;
            let base_url = format!(
                "{}://127.0.0.1:{port}",
                if config.tls { "https" } else { "http" }
            );
            match wait_ready(
                &mut child,
                port,
                &agent,
                &base_url,
                &root.join("registry.log"),
            ) {
                Ok(()) => {
                    return TestRegistry {
                        child,
                        token_server,
                        host: format!("127.0.0.1:{port}"),
                        config,
                        agent,
                        ca_file,
                        dir,
                    }
                }
                Err(log) => {
                    stop_child(&mut child);
                    last_log = log;
                    if !last_log.contains("address already in use") {
                        break;
                    }
                }
            }
        }
        panic!("docker-registry did not start; its log:\n{last_log}");
    }

    /// "127.0.0.1:PORT", the host part of a registry reference.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// `HOST/REPO:TAG` (or `HOST/REPO@DIGEST`): `repo_ref` is what follows
    /// the host.
    pub fn reference(&self, repo_ref: &str) -> String {
        format!("{}/{repo_ref}", self.host)
    }

    pub fn base_url(&self) -> String {
        let scheme = if self.config.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.host)
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The CA certificate (PEM) the TLS registry's certificate is signed
    /// by; None for plain HTTP.
    pub fn ca_file(&self) -> Option<&Path> {
        self.ca_file.as_deref()
    }

    /// The filesystem driver's root directory.
    pub fn storage_dir(&self) -> PathBuf {
        self.dir.path().join("storage")
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("config.yml")
    }

    /// A scratch directory next to the registry's files, gone with it.
    pub fn scratch(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The registry's stdout and stderr so far (warnings and errors).
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    pub fn token_server(&self) -> Option<&TokenServer> {
        self.token_server.as_ref()
    }

    /// `docker-registry garbage-collect`; returns its output, panics if it
    /// fails. With `delete_untagged` it also deletes every manifest no tag
    /// names, as operators run it to reclaim space: the harsher setting,
    /// under which a child whose parent lost its tags must still pull
    /// (its manifest lists every pack it needs). Run while no upload is in
    /// flight (distribution's advice is read-only mode or a stopped
    /// registry; the tests call it between operations, and the config has
    /// no blob descriptor cache that could go stale).
    pub fn garbage_collect(&self, delete_untagged: bool) -> String {
        let out = Command::new(registry_binary())
            .arg("garbage-collect")
            .arg(format!("--delete-untagged={delete_untagged}"))
            .arg(self.config_path())
            .stdin(Stdio::null())
            .output()
            .expect("run docker-registry garbage-collect");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success(),
            "garbage-collect failed ({}):\n{text}",
            out.status
        );
        text
    }

    /// The digest of the manifest `reference` (a tag or digest) names in
    /// `repo`, by HEAD with the OCI and docker manifest media types; None
    /// if the registry has no such manifest.
    pub fn manifest_digest(&self, repo: &str, reference: &str) -> Option<String> {
        let r = self
            .request(
                "HEAD",
                &format!("/v2/{repo}/manifests/{reference}"),
                &[("Accept", MANIFEST_ACCEPT)],
                true,
            )
            .expect("HEAD manifest");
        match r.status {
            200 => Some(
                r.header("docker-content-digest")
                    .expect("registry sent no Docker-Content-Digest")
                    .to_string(),
            ),
            404 => None,
            s => panic!("HEAD /v2/{repo}/manifests/{reference}: {s}"),
        }
    }

    /// The manifest bytes `reference` names, as the registry serves them.
    pub fn manifest(&self, repo: &str, reference: &str) -> Vec<u8> {
        let r = self.get_with(
            &format!("/v2/{repo}/manifests/{reference}"),
            &[("Accept", MANIFEST_ACCEPT)],
        );
        assert_eq!(
            r.status,
            200,
            "GET manifest {repo}:{reference}: {}",
            r.text()
        );
        r.body
    }

    /// Delete the manifest a tag or digest names, through the API: HEAD for
    /// its digest, then DELETE /v2/<repo>/manifests/<digest>. distribution
    /// 2.8 has no API to delete a tag alone; deleting the manifest also
    /// removes every tag on it. For a tag alone see [`Self::untag`].
    pub fn delete_manifest(&self, repo: &str, reference: &str) {
        let digest = self
            .manifest_digest(repo, reference)
            .unwrap_or_else(|| panic!("no manifest {repo}:{reference} to delete"));
        let r = self
            .request(
                "DELETE",
                &format!("/v2/{repo}/manifests/{digest}"),
                &[],
                true,
            )
            .expect("DELETE manifest");
        assert_eq!(
            r.status,
            202,
            "DELETE {repo}@{digest}: {} {}",
            r.status,
            r.text()
        );
    }

    /// Remove one tag and keep its manifest (now untagged unless another tag
    /// names it), the way an operator does on distribution 2.8: in the
    /// storage, `<repo>/_manifests/tags/<tag>`.
    pub fn untag(&self, repo: &str, tag: &str) {
        let dir = self
            .storage_dir()
            .join("docker/registry/v2/repositories")
            .join(repo)
            .join("_manifests/tags")
            .join(tag);
        assert!(
            dir.is_dir(),
            "no tag {repo}:{tag} in the storage ({})",
            dir.display()
        );
        fs::remove_dir_all(&dir).expect("remove tag directory");
    }

    /// The repository's tags (sorted); empty when it has none.
    pub fn tags(&self, repo: &str) -> Vec<String> {
        let r = self.get(&format!("/v2/{repo}/tags/list"));
        if r.status == 404 {
            return Vec::new();
        }
        assert_eq!(r.status, 200, "tags/list {repo}: {}", r.text());
        let v: serde_json::Value = serde_json::from_slice(&r.body).expect("tags/list json");
        let mut tags: Vec<String> = v["tags"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|t| t.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        tags.sort();
        tags
    }

    /// Digests ("sha256:HEX") of every blob in the storage.
    pub fn stored_blobs(&self) -> Vec<String> {
        let root = self.storage_dir().join("docker/registry/v2/blobs/sha256");
        let mut out = Vec::new();
        for prefix in super::names_in(&root) {
            for hex in super::names_in(&root.join(&prefix)) {
                if root.join(&prefix).join(&hex).join("data").is_file() {
                    out.push(format!("sha256:{hex}"));
                }
            }
        }
        out.sort();
        out
    }

    /// GET `path` (from `/v2/...`) as the configured user.
    pub fn get(&self, path: &str) -> Response {
        self.get_with(path, &[])
    }

    pub fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> Response {
        self.request("GET", path, headers, true)
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    /// One request to the registry; with `authenticate`, as the configured
    /// user (Basic, or a Bearer token for pull, push and delete on the
    /// path's repository).
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        authenticate: bool,
    ) -> Result<Response, String> {
        let url = format!("{}{path}", self.base_url());
        let mut all: Vec<(String, String)> = headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        if authenticate {
            if let Some(value) = self.authorization(path)? {
                all.push(("Authorization".into(), value));
            }
        }
        send(&self.agent, method, &url, &all)
    }

    fn authorization(&self, path: &str) -> Result<Option<String>, String> {
        match &self.config.auth {
            Auth::None => Ok(None),
            Auth::Htpasswd { user, password } => Ok(Some(basic(user, password))),
            Auth::Token(t) => {
                let server = self.token_server.as_ref().expect("token server");
                let scope = repo_of(path)
                    .map(|repo| format!("repository:{repo}:pull,push,delete"))
                    .unwrap_or_else(|| "registry:catalog:*".to_string());
                let token = server.token(&self.agent, Some((&t.user, &t.password)), &[&scope])?;
                Ok(Some(format!("Bearer {token}")))
            }
        }
    }

    fn stop(&mut self) {
        stop_child(&mut self.child);
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The media types a manifest HEAD or GET accepts.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, \
     application/vnd.oci.image.index.v1+json, \
     application/vnd.docker.distribution.manifest.v2+json, \
     application/vnd.docker.distribution.manifest.list.v2+json";

/// The repository of a `/v2/<repo>/(manifests|blobs|tags)/...` path.
fn repo_of(path: &str) -> Option<&str> {
    let rest = path.strip_prefix("/v2/")?;
    ["/manifests/", "/blobs/", "/tags/"]
        .iter()
        .filter_map(|m| rest.find(m))
        .min()
        .map(|at| &rest[..at])
}

/// An HTTP answer: status, headers (names lowercase) and body.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// An agent for loopback: no proxy from the environment, statuses as
/// answers (not errors), no redirects followed, TLS against `ca_file` only.
pub fn http_agent(ca_file: Option<&Path>) -> ureq::Agent {
    let mut tls = ureq::tls::TlsConfig::builder();
    if let Some(ca) = ca_file {
        let pem = fs::read(ca).expect("read CA file");
        let cert = ureq::tls::Certificate::from_pem(&pem).expect("parse CA PEM");
        tls = tls.root_certs(ureq::tls::RootCerts::Specific(Arc::new(vec![cert])));
    }
    ureq::Agent::config_builder()
        .proxy(None)
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(Duration::from_secs(20)))
        .tls_config(tls.build())
        .build()
        .into()
}

/// One request with `agent`; Err is a transport failure (no answer).
pub fn send(
    agent: &ureq::Agent,
    method: &str,
    url: &str,
    headers: &[(String, String)],
) -> Result<Response, String> {
    let mut builder = ureq::http::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        builder = builder.header(k.as_str(), v.as_str());
    }
    let request = builder
        .body(())
        .map_err(|e| format!("{method} {url}: {e}"))?;
    let mut response = agent
        .run(request)
        .map_err(|e| format!("{method} {url}: {e}"))?;
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_ascii_lowercase(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let mut body = Vec::new();
    if method != "HEAD" {
        response
            .body_mut()
            .as_reader()
            .read_to_end(&mut body)
            .map_err(|e| format!("{method} {url}: read body: {e}"))?;
    }
    Ok(Response {
        status,
        headers,
        body,
    })
}

/// `Basic base64(user:password)`.
pub fn basic(user: &str, password: &str) -> String {
    format!("Basic {}", base64(format!("{user}:{password}").as_bytes()))
}

/// Standard base64 with padding (docker's config.json `auth` field too).
pub fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A docker `config.json` with `auths` for `host` (base64 `user:password`),
/// written to `dir/config.json`; returns its path.
pub fn write_docker_config(dir: &Path, host: &str, user: &str, password: &str) -> PathBuf {
    fs::create_dir_all(dir).expect("docker config dir");
    let config = serde_json::json!({
        "auths": { host: { "auth": base64(format!("{user}:{password}").as_bytes()) } }
    });
    let path = dir.join("config.json");
    fs::write(&path, serde_json::to_vec_pretty(&config).unwrap()).expect("write config.json");
    path
}

// ---------------------------------------------------------------------------
// The token server (tests/registry/token_server.py).

pub struct TokenServer {
    child: Child,
    /// The token endpoint, `http(s)://127.0.0.1:PORT/token`.
    pub realm: String,
    /// The signing certificate: the registry's rootcertbundle.
    pub cert: PathBuf,
    log: PathBuf,
}

impl TokenServer {
    fn start(dir: &Path, auth: &TokenAuth, tls: Option<&TlsFiles>) -> TokenServer {
        let key = dir.join("token-signing.key");
        let cert = dir.join("token-signing.pem");
        run_tool(
            Command::new("openssl")
                .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes"])
                .args([
                    "-keyout".as_ref(),
                    key.as_os_str(),
                    "-out".as_ref(),
                    cert.as_os_str(),
                    "-days".as_ref(),
                    "30".as_ref(),
                    "-subj".as_ref(),
                    "/CN=microsnap-test-token-issuer".as_ref(),
                ]),
        );
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/registry/token_server.py");
        let log = dir.join("token-server.log");
        let mut cmd = Command::new("python3");
        cmd.arg(&script)
            .arg("--key")
            .arg(&key)
            .arg("--cert")
            .arg(&cert)
            .args(["--issuer", TOKEN_ISSUER, "--service", TOKEN_SERVICE])
            .args(["--user", &auth.user, "--password", &auth.password])
            .arg("--lifetime")
            .arg(auth.lifetime_seconds.to_string())
            .arg("--log")
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if auth.anonymous_pull {
            cmd.arg("--anonymous-pull");
        }
        if let Some(t) = tls {
            cmd.arg("--tls-cert")
                .arg(&t.cert)
                .arg("--tls-key")
                .arg(&t.key);
        }
        let mut child = cmd.spawn().expect("start python3 token_server.py");
        // Its first line names the port it bound (no probing race).
        let mut line = String::new();
        let stdout = child.stdout.take().expect("token server stdout");
        let read = BufReader::new(stdout).read_line(&mut line);
        let port = match (read, line.trim().strip_prefix("listening ")) {
            (Ok(_), Some(p)) => p.parse::<u16>().expect("token server port"),
            _ => {
                stop_child(&mut child);
                panic!("token server did not start (first line {line:?})");
            }
        };
        let scheme = if tls.is_some() { "https" } else { "http" };
        TokenServer {
            child,
            realm: format!("{scheme}://127.0.0.1:{port}/token"),
            cert,
            log,
        }
    }

    /// A token for `scopes` (`repository:NAME:ACTIONS`), as `credentials`
    /// or anonymously.
    pub fn token(
        &self,
        agent: &ureq::Agent,
        credentials: Option<(&str, &str)>,
        scopes: &[&str],
    ) -> Result<String, String> {
        let mut url = format!("{}?service={TOKEN_SERVICE}", self.realm);
        for s in scopes {
            url.push_str("&scope=");
            url.push_str(
                &s.replace(':', "%3A")
                    .replace(',', "%2C")
                    .replace('/', "%2F"),
            );
        }
        let headers: Vec<(String, String)> = credentials
            .map(|(u, p)| vec![("Authorization".to_string(), basic(u, p))])
            .unwrap_or_default();
        let r = send(agent, "GET", &url, &headers)?;
        if r.status != 200 {
            return Err(format!("token server answered {}", r.status));
        }
        let v: serde_json::Value = serde_json::from_slice(&r.body).map_err(|e| e.to_string())?;
        v["token"]
            .as_str()
            .map(String::from)
            .ok_or_else(|| "token server sent no token".to_string())
    }

    /// One JSON object per request the server answered (user, scopes,
    /// granted, status; never secrets).
    pub fn requests(&self) -> Vec<serde_json::Value> {
        fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("token log line"))
            .collect()
    }

    /// How many tokens it issued (status 200).
    pub fn tokens_issued(&self) -> usize {
        self.requests()
            .iter()
            .filter(|r| r["status"] == 200)
            .count()
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        stop_child(&mut self.child);
    }
}

// ---------------------------------------------------------------------------
// Processes, ports, files.

/// SIGTERM, up to 5 s to exit, then SIGKILL; always reaped.
fn stop_child(child: &mut Child) {
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    // SAFETY: kill(2) on the pid of a child we have not reaped yet.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Wait until `child` listens on `port` and `/v2/` answers (401 counts:
/// auth is on). Err(its log) if it exits or times out.
fn wait_ready(
    child: &mut Child,
    port: u16,
    agent: &ureq::Agent,
    base_url: &str,
    log: &Path,
) -> Result<(), String> {
    let deadline = Instant::now() + START_TIMEOUT;
    let log_text = || fs::read_to_string(log).unwrap_or_default();
    loop {
        if let Some(status) = child.try_wait().expect("try_wait registry") {
            return Err(format!("(exited: {status})\n{}", log_text()));
        }
        // Only once our process holds the listening socket can the answer
        // be ours and not another test's registry that got the port.
        if listens(child.id(), port) {
            match send(agent, "GET", &format!("{base_url}/v2/"), &[]) {
                Ok(r) if r.status == 200 || r.status == 401 => return Ok(()),
                _ => {}
            }
        }
        if Instant::now() > deadline {
            return Err(format!(
                "(no answer on /v2/ after {START_TIMEOUT:?})\n{}",
                log_text()
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("local_addr").port()
}

/// Whether process `pid` holds a socket listening on 127.0.0.1:`port`
/// (/proc/net/tcp's inode matched against the process's fds).
fn listens(pid: u32, port: u16) -> bool {
    let Ok(table) = fs::read_to_string("/proc/net/tcp") else {
        return false;
    };
    let local = format!("0100007F:{port:04X}");
    let inodes: Vec<String> = table
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            // local_address, st (0A = LISTEN), inode
            (f.len() > 9 && f[1] == local && f[3] == "0A").then(|| f[9].to_string())
        })
        .collect();
    if inodes.is_empty() {
        return false;
    }
    let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten().any(|fd| {
        fs::read_link(fd.path())
            .map(|t| {
                let t = t.to_string_lossy();
                inodes.iter().any(|i| t == format!("socket:[{i}]"))
            })
            .unwrap_or(false)
    })
}

/// Run a tool to completion; its stdout, or a panic with its stderr.
fn run_tool(cmd: &mut Command) -> String {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {cmd:?}: {e} (tools/registry/fetch.sh installs it)"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A path as a YAML (JSON) string.
fn yaml_str(path: impl AsRef<std::ffi::OsStr>) -> String {
    serde_json::to_string(&path.as_ref().to_string_lossy()).unwrap()
}

struct TlsFiles {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

/// A CA and a server certificate for IP 127.0.0.1 signed by it (P-256).
fn make_tls_files(dir: &Path) -> TlsFiles {
    let p = |n: &str| dir.join(n);
    let (ca_key, ca, key, csr, cert, ext) = (
        p("ca.key"),
        p("ca.pem"),
        p("server.key"),
        p("server.csr"),
        p("server.pem"),
        p("server.ext"),
    );
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    run_tool(
        Command::new("openssl")
            .args(["req", "-x509"])
            .args(ec)
            .arg("-keyout")
            .arg(&ca_key)
            .arg("-out")
            .arg(&ca)
            .args(["-days", "30", "-subj", "/CN=microsnap test CA"])
            .args(["-addext", "basicConstraints=critical,CA:TRUE"])
            .args(["-addext", "keyUsage=critical,keyCertSign,cRLSign"]),
    );
    run_tool(
        Command::new("openssl")
            .arg("req")
            .args(ec)
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&csr)
            .args(["-subj", "/CN=127.0.0.1"]),
    );
    fs::write(
        &ext,
        "basicConstraints=critical,CA:FALSE\n\
         keyUsage=critical,digitalSignature\n\
         extendedKeyUsage=serverAuth\n\
         subjectAltName=IP:127.0.0.1\n",
    )
    .expect("write server.ext");
    run_tool(
        Command::new("openssl")
            .args(["x509", "-req", "-days", "30", "-set_serial", "2"])
            .arg("-in")
            .arg(&csr)
            .arg("-CA")
            .arg(&ca)
            .arg("-CAkey")
            .arg(&ca_key)
            .arg("-extfile")
            .arg(&ext)
            .arg("-out")
            .arg(&cert),
    );
    TlsFiles { ca, cert, key }
}
