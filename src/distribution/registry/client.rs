//! One request to the registry, authenticated: send with the cached
//! `Authorization`; on a 401 answer the challenge and retry once; a second
//! 401 (or a 403) is `Unauthorized`. Request bodies are read from memory
//! or from a range of a file. A body is never cut off mid-way: a registry
//! keeps what it received of a cut request but its session state (in the
//! Location) then no longer matches, and distribution refuses every later
//! request on it, the DELETE of `abandon` included. Instead a `stream`
//! body (sent chunked) ends early on cancel: the registry answers it
//! normally, with a Location that is current. Response bodies are read
//! bounded, checking the monitor between reads.
//!
//! Every message is built from the method, the URL's path (no query) and
//! the status or the kind of transport failure, so it can hold no secret.
use super::auth::{Auth, Secret};
use super::location::{path_for_message, Origin};
use super::transport;
use crate::error::{Error, Result};
use crate::progress::Monitor;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use ureq::http::{self, Method, Response};
use ureq::{Agent, Body, SendBody};

pub struct Client {
    agent: Agent,
    pub origin: Origin,
    /// `host/repository`, for messages.
    pub place: String,
    pub repository: String,
    auth: Auth,
    /// Token scopes every request of this store needs.
    scopes: Vec<String>,
}

/// What a request sends.
pub enum Payload<'a> {
    None,
    Bytes(&'a [u8]),
    /// `len` bytes of `file` from `offset`.
    File {
        file: &'a File,
        offset: u64,
        len: u64,
    },
}

impl Payload<'_> {
    fn len(&self) -> Option<u64> {
        match self {
            Payload::None => None,
            Payload::Bytes(b) => Some(b.len() as u64),
            Payload::File { len, .. } => Some(*len),
        }
    }
}

pub struct Call<'a, 'm> {
    pub method: Method,
    /// Absolute.
    pub url: String,
    pub headers: Vec<(&'static str, String)>,
    pub payload: Payload<'a>,
    /// GET and HEAD of blobs follow redirects (registries send them to
    /// storage); uploads never do.
    pub follow_redirects: bool,
    /// Token scopes beyond the store's (the source of a mount).
    pub extra_scopes: Vec<String>,
    pub monitor: Option<&'a Monitor<'m>>,
    /// Best-effort cleanup: a short overall timeout.
    pub cleanup: bool,
    /// Send the body chunked (no Content-Length) and end it early when the
    /// monitor says cancel.
    pub stream: bool,
}

impl<'a, 'm> Call<'a, 'm> {
    pub fn new(method: Method, url: String) -> Self {
        let follow_redirects = method == Method::GET || method == Method::HEAD;
        Call {
            method,
            url,
            headers: Vec::new(),
            payload: Payload::None,
            follow_redirects,
            extra_scopes: Vec::new(),
            monitor: None,
            cleanup: false,
            stream: false,
        }
    }

    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    pub fn payload(mut self, payload: Payload<'a>) -> Self {
        self.payload = payload;
        self
    }

    pub fn monitor(mut self, monitor: &'a Monitor<'m>) -> Self {
        self.monitor = Some(monitor);
        self
    }

    /// `METHOD /path`, for messages.
    pub fn name(&self) -> String {
        format!("{} {}", self.method, path_for_message(&self.url))
    }
}

impl Client {
    pub fn new(
        agent: Agent,
        origin: Origin,
        place: String,
        repository: String,
        auth: Auth,
        scopes: Vec<String>,
    ) -> Client {
        Client {
            agent,
            origin,
            place,
            repository,
            auth,
            scopes,
        }
    }

    /// `path` of the store's repository: `/v2/REPO/{path}`.
    pub fn url(&self, path: &str) -> String {
        self.origin.url(&format!("/v2/{}/{path}", self.repository))
    }

    /// Send `call`, answering one authentication challenge. Statuses other
    /// than 401/403 are the caller's to judge.
    pub fn send(&self, call: &Call) -> Result<Response<Body>> {
        let ours = self.origin.owns(&call.url);
        let mut answered = false;
        loop {
            // Credentials go only to the registry itself, never to a
            // Location on another host.
            let used = if ours { self.auth.current() } else { None };
            let response = self.once(call, used.as_ref())?;
            let status = response.status().as_u16();
            match status {
                401 if ours && !answered => {
                    answered = true;
                    let challenges: Vec<String> = response
                        .headers()
                        .get_all(http::header::WWW_AUTHENTICATE)
                        .iter()
                        .filter_map(|v| v.to_str().ok().map(str::to_string))
                        .collect();
                    let mut scopes = self.scopes.clone();
                    scopes.extend(call.extra_scopes.iter().cloned());
                    self.auth
                        .answer(&self.agent, &challenges, &scopes, used.as_ref())?;
                }
                401 | 403 => {
                    return Err(Error::Unauthorized(format!(
                        "{} at {}: {status} {}",
                        call.name(),
                        self.place,
                        if status == 401 {
                            "the registry refused the credentials"
                        } else {
                            "access denied"
                        }
                    )))
                }
                _ => return Ok(response),
            }
        }
    }

    fn once(&self, call: &Call, auth: Option<&Secret>) -> Result<Response<Body>> {
        if let Some(monitor) = call.monitor {
            monitor.check()?;
        }
        let mut builder = http::Request::builder()
            .method(call.method.clone())
            .uri(call.url.as_str());
        for (name, value) in &call.headers {
            builder = builder.header(*name, value.as_str());
        }
        if let Some(secret) = auth {
            builder = builder.header(http::header::AUTHORIZATION, secret.0.as_str());
        }
        let has_body = call.method == Method::PUT
            || call.method == Method::PATCH
            || call.method == Method::POST;
        if has_body && !call.stream {
            builder = builder.header(
                http::header::CONTENT_LENGTH,
                call.payload.len().unwrap_or(0).to_string(),
            );
        }
        let mut reader = PayloadReader {
            payload: &call.payload,
            position: 0,
            monitor: if call.stream { call.monitor } else { None },
        };
        if has_body {
            self.run(call, builder, SendBody::from_reader(&mut reader))
        } else {
            self.run(call, builder, ())
        }
    }

    fn run(
        &self,
        call: &Call,
        builder: http::request::Builder,
        body: impl ureq::AsSendBody,
    ) -> Result<Response<Body>> {
        let request = builder.body(body).map_err(|_| {
            Error::Registry(format!(
                "{} at {}: malformed request",
                call.name(),
                self.place
            ))
        })?;
        let mut config = self.agent.configure_request(request);
        if !call.follow_redirects {
            config = config.max_redirects(0);
        }
        if call.cleanup {
            config = config.timeout_global(Some(transport::CLEANUP_TIMEOUT));
        }
        let request = config.build();
        self.agent
            .run(request)
            .map_err(|e| self.transport_error(call, &e))
    }

    fn transport_error(&self, call: &Call, e: &ureq::Error) -> Error {
        if call.monitor.is_some_and(|m| m.is_cancelled()) {
            return Error::Cancelled;
        }
        Error::Registry(format!(
            "{} at {}: {}",
            call.name(),
            self.place,
            transport::describe(e)
        ))
    }

    /// The error for an answer the protocol does not allow here, with the
    /// registry's error codes (`BLOB_UNKNOWN`, …) when it sent any.
    pub fn unexpected(&self, call: &Call, response: Response<Body>) -> Error {
        let status = response.status().as_u16();
        let mut body = Vec::new();
        let _ = response
            .into_body()
            .into_reader()
            .take(64 << 10)
            .read_to_end(&mut body);
        let codes = error_codes(&body);
        let detail = if codes.is_empty() {
            String::new()
        } else {
            format!(" ({})", codes.join(", "))
        };
        Error::Registry(format!(
            "{} at {}: unexpected status {status}{detail}",
            call.name(),
            self.place
        ))
    }

    /// A 2xx answer that lacks what the protocol says it carries.
    pub fn malformed(&self, call: &Call, why: &str) -> Error {
        Error::Registry(format!("{} at {}: {why}", call.name(), self.place))
    }

    /// The whole body, at most `max` bytes (more is an error).
    pub fn read_body(&self, call: &Call, response: Response<Body>, max: u64) -> Result<Vec<u8>> {
        if let Some(len) = content_length(&response) {
            if len > max {
                return Err(Error::Registry(format!(
                    "{} at {}: {len} bytes, more than the {max} allowed",
                    call.name(),
                    self.place
                )));
            }
        }
        let mut reader = response.into_body().into_reader();
        let mut out = Vec::new();
        let got = self.read_into(call, &mut reader, &mut out, max.saturating_add(1))?;
        if got > max {
            return Err(Error::Registry(format!(
                "{} at {}: more than the {max} bytes allowed",
                call.name(),
                self.place
            )));
        }
        Ok(out)
    }

    /// Read up to `limit` bytes of `reader` onto `out` (fewer at its end),
    /// checking the monitor between reads. Returns how many.
    pub fn read_into(
        &self,
        call: &Call,
        reader: &mut impl Read,
        out: &mut Vec<u8>,
        limit: u64,
    ) -> Result<u64> {
        let mut got = 0u64;
        let mut buf = vec![0u8; 64 << 10];
        while got < limit {
            if let Some(monitor) = call.monitor {
                monitor.check()?;
            }
            let want = (limit - got).min(buf.len() as u64) as usize;
            let n = match reader.read(&mut buf[..want]) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.transport_error(call, &ureq::Error::from(e))),
            };
            out.extend_from_slice(&buf[..n]);
            got += n as u64;
        }
        Ok(got)
    }

    /// Give a response's connection back to the agent's pool once its body
    /// has been read to its announced length. ureq pools a connection only
    /// when a read sees the body's end, and a reader that stops at exactly
    /// the length never does: without this every ranged read would close
    /// its connection and the next request would open a new one (a TCP and,
    /// over HTTPS, a TLS handshake per chunk run). Anything past the end is
    /// not read: the connection is then dropped, as before.
    pub fn release(reader: &mut impl Read) {
        let mut probe = [0u8; 1];
        let _ = reader.read(&mut probe);
    }

    /// Read and drop `count` bytes of `reader`; false if it ended first.
    pub fn skip(&self, call: &Call, reader: &mut impl Read, count: u64) -> Result<bool> {
        let mut left = count;
        let mut scratch = Vec::with_capacity(64 << 10);
        while left > 0 {
            scratch.clear();
            let n = self.read_into(call, reader, &mut scratch, left.min(1 << 20))?;
            if n == 0 {
                return Ok(false);
            }
            left -= n;
        }
        Ok(true)
    }

    /// A best-effort cleanup request (short timeout): its answer's status
    /// and the registry's error codes, or `None` without an answer.
    pub fn cleanup(&self, method: Method, url: &str) -> Option<(u16, Vec<String>)> {
        let mut call = Call::new(method, url.to_string());
        call.cleanup = true;
        let response = self.send(&call).ok()?;
        let status = response.status().as_u16();
        let mut body = Vec::new();
        let _ = response
            .into_body()
            .into_reader()
            .take(64 << 10)
            .read_to_end(&mut body);
        Some((status, error_codes(&body)))
    }
}

pub fn content_length(response: &Response<Body>) -> Option<u64> {
    header(response, "content-length")?.trim().parse().ok()
}

pub fn header<'r>(response: &'r Response<Body>, name: &str) -> Option<&'r str> {
    response.headers().get(name)?.to_str().ok()
}

/// The `code`s of a distribution error body: `{"errors":[{"code":…}]}`,
/// kept short and printable (they go into messages).
fn error_codes(body: &[u8]) -> Vec<String> {
    let Ok(json) = serde_json::from_slice::<serde_json::Value>(body) else {
        return Vec::new();
    };
    let Some(errors) = json.get("errors").and_then(|e| e.as_array()) else {
        return Vec::new();
    };
    errors
        .iter()
        .filter_map(|e| e.get("code")?.as_str())
        .filter(|code| {
            code.len() <= 64
                && code
                    .bytes()
                    .all(|c| c.is_ascii_uppercase() || c == b'_' || c.is_ascii_digit())
        })
        .take(4)
        .map(str::to_string)
        .collect()
}

/// A request body. With a monitor (streamed bodies) it checks it on every
/// read and ends early on cancel.
struct PayloadReader<'p, 'a, 'm> {
    payload: &'p Payload<'a>,
    position: u64,
    monitor: Option<&'a Monitor<'m>>,
}

impl Read for PayloadReader<'_, '_, '_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.monitor.is_some_and(|m| m.is_cancelled()) {
            return Ok(0);
        }
        match self.payload {
            Payload::None => Ok(0),
            Payload::Bytes(bytes) => {
                let start = (self.position as usize).min(bytes.len());
                let n = buf.len().min(bytes.len() - start);
                buf[..n].copy_from_slice(&bytes[start..start + n]);
                self.position += n as u64;
                Ok(n)
            }
            Payload::File { file, offset, len } => {
                let left = len - self.position.min(*len);
                if left == 0 {
                    return Ok(0);
                }
                let want = buf.len().min(left.min(1 << 20) as usize);
                let n = file.read_at(&mut buf[..want], offset + self.position)?;
                if n == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the file is shorter than the blob",
                    ));
                }
                self.position += n as u64;
                Ok(n)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A request that fails carries neither the query of its URL (upload
    /// state) nor the credentials of the store in its message.
    #[test]
    fn failure_messages_hold_no_query_and_no_credentials() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let host = format!("127.0.0.1:{port}");
        let remote = crate::distribution::RemoteOptions {
            plain_http: true,
            username: Some("user-SECRET-1".into()),
            password: Some("pass-SECRET-2".into()),
            timeout_seconds: Some(2),
            ..Default::default()
        };
        let place = format!("{host}/r");
        let client = Client::new(
            super::super::transport::agent(&remote, &place).unwrap(),
            Origin::new(true, &host),
            place.clone(),
            "r".into(),
            Auth::new(
                &host,
                &place,
                super::super::auth::source_of(&remote, &place).unwrap(),
            ),
            vec!["repository:r:pull".into()],
        );
        let url = format!("http://{host}/v2/r/blobs/uploads/u?_state=state-SECRET-3&digest=x");
        let call = Call::new(Method::PATCH, url).payload(Payload::Bytes(b"abc"));
        let e = client.send(&call).map(|_| ()).unwrap_err();
        let text = format!("{e} {e:?}");
        assert_eq!(e.code(), crate::error::ErrorCode::RegistryError, "{text}");
        assert!(
            text.contains("PATCH /v2/r/blobs/uploads/u at 127.0.0.1"),
            "{text}"
        );
        assert!(!text.contains("SECRET"), "{text}");
        let malformed = client.malformed(&call, "no Location in the answer");
        assert!(!format!("{malformed} {malformed:?}").contains("SECRET"));
    }

    #[test]
    fn registry_error_codes_are_taken_short_and_printable() {
        let body = br#"{"errors":[{"code":"BLOB_UNKNOWN","message":"x"},{"code":"evil\r\ncode"},{"code":"DENIED"}]}"#;
        assert_eq!(error_codes(body), vec!["BLOB_UNKNOWN", "DENIED"]);
        assert!(error_codes(b"<html>").is_empty());
    }

    #[test]
    fn a_file_payload_reads_its_range_and_stops_on_cancel() {
        use std::io::Write;
        let mut tmp = tempfile::tempfile().unwrap();
        tmp.write_all(b"0123456789").unwrap();
        let payload = Payload::File {
            file: &tmp,
            offset: 2,
            len: 5,
        };
        let mut r = PayloadReader {
            payload: &payload,
            position: 0,
            monitor: None,
        };
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        assert_eq!(out, b"23456");

        let token = crate::progress::CancelToken::new();
        let monitor = Monitor::with_cancel(token.clone());
        let mut r = PayloadReader {
            payload: &payload,
            position: 0,
            monitor: Some(&monitor),
        };
        let mut one = [0u8; 1];
        assert_eq!(r.read(&mut one).unwrap(), 1);
        token.cancel();
        assert_eq!(r.read(&mut one).unwrap(), 0);

        let short = Payload::File {
            file: &tmp,
            offset: 8,
            len: 5,
        };
        let mut r = PayloadReader {
            payload: &short,
            position: 0,
            monitor: None,
        };
        assert!(r.read_to_end(&mut Vec::new()).is_err());
    }
}
