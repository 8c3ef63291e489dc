//! The HTTP agent a registry store speaks through: TLS verified against
//! the system roots or only the CAs of `ca_file`, timeouts so that a dead
//! or stalled registry is an error and never a hang, and statuses handed
//! back to us (we map them; ureq does not turn them into errors).
//!
//! Also how a failure of the connection itself is described: from the
//! error's kind only, never from a URL or a header (URLs carry upload
//! state, headers carry credentials).
use crate::distribution::RemoteOptions;
use crate::error::{Error, Result};
use std::io;
use std::sync::Arc;
use std::time::Duration;
use ureq::tls::{Certificate, PemItem, RootCerts, TlsConfig};
use ureq::Agent;

pub fn agent(remote: &RemoteOptions, place: &str) -> Result<Agent> {
    let timeout = remote.timeout();
    let roots = match &remote.ca_file {
        None => RootCerts::PlatformVerifier,
        Some(path) => RootCerts::Specific(Arc::new(ca_certificates(path, place)?)),
    };
    let tls = TlsConfig::builder().root_certs(roots).build();
    let config = Agent::config_builder()
        .http_status_as_error(false)
        .https_only(!remote.plain_http)
        .tls_config(tls)
        .timeout_resolve(Some(timeout))
        .timeout_connect(Some(timeout))
        .timeout_send_request(Some(timeout))
        .timeout_recv_response(Some(timeout))
        // Bodies are streamed (blobs of hundreds of MiB): no total budget
        // for them, but every read and write must make progress in time.
        .timeout_per_read(Some(timeout))
        .timeout_per_write(Some(timeout))
        .max_idle_connections_per_host(remote.in_flight())
        .user_agent(concat!("microsnap/", env!("CARGO_PKG_VERSION")))
        .build();
    Ok(Agent::new_with_config(config))
}

/// The certificates of a PEM file; anything else in it is ignored, and a
/// file without any is an error (it would make every connection fail).
fn ca_certificates(path: &std::path::Path, place: &str) -> Result<Vec<Certificate<'static>>> {
    let pem = std::fs::read(path).map_err(|e| Error::io("read the CA file", path, e))?;
    let mut certs = Vec::new();
    for item in ureq::tls::parse_pem(&pem) {
        match item {
            Ok(PemItem::Certificate(cert)) => certs.push(cert),
            Ok(_) => {}
            Err(_) => {
                return Err(Error::InvalidArgument(format!(
                    "the CA file {} for {place} is not valid PEM",
                    path.display()
                )))
            }
        }
    }
    if certs.is_empty() {
        return Err(Error::InvalidArgument(format!(
            "the CA file {} for {place} holds no certificate",
            path.display()
        )));
    }
    Ok(certs)
}

/// Why a request got no HTTP answer, in words safe for a message.
pub fn describe(error: &ureq::Error) -> String {
    match error {
        ureq::Error::Timeout(what) => format!("timed out ({what})"),
        ureq::Error::HostNotFound => "host not found".into(),
        ureq::Error::ConnectionFailed => "connection failed".into(),
        ureq::Error::Io(e) => describe_io(e),
        ureq::Error::Tls(what) => format!("TLS failure: {what}"),
        ureq::Error::Rustls(e) => format!("TLS failure: {e}"),
        ureq::Error::Pem(_) => "TLS failure: bad PEM".into(),
        ureq::Error::RequireHttpsOnly(_) => "https required but the URL is plain http".into(),
        ureq::Error::TooManyRedirects | ureq::Error::RedirectFailed => {
            "too many or broken redirects".into()
        }
        ureq::Error::BadUri(_) | ureq::Error::Http(_) => "malformed URL".into(),
        ureq::Error::Protocol(e) => format!("the answer is not HTTP ({e})"),
        ureq::Error::BodyExceedsLimit(n) => format!("answer larger than {n} bytes"),
        ureq::Error::LargeResponseHeader(..) => "response header too large".into(),
        _ => "transport failure".into(),
    }
}

fn describe_io(e: &io::Error) -> String {
    // A TLS failure inside the handshake comes as an io::Error wrapping
    // the rustls error; its text names the certificate problem.
    let inner = e.get_ref().map(|inner| inner.to_string());
    match e.kind() {
        io::ErrorKind::ConnectionRefused => "connection refused".into(),
        io::ErrorKind::ConnectionReset => "connection reset by the server".into(),
        io::ErrorKind::ConnectionAborted => "connection aborted".into(),
        io::ErrorKind::UnexpectedEof => "the server closed the connection".into(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => "timed out".into(),
        io::ErrorKind::InvalidData => match inner {
            Some(text) => format!("TLS or protocol failure: {text}"),
            None => "invalid data from the server".into(),
        },
        _ => match inner {
            Some(text) => format!("I/O failure: {text}"),
            None => format!("I/O failure: {}", e.kind()),
        },
    }
}

/// A short timeout for best-effort cleanup requests (deleting abandoned
/// upload sessions): cleanup must not hold up a cancel.
pub const CLEANUP_TIMEOUT: Duration = Duration::from_secs(2);
