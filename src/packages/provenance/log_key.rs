//! A transparency log's public key, as a trust root's `tlogs[].publicKey.rawBytes` carries it
//! (DER SubjectPublicKeyInfo): ECDSA P-256 (Rekor v1), P-384, or Ed25519 (Rekor v2).

use p256::ecdsa::signature::hazmat::PrehashVerifier;
use sha2::{Digest, Sha256, Sha384};
use x509_cert::der::Decode;
use x509_cert::der::asn1::ObjectIdentifier;
use x509_cert::spki::SubjectPublicKeyInfoOwned;

const EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const P384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
const ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");

/// A key a log signs its checkpoints and entry timestamps with.
pub enum LogKey {
    /// ECDSA over SHA-256, DER signatures.
    P256(p256::ecdsa::VerifyingKey),
    /// ECDSA over SHA-384, DER signatures.
    P384(p384::ecdsa::VerifyingKey),
    /// Ed25519 (the 32-byte key).
    Ed25519(Vec<u8>),
}

impl LogKey {
    /// Reads a DER SubjectPublicKeyInfo.
    pub fn from_spki(der: &[u8]) -> Result<Self, String> {
        let spki = SubjectPublicKeyInfoOwned::from_der(der)
            .map_err(|e| format!("not a DER SubjectPublicKeyInfo: {e}"))?;
        let point = spki
            .subject_public_key
            .as_bytes()
            .ok_or("the public key is not a whole number of bytes")?;
        let algorithm = spki.algorithm.oid;
        if algorithm == ED25519 {
            if point.len() != 32 {
                return Err("an Ed25519 key must be 32 bytes".into());
            }
            return Ok(Self::Ed25519(point.to_vec()));
        }
        if algorithm != EC_PUBLIC_KEY {
            return Err(format!(
                "its algorithm {algorithm} is neither ECDSA nor Ed25519"
            ));
        }
        let curve = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.decode_as::<ObjectIdentifier>().ok());
        match curve {
            Some(P256) => p256::ecdsa::VerifyingKey::from_sec1_bytes(point)
                .map(Self::P256)
                .map_err(|_| "not a P-256 point".into()),
            Some(P384) => p384::ecdsa::VerifyingKey::from_sec1_bytes(point)
                .map(Self::P384)
                .map_err(|_| "not a P-384 point".into()),
            _ => Err("its curve is neither P-256 nor P-384".into()),
        }
    }

    /// Whether `signature` is this key's over `message`.
    pub fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        match self {
            Self::P256(key) => p256::ecdsa::Signature::from_der(signature)
                .is_ok_and(|s| key.verify_prehash(&Sha256::digest(message), &s).is_ok()),
            Self::P384(key) => p384::ecdsa::Signature::from_der(signature)
                .is_ok_and(|s| key.verify_prehash(&Sha384::digest(message), &s).is_ok()),
            Self::Ed25519(key) => {
                ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, key)
                    .verify(message, signature)
                    .is_ok()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    #[test]
    fn rekor_keys_of_the_public_trust_root_load() {
        let b64 = base64::engine::general_purpose::STANDARD;
        let p256 = b64.decode("MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE2G2Y+2tabdTV5BcGiBIx0a9fAFwrkBbmLSGtks4L3qX6yYY0zufBnhC8Ur/iy55GhWP/9A/bY2LhC30M9+RYtw==").unwrap();
        assert!(matches!(LogKey::from_spki(&p256), Ok(LogKey::P256(_))));
        let ed = b64
            .decode("MCowBQYDK2VwAyEAt8rlp1knGwjfbcXAYPYAkn0XiLz1x8O4t0YkEhie244=")
            .unwrap();
        assert!(matches!(LogKey::from_spki(&ed), Ok(LogKey::Ed25519(k)) if k.len() == 32));
        assert!(LogKey::from_spki(b"nonsense").is_err());
    }
}
