//! PostgreSQL side of [`crate::store::KeyStore`]. Instances run these concurrently: adding a key
//! holds the advisory lock `signing:keys`, and storing backfilled signatures `signing:backfill`,
//! so instances starting together add one key and store each signature once.

use crate::audit::AuditEvent;
use crate::clock;
use crate::store::keys::{AddKey, StoredKey, UnsignedVersion, VersionSignature};
use crate::store::{Change, StoreError};

use super::packages::{exec, lock, opt, rows};

#[async_trait::async_trait]
impl crate::store::KeyStore for super::Postgres {
    async fn signing_keys(&self) -> Result<Vec<StoredKey>, StoreError> {
        let client = self.pool().get().await?;
        Ok(rows(
            &client,
            "SELECT keyid, public_key, sealed_private, nonce, created_at, expires_at
             FROM signing_keys ORDER BY created_at, keyid COLLATE \"C\"",
            &[],
        )
        .await?
        .into_iter()
        .map(|row| StoredKey {
            keyid: row.get(0),
            public_key: row.get(1),
            sealed_private: row.get(2),
            nonce: row.get(3),
            created_at: row.get(4),
            expires_at: row.get(5),
        })
        .collect())
    }

    async fn add_signing_key(
        &self,
        key: StoredKey,
        when: AddKey,
        expire_active_at: i64,
        events: Vec<AuditEvent>,
    ) -> Result<bool, StoreError> {
        let mut client = self.pool().get().await?;
        let tx = client.transaction().await?;
        lock(&tx, "signing:keys").await?;
        let allowed = match when {
            AddKey::Always => true,
            AddKey::IfNoneActive => opt(
                &tx,
                "SELECT 1 FROM signing_keys WHERE expires_at IS NULL LIMIT 1",
                &[],
            )
            .await?
            .is_none(),
            AddKey::IfUnknown => opt(
                &tx,
                "SELECT 1 FROM signing_keys WHERE keyid = $1",
                &[&key.keyid],
            )
            .await?
            .is_none(),
        };
        if !allowed {
            return Ok(false);
        }
        exec(
            &tx,
            "UPDATE signing_keys SET expires_at = $1 WHERE expires_at IS NULL",
            &[&expire_active_at],
        )
        .await?;
        exec(
            &tx,
            "INSERT INTO signing_keys (keyid, public_key, sealed_private, nonce, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                &key.keyid,
                &key.public_key,
                &key.sealed_private,
                &key.nonce,
                &key.created_at,
                &key.expires_at,
            ],
        )
        .await?;
        super::events::record_all(&tx, &events).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn unsigned_versions(&self, limit: u32) -> Result<Vec<UnsignedVersion>, StoreError> {
        let client = self.pool().get().await?;
        Ok(rows(
            &client,
            "SELECT v.package, v.version, v.integrity FROM versions v
             WHERE NOT EXISTS (SELECT 1 FROM version_signatures s
                               WHERE s.package = v.package AND s.version = v.version)
             ORDER BY v.package COLLATE \"C\", v.version COLLATE \"C\" LIMIT $1",
            &[&i64::from(limit)],
        )
        .await?
        .into_iter()
        .map(|row| UnsignedVersion {
            package: row.get(0),
            version: row.get(1),
            integrity: row.get(2),
        })
        .collect())
    }

    async fn add_signatures(
        &self,
        signatures: Vec<VersionSignature>,
    ) -> Result<Vec<String>, StoreError> {
        let mut client = self.pool().get().await?;
        let tx = client.transaction().await?;
        lock(&tx, "signing:backfill").await?;
        let mut changed: Vec<String> = Vec::new();
        for signature in &signatures {
            let added = exec(
                &tx,
                "INSERT INTO version_signatures (package, version, keyid, sig)
                 SELECT $1, $2, $3, $4
                 WHERE EXISTS (SELECT 1 FROM versions WHERE package = $1 AND version = $2)
                   AND NOT EXISTS (SELECT 1 FROM version_signatures
                                   WHERE package = $1 AND version = $2)",
                &[
                    &signature.package,
                    &signature.version,
                    &signature.keyid,
                    &signature.sig,
                ],
            )
            .await?;
            if added > 0 && !changed.contains(&signature.package) {
                changed.push(signature.package.clone());
            }
        }
        // The documents of these packages changed: `_rev` moves and every instance forgets them.
        let now = clock::now_ms();
        for package in &changed {
            exec(
                &tx,
                "UPDATE packages SET rev = rev + 1, modified_at = $2 WHERE name = $1",
                &[package, &now],
            )
            .await?;
            super::changes::announce(&tx, &Change::Package(package.clone())).await?;
        }
        tx.commit().await?;
        Ok(changed)
    }
}
