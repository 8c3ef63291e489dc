//! Who we are to a registry and how we prove it.
//!
//! Credentials, first found wins: the explicit `username`/`password` of
//! `RemoteOptions`; else docker's `config.json` (`docker_config`, else
//! `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`) for this
//! host, through the `docker_credential` crate, which reads `auths` and
//! runs `credHelpers` / `credsStore` helpers (we open the file ourselves
//! and hand it to `get_credential_from_reader`, so an explicit path works);
//! else anonymous. They are looked up on the first challenge only, so a
//! registry that needs none never runs a helper.
//!
//! A challenge (`WWW-Authenticate` of a 401) says how: `Basic` = send the
//! credentials with every request; `Bearer realm=…,service=…,scope=…` =
//! ask the realm for a token (with the credentials if any, anonymously
//! otherwise) and send that. The resulting `Authorization` value is cached
//! and shared by every request of the store.
//!
//! Nothing here formats a credential or a token into a message; the types
//! that hold them print as `<redacted>`.
use crate::distribution::RemoteOptions;
use crate::error::{Error, Result};
use std::fmt;
use std::io::Read;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// What we prove ourselves with.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    Anonymous,
    Basic {
        username: String,
        password: String,
    },
    /// docker's `identitytoken`: an OAuth2 refresh token for the realm.
    IdentityToken(String),
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::Anonymous => f.write_str("Anonymous"),
            Credentials::Basic { .. } => f.write_str("Basic(<redacted>)"),
            Credentials::IdentityToken(_) => f.write_str("IdentityToken(<redacted>)"),
        }
    }
}

/// Where the credentials come from, resolved lazily.
enum Source {
    Explicit(Credentials),
    /// docker's config file; `explicit` = the caller named it (then it
    /// must exist).
    DockerConfig {
        path: Option<PathBuf>,
        explicit: bool,
    },
}

pub fn source_of(remote: &RemoteOptions, place: &str) -> Result<CredentialSource> {
    let source = match (&remote.username, &remote.password) {
        (Some(username), Some(password)) => Source::Explicit(Credentials::Basic {
            username: username.clone(),
            password: password.clone(),
        }),
        (Some(_), None) | (None, Some(_)) => {
            return Err(Error::InvalidArgument(format!(
                "credentials for {place}: username and password go together"
            )))
        }
        (None, None) => match &remote.docker_config {
            Some(path) => Source::DockerConfig {
                path: Some(path.clone()),
                explicit: true,
            },
            None => Source::DockerConfig {
                path: default_docker_config(),
                explicit: false,
            },
        },
    };
    Ok(CredentialSource(source))
}

/// `$DOCKER_CONFIG/config.json`, else `$HOME/.docker/config.json`.
fn default_docker_config() -> Option<PathBuf> {
    let dir = std::env::var_os("DOCKER_CONFIG")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".docker")))?;
    Some(dir.join("config.json"))
}

pub struct CredentialSource(Source);

impl CredentialSource {
    /// The credentials for `host` (`name[:port]`, as docker keys them).
    pub fn resolve(&self, host: &str) -> Result<Credentials> {
        let (path, explicit) = match &self.0 {
            Source::Explicit(credentials) => return Ok(credentials.clone()),
            Source::DockerConfig { path: None, .. } => return Ok(Credentials::Anonymous),
            Source::DockerConfig {
                path: Some(path),
                explicit,
            } => (path, *explicit),
        };
        let file = match std::fs::File::open(path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => {
                return Ok(Credentials::Anonymous)
            }
            Err(e) => return Err(Error::io("open docker config", path, e)),
        };
        use docker_credential::{CredentialRetrievalError as E, DockerCredential};
        // Bounded: a config file is a few KiB.
        let reader = std::io::BufReader::new(file.take(4 << 20));
        match docker_credential::get_credential_from_reader(reader, host) {
            Ok(DockerCredential::UsernamePassword(username, password)) => {
                Ok(Credentials::Basic { username, password })
            }
            Ok(DockerCredential::IdentityToken(token)) => Ok(Credentials::IdentityToken(token)),
            Err(E::NoCredentialConfigured) => Ok(Credentials::Anonymous),
            Err(E::ConfigReadError) | Err(E::ConfigNotFound) => Err(Error::InvalidArgument(
                format!("docker config {} is not valid JSON", path.display()),
            )),
            Err(E::CredentialDecodingError) | Err(E::CredentialMismatchError) => {
                Err(Error::InvalidArgument(format!(
                    "docker config {}: the auth entry for {host} is malformed",
                    path.display()
                )))
            }
            // The helper's own output may hold secrets: never quoted.
            Err(E::HelperCommunicationError)
            | Err(E::MalformedHelperResponse)
            | Err(E::HelperFailure { .. }) => Err(Error::Unauthorized(format!(
                "the docker credential helper for {host} (from {}) failed",
                path.display()
            ))),
        }
    }
}

/// One challenge of a `WWW-Authenticate` header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Challenge {
    /// Lower case: `basic`, `bearer`.
    pub scheme: String,
    /// Parameter names lower case, values unquoted.
    pub params: Vec<(String, String)>,
}

impl Challenge {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Parse the challenges of one `WWW-Authenticate` value (RFC 7235): a
/// scheme, then `name=value` or `name="quoted, with \"escapes\""`
/// parameters separated by commas; a token after a comma that is not
/// followed by `=` starts the next challenge. Garbage yields what parsed.
pub fn parse_challenges(header: &str) -> Vec<Challenge> {
    let mut parser = Parser {
        s: header.as_bytes(),
        i: 0,
    };
    let mut out: Vec<Challenge> = Vec::new();
    while parser.i < parser.s.len() {
        parser.skip(|c| c == b' ' || c == b'\t' || c == b',');
        let Some(scheme) = parser.token() else {
            // A byte no rule takes (a stray quote or `=`): skip it, so
            // that every turn of this loop consumes something.
            parser.i += 1;
            continue;
        };
        let mut challenge = Challenge {
            scheme: scheme.to_ascii_lowercase(),
            params: Vec::new(),
        };
        loop {
            parser.skip(|c| c == b' ' || c == b'\t' || c == b',');
            let mark = parser.i;
            let Some(name) = parser.token() else { break };
            parser.skip(|c| c == b' ' || c == b'\t');
            if !parser.eat(b'=') {
                // The next challenge's scheme (or token68 garbage).
                parser.i = mark;
                break;
            }
            parser.skip(|c| c == b' ' || c == b'\t');
            let value = if parser.peek() == Some(b'"') {
                parser.quoted()
            } else {
                parser.token().unwrap_or_default()
            };
            challenge.params.push((name.to_ascii_lowercase(), value));
        }
        out.push(challenge);
    }
    out
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }
    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    fn skip(&mut self, pred: impl Fn(u8) -> bool) {
        while self.peek().is_some_and(&pred) {
            self.i += 1;
        }
    }
    /// An RFC 7230 token (plus `/` and `=`-free token68 characters we
    /// meet in the wild), or `None` if there is none here.
    fn token(&mut self) -> Option<String> {
        let start = self.i;
        self.skip(|c| c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~/:".contains(&c));
        (self.i > start).then(|| String::from_utf8_lossy(&self.s[start..self.i]).into_owned())
    }
    fn quoted(&mut self) -> String {
        let mut out = Vec::new();
        self.i += 1; // the opening quote
        while let Some(c) = self.peek() {
            self.i += 1;
            match c {
                b'"' => break,
                b'\\' => {
                    if let Some(next) = self.peek() {
                        out.push(next);
                        self.i += 1;
                    }
                }
                _ => out.push(c),
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }
}

/// The shared `Authorization` state of one store.
pub struct Auth {
    host: String,
    place: String,
    source: CredentialSource,
    credentials: Mutex<Option<Arc<Credentials>>>,
    /// The value sent with every request to the registry, once a
    /// challenge told us what it is.
    header: Mutex<Option<Secret>>,
}

/// A header value that must not be printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl Auth {
    pub fn new(host: &str, place: &str, source: CredentialSource) -> Auth {
        Auth {
            host: host.to_string(),
            place: place.to_string(),
            source,
            credentials: Mutex::new(None),
            header: Mutex::new(None),
        }
    }

    pub fn current(&self) -> Option<Secret> {
        lock(&self.header).clone()
    }

    fn credentials(&self) -> Result<Arc<Credentials>> {
        let mut slot = lock(&self.credentials);
        if let Some(credentials) = slot.as_ref() {
            return Ok(credentials.clone());
        }
        let credentials = Arc::new(self.source.resolve(&self.host)?);
        *slot = Some(credentials.clone());
        Ok(credentials)
    }

    /// Answer the challenges of a 401 to a request that carried `used`:
    /// afterwards `current()` is what to retry with. `scopes` are the
    /// token scopes the request needs (ours, plus the source repository
    /// of a mount); the challenge's own scope is added to them.
    pub fn answer(
        &self,
        agent: &ureq::Agent,
        challenges: &[String],
        scopes: &[String],
        used: Option<&Secret>,
    ) -> Result<()> {
        {
            // Another request renewed it while this one was in flight.
            let current = lock(&self.header);
            if current.is_some() && current.as_ref() != used {
                return Ok(());
            }
        }
        let parsed: Vec<Challenge> = challenges
            .iter()
            .flat_map(|h| parse_challenges(h))
            .collect();
        let header = if let Some(bearer) = parsed.iter().find(|c| c.scheme == "bearer") {
            self.token(agent, bearer, scopes)?
        } else if parsed.iter().any(|c| c.scheme == "basic") {
            match &*self.credentials()? {
                Credentials::Basic { username, password } => {
                    Secret(format!("Basic {}", base64(format!("{username}:{password}").as_bytes())))
                }
                Credentials::IdentityToken(_) => {
                    return Err(Error::Unauthorized(format!(
                        "{} asks for a password and the docker config has only an identity token for it",
                        self.place
                    )))
                }
                Credentials::Anonymous => {
                    return Err(Error::Unauthorized(format!(
                        "{} requires credentials and none were given or configured",
                        self.place
                    )))
                }
            }
        } else {
            return Err(Error::Registry(format!(
                "{} answered 401 without a Basic or Bearer challenge",
                self.place
            )));
        };
        *lock(&self.header) = Some(header);
        Ok(())
    }

    /// A token from the challenge's realm for `scopes`.
    fn token(
        &self,
        agent: &ureq::Agent,
        challenge: &Challenge,
        scopes: &[String],
    ) -> Result<Secret> {
        let place = &self.place;
        let realm = challenge
            .param("realm")
            .filter(|r| !r.is_empty())
            .ok_or_else(|| {
                Error::Registry(format!("{place} sent a Bearer challenge without a realm"))
            })?;
        if !(realm.starts_with("https://") || realm.starts_with("http://")) {
            return Err(Error::Registry(format!(
                "{place} sent a Bearer challenge whose realm is not an http(s) URL"
            )));
        }
        let mut all_scopes: Vec<String> = scopes.to_vec();
        if let Some(scope) = challenge.param("scope") {
            for s in scope.split(' ').filter(|s| !s.is_empty()) {
                if !all_scopes.iter().any(|have| have == s) {
                    all_scopes.push(s.to_string());
                }
            }
        }
        let service = challenge.param("service");
        let realm_path = super::location::path_for_message(realm).to_string();
        let failed = |why: String| {
            Error::Registry(format!("token request to {realm_path} for {place}: {why}"))
        };
        let response = match &*self.credentials()? {
            Credentials::IdentityToken(refresh_token) => {
                let mut form: Vec<(&str, &str)> = vec![
                    ("grant_type", "refresh_token"),
                    ("client_id", "microsnap"),
                    ("refresh_token", refresh_token.as_str()),
                ];
                if let Some(service) = service {
                    form.push(("service", service));
                }
                let joined = all_scopes.join(" ");
                if !joined.is_empty() {
                    form.push(("scope", &joined));
                }
                agent
                    .post(realm)
                    .config()
                    .max_redirects(0)
                    .build()
                    .send_form(form)
            }
            credentials => {
                let mut request = agent.get(realm);
                if let Some(service) = service {
                    request = request.query("service", service);
                }
                for scope in &all_scopes {
                    request = request.query("scope", scope);
                }
                if let Credentials::Basic { username, password } = credentials {
                    request = request.header(
                        "authorization",
                        format!(
                            "Basic {}",
                            base64(format!("{username}:{password}").as_bytes())
                        ),
                    );
                }
                request.call()
            }
        }
        .map_err(|e| failed(super::transport::describe(&e)))?;
        let status = response.status().as_u16();
        if status == 401 || status == 403 {
            return Err(Error::Unauthorized(format!(
                "the token service {realm_path} refused the credentials for {place} ({status})"
            )));
        }
        if status != 200 {
            return Err(failed(format!("status {status}")));
        }
        let mut body = Vec::new();
        response
            .into_body()
            .into_reader()
            .take(1 << 20)
            .read_to_end(&mut body)
            .map_err(|e| failed(super::transport::describe(&ureq::Error::from(e))))?;
        let token = token_of(&body).ok_or_else(|| failed("the answer holds no token".into()))?;
        Ok(Secret(format!("Bearer {token}")))
    }
}

/// `token` or `access_token` of a token service's JSON answer, if it is
/// something that can go in a header.
fn token_of(body: &[u8]) -> Option<String> {
    let json: serde_json::Value = serde_json::from_slice(body).ok()?;
    let token = ["token", "access_token"]
        .iter()
        .filter_map(|k| json.get(k)?.as_str())
        .find(|t| !t.is_empty())?;
    token
        .bytes()
        .all(|c| c.is_ascii_graphic())
        .then(|| token.to_string())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Standard base64 with padding (for `Authorization: Basic`).
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for group in bytes.chunks(3) {
        let b = [
            group[0],
            *group.get(1).unwrap_or(&0),
            *group.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (k, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if k <= group.len() {
                out.push(ALPHABET[((n >> shift) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(c: &Challenge) -> Vec<(&str, &str)> {
        c.params
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }

    #[test]
    fn a_basic_challenge() {
        let c = parse_challenges(r#"Basic realm="Registry Realm""#);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].scheme, "basic");
        assert_eq!(params(&c[0]), vec![("realm", "Registry Realm")]);
    }

    #[test]
    fn a_bearer_challenge_with_commas_inside_quotes() {
        let c = parse_challenges(
            r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push""#,
        );
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].scheme, "bearer");
        assert_eq!(c[0].param("realm"), Some("https://auth.example/token"));
        assert_eq!(c[0].param("service"), Some("registry.example"));
        assert_eq!(c[0].param("scope"), Some("repository:a/b:pull,push"));
    }

    #[test]
    fn case_spaces_escapes_and_unquoted_values() {
        let c = parse_challenges(
            r#"BEARER  Realm = "a\"b\\c" , Service=svc1 ,error="insufficient_scope""#,
        );
        assert_eq!(c[0].scheme, "bearer");
        assert_eq!(
            params(&c[0]),
            vec![
                ("realm", r#"a"b\c"#),
                ("service", "svc1"),
                ("error", "insufficient_scope")
            ]
        );
    }

    #[test]
    fn two_challenges_in_one_header() {
        let c = parse_challenges(r#"Bearer realm="https://t/x",service="s", Basic realm="r, q""#);
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].scheme, "bearer");
        assert_eq!(
            params(&c[0]),
            vec![("realm", "https://t/x"), ("service", "s")]
        );
        assert_eq!(c[1].scheme, "basic");
        assert_eq!(c[1].param("realm"), Some("r, q"));
    }

    #[test]
    fn garbage_does_not_hang_or_panic() {
        for garbage in [
            "",
            ",,,",
            "=",
            "\"",
            "Bearer realm=\"unterminated",
            "Bearer =x",
            "\u{1F600} x=y",
            "Basic ===",
        ] {
            let _ = parse_challenges(garbage);
        }
        assert!(parse_challenges("").is_empty());
        assert_eq!(
            parse_challenges("Bearer realm=\"unterminated")[0].param("realm"),
            Some("unterminated")
        );
    }

    #[test]
    fn tokens_come_from_either_field_and_must_be_header_safe() {
        assert_eq!(token_of(br#"{"token":"abc"}"#).as_deref(), Some("abc"));
        assert_eq!(
            token_of(br#"{"access_token":"xyz","expires_in":60}"#).as_deref(),
            Some("xyz")
        );
        assert_eq!(
            token_of(br#"{"token":"","access_token":"xyz"}"#).as_deref(),
            Some("xyz")
        );
        assert_eq!(token_of(br#"{"token":"a\r\nX-Evil: 1"}"#), None);
        assert_eq!(token_of(b"<html>"), None);
        assert_eq!(token_of(br#"{"token":7}"#), None);
    }

    #[test]
    fn base64_matches_the_rfc_vectors() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), encoded);
        }
    }

    #[test]
    fn credentials_never_print() {
        let c = Credentials::Basic {
            username: "alice".into(),
            password: "hunter2-SECRET".into(),
        };
        let printed = format!("{c:?} {:?}", Secret("Bearer tok-SECRET".into()));
        assert!(!printed.contains("SECRET"), "{printed}");
    }

    #[test]
    fn explicit_credentials_win_and_go_in_pairs() {
        let remote = RemoteOptions {
            username: Some("u".into()),
            password: Some("p".into()),
            docker_config: Some("/nonexistent/config.json".into()),
            ..Default::default()
        };
        let source = source_of(&remote, "h/r").unwrap();
        assert_eq!(
            source.resolve("h").unwrap(),
            Credentials::Basic {
                username: "u".into(),
                password: "p".into()
            }
        );
        let half = RemoteOptions {
            username: Some("u".into()),
            ..Default::default()
        };
        assert!(matches!(
            source_of(&half, "h/r"),
            Err(Error::InvalidArgument(_))
        ));
    }

    #[test]
    fn docker_config_auths_are_read_from_an_explicit_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(
            &path,
            format!(
                r#"{{"auths":{{"127.0.0.1:5000":{{"auth":"{}"}}}}}}"#,
                base64(b"bob:s3cret")
            ),
        )
        .unwrap();
        let remote = RemoteOptions {
            docker_config: Some(path.clone()),
            ..Default::default()
        };
        let source = source_of(&remote, "h/r").unwrap();
        assert_eq!(
            source.resolve("127.0.0.1:5000").unwrap(),
            Credentials::Basic {
                username: "bob".into(),
                password: "s3cret".into()
            }
        );
        assert_eq!(
            source.resolve("127.0.0.1:5001").unwrap(),
            Credentials::Anonymous
        );

        std::fs::write(&path, "not json").unwrap();
        assert!(matches!(
            source.resolve("127.0.0.1:5000"),
            Err(Error::InvalidArgument(_))
        ));

        let missing = RemoteOptions {
            docker_config: Some(dir.path().join("absent.json")),
            ..Default::default()
        };
        assert!(source_of(&missing, "h/r").unwrap().resolve("x").is_err());
    }
}
