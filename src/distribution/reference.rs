//! Where a snapshot is pushed to or pulled from.
//!
//! - `HOST[:PORT]/REPO[:TAG|@sha256:HEX]`: a registry, over HTTPS unless
//!   `plain_http`. The first component must be a host (it has a `.` or a
//!   `:`, or is `localhost`): microsnap never guesses Docker Hub.
//! - `oci:DIR[:TAG]`: an OCI image layout directory, as skopeo and umoci
//!   write it. As in skopeo, the first `:` after the transport ends DIR.
//! - `oci-archive:FILE[:TAG]`: a tar of such a layout.
//!
//! Tags follow the distribution grammar `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`;
//! repositories are lowercase path components `[a-z0-9]+([._-]+[a-z0-9]+)*`.
use crate::error::{Error, Result};
use std::fmt;
use std::path::PathBuf;

/// The tag used when a reference names none.
pub const DEFAULT_TAG: &str = "latest";

/// A parsed reference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reference {
    Registry {
        /// `host` or `host:port`.
        host: String,
        repository: String,
        tag: Option<String>,
        /// `sha256:<64 hex>`: pins the manifest; wins over the tag on pull.
        digest: Option<String>,
    },
    Layout {
        dir: PathBuf,
        tag: Option<String>,
    },
    Archive {
        file: PathBuf,
        tag: Option<String>,
    },
}

impl Reference {
    pub fn parse(text: &str) -> Result<Reference> {
        let bad = |why: &str| Error::InvalidArgument(format!("invalid reference {text:?}: {why}"));
        if let Some(rest) = text.strip_prefix("oci:") {
            let (dir, tag) = split_local(rest).map_err(|why| bad(&why))?;
            return Ok(Reference::Layout { dir, tag });
        }
        if let Some(rest) = text.strip_prefix("oci-archive:") {
            let (file, tag) = split_local(rest).map_err(|why| bad(&why))?;
            return Ok(Reference::Archive { file, tag });
        }
        if text.starts_with("docker://") {
            return Err(bad("write it without the docker:// transport prefix"));
        }
        let (name, digest) = match text.split_once('@') {
            Some((name, digest)) => {
                check_digest(digest).map_err(|why| bad(&why))?;
                (name, Some(digest.to_string()))
            }
            None => (text, None),
        };
        let (host, path) = name.split_once('/').ok_or_else(|| {
            bad("expected HOST[:PORT]/REPOSITORY[:TAG|@sha256:DIGEST], oci:DIR or oci-archive:FILE")
        })?;
        if !(host.contains('.') || host.contains(':') || host == "localhost") {
            return Err(bad(&format!(
                "{host:?} is not a registry host (it needs a '.', a ':PORT' or to be localhost)"
            )));
        }
        check_host(host).map_err(|why| bad(&why))?;
        // A ':' after the last '/' starts the tag (a port is before the first '/').
        let (repository, tag) = match path.rsplit_once(':') {
            Some((repo, tag)) if !tag.contains('/') => (repo, Some(tag.to_string())),
            _ => (path, None),
        };
        check_repository(repository).map_err(|why| bad(&why))?;
        if let Some(tag) = &tag {
            check_tag(tag).map_err(|why| bad(&why))?;
        }
        Ok(Reference::Registry {
            host: host.to_string(),
            repository: repository.to_string(),
            tag,
            digest,
        })
    }

    /// The tag it names, if any.
    pub fn tag(&self) -> Option<&str> {
        match self {
            Reference::Registry { tag, .. }
            | Reference::Layout { tag, .. }
            | Reference::Archive { tag, .. } => tag.as_deref(),
        }
    }

    /// The tag it names, or [`DEFAULT_TAG`].
    pub fn tag_or_default(&self) -> &str {
        self.tag().unwrap_or(DEFAULT_TAG)
    }

    /// The manifest digest it pins (registry references only).
    pub fn digest(&self) -> Option<&str> {
        match self {
            Reference::Registry { digest, .. } => digest.as_deref(),
            _ => None,
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tag = |f: &mut fmt::Formatter<'_>, tag: &Option<String>| match tag {
            Some(tag) => write!(f, ":{tag}"),
            None => Ok(()),
        };
        match self {
            Reference::Registry {
                host,
                repository,
                tag: t,
                digest,
            } => {
                write!(f, "{host}/{repository}")?;
                tag(f, t)?;
                match digest {
                    Some(d) => write!(f, "@{d}"),
                    None => Ok(()),
                }
            }
            Reference::Layout { dir, tag: t } => {
                write!(f, "oci:{}", dir.display())?;
                tag(f, t)
            }
            Reference::Archive { file, tag: t } => {
                write!(f, "oci-archive:{}", file.display())?;
                tag(f, t)
            }
        }
    }
}

fn split_local(rest: &str) -> std::result::Result<(PathBuf, Option<String>), String> {
    let (path, tag) = match rest.split_once(':') {
        Some((path, tag)) => (path, Some(tag.to_string())),
        None => (rest, None),
    };
    if path.is_empty() {
        return Err("the path is empty".into());
    }
    if let Some(tag) = &tag {
        check_tag(tag)?;
    }
    Ok((PathBuf::from(path), tag))
}

pub(crate) fn check_tag(tag: &str) -> std::result::Result<(), String> {
    let ok = !tag.is_empty()
        && tag.len() <= 128
        && tag.bytes().enumerate().all(|(i, b)| {
            b.is_ascii_alphanumeric() || b == b'_' || (i > 0 && (b == b'.' || b == b'-'))
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "tag {tag:?} is not [A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}}"
        ))
    }
}

fn check_digest(digest: &str) -> std::result::Result<(), String> {
    match digest.strip_prefix("sha256:") {
        Some(hex)
            if hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) =>
        {
            Ok(())
        }
        _ => Err(format!(
            "digest {digest:?} is not sha256:<64 lowercase hex>"
        )),
    }
}

fn check_host(host: &str) -> std::result::Result<(), String> {
    let (name, port) = match host.rsplit_once(':') {
        Some((name, port)) => (name, Some(port)),
        None => (host, None),
    };
    let name_ok = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
    let port_ok = port.is_none_or(|p| {
        !p.is_empty()
            && p.len() <= 5
            && p.bytes().all(|b| b.is_ascii_digit())
            && p.parse::<u32>().is_ok_and(|n| (1..=65535).contains(&n))
    });
    if name_ok && port_ok {
        Ok(())
    } else {
        Err(format!("{host:?} is not HOST or HOST:PORT"))
    }
}

fn check_repository(repository: &str) -> std::result::Result<(), String> {
    let component_ok = |c: &str| {
        let bytes = c.as_bytes();
        let alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
        !bytes.is_empty()
            && alnum(&bytes[0])
            && alnum(&bytes[bytes.len() - 1])
            && bytes
                .iter()
                .all(|b| alnum(b) || matches!(b, b'.' | b'_' | b'-'))
    };
    if !repository.is_empty() && repository.len() <= 255 && repository.split('/').all(component_ok)
    {
        Ok(())
    } else {
        Err(format!(
            "repository {repository:?} is not lowercase path components [a-z0-9]+([._-]+[a-z0-9]+)*"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry(text: &str) -> (String, String, Option<String>, Option<String>) {
        match Reference::parse(text).unwrap() {
            Reference::Registry {
                host,
                repository,
                tag,
                digest,
            } => (host, repository, tag, digest),
            other => panic!("{text}: not a registry reference: {other:?}"),
        }
    }

    #[test]
    fn registry_references_split_host_repository_tag_and_digest() {
        let d = format!("sha256:{}", "a".repeat(64));
        assert_eq!(
            registry("127.0.0.1:5000/team/base:v1"),
            (
                "127.0.0.1:5000".into(),
                "team/base".into(),
                Some("v1".into()),
                None
            )
        );
        assert_eq!(
            registry("localhost/snap"),
            ("localhost".into(), "snap".into(), None, None)
        );
        assert_eq!(
            registry(&format!("reg.example.com/a/b:t@{d}")),
            (
                "reg.example.com".into(),
                "a/b".into(),
                Some("t".into()),
                Some(d.clone())
            )
        );
        assert_eq!(
            registry(&format!("reg.example.com/a@{d}")),
            ("reg.example.com".into(), "a".into(), None, Some(d))
        );
    }

    #[test]
    fn local_references_take_the_first_colon_as_the_tag_separator() {
        assert_eq!(
            Reference::parse("oci:/tmp/lay:v2").unwrap(),
            Reference::Layout {
                dir: "/tmp/lay".into(),
                tag: Some("v2".into())
            }
        );
        assert_eq!(
            Reference::parse("oci-archive:x.tar").unwrap(),
            Reference::Archive {
                file: "x.tar".into(),
                tag: None
            }
        );
    }

    #[test]
    fn references_that_are_not_one_of_the_three_forms_are_refused() {
        for bad in [
            "",
            "snap",
            "team/base:v1",
            "docker://reg.io/a",
            "reg.io/UPPER",
            "reg.io/a:",
            "reg.io/a:-bad",
            "reg.io/a@sha256:abc",
            "reg.io:99999/a",
            "reg.io//a",
            "oci:",
            "oci:/tmp/x:bad tag",
        ] {
            let err = Reference::parse(bad).unwrap_err();
            assert_eq!(
                err.code(),
                crate::error::ErrorCode::InvalidArgument,
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn display_gives_back_what_was_parsed() {
        for text in [
            "h.io:5000/a/b:c",
            "oci:/d:t",
            "oci-archive:/f.tar",
            "localhost/x",
        ] {
            assert_eq!(Reference::parse(text).unwrap().to_string(), text);
        }
    }
}
