//! Hook secrets: generated here, shown once, kept encrypted with AES-256-GCM under the server's
//! webhook key (`PACKR_SECRET_KEY`, 32 bytes in hex, or `<data dir>/secrets/webhook.key`).

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{Aead, KeyInit, Nonce};
use anyhow::bail;

/// What a hook secret starts with, so people can tell it from other credentials.
const PREFIX: &str = "whsec_";
const NONCE_LEN: usize = 12;

/// A new random hook secret: `whsec_` and 32 random bytes in hex.
pub fn generate() -> String {
    let mut bytes = [0u8; 32];
    rand::fill(&mut bytes[..]);
    format!("{PREFIX}{}", hex::encode(bytes))
}

/// A secret as stored: ciphertext with its tag, and the nonce it was sealed with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    /// AES-256-GCM ciphertext and tag.
    pub ciphertext: Vec<u8>,
    /// The 96-bit nonce, unique per secret.
    pub nonce: Vec<u8>,
}

/// Seals and opens hook secrets with the server's webhook key.
#[derive(Clone)]
pub struct SecretBox {
    cipher: Aes256Gcm,
}

impl SecretBox {
    /// A box for a 32-byte key.
    pub fn from_key(key: &[u8]) -> anyhow::Result<Self> {
        if key.len() != 32 {
            bail!(
                "the webhook secret key must be 32 bytes (64 hex digits), not {}",
                key.len()
            );
        }
        let cipher = Aes256Gcm::new_from_slice(key)
            .map_err(|_| anyhow::anyhow!("the webhook secret key has the wrong length"))?;
        Ok(Self { cipher })
    }

    /// Encrypts `secret` under a fresh random nonce.
    pub fn seal(&self, secret: &str) -> Result<Sealed, String> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::fill(&mut nonce[..]);
        let ciphertext = self
            .cipher
            .encrypt(&Nonce::<Aes256Gcm>::from(nonce), secret.as_bytes())
            .map_err(|_| "encrypting a webhook secret failed".to_owned())?;
        Ok(Sealed {
            ciphertext,
            nonce: nonce.to_vec(),
        })
    }

    /// Decrypts a stored secret; fails when the key is not the one it was sealed with.
    pub fn open(&self, sealed: &Sealed) -> Result<String, String> {
        let nonce = Nonce::<Aes256Gcm>::try_from(sealed.nonce.as_slice())
            .map_err(|_| "a stored webhook secret has a malformed nonce".to_owned())?;
        let plain = self
            .cipher
            .decrypt(&nonce, sealed.ciphertext.as_slice())
            .map_err(|_| {
                "a stored webhook secret does not decrypt: was PACKR_SECRET_KEY or secrets/webhook.key changed?"
                    .to_owned()
            })?;
        String::from_utf8(plain).map_err(|_| "a stored webhook secret is not UTF-8".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_secret_opens_with_the_same_key_only() {
        let sealer = SecretBox::from_key(&[7; 32]).unwrap();
        let secret = generate();
        let sealed = sealer.seal(&secret).unwrap();
        assert!(
            !sealed
                .ciphertext
                .windows(8)
                .any(|w| secret.as_bytes().windows(8).any(|s| s == w))
        );
        assert_eq!(sealer.open(&sealed).unwrap(), secret);
        let other = SecretBox::from_key(&[8; 32]).unwrap();
        assert!(other.open(&sealed).is_err());
    }

    #[test]
    fn every_seal_uses_a_new_nonce() {
        let sealer = SecretBox::from_key(&[1; 32]).unwrap();
        assert_ne!(sealer.seal("same").unwrap(), sealer.seal("same").unwrap());
    }

    #[test]
    fn generated_secrets_are_prefixed_and_random() {
        let (a, b) = (generate(), generate());
        assert!(a.starts_with("whsec_") && a.len() == 6 + 64, "{a}");
        assert_ne!(a, b);
    }

    #[test]
    fn a_key_of_the_wrong_length_is_refused() {
        assert!(SecretBox::from_key(&[0; 16]).is_err());
    }
}
