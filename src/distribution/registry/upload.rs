//! Blob uploads (OCI distribution spec, "Pushing blobs"): a `HEAD` first
//! (a blob the registry holds is not sent again); cross-repository mounts;
//! otherwise a session (`POST …/blobs/uploads/` → 202 + `Location`), the
//! bytes in `PATCH` pieces of `PIECE` (each answer moves the `Location`),
//! and `PUT Location?digest=…` to close it. A blob of at most one piece
//! goes in the closing `PUT` itself.
//!
//! Open sessions are tracked so that `abandon` (and `commit`, for those a
//! failed attempt left) can `DELETE` them: a cancelled push leaves no
//! half-written upload behind in the registry.
use super::client::{header, Call, Client, Payload};
use super::location;
use crate::error::{Error, Result};
use crate::progress::Monitor;
use std::collections::HashMap;
use std::fs::File;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use ureq::http::Method;

/// Bytes per `PATCH`. Small enough that a piece is a short request (the
/// monitor is also checked inside it), big enough that a pack of a few
/// hundred MiB is a few dozen requests.
pub const PIECE: u64 = 8 << 20;

/// The upload sessions a store has open, by id, at their latest Location.
#[derive(Default)]
pub struct Sessions {
    next: AtomicU64,
    open: Mutex<HashMap<u64, String>>,
    /// Sessions a mount opened instead of mounting (202), by digest: the
    /// upload of that digest continues in it.
    from_mounts: Mutex<HashMap<String, u64>>,
}

impl Sessions {
    fn add(&self, location: String) -> u64 {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        lock(&self.open).insert(id, location);
        id
    }

    fn moved(&self, id: u64, location: &str) {
        if let Some(slot) = lock(&self.open).get_mut(&id) {
            *slot = location.to_string();
        }
    }

    fn done(&self, id: u64) {
        lock(&self.open).remove(&id);
    }

    fn take_from_mount(&self, digest: &str) -> Option<(u64, String)> {
        let id = lock(&self.from_mounts).remove(digest)?;
        let location = lock(&self.open).get(&id)?.clone();
        Some((id, location))
    }

    /// Every open session, forgotten: the caller deletes them.
    pub fn drain(&self) -> Vec<String> {
        lock(&self.from_mounts).clear();
        lock(&self.open)
            .drain()
            .map(|(_, location)| location)
            .collect()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// What to upload.
pub enum Source<'a> {
    Bytes(&'a [u8]),
    File { path: &'a Path, len: u64 },
}

impl Source<'_> {
    fn len(&self) -> u64 {
        match self {
            Source::Bytes(b) => b.len() as u64,
            Source::File { len, .. } => *len,
        }
    }
}

/// Upload blob `digest` unless the registry has it. Returns the bytes
/// sent (0 when it was there).
pub fn put_blob(
    client: &Client,
    sessions: &Sessions,
    digest: &str,
    source: Source,
    monitor: &Monitor,
) -> Result<u64> {
    monitor.check()?;
    if super::blobs::size(client, digest)?.is_some() {
        return Ok(0);
    }
    let file = match &source {
        Source::File { path, .. } => {
            Some(File::open(path).map_err(|e| Error::io("open blob file", path, e))?)
        }
        Source::Bytes(_) => None,
    };
    let len = source.len();
    let payload = |offset: u64, count: u64| -> Payload {
        match (&source, &file) {
            (Source::Bytes(bytes), _) => {
                Payload::Bytes(&bytes[offset as usize..(offset + count) as usize])
            }
            (_, Some(file)) => Payload::File {
                file,
                offset,
                len: count,
            },
            (Source::File { .. }, None) => Payload::None,
        }
    };

    let (id, mut location) = match sessions.take_from_mount(digest) {
        Some(session) => session,
        None => start(client, sessions, None)?.ok_or_else(|| {
            Error::Registry(format!(
                "starting an upload at {}: the registry says it is complete",
                client.place
            ))
        })?,
    };

    // At most one piece: all of it in the closing PUT.
    let mut sent = 0u64;
    if len > PIECE {
        while sent < len {
            monitor.check()?;
            let count = (len - sent).min(PIECE);
            let call = Call::new(Method::PATCH, location.clone())
                .header("content-type", "application/octet-stream")
                .header("content-range", format!("{}-{}", sent, sent + count - 1))
                .payload(payload(sent, count))
                .monitor(monitor);
            let response = client.send(&call)?;
            let status = response.status().as_u16();
            if status != 202 {
                return Err(client.unexpected(&call, response));
            }
            // The registry's idea of what it holds, where it says so.
            if let Some(range) = header(&response, "range") {
                if !range_ends_at(range, sent + count - 1) {
                    return Err(client
                        .malformed(&call, "the registry holds a different range than was sent"));
                }
            }
            location = next_location(client, &call, &response)?;
            sessions.moved(id, &location);
            sent += count;
        }
    }
    monitor.check()?;
    let rest = len - sent;
    let call = Call::new(
        Method::PUT,
        location::with_query(&location, "digest", digest),
    )
    .header("content-type", "application/octet-stream")
    .payload(if rest > 0 {
        payload(sent, rest)
    } else {
        Payload::Bytes(&[])
    })
    .monitor(monitor);
    let response = client.send(&call)?;
    match response.status().as_u16() {
        201 | 204 => {}
        _ => return Err(client.unexpected(&call, response)),
    }
    sessions.done(id);
    Ok(len)
}

/// Mount `digest` from `from` of the same registry. `false` if the
/// registry opened a session instead (kept for the upload of that digest).
pub fn mount(client: &Client, sessions: &Sessions, digest: &str, from: &str) -> Result<bool> {
    match start(client, sessions, Some((digest, from)))? {
        None => Ok(true),
        Some((id, _)) => {
            if let Some(stale) = lock(&sessions.from_mounts).insert(digest.to_string(), id) {
                if let Some(location) = lock(&sessions.open).remove(&stale) {
                    client.delete_quietly(&location);
                }
            }
            Ok(false)
        }
    }
}

/// `POST …/blobs/uploads/` (with `mount` and `from` for a mount): `None`
/// when the blob is complete (mounted, 201), else the new session.
fn start(
    client: &Client,
    sessions: &Sessions,
    mount: Option<(&str, &str)>,
) -> Result<Option<(u64, String)>> {
    let mut url = client.url("blobs/uploads/");
    let mut extra_scopes = Vec::new();
    if let Some((digest, from)) = mount {
        url = location::with_query(&url, "mount", digest);
        url = location::with_query(&url, "from", from);
        extra_scopes.push(format!("repository:{from}:pull"));
    }
    let mut call = Call::new(Method::POST, url);
    call.extra_scopes = extra_scopes;
    let response = client.send(&call)?;
    match response.status().as_u16() {
        201 if mount.is_some() => Ok(None),
        202 => {
            let location = next_location(client, &call, &response)?;
            Ok(Some((sessions.add(location.clone()), location)))
        }
        _ => Err(client.unexpected(&call, response)),
    }
}

fn next_location(
    client: &Client,
    call: &Call,
    response: &ureq::http::Response<ureq::Body>,
) -> Result<String> {
    let raw = header(response, "location")
        .ok_or_else(|| client.malformed(call, "no Location in the answer"))?;
    location::resolve(&call.url, raw)
        .ok_or_else(|| client.malformed(call, "an unusable Location in the answer"))
}

/// Whether a `Range: 0-N` (or `bytes=0-N`) header ends at `last`.
fn range_ends_at(range: &str, last: u64) -> bool {
    let range = range.trim().trim_start_matches("bytes=");
    range
        .split_once('-')
        .and_then(|(_, end)| end.trim().parse::<u64>().ok())
        .is_some_and(|end| end == last)
}

/// Delete every open session (best effort, short timeouts).
pub fn abandon(client: &Client, sessions: &Sessions) {
    for location in sessions.drain() {
        client.delete_quietly(&location);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_range_header_is_checked_against_what_was_sent() {
        assert!(range_ends_at("0-8388607", 8388607));
        assert!(range_ends_at("bytes=0-99", 99));
        assert!(!range_ends_at("0-99", 100));
        assert!(!range_ends_at("garbage", 0));
    }

    #[test]
    fn sessions_are_tracked_until_done_and_drained_once() {
        let s = Sessions::default();
        let a = s.add("http://h/a".into());
        let b = s.add("http://h/b".into());
        s.moved(b, "http://h/b2");
        s.done(a);
        assert_eq!(s.drain(), vec!["http://h/b2".to_string()]);
        assert!(s.drain().is_empty());
    }
}
