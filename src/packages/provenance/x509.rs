//! The little X.509 Packr needs for Sigstore: ECDSA (P-256 or P-384) certificates, who issued
//! them, when they were valid, and signatures made with their keys.

use p256::ecdsa::signature::hazmat::PrehashVerifier;
use sha2::{Digest, Sha256, Sha384};
use x509_cert::Certificate;
use x509_cert::der::asn1::ObjectIdentifier;
use x509_cert::der::{Decode, Encode};

const ECDSA_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
const ECDSA_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.3");

/// A parsed certificate.
pub struct Cert(Certificate);

impl Cert {
    /// Parses DER.
    pub fn parse(der: &[u8]) -> Result<Self, String> {
        Certificate::from_der(der)
            .map(Self)
            .map_err(|e| format!("not an X.509 certificate: {e}"))
    }

    /// Whether `unix_seconds` falls within the certificate's validity.
    pub fn valid_at(&self, unix_seconds: i64) -> bool {
        let validity = &self.0.tbs_certificate.validity;
        let not_before = validity.not_before.to_unix_duration().as_secs();
        let not_after = validity.not_after.to_unix_duration().as_secs();
        u64::try_from(unix_seconds).is_ok_and(|t| not_before <= t && t <= not_after)
    }

    /// Whether `self` names `issuer` as its issuer and carries `issuer`'s signature.
    pub fn issued_by(&self, issuer: &Cert) -> Result<(), String> {
        if self.0.tbs_certificate.issuer != issuer.0.tbs_certificate.subject {
            return Err("its issuer is not the CA's subject".into());
        }
        let tbs = self
            .0
            .tbs_certificate
            .to_der()
            .map_err(|e| format!("cannot re-encode the certificate: {e}"))?;
        let digest = match self.0.signature_algorithm.oid {
            ECDSA_SHA256 => Sha256::digest(&tbs).to_vec(),
            ECDSA_SHA384 => Sha384::digest(&tbs).to_vec(),
            other => return Err(format!("its signature algorithm {other} is not ECDSA")),
        };
        let signature = self
            .0
            .signature
            .as_bytes()
            .ok_or("its signature is not a whole number of bytes")?;
        issuer.verify_prehash(&digest, signature)
    }

    /// Checks an ECDSA signature (DER) over SHA-256 of `message` with the certificate's key.
    pub fn verify_sha256(&self, message: &[u8], signature: &[u8]) -> Result<(), String> {
        self.verify_prehash(&Sha256::digest(message), signature)
    }

    fn verify_prehash(&self, digest: &[u8], signature: &[u8]) -> Result<(), String> {
        let point = self
            .0
            .tbs_certificate
            .subject_public_key_info
            .subject_public_key
            .as_bytes()
            .ok_or("the public key is not a whole number of bytes")?;
        // The uncompressed point's length says the curve: 65 bytes P-256, 97 bytes P-384.
        let verified = match point.len() {
            65 => {
                let key = p256::ecdsa::VerifyingKey::from_sec1_bytes(point)
                    .map_err(|_| "the public key is not a P-256 point")?;
                let signature = p256::ecdsa::Signature::from_der(signature)
                    .map_err(|_| "the signature is not a DER ECDSA signature")?;
                key.verify_prehash(digest, &signature).is_ok()
            }
            97 => {
                let key = p384::ecdsa::VerifyingKey::from_sec1_bytes(point)
                    .map_err(|_| "the public key is not a P-384 point")?;
                let signature = p384::ecdsa::Signature::from_der(signature)
                    .map_err(|_| "the signature is not a DER ECDSA signature")?;
                key.verify_prehash(digest, &signature).is_ok()
            }
            _ => return Err("the key is neither ECDSA P-256 nor P-384".into()),
        };
        if verified {
            Ok(())
        } else {
            Err("the signature does not match".into())
        }
    }
}
