//! Web sessions and CSRF tokens: values signed with HMAC-SHA256 under a server key, so the server
//! keeps no session state and a forged or altered cookie is simply not accepted.

use std::time::Duration;

use hmac::{KeyInit, Mac};
use sha2::Sha256;

use crate::clock;

type HmacSha256 = hmac::Hmac<Sha256>;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "packr_session";
/// The cookie holding the CSRF nonce of a browser.
pub const CSRF_COOKIE: &str = "packr_csrf";

/// What a valid session cookie says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionClaim {
    /// The signed-in user.
    pub user_id: i64,
    /// The user's session generation when the cookie was issued.
    pub generation: i64,
}

/// Signs and checks session cookies and CSRF tokens.
#[derive(Clone)]
pub struct Sessions {
    key: Vec<u8>,
    ttl: Duration,
    secure: bool,
}

impl Sessions {
    /// Sessions signed with `key`, lasting `ttl`; `secure` marks cookies HTTPS-only.
    pub fn new(key: Vec<u8>, ttl: Duration, secure: bool) -> Self {
        Self { key, ttl, secure }
    }

    fn mac(&self, purpose: &str, value: &str) -> Option<HmacSha256> {
        let mut mac = HmacSha256::new_from_slice(&self.key).ok()?;
        mac.update(purpose.as_bytes());
        mac.update(b"\0");
        mac.update(value.as_bytes());
        Some(mac)
    }

    fn sign(&self, purpose: &str, value: &str) -> String {
        self.mac(purpose, value)
            .map(|mac| hex::encode(mac.finalize().into_bytes()))
            .unwrap_or_default()
    }

    fn verify(&self, purpose: &str, value: &str, signature: &str) -> bool {
        let (Some(mac), Ok(signature)) = (self.mac(purpose, value), hex::decode(signature)) else {
            return false;
        };
        // Constant-time comparison.
        mac.verify_slice(&signature).is_ok()
    }

    /// A session cookie value for a user: `<user id>.<session generation>.<expiry ms>.<signature>`.
    /// The generation is the user's at sign-in; bumping the stored one (a password reset,
    /// `packr user disable`) ends every session signed before, although the server keeps none.
    pub fn issue(&self, user_id: i64, generation: i64) -> String {
        let expires = clock::now_ms() + i64::try_from(self.ttl.as_millis()).unwrap_or(i64::MAX / 2);
        let value = format!("{user_id}.{generation}.{expires}");
        let signature = self.sign("session", &value);
        format!("{value}.{signature}")
    }

    /// Who a valid, unexpired session cookie value names; the caller still compares the
    /// generation with the user's current one.
    pub fn session(&self, cookie: &str) -> Option<SessionClaim> {
        let (value, signature) = cookie.rsplit_once('.')?;
        if !self.verify("session", value, signature) {
            return None;
        }
        let mut parts = value.split('.');
        let (user_id, generation, expires) = (parts.next()?, parts.next()?, parts.next()?);
        let expires: i64 = expires.parse().ok()?;
        if parts.next().is_some() || expires <= clock::now_ms() {
            return None;
        }
        Some(SessionClaim {
            user_id: user_id.parse().ok()?,
            generation: generation.parse().ok()?,
        })
    }

    /// The `Set-Cookie` value that starts a session.
    pub fn set_cookie(&self, value: &str) -> String {
        self.cookie(SESSION_COOKIE, value, self.ttl.as_secs(), "Lax")
    }

    /// The `Set-Cookie` value that ends a session.
    pub fn clear_cookie(&self) -> String {
        self.cookie(SESSION_COOKIE, "", 0, "Lax")
    }

    /// A fresh random CSRF nonce and its `Set-Cookie` value.
    pub fn new_csrf_nonce(&self) -> (String, String) {
        let mut bytes = [0u8; 16];
        rand::fill(&mut bytes[..]);
        let nonce = hex::encode(bytes);
        let cookie = self.cookie(CSRF_COOKIE, &nonce, 86_400, "Strict");
        (nonce, cookie)
    }

    /// The token forms carry for a browser's nonce.
    pub fn csrf_token(&self, nonce: &str) -> String {
        self.sign("csrf", nonce)
    }

    /// Whether a form's token matches the browser's nonce cookie.
    pub fn check_csrf(&self, nonce: &str, token: &str) -> bool {
        !nonce.is_empty() && self.verify("csrf", nonce, token)
    }

    fn cookie(&self, name: &str, value: &str, max_age: u64, same_site: &str) -> String {
        let secure = if self.secure { "; Secure" } else { "" };
        format!("{name}={value}; Path=/; HttpOnly; SameSite={same_site}; Max-Age={max_age}{secure}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sessions() -> Sessions {
        Sessions::new(b"test key".to_vec(), Duration::from_secs(60), false)
    }

    #[test]
    fn a_session_cookie_names_its_user_and_generation_until_altered() {
        let s = sessions();
        let cookie = s.issue(42, 3);
        let claim = SessionClaim {
            user_id: 42,
            generation: 3,
        };
        assert_eq!(s.session(&cookie), Some(claim));
        assert_eq!(s.session(&cookie.replacen("42.", "43.", 1)), None);
        assert_eq!(s.session(&cookie.replacen(".3.", ".4.", 1)), None);
        let other = Sessions::new(b"other key".to_vec(), Duration::from_secs(60), false);
        assert_eq!(other.session(&cookie), None);
    }

    #[test]
    fn a_cookie_without_a_generation_is_refused() {
        let s = sessions();
        let expires = clock::now_ms() + 60_000;
        let value = format!("42.{expires}");
        let old_style = format!("{value}.{}", s.sign("session", &value));
        assert_eq!(s.session(&old_style), None);
    }

    #[test]
    fn an_expired_session_is_refused() {
        let s = Sessions::new(b"k".to_vec(), Duration::from_secs(0), false);
        assert_eq!(s.session(&s.issue(1, 0)), None);
    }

    #[test]
    fn csrf_tokens_match_only_their_nonce() {
        let s = sessions();
        let (nonce, cookie) = s.new_csrf_nonce();
        assert!(cookie.contains("SameSite=Strict") && cookie.contains("HttpOnly"));
        let token = s.csrf_token(&nonce);
        assert!(s.check_csrf(&nonce, &token));
        assert!(!s.check_csrf("other", &token));
        assert!(!s.check_csrf("", &s.csrf_token("")));
    }

    #[test]
    fn secure_cookies_when_served_over_https() {
        let s = Sessions::new(b"k".to_vec(), Duration::from_secs(60), true);
        assert!(s.set_cookie("v").ends_with("; Secure"));
    }
}
