//! Tarball digests: computing sha512/sha1 and checking them against the `dist` fields a client sends.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sha1::Sha1;
use sha2::{Digest as _, Sha512};

/// The digests of one tarball, in the forms npm's `dist` object and the blob store use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digests {
    /// The Subresource Integrity string npm writes in `dist.integrity`: `sha512-<base64>`.
    pub sha512_integrity: String,
    /// The lowercase hex sha1 npm writes in `dist.shasum`.
    pub sha1_hex: String,
    /// The lowercase hex sha512, the tarball's content address.
    pub sha512_hex: String,
}

/// Why a tarball's digests disagree with the ones the client sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IntegrityError {
    /// A hash in `dist.integrity` does not match the tarball.
    #[error(
        "integrity mismatch: the body says {claimed} but the tarball is {actual}; the upload was altered or the metadata describes another tarball, so pack and publish again"
    )]
    IntegrityMismatch {
        /// The hash entry the client sent.
        claimed: String,
        /// The same algorithm's hash of the bytes received.
        actual: String,
    },
    /// `dist.shasum` does not match the tarball.
    #[error(
        "shasum mismatch: the body says {claimed} but the tarball's sha1 is {actual}; the upload was altered or the metadata describes another tarball, so pack and publish again"
    )]
    ShasumMismatch {
        /// The shasum the client sent.
        claimed: String,
        /// The sha1 of the bytes received, in hex.
        actual: String,
    },
    /// `dist.integrity` is not a Subresource Integrity string.
    #[error(
        "integrity {0:?} is not a Subresource Integrity string such as sha512-<base64>; send the value npm pack prints, or leave it out"
    )]
    Malformed(String),
}

impl Digests {
    /// Computes the digests of a tarball's bytes.
    pub fn of(bytes: &[u8]) -> Digests {
        let sha512 = Sha512::digest(bytes);
        Digests {
            sha512_integrity: format!("sha512-{}", STANDARD.encode(sha512.as_slice())),
            sha1_hex: hex::encode(Sha1::digest(bytes).as_slice()),
            sha512_hex: hex::encode(sha512.as_slice()),
        }
    }

    /// Our sha1 as an SRI entry, for comparing with a `sha1-` entry of `dist.integrity`.
    fn sha1_integrity(&self) -> Option<String> {
        let bytes = hex::decode(&self.sha1_hex).ok()?;
        Some(format!("sha1-{}", STANDARD.encode(bytes)))
    }
}

/// Checks the `dist.integrity` and `dist.shasum` a client sent against the digests of the bytes received.
///
/// `claimed_integrity` may hold several space-separated hashes (`sha512-… sha1-…`): every sha512
/// and sha1 entry must match, entries of other algorithms are ignored, and absent or empty claims
/// are not checked. `claimed_shasum` is hex sha1, compared case-insensitively.
pub fn check(
    digests: &Digests,
    claimed_integrity: Option<&str>,
    claimed_shasum: Option<&str>,
) -> Result<(), IntegrityError> {
    if let Some(claimed) = claimed_integrity {
        check_integrity(digests, claimed)?;
    }
    if let Some(claimed) = claimed_shasum
        && !claimed.trim().eq_ignore_ascii_case(&digests.sha1_hex)
    {
        return Err(IntegrityError::ShasumMismatch {
            claimed: claimed.to_owned(),
            actual: digests.sha1_hex.clone(),
        });
    }
    Ok(())
}

/// Checks every sha512 and sha1 entry of an SRI string.
fn check_integrity(digests: &Digests, claimed: &str) -> Result<(), IntegrityError> {
    for entry in claimed.split_whitespace() {
        // SRI allows options after the digest (`sha512-…?foo`); ssri ignores them, so do we.
        let hash = entry.split_once('?').map_or(entry, |(hash, _options)| hash);
        let Some((algorithm, digest)) = hash.split_once('-') else {
            return Err(IntegrityError::Malformed(claimed.to_owned()));
        };
        if algorithm.is_empty()
            || digest.is_empty()
            || !algorithm
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        {
            return Err(IntegrityError::Malformed(claimed.to_owned()));
        }
        let actual = match algorithm {
            "sha512" => Some(digests.sha512_integrity.clone()),
            "sha1" => digests.sha1_integrity(),
            _ => None,
        };
        if let Some(actual) = actual
            && actual != hash
        {
            return Err(IntegrityError::IntegrityMismatch {
                claimed: hash.to_owned(),
                actual,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    // Known answers for the three bytes "abc" (FIPS 180 test vectors).
    const ABC_SHA1_HEX: &str = "a9993e364706816aba3e25717850c26c9cd0d89d";
    const ABC_SHA1_SRI: &str = "sha1-qZk+NkcGgWq6PiVxeFDCbJzQ2J0=";
    const ABC_SHA512_SRI: &str = "sha512-3a81oZNherrMQXNJriBBMRLm+k6JqX6iCp7u5ktV05ohkpkqJ0/BqDa6PCOj/uu9RU1EI2Q86A4qmslPpUyknw==";

    fn abc() -> Digests {
        Digests::of(b"abc")
    }

    #[test]
    fn digests_match_the_published_test_vectors() {
        let digests = abc();
        assert_eq!(digests.sha1_hex, ABC_SHA1_HEX);
        assert_eq!(digests.sha512_integrity, ABC_SHA512_SRI);
        assert!(digests.sha512_hex.starts_with("ddaf35a193617aba"));
        assert_eq!(digests.sha512_hex.len(), 128);
    }

    #[test]
    fn matching_claims_are_accepted() {
        check(&abc(), Some(ABC_SHA512_SRI), Some(ABC_SHA1_HEX)).unwrap();
    }

    #[test]
    fn absent_claims_are_not_checked() {
        check(&abc(), None, None).unwrap();
        check(&abc(), Some(""), None).unwrap();
    }

    #[test]
    fn a_different_sha512_is_refused_naming_both_values() {
        let other = Digests::of(b"abd").sha512_integrity;
        let err = check(&abc(), Some(&other), None).unwrap_err();
        assert_eq!(
            err,
            IntegrityError::IntegrityMismatch {
                claimed: other.clone(),
                actual: ABC_SHA512_SRI.into()
            }
        );
        let message = err.to_string();
        assert!(message.starts_with(&format!(
            "integrity mismatch: the body says {other} but the tarball is {ABC_SHA512_SRI}"
        )));
    }

    #[test]
    fn every_hash_of_a_multi_hash_integrity_is_checked() {
        check(
            &abc(),
            Some(&format!("{ABC_SHA512_SRI} {ABC_SHA1_SRI}")),
            None,
        )
        .unwrap();
        let wrong_sha1 = Digests::of(b"abd").sha1_integrity().unwrap();
        let err = check(
            &abc(),
            Some(&format!("{ABC_SHA512_SRI} {wrong_sha1}")),
            None,
        )
        .unwrap_err();
        assert!(
            matches!(err, IntegrityError::IntegrityMismatch { claimed, .. } if claimed == wrong_sha1)
        );
        let wrong_sha512 = Digests::of(b"abd").sha512_integrity;
        assert!(
            check(
                &abc(),
                Some(&format!("{ABC_SHA512_SRI} {wrong_sha512}")),
                None
            )
            .is_err()
        );
    }

    #[test]
    fn without_a_sha512_entry_the_sha1_entry_is_checked_and_others_are_ignored() {
        check(&abc(), Some(ABC_SHA1_SRI), None).unwrap();
        check(
            &abc(),
            Some("sha256-ungA/xxsH0Ka0GVqySvvhBeh2OxpEyqz4nQOxHWaeWE="),
            None,
        )
        .unwrap();
        let wrong = Digests::of(b"abd").sha1_integrity().unwrap();
        assert!(check(&abc(), Some(&format!("sha256-xyz {wrong}")), None).is_err());
    }

    #[test]
    fn sri_options_after_a_question_mark_are_ignored() {
        check(&abc(), Some(&format!("{ABC_SHA512_SRI}?foo")), None).unwrap();
    }

    #[test]
    fn an_integrity_that_is_not_sri_is_refused() {
        for claimed in ["deadbeef", "sha512-", "-abc", "SHA512-abc"] {
            assert_eq!(
                check(&abc(), Some(claimed), None),
                Err(IntegrityError::Malformed(claimed.into()))
            );
        }
    }

    #[test]
    fn the_shasum_is_compared_case_insensitively() {
        check(&abc(), None, Some(&ABC_SHA1_HEX.to_uppercase())).unwrap();
    }

    #[test]
    fn a_different_shasum_is_refused_naming_both_values() {
        let err = check(&abc(), Some(ABC_SHA512_SRI), Some("0000")).unwrap_err();
        assert_eq!(
            err,
            IntegrityError::ShasumMismatch {
                claimed: "0000".into(),
                actual: ABC_SHA1_HEX.into()
            }
        );
        assert!(err.to_string().starts_with(&format!(
            "shasum mismatch: the body says 0000 but the tarball's sha1 is {ABC_SHA1_HEX}"
        )));
    }
}
