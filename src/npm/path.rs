//! Scoped names arrive as `/@acme%2fb`, `/@acme%2Fb` and `/@acme/b` (npm-protocol.md §1.2); this
//! rewrites all three to one path segment before routing, so every route sees `{pkg}` = `@acme/b`.

use axum::extract::Request;
use axum::http::Uri;

/// Path prefixes after which a package name may start.
const NAME_PREFIXES: &[&str] = &["/", "/-/package/", "/api/v1/packages/", "/-/stage/package/"];

/// Rewrites the scoped name in a path to the single-segment form `@scope%2Fname`.
pub fn normalize_scoped_path(path: &str) -> Option<String> {
    NAME_PREFIXES.iter().rev().find_map(|prefix| {
        let rest = path.strip_prefix(prefix)?.strip_prefix('@')?;
        let lower = rest.to_ascii_lowercase();
        let slash = rest.find('/');
        let encoded = lower.find("%2f");
        let (scope_end, separator_len) = match (slash, encoded) {
            (Some(s), Some(e)) if e < s => (e, 3),
            (Some(s), _) => (s, 1),
            (None, Some(e)) => (e, 3),
            (None, None) => return None,
        };
        let (scope, tail) = rest.split_at(scope_end);
        Some(format!("{prefix}@{scope}%2F{}", &tail[separator_len..]))
    })
}

/// Applies [`normalize_scoped_path`] to the request URI; a plain function for
/// `tower::util::MapRequestLayer`.
pub fn normalize_scoped_uri(mut request: Request) -> Request {
    let uri = request.uri();
    if let Some(path) = normalize_scoped_path(uri.path()) {
        let path_and_query = match uri.query() {
            Some(query) => format!("{path}?{query}"),
            None => path,
        };
        if let Ok(new_uri) = Uri::builder().path_and_query(path_and_query).build() {
            *request.uri_mut() = new_uri;
        }
    }
    request
}

#[cfg(test)]
mod tests {
    use super::normalize_scoped_path as n;

    #[test]
    fn all_three_spellings_of_a_scoped_name_become_one() {
        assert_eq!(n("/@acme/b").as_deref(), Some("/@acme%2Fb"));
        assert_eq!(n("/@acme%2fb").as_deref(), Some("/@acme%2Fb"));
        assert_eq!(n("/@acme%2Fb").as_deref(), Some("/@acme%2Fb"));
        assert_eq!(
            n("/@acme/b/-/b-1.0.0.tgz").as_deref(),
            Some("/@acme%2Fb/-/b-1.0.0.tgz")
        );
        assert_eq!(
            n("/@acme%2fb/-/b-1.0.0.tgz").as_deref(),
            Some("/@acme%2Fb/-/b-1.0.0.tgz")
        );
        assert_eq!(
            n("/-/package/@acme/b/dist-tags/beta").as_deref(),
            Some("/-/package/@acme%2Fb/dist-tags/beta")
        );
    }

    #[test]
    fn unscoped_paths_are_left_alone() {
        assert_eq!(n("/left-pad"), None);
        assert_eq!(n("/-/whoami"), None);
        assert_eq!(n("/@acme"), None);
    }
}
