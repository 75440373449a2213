//! `X-Packr-Signature: sha256=<hex>`: HMAC-SHA256 of the raw request body, keyed with the hook's
//! secret exactly as it was shown at creation (the whole `whsec_...` text, as UTF-8 bytes).

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// The header carrying the signature.
pub const HEADER: &str = "X-Packr-Signature";

const PREFIX: &str = "sha256=";

/// HMAC accepts keys of any length, so this is `None` only if the hmac crate changes its mind.
fn mac(secret: &str, body: &[u8]) -> Option<Hmac<Sha256>> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).ok()?;
    mac.update(body);
    Some(mac)
}

/// The header value for `body`: `sha256=` and the lower-case hex HMAC.
pub fn sign(secret: &str, body: &[u8]) -> Option<String> {
    let digest = mac(secret, body)?.finalize().into_bytes();
    Some(format!("{PREFIX}{}", hex::encode(digest)))
}

/// Whether `header` is a valid signature of `body` (compared in constant time).
pub fn verify(secret: &str, body: &[u8], header: &str) -> bool {
    let Some(digest) = header.trim().strip_prefix(PREFIX) else {
        return false;
    };
    let Ok(digest) = hex::decode(digest) else {
        return false;
    };
    mac(secret, body).is_some_and(|mac| mac.verify_slice(&digest).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_matches_the_rfc_4231_test_vector() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        assert_eq!(
            sign("Jefe", b"what do ya want for nothing?").unwrap(),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn a_signature_verifies_only_for_the_same_secret_and_body() {
        let header = sign("whsec_abc", br#"{"event":"package.published"}"#).unwrap();
        assert!(verify(
            "whsec_abc",
            br#"{"event":"package.published"}"#,
            &header
        ));
        assert!(!verify(
            "whsec_abd",
            br#"{"event":"package.published"}"#,
            &header
        ));
        assert!(!verify(
            "whsec_abc",
            br#"{"event":"package.published" }"#,
            &header
        ));
    }

    #[test]
    fn malformed_signature_headers_do_not_verify() {
        let body = b"{}";
        let good = sign("k", body).unwrap();
        assert!(!verify("k", body, good.trim_start_matches("sha256=")));
        assert!(!verify("k", body, "sha256=zz"));
        assert!(!verify("k", body, "sha1=00"));
        assert!(!verify("k", body, ""));
        assert!(!verify("k", body, &good[..good.len() - 2]));
    }
}
