//! Cross-site request forgery checks for the admin API's cookie sessions.
//!
//! A browser sends the `packr_session` cookie with a form another site posts (the cookie is
//! `SameSite=Lax`, which still allows top-level POSTs in some browsers and from same-site
//! subdomains), and a form can only send `application/x-www-form-urlencoded`, `multipart/form-data`
//! or `text/plain`. So a cookie-authenticated change must be JSON, and when the browser says where
//! it came from (`Sec-Fetch-Site`, `Origin`), that must be this registry. A valid `X-CSRF-Token`
//! (the token the server-rendered pages carry for the browser's `packr_csrf` nonce) also passes.
//! Bearer-token requests carry no ambient credentials and are not checked.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{Method, StatusCode, header};
use axum_extra::extract::CookieJar;

use crate::auth::session::CSRF_COOKIE;
use crate::error::ApiError;
use crate::server::AppState;

/// The header a page's CSRF token may be sent in.
pub const CSRF_HEADER: &str = "x-csrf-token";

fn refused(why: &str) -> ApiError {
    ApiError::user(
        StatusCode::FORBIDDEN,
        "cross_site_request",
        format!(
            "refused a cross-site request: {why}; a browser session may only change things from \
             this registry's own pages, with a JSON body or an X-CSRF-Token header"
        ),
    )
}

fn has_csrf_token(parts: &Parts, state: &AppState) -> bool {
    let Some(token) = parts.headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let jar = CookieJar::from_headers(&parts.headers);
    jar.get(CSRF_COOKIE)
        .is_some_and(|nonce| state.sessions.check_csrf(nonce.value(), token))
}

fn is_json(parts: &Parts) -> bool {
    parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"))
}

/// Whether an `Origin` header names this registry: `PACKR_PUBLIC_URL`'s origin, else the
/// request's own `Host` (any scheme, since a TLS terminator may sit in front).
fn is_own_origin(origin: &str, parts: &Parts, state: &AppState) -> bool {
    let Some((scheme, authority)) = origin.split_once("://") else {
        return false; // "null" (sandboxed frames, cross-origin redirects) and garbage
    };
    if let Some(public) = &state.config.public_url {
        return origin.eq_ignore_ascii_case(origin_of(public));
    }
    let host = parts
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok());
    !scheme.is_empty() && host.is_some_and(|host| authority.eq_ignore_ascii_case(host))
}

/// `scheme://host[:port]` of a URL: everything before the path.
fn origin_of(url: &str) -> &str {
    let after_scheme = url.find("://").map_or(0, |at| at + 3);
    let end = url[after_scheme..]
        .find('/')
        .map_or(url.len(), |at| after_scheme + at);
    &url[..end]
}

/// Refuses a cookie-authenticated change that a browser did not send from this registry.
pub fn check(parts: &Parts, state: &AppState) -> Result<(), ApiError> {
    if has_csrf_token(parts, state) {
        return Ok(());
    }
    // DELETE needs a CORS preflight, which this server never grants, so a body is not required.
    if parts.method != Method::DELETE && !is_json(parts) {
        return Err(refused("the body is not Content-Type: application/json"));
    }
    if let Some(site) = parts.headers.get("sec-fetch-site")
        && site.as_bytes() != b"same-origin"
    {
        return Err(refused("the browser says it was sent from another site"));
    }
    if let Some(origin) = parts.headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("");
        if !is_own_origin(origin, parts, state) {
            return Err(refused(&format!("it was sent from {origin}")));
        }
    }
    Ok(())
}

/// A request that passed [`check`]; for routes that act on a browser's behalf without a session
/// yet, such as signing in (login CSRF would sign the victim in as the attacker).
pub struct SameOrigin;

impl FromRequestParts<AppState> for SameOrigin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        check(parts, state).map(|()| Self)
    }
}

#[cfg(test)]
mod tests {
    use super::origin_of;

    #[test]
    fn the_origin_of_a_url_is_its_scheme_and_authority() {
        assert_eq!(
            origin_of("https://packr.example.com/npm"),
            "https://packr.example.com"
        );
        assert_eq!(origin_of("http://127.0.0.1:4873"), "http://127.0.0.1:4873");
    }
}
