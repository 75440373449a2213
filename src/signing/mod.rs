//! Registry signatures (npm-protocol.md §12): the keys `/-/npm/v1/keys` publishes, the
//! `dist.signatures` of every version, rotation and the backfill of versions older than their key.
//!
//! The keys live in the metadata store, the private halves sealed under `PACKR_SECRET_KEY`, so
//! every instance on a shared database signs with the same key and `packr keys rotate` reaches
//! them all: each instance re-reads the key list when its copy is older than [`REFRESH`]. A
//! rotation sets the old key's `expires` [`ROTATION_GRACE`] ahead, so a version an instance signs
//! with the old key before it sees the new one still verifies (npm rejects a signature on a
//! version published at or after its key's `expires`). Signing happens once, at publish; reads
//! only copy the stored signature into the document.

pub mod key;

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use serde_json::json;

use crate::audit::AuditEvent;
use crate::auth::secrets::SecretSource;
use crate::clock;
use crate::store::Store;
use crate::store::keys::{AddKey, StoredKey, VersionSignature};
use crate::store::packages::Signature;
use crate::webhooks::{Sealed, SecretBox};
pub use key::RegistryKey;

/// How old an instance's copy of the key list may get before it reads it again.
pub const REFRESH: Duration = Duration::from_secs(2);
/// How long after a rotation the old key still signs validly (instances pick up the new key
/// within [`REFRESH`]; the rest covers clocks that differ between machines).
pub const ROTATION_GRACE: Duration = Duration::from_secs(300);
/// Versions signed per backfill transaction.
const BACKFILL_BATCH: u32 = 500;
/// The variable (or file in `PACKR_SECRETS_DIR`) an operator pins the signing key with.
pub const PINNED_KEY_VAR: &str = "PACKR_SIGNING_KEY";

/// The key list as one instance last read it.
struct KeyRing {
    /// The key new versions are signed with.
    active: Option<RegistryKey>,
    /// `/-/npm/v1/keys`, rendered once per read of the list.
    document: Bytes,
    read_at: Instant,
}

/// Signs versions and publishes the keys.
#[derive(Clone)]
pub struct Signing {
    store: Store,
    sealer: SecretBox,
    ring: Arc<RwLock<Arc<KeyRing>>>,
}

/// A key as `packr keys list` shows it.
#[derive(Debug, Clone)]
pub struct KeyInfo {
    /// The key's id.
    pub keyid: String,
    /// When it was added (ISO-8601).
    pub created: String,
    /// When it expires (ISO-8601), `None` for the active key.
    pub expires: Option<String>,
}

/// The operator's pinned key (`PACKR_SIGNING_KEY`, or the file of that name in
/// `PACKR_SECRETS_DIR`), if any.
pub fn pinned_key(secrets: &SecretSource) -> anyhow::Result<Option<RegistryKey>> {
    if let Some(text) = std::env::var(PINNED_KEY_VAR)
        .ok()
        .filter(|t| !t.trim().is_empty())
    {
        return RegistryKey::parse(&text)
            .map(Some)
            .with_context(|| PINNED_KEY_VAR.to_owned());
    }
    if let Some(dir) = &secrets.dir {
        let path = dir.join(PINNED_KEY_VAR);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                return RegistryKey::parse(&text)
                    .map(Some)
                    .with_context(|| path.display().to_string());
            }
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
                return Err(err).with_context(|| format!("reading {}", path.display()));
            }
            Err(_) => {}
        }
    }
    Ok(None)
}

fn stored(key: &RegistryKey, sealer: &SecretBox) -> anyhow::Result<StoredKey> {
    let sealed = key.seal(sealer)?;
    Ok(StoredKey {
        keyid: key.keyid().to_owned(),
        public_key: key.public_key().to_owned(),
        sealed_private: sealed.ciphertext,
        nonce: sealed.nonce,
        created_at: clock::now_ms(),
        expires_at: None,
    })
}

impl Signing {
    /// Makes sure the store has an active key (the pinned one, imported once; else one made now
    /// unless another instance made one), then reads the key list.
    pub async fn start(
        store: Store,
        sealer: SecretBox,
        pinned: Option<RegistryKey>,
    ) -> anyhow::Result<Self> {
        let (key, when, action) = match pinned {
            Some(key) => (key, AddKey::IfUnknown, "signing_key.imported"),
            None => (
                RegistryKey::generate()?,
                AddKey::IfNoneActive,
                "signing_key.created",
            ),
        };
        let event = AuditEvent::by_operator(action, json!({ "keyid": key.keyid() }));
        // An imported key replaces the active one like a rotation: instances still running with
        // the old key (a rolling update) keep signing validly until they see the new one.
        let expire_active_at = clock::now_ms() + ROTATION_GRACE.as_millis() as i64;
        let added = store
            .add_signing_key(stored(&key, &sealer)?, when, expire_active_at, vec![event])
            .await?;
        if added {
            tracing::info!(keyid = key.keyid(), "registry signing key added");
        } else if when == AddKey::IfUnknown {
            tracing::info!(
                keyid = key.keyid(),
                "{PINNED_KEY_VAR} is known already; the store's active key signs"
            );
        }
        let ring = read_ring(&store, &sealer).await?;
        if ring.active.is_none() {
            anyhow::bail!("the store holds no active signing key");
        }
        Ok(Self {
            store,
            sealer,
            ring: Arc::new(RwLock::new(Arc::new(ring))),
        })
    }

    async fn ring(&self) -> anyhow::Result<Arc<KeyRing>> {
        let current = self
            .ring
            .read()
            .map_err(|_| anyhow::anyhow!("key ring lock poisoned"))?
            .clone();
        if current.read_at.elapsed() < REFRESH {
            return Ok(current);
        }
        let fresh = match read_ring(&self.store, &self.sealer).await {
            Ok(ring) => Arc::new(ring),
            // A store that does not answer for a moment does not stop publishing: the key list
            // read last is still good, and the next call tries again.
            Err(err) => {
                tracing::warn!(error = %format!("{err:#}"), "could not re-read the signing keys");
                return Ok(current);
            }
        };
        *self
            .ring
            .write()
            .map_err(|_| anyhow::anyhow!("key ring lock poisoned"))? = fresh.clone();
        Ok(fresh)
    }

    /// The signatures a version is published with (one, by the active key).
    pub async fn sign(
        &self,
        name: &str,
        version: &str,
        integrity: &str,
    ) -> anyhow::Result<Vec<Signature>> {
        let ring = self.ring().await?;
        let Some(active) = &ring.active else {
            return Ok(Vec::new());
        };
        Ok(vec![Signature {
            keyid: active.keyid().to_owned(),
            sig: active.sign(&key::message(name, version, integrity))?,
        }])
    }

    /// `GET /-/npm/v1/keys`: every key ever used, expired ones with their `expires`.
    pub async fn keys_document(&self) -> anyhow::Result<Bytes> {
        Ok(self.ring().await?.document.clone())
    }

    /// Signs, in batches, every version that has no signature (published before the key
    /// existed); answers the packages whose documents changed. Instances doing this at once store
    /// each signature once: the store keeps the first.
    pub async fn backfill(&self) -> anyhow::Result<Vec<String>> {
        let mut changed = Vec::new();
        loop {
            let batch = self.store.unsigned_versions(BACKFILL_BATCH).await?;
            if batch.is_empty() {
                break;
            }
            let ring = self.ring().await?;
            let Some(active) = ring.active.clone() else {
                break;
            };
            let count = batch.len();
            let signatures = tokio::task::spawn_blocking(move || {
                batch
                    .into_iter()
                    .map(|v| {
                        Ok(VersionSignature {
                            sig: active.sign(&key::message(
                                &v.package,
                                &v.version,
                                &v.integrity,
                            ))?,
                            keyid: active.keyid().to_owned(),
                            package: v.package,
                            version: v.version,
                        })
                    })
                    .collect::<anyhow::Result<Vec<_>>>()
            })
            .await
            .context("signing a backfill batch")??;
            let packages = self.store.add_signatures(signatures).await?;
            tracing::info!(
                versions = count,
                packages = packages.len(),
                "signed versions published before the signing key"
            );
            if packages.is_empty() {
                // Another instance stored them all; what is left is its to finish.
                let left = self.store.unsigned_versions(BACKFILL_BATCH).await?;
                if left.len() >= count {
                    break;
                }
            }
            changed.extend(packages);
        }
        Ok(changed)
    }
}

/// Adds a new active key and gives the old one its `expires` (`packr keys rotate`); answers the
/// new key's id.
pub async fn rotate(store: &Store, sealer: &SecretBox) -> anyhow::Result<String> {
    let key = RegistryKey::generate()?;
    let now = clock::now_ms();
    let expires = now + ROTATION_GRACE.as_millis() as i64;
    let previous: Vec<String> = store
        .signing_keys()
        .await?
        .into_iter()
        .filter(|k| k.expires_at.is_none())
        .map(|k| k.keyid)
        .collect();
    let event = AuditEvent::by_operator(
        "signing_key.rotated",
        json!({ "keyid": key.keyid(), "expired": previous, "expires": clock::iso(expires) }),
    );
    store
        .add_signing_key(stored(&key, sealer)?, AddKey::Always, expires, vec![event])
        .await?;
    Ok(key.keyid().to_owned())
}

/// Every key, oldest first (`packr keys list`).
pub async fn list(store: &Store) -> anyhow::Result<Vec<KeyInfo>> {
    Ok(store
        .signing_keys()
        .await?
        .into_iter()
        .map(|k| KeyInfo {
            keyid: k.keyid,
            created: clock::iso(k.created_at),
            expires: k.expires_at.map(clock::iso),
        })
        .collect())
}

async fn read_ring(store: &Store, sealer: &SecretBox) -> anyhow::Result<KeyRing> {
    let keys = store.signing_keys().await?;
    let active = match keys.iter().rev().find(|k| k.expires_at.is_none()) {
        Some(k) => Some(RegistryKey::open(
            sealer,
            &Sealed {
                ciphertext: k.sealed_private.clone(),
                nonce: k.nonce.clone(),
            },
        )?),
        None => None,
    };
    let listed: Vec<_> = keys
        .iter()
        .map(|k| {
            json!({
                "expires": k.expires_at.map(clock::iso),
                "keyid": k.keyid,
                "keytype": "ecdsa-sha2-nistp256",
                "scheme": "ecdsa-sha2-nistp256",
                "key": k.public_key,
            })
        })
        .collect();
    let document = serde_json::to_vec(&json!({ "keys": listed }))?;
    Ok(KeyRing {
        active,
        document: document.into(),
        read_at: Instant::now(),
    })
}
