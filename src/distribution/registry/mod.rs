//! The registry store: the OCI distribution API over HTTP(S), blocking
//! (ureq with rustls). Shared by the threads of one push or pull.
//!
//! | file | concept |
//! |---|---|
//! | `transport.rs` | the HTTP agent: TLS roots, timeouts; transport failures in words |
//! | `auth.rs` | credentials (explicit, docker config, anonymous), challenges, tokens |
//! | `client.rs` | one authenticated request, bodies in and out, messages |
//! | `location.rs` | endpoint URLs, `Location` resolution, URLs fit for messages |
//! | `upload.rs` | blob uploads: HEAD, mount, sessions, PATCH pieces, abandon |
//! | `blobs.rs` | blob size, whole and ranged reads |
//! | `manifests.rs` | manifests by tag or digest |
//!
//! Errors: no answer, a timeout, a 5xx or an answer outside the protocol
//! is `Registry`; a 401 after one re-authentication, or a 403, is
//! `Unauthorized`. No message holds a credential, a token or a query
//! string.
mod auth;
mod blobs;
mod client;
mod location;
mod manifests;
mod transport;
mod upload;

use crate::distribution::store::{Access, Store};
use crate::distribution::RemoteOptions;
use crate::error::{Error, Result};
use crate::progress::Monitor;
use client::Client;
use std::path::Path;
use upload::{Sessions, Source};

pub struct RegistryStore {
    client: Client,
    sessions: Sessions,
}

/// Open repository `repository` of the registry at `host` (`name[:port]`).
/// Nothing is sent yet: the first request finds out about auth.
pub fn open(
    host: &str,
    repository: &str,
    remote: &RemoteOptions,
    access: Access,
) -> Result<Box<dyn Store>> {
    Ok(Box::new(RegistryStore::open(
        host, repository, remote, access,
    )?))
}

impl RegistryStore {
    pub fn open(
        host: &str,
        repository: &str,
        remote: &RemoteOptions,
        access: Access,
    ) -> Result<RegistryStore> {
        check_host(host)?;
        check_repository(repository)?;
        let place = format!("{host}/{repository}");
        let agent = transport::agent(remote, &place)?;
        let source = auth::source_of(remote, &place)?;
        let scope = match access {
            Access::Read => format!("repository:{repository}:pull"),
            Access::Write => format!("repository:{repository}:pull,push"),
        };
        let client = Client::new(
            agent,
            location::Origin::new(remote.plain_http, host),
            place.clone(),
            repository.to_string(),
            auth::Auth::new(host, &place, source),
            vec![scope],
        );
        Ok(RegistryStore {
            client,
            sessions: Sessions::default(),
        })
    }
}

impl Store for RegistryStore {
    fn describe(&self) -> String {
        self.client.place.clone()
    }

    fn blob_size(&self, digest: &str) -> Result<Option<u64>> {
        check_digest(digest)?;
        blobs::size(&self.client, digest)
    }

    fn put_blob_file(&self, digest: &str, path: &Path, len: u64, monitor: &Monitor) -> Result<u64> {
        check_digest(digest)?;
        upload::put_blob(
            &self.client,
            &self.sessions,
            digest,
            Source::File { path, len },
            monitor,
        )
    }

    fn put_blob_bytes(&self, digest: &str, bytes: &[u8], monitor: &Monitor) -> Result<u64> {
        check_digest(digest)?;
        upload::put_blob(
            &self.client,
            &self.sessions,
            digest,
            Source::Bytes(bytes),
            monitor,
        )
    }

    fn mount_blob(&self, digest: &str, from_repository: &str) -> Result<bool> {
        check_digest(digest)?;
        check_repository(from_repository)?;
        if from_repository == self.client.repository {
            return Ok(false);
        }
        upload::mount(&self.client, &self.sessions, digest, from_repository)
    }

    fn get_blob(&self, digest: &str, max: u64, monitor: &Monitor) -> Result<Vec<u8>> {
        check_digest(digest)?;
        blobs::get(&self.client, digest, max, monitor)
    }

    fn read_blob_range(
        &self,
        digest: &str,
        offset: u64,
        len: u64,
        out: &mut Vec<u8>,
        monitor: &Monitor,
    ) -> Result<()> {
        check_digest(digest)?;
        blobs::get_range(&self.client, digest, offset, len, out, monitor)
    }

    fn get_manifest(&self, tag_or_digest: &str, max: u64) -> Result<Option<Vec<u8>>> {
        check_tag_or_digest(tag_or_digest)?;
        manifests::get(&self.client, tag_or_digest, max)
    }

    fn put_manifest(&self, tag: &str, bytes: &[u8], media_type: &str) -> Result<()> {
        check_tag_or_digest(tag)?;
        if media_type.is_empty() || !media_type.bytes().all(|c| c.is_ascii_graphic()) {
            return Err(Error::InvalidArgument(format!(
                "media type {media_type:?} is not one"
            )));
        }
        manifests::put(&self.client, tag, bytes, media_type)
    }

    /// Sessions still open after a successful push are leftovers of failed
    /// attempts (or of mounts that were not needed): delete them.
    fn commit(&self, _monitor: &Monitor) -> Result<()> {
        upload::abandon(&self.client, &self.sessions);
        Ok(())
    }

    fn abandon(&self) {
        upload::abandon(&self.client, &self.sessions);
    }
}

// What goes into a URL must be what the protocol allows there: a caller's
// slip (or a hostile manifest naming a "digest") cannot reach another path
// or smuggle a query.

fn check_host(host: &str) -> Result<()> {
    let ok = !host.is_empty()
        && host
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || b".-:[]_".contains(&c));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!(
            "registry host {host:?} is not a host[:port]"
        )))
    }
}

fn check_repository(repository: &str) -> Result<()> {
    let ok = !repository.is_empty()
        && repository.len() <= 255
        && repository.split('/').all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"._-".contains(&c))
        });
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!(
            "{repository:?} is not a repository name"
        )))
    }
}

fn is_digest(text: &str) -> bool {
    let Some((algorithm, encoded)) = text.split_once(':') else {
        return false;
    };
    !algorithm.is_empty()
        && algorithm
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"+._-".contains(&c))
        && !encoded.is_empty()
        && encoded
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"=_-".contains(&c))
}

fn check_digest(digest: &str) -> Result<()> {
    if is_digest(digest) {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!(
            "{digest:?} is not a digest"
        )))
    }
}

fn is_tag(text: &str) -> bool {
    let mut bytes = text.bytes();
    text.len() <= 128
        && bytes
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == b'_')
        && bytes.all(|c| c.is_ascii_alphanumeric() || b"._-".contains(&c))
}

fn check_tag_or_digest(text: &str) -> Result<()> {
    if is_tag(text) || is_digest(text) {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!(
            "{text:?} is neither a tag nor a digest"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_go_into_urls_are_checked() {
        assert!(is_digest(&format!("sha256:{}", "a".repeat(64))));
        assert!(!is_digest("sha256:ab/../../x"));
        assert!(!is_digest("sha256:ab?x=1"));
        assert!(!is_digest("nodigest"));
        assert!(is_tag("latest") && is_tag("sha256-abc") && is_tag("v1.2_3"));
        assert!(!is_tag(".hidden") && !is_tag("a/b") && !is_tag("") && !is_tag(&"a".repeat(129)));
        assert!(check_repository("team/app-1").is_ok());
        assert!(check_repository("Team/app").is_err());
        assert!(check_repository("a//b").is_err());
        assert!(check_host("127.0.0.1:5000").is_ok());
        assert!(check_host("user@evil").is_err());
        assert!(check_host("h/x").is_err());
    }
}
