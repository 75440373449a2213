//! The registry-signing part of the metadata store seam: the ECDSA keys versions are signed with
//! (kept in the store so every instance signs with the same key and a rotation reaches all of
//! them), and the signatures of versions published before their key existed (the backfill).
//! A version's signature is written with the version itself, by `commit_publish`.

use super::StoreError;
use crate::audit::AuditEvent;

/// One signing key as stored. The private key is sealed with the server's `PACKR_SECRET_KEY`;
/// the store never sees it in the clear.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredKey {
    /// `SHA256:<base64 of the SHA-256 of the DER public key>`, what `dist.signatures` name.
    pub keyid: String,
    /// Base64 of the DER SubjectPublicKeyInfo, as `/-/npm/v1/keys` serves it.
    pub public_key: String,
    /// AES-256-GCM ciphertext of the private scalar (hex).
    pub sealed_private: Vec<u8>,
    /// The nonce it was sealed with.
    pub nonce: Vec<u8>,
    /// When the key was added (ms).
    pub created_at: i64,
    /// Versions published from this time on (ms) must not carry its signature; `None` while the
    /// key is the one new versions are signed with.
    pub expires_at: Option<i64>,
}

/// When [`KeyStore::add_signing_key`] adds its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddKey {
    /// Only when no key is active (first start; several instances starting at once add one).
    IfNoneActive,
    /// Only when no key of that keyid was ever stored (an operator's pinned key, imported once:
    /// an expired key is never brought back).
    IfUnknown,
    /// Always (a rotation).
    Always,
}

/// A version that has no signature yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsignedVersion {
    /// Package name.
    pub package: String,
    /// Version.
    pub version: String,
    /// The stored `sha512-…` integrity the signature covers.
    pub integrity: String,
}

/// A signature to store with a version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionSignature {
    /// Package name.
    pub package: String,
    /// Version.
    pub version: String,
    /// The key's id.
    pub keyid: String,
    /// Base64 DER ECDSA signature.
    pub sig: String,
}

/// Signing-key operations, implemented by every metadata store.
#[async_trait::async_trait]
pub trait KeyStore: Send + Sync {
    /// Every key ever added, oldest first.
    async fn signing_keys(&self) -> Result<Vec<StoredKey>, StoreError>;

    /// Adds `key` as the active key when `when` allows, under a lock so instances starting
    /// together agree; the key active before gets `expires_at = expire_active_at`. Records
    /// `events` only when the key was added. Answers whether it was.
    async fn add_signing_key(
        &self,
        key: StoredKey,
        when: AddKey,
        expire_active_at: i64,
        events: Vec<AuditEvent>,
    ) -> Result<bool, StoreError>;

    /// Up to `limit` versions with no signature, in a stable order.
    async fn unsigned_versions(&self, limit: u32) -> Result<Vec<UnsignedVersion>, StoreError>;

    /// Stores each signature whose version still exists and still has none (so a second
    /// instance doing the same work changes nothing), marking each package that gained one as
    /// changed (its `rev` moves, other instances are told). Answers those packages.
    async fn add_signatures(
        &self,
        signatures: Vec<VersionSignature>,
    ) -> Result<Vec<String>, StoreError>;
}
