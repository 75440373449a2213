//! One ECDSA P-256 registry key: made, imported, sealed for the store, and used to sign exactly
//! what npm verifies (npm-protocol.md §12): SHA-256 over `<name>@<version>:<integrity>`, the
//! signature DER-encoded in base64, the public key a base64 DER SubjectPublicKeyInfo and its id
//! `SHA256:` + base64 of the SHA-256 of that DER.
//!
//! RustCrypto's `p256` parses, derives and encodes keys; the signature itself is made by `ring`
//! (already linked for TLS), whose assembly P-256 signs about six times faster than `p256`'s
//! portable code (40-60 µs against 260-500 µs per signature, measured on the benchmark machine
//! under load): signing is on every publish, whose whole budget is about 1 ms of CPU.

use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use std::sync::Arc;

use p256::ecdsa::SigningKey;
use p256::pkcs8::{DecodePrivateKey, EncodePublicKey};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair};
use sha2::{Digest, Sha256};

use crate::webhooks::{Sealed, SecretBox};

/// A private key and what is published of it.
#[derive(Clone)]
pub struct RegistryKey {
    key: SigningKey,
    signer: Arc<EcdsaKeyPair>,
    rng: SystemRandom,
    keyid: String,
    public_key: String,
}

impl std::fmt::Debug for RegistryKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryKey")
            .field("keyid", &self.keyid)
            .finish_non_exhaustive()
    }
}

impl RegistryKey {
    fn new(key: SigningKey) -> anyhow::Result<Self> {
        let der = key
            .verifying_key()
            .to_public_key_der()
            .context("encoding the public key")?;
        let keyid = format!("SHA256:{}", STANDARD.encode(Sha256::digest(der.as_bytes())));
        let rng = SystemRandom::new();
        let public = key.verifying_key().to_encoded_point(false);
        let signer = EcdsaKeyPair::from_private_key_and_public_key(
            &ECDSA_P256_SHA256_ASN1_SIGNING,
            &key.to_bytes(),
            public.as_bytes(),
            &rng,
        )
        .map_err(|e| anyhow::anyhow!("loading the signing key: {e}"))?;
        Ok(Self {
            signer: Arc::new(signer),
            rng,
            public_key: STANDARD.encode(der.as_bytes()),
            keyid,
            key,
        })
    }

    /// A new random key.
    pub fn generate() -> anyhow::Result<Self> {
        // A random 32-byte string is a valid scalar but for odds of about 2^-32; draw again then.
        for _ in 0..16 {
            let mut bytes = [0u8; 32];
            rand::fill(&mut bytes[..]);
            if let Ok(key) = SigningKey::from_slice(&bytes) {
                return Self::new(key);
            }
        }
        bail!("could not draw a valid P-256 private key")
    }

    /// A key given by an operator: 64 hex digits (the private scalar), or a PEM PKCS#8
    /// (`BEGIN PRIVATE KEY`) or SEC1 (`BEGIN EC PRIVATE KEY`) P-256 private key, such as
    /// `openssl ecparam -name prime256v1 -genkey -noout | openssl pkcs8 -topk8 -nocrypt` prints.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let text = text.trim();
        let key = if text.starts_with("-----BEGIN PRIVATE KEY-----") {
            SigningKey::from_pkcs8_pem(text)
                .map_err(|e| anyhow::anyhow!("not a PKCS#8 P-256 private key: {e}"))?
        } else if text.starts_with("-----BEGIN EC PRIVATE KEY-----") {
            let secret = p256::SecretKey::from_sec1_pem(text)
                .map_err(|e| anyhow::anyhow!("not a SEC1 P-256 private key: {e}"))?;
            SigningKey::from(secret)
        } else {
            let bytes = hex::decode(text).map_err(|_| {
                anyhow::anyhow!(
                    "expected 64 hex digits or a PEM private key (BEGIN PRIVATE KEY / BEGIN EC PRIVATE KEY)"
                )
            })?;
            if bytes.len() != 32 {
                bail!(
                    "a hex P-256 private key is 32 bytes (64 hex digits), not {}",
                    bytes.len()
                );
            }
            SigningKey::from_slice(&bytes)
                .map_err(|_| anyhow::anyhow!("not a valid P-256 private key"))?
        };
        Self::new(key)
    }

    /// The key stored sealed under the server's `PACKR_SECRET_KEY`.
    pub fn open(sealer: &SecretBox, sealed: &Sealed) -> anyhow::Result<Self> {
        let hex_key = sealer.open(sealed).map_err(|_| {
            anyhow::anyhow!(
                "a stored signing key does not decrypt: was PACKR_SECRET_KEY (or secrets/webhook.key) changed?"
            )
        })?;
        Self::parse(&hex_key)
    }

    /// The private key sealed for the store.
    pub fn seal(&self, sealer: &SecretBox) -> anyhow::Result<Sealed> {
        sealer
            .seal(&hex::encode(self.key.to_bytes()))
            .map_err(|e| anyhow::anyhow!("sealing the signing key: {e}"))
    }

    /// `SHA256:<base64>`.
    pub fn keyid(&self) -> &str {
        &self.keyid
    }

    /// Base64 DER SubjectPublicKeyInfo.
    pub fn public_key(&self) -> &str {
        &self.public_key
    }

    /// The base64 DER signature of `message` (ECDSA P-256 over SHA-256), or why there is none
    /// (only when the system's random source fails).
    pub fn sign(&self, message: &str) -> anyhow::Result<String> {
        let signature = self
            .signer
            .sign(&self.rng, message.as_bytes())
            .map_err(|_| anyhow::anyhow!("ECDSA signing failed (no system randomness?)"))?;
        Ok(STANDARD.encode(signature.as_ref()))
    }
}

/// What a version's registry signature covers.
pub fn message(name: &str, version: &str, integrity: &str) -> String {
    format!("{name}@{version}:{integrity}")
}

#[cfg(test)]
mod tests {
    use p256::ecdsa::signature::Verifier;
    use p256::ecdsa::{Signature, VerifyingKey};
    use p256::pkcs8::DecodePublicKey;

    use super::*;

    #[test]
    fn a_signature_verifies_with_the_published_key_and_only_over_its_message() {
        let key = RegistryKey::generate().unwrap();
        let sig = key.sign("a@1.0.0:sha512-x").unwrap();
        let der = STANDARD.decode(key.public_key()).unwrap();
        let public = VerifyingKey::from_public_key_der(&der).unwrap();
        let signature = Signature::from_der(&STANDARD.decode(sig).unwrap()).unwrap();
        assert!(public.verify(b"a@1.0.0:sha512-x", &signature).is_ok());
        assert!(public.verify(b"a@1.0.0:sha512-y", &signature).is_err());
        let digest = Sha256::digest(&der);
        assert_eq!(key.keyid(), format!("SHA256:{}", STANDARD.encode(digest)));
    }

    #[test]
    fn keys_come_back_the_same_from_hex_from_pem_and_from_the_store() {
        let key = RegistryKey::generate().unwrap();
        let hex_text = hex::encode(key.key.to_bytes());
        assert_eq!(RegistryKey::parse(&hex_text).unwrap().keyid(), key.keyid());
        let pem =
            p256::pkcs8::EncodePrivateKey::to_pkcs8_pem(&key.key, Default::default()).unwrap();
        assert_eq!(RegistryKey::parse(&pem).unwrap().keyid(), key.keyid());
        let sealer = SecretBox::from_key(&[3; 32]).unwrap();
        let sealed = key.seal(&sealer).unwrap();
        assert_eq!(
            RegistryKey::open(&sealer, &sealed).unwrap().keyid(),
            key.keyid()
        );
        assert!(RegistryKey::open(&SecretBox::from_key(&[4; 32]).unwrap(), &sealed).is_err());
        assert!(RegistryKey::parse("abcd").is_err());
        assert!(RegistryKey::parse(&"00".repeat(32)).is_err());
    }

    /// The cost signing adds to a publish: one signature over a realistic message. Run with
    /// `cargo test --lib signing_cost -- --ignored --nocapture` (debug build: `ring`'s assembly is
    /// as fast there as in release).
    #[test]
    #[ignore = "a measurement, not a check"]
    fn signing_cost_per_publish() {
        let key = RegistryKey::generate().unwrap();
        let integrity = "sha512-FxVgek9nnFPVRbwaY7X+VnIZpURN1XDdjUZzS7k0Wv+ezBwWSlGl5ydp/M3mBAsLk9CScAp4f9YHybX4MGy6sA==";
        let rounds = 2000;
        for _ in 0..3 {
            let start = std::time::Instant::now();
            for i in 0..rounds {
                let message = message("@acme/widget", &format!("1.0.{i}"), integrity);
                std::hint::black_box(key.sign(&message).unwrap());
            }
            let per = start.elapsed().as_secs_f64() * 1e6 / f64::from(rounds);
            println!("signing: {per:.1} µs per publish");
        }
    }
}
