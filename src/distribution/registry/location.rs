//! URLs of a registry: the `/v2/` endpoints, upload `Location`s resolved
//! against the registry, and the form of a URL that may appear in a
//! message (no query: upload Locations carry the session's state there).

/// `scheme://host[:port]` of the registry, no trailing slash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin(String);

impl Origin {
    pub fn new(plain_http: bool, host: &str) -> Origin {
        let scheme = if plain_http { "http" } else { "https" };
        Origin(format!("{scheme}://{host}"))
    }

    /// `path` (which starts with `/`) on this registry.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.0)
    }

    /// Whether `url` is on this registry (same scheme, host and port), so
    /// that our credentials may go with a request to it.
    pub fn owns(&self, url: &str) -> bool {
        url.strip_prefix(self.0.as_str())
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(['/', '?']))
    }
}

/// Resolve a `Location` header the registry sent in answer to a request
/// to `request_url`: absolute (`http://…`), scheme-relative (`//host/…`),
/// absolute path (`/v2/…`) or, rarely, relative to the request's path.
pub fn resolve(request_url: &str, location: &str) -> Option<String> {
    let location = location.trim();
    if location.is_empty() || location.chars().any(|c| c.is_control() || c == ' ') {
        return None;
    }
    let lower = location.to_ascii_lowercase();
    if lower.starts_with("http://") || lower.starts_with("https://") {
        return Some(location.to_string());
    }
    let (scheme, rest) = request_url.split_once("://")?;
    if let Some(authority_and_path) = location.strip_prefix("//") {
        return Some(format!("{scheme}://{authority_and_path}"));
    }
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let origin = &request_url[..scheme.len() + 3 + authority_end];
    if location.starts_with('/') {
        return Some(format!("{origin}{location}"));
    }
    // Relative: replace the last segment of the request's path.
    let path = without_query(&rest[authority_end..]);
    let dir = match path.rfind('/') {
        Some(i) => &path[..=i],
        None => "/",
    };
    Some(format!("{origin}{dir}{location}"))
}

/// `url` with `key=value` added to its query (`?` or `&`).
pub fn with_query(url: &str, key: &str, value: &str) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}{key}={value}")
}

/// The path of `url` without scheme, host or query: what a message may
/// show of it. Upload Locations carry the session's state (and some
/// registries a signature) in the query.
pub fn path_for_message(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let path = match rest.find('/') {
        Some(i) => &rest[i..],
        None => "/",
    };
    without_query(path)
}

fn without_query(url: &str) -> &str {
    let end = url.find(['?', '#']).unwrap_or(url.len());
    &url[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    const REQUEST: &str = "https://reg.example:5000/v2/team/app/blobs/uploads/";

    #[test]
    fn an_absolute_location_is_taken_as_is() {
        let loc = "http://other:9000/v2/team/app/blobs/uploads/abc?_state=xyz";
        assert_eq!(resolve(REQUEST, loc).as_deref(), Some(loc));
    }

    #[test]
    fn an_absolute_path_goes_to_the_request_origin() {
        assert_eq!(
            resolve(REQUEST, "/v2/team/app/blobs/uploads/abc?_state=s").as_deref(),
            Some("https://reg.example:5000/v2/team/app/blobs/uploads/abc?_state=s")
        );
    }

    #[test]
    fn a_scheme_relative_location_keeps_the_request_scheme() {
        assert_eq!(
            resolve(REQUEST, "//cdn.example/u/1").as_deref(),
            Some("https://cdn.example/u/1")
        );
    }

    #[test]
    fn a_relative_location_replaces_the_last_segment() {
        assert_eq!(
            resolve("http://h/v2/r/blobs/uploads/old?x=1", "new?y=2").as_deref(),
            Some("http://h/v2/r/blobs/uploads/new?y=2")
        );
        assert_eq!(resolve("http://h", "a").as_deref(), Some("http://h/a"));
    }

    #[test]
    fn an_empty_or_garbled_location_is_refused() {
        assert_eq!(resolve(REQUEST, ""), None);
        assert_eq!(resolve(REQUEST, "/v2/a b"), None);
        assert_eq!(resolve(REQUEST, "/v2/\r\nx"), None);
    }

    #[test]
    fn the_digest_is_appended_with_the_right_separator() {
        assert_eq!(
            with_query("http://h/u/1", "digest", "sha256:ab"),
            "http://h/u/1?digest=sha256:ab"
        );
        assert_eq!(
            with_query("http://h/u/1?_state=s", "digest", "sha256:ab"),
            "http://h/u/1?_state=s&digest=sha256:ab"
        );
    }

    #[test]
    fn messages_show_the_path_only() {
        assert_eq!(
            path_for_message("https://h:1/v2/r/blobs/uploads/u?_state=SECRET#f"),
            "/v2/r/blobs/uploads/u"
        );
        assert_eq!(path_for_message("https://h:1"), "/");
    }

    #[test]
    fn origin_owns_only_its_own_urls() {
        let origin = Origin::new(false, "reg:5000");
        assert!(origin.owns("https://reg:5000/v2/x"));
        assert!(origin.owns("https://reg:5000"));
        assert!(!origin.owns("https://reg:50001/v2/x"));
        assert!(!origin.owns("http://reg:5000/v2/x"));
        assert!(!origin.owns("https://reg:5000.evil/v2/x"));
    }
}
