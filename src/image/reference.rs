//! Image references: docker's familiar-name normalization, the OCI ref-name
//! grammar, and choosing the `index.json` entry a reference names.
use super::oci::IndexEntry;
use super::store::not_found;
use crate::error::{Error, Result};
use std::collections::BTreeSet;
use std::path::Path;

const MAX_REFERENCE_LEN: usize = 4096;

/// Docker's familiar-name normalization: `alpine` → `docker.io/library/alpine:latest`.
/// `None` for a string that has no name part.
fn normalize_reference(reference: &str) -> Option<String> {
    let (name_and_tag, digest) = match reference.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (reference, None),
    };
    let last_slash = name_and_tag.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match name_and_tag[last_slash..].rfind(':') {
        Some(i) => (
            &name_and_tag[..last_slash + i],
            Some(&name_and_tag[last_slash + i + 1..]),
        ),
        None => (name_and_tag, None),
    };
    if name.is_empty() {
        return None;
    }
    let (domain, path) = match name.split_once('/') {
        Some((first, rest))
            if first.contains('.') || first.contains(':') || first == "localhost" =>
        {
            (first, rest.to_string())
        }
        _ => ("docker.io", name.to_string()),
    };
    let domain = if domain == "index.docker.io" {
        "docker.io"
    } else {
        domain
    };
    let path = if domain == "docker.io" && !path.contains('/') {
        format!("library/{path}")
    } else {
        path
    };
    let mut out = format!("{domain}/{path}");
    match (tag, digest) {
        (Some(t), _) => out.push_str(&format!(":{t}")),
        (None, None) => out.push_str(":latest"),
        (None, Some(_)) => {}
    }
    if let Some(d) = digest {
        out.push_str(&format!("@{d}"));
    }
    Some(out)
}

/// The index entries `reference` names: exact ref-name matches, else
/// matches after normalization (see the module docs).
pub(super) fn entries_named<'a>(entries: &'a [IndexEntry], reference: &str) -> Vec<&'a IndexEntry> {
    let exact: Vec<_> = entries
        .iter()
        .filter(|e| e.ref_name() == Some(reference))
        .collect();
    if !exact.is_empty() {
        return exact;
    }
    let Some(wanted) = normalize_reference(reference) else {
        return Vec::new();
    };
    entries
        .iter()
        .filter(|e| e.ref_name().and_then(normalize_reference).as_deref() == Some(&wanted))
        .collect()
}

/// One entry among several that share a name: the only digest, else the
/// host's platform, else the name is ambiguous.
pub(super) fn pick_entry<'a>(
    candidates: &[&'a IndexEntry],
    reference: &str,
    images_dir: &Path,
) -> Result<&'a IndexEntry> {
    let distinct = |list: &[&IndexEntry]| {
        list.iter()
            .map(|e| e.digest.as_str())
            .collect::<BTreeSet<_>>()
            .len()
    };
    let first = candidates
        .first()
        .copied()
        .ok_or_else(|| not_found(reference, images_dir, "no image with that name"))?;
    if distinct(candidates) == 1 {
        return Ok(first);
    }
    let for_host: Vec<&IndexEntry> = candidates
        .iter()
        .copied()
        .filter(|e| e.is_for_host())
        .collect();
    if let (Some(entry), 1) = (for_host.first(), distinct(&for_host)) {
        return Ok(entry);
    }
    let names: Vec<String> = candidates
        .iter()
        .map(|e| format!("{} -> {}", e.ref_name().unwrap_or("?"), e.digest))
        .collect();
    Err(Error::InvalidArgument(format!(
        "image reference {reference} is ambiguous in layout {}: {}",
        images_dir.display(),
        names.join(", ")
    )))
}

pub(super) fn available_names(entries: &[IndexEntry]) -> String {
    let names: BTreeSet<&str> = entries.iter().filter_map(IndexEntry::ref_name).collect();
    if names.is_empty() {
        return "the layout has no named images".to_string();
    }
    let shown: Vec<&str> = names.iter().copied().take(20).collect();
    let more = if names.len() > shown.len() {
        ", ..."
    } else {
        ""
    };
    format!("available: {}{more}", shown.join(", "))
}

/// Whether `reference` is a valid `org.opencontainers.image.ref.name`:
/// `component ("/" component)*`, a component being alphanumeric runs joined
/// by one of `-._:@+` or by `--`.
pub(super) fn is_valid_ref_name(reference: &str) -> bool {
    fn valid_component(component: &str) -> bool {
        let bytes = component.as_bytes();
        let is_separator = |b: u8| matches!(b, b'-' | b'.' | b'_' | b':' | b'@' | b'+');
        if bytes.is_empty()
            || !bytes[0].is_ascii_alphanumeric()
            || !bytes[bytes.len() - 1].is_ascii_alphanumeric()
        {
            return false;
        }
        let mut run = String::new();
        for &b in bytes {
            if b.is_ascii_alphanumeric() {
                if !(run.is_empty() || run.len() == 1 || run == "--") {
                    return false;
                }
                run.clear();
            } else if is_separator(b) {
                run.push(b as char);
            } else {
                return false;
            }
        }
        true
    }
    !reference.is_empty()
        && reference.len() <= MAX_REFERENCE_LEN
        && reference.split('/').all(valid_component)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalization_follows_docker_familiar_names() {
        let n = |s: &str| normalize_reference(s).unwrap();
        assert_eq!(n("alpine"), "docker.io/library/alpine:latest");
        assert_eq!(n("alpine:3.20"), "docker.io/library/alpine:3.20");
        assert_eq!(n("library/alpine:3.20"), "docker.io/library/alpine:3.20");
        assert_eq!(n("docker.io/library/alpine:3.20"), n("alpine:3.20"));
        assert_eq!(n("index.docker.io/alpine:3.20"), n("alpine:3.20"));
        assert_eq!(n("ghcr.io/x/alpine:3.20"), "ghcr.io/x/alpine:3.20");
        assert_eq!(n("localhost:5000/app"), "localhost:5000/app:latest");
        assert_eq!(n("localhost/app:1"), "localhost/app:1");
        assert_eq!(n("alpine@sha256:ab"), "docker.io/library/alpine@sha256:ab");
        assert!(normalize_reference(":tag").is_none());
    }

    #[test]
    fn ref_name_grammar() {
        for good in [
            "alpine",
            "alpine:3.20",
            "docker.io/library/alpine:3.20",
            "a--b",
            "x@sha256:00",
            "v1.0+build",
        ] {
            assert!(is_valid_ref_name(good), "{good}");
        }
        for bad in [
            "", "/a", "a/", "a//b", "-a", "a-", "a..b", "a---b", "a b", "a\nb", "../x",
        ] {
            assert!(!is_valid_ref_name(bad), "{bad}");
        }
    }
}
