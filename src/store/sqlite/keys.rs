//! SQLite side of [`crate::store::KeyStore`]: signing keys and the signature backfill. The
//! writer's IMMEDIATE transaction is the lock: checks and writes of one call see no other writer.

use rusqlite::{Connection, OptionalExtension, params};

use super::events;
use crate::audit::AuditEvent;
use crate::clock;
use crate::store::StoreError;
use crate::store::keys::{AddKey, StoredKey, UnsignedVersion, VersionSignature};

fn all_keys(conn: &Connection) -> Result<Vec<StoredKey>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT keyid, public_key, sealed_private, nonce, created_at, expires_at
         FROM signing_keys ORDER BY created_at, keyid",
    )?;
    let keys = stmt
        .query_map([], |row| {
            Ok(StoredKey {
                keyid: row.get(0)?,
                public_key: row.get(1)?,
                sealed_private: row.get(2)?,
                nonce: row.get(3)?,
                created_at: row.get(4)?,
                expires_at: row.get(5)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(keys)
}

fn add_key(
    conn: &Connection,
    key: &StoredKey,
    when: AddKey,
    expire_active_at: i64,
    events: &[AuditEvent],
) -> Result<bool, StoreError> {
    let allowed = match when {
        AddKey::Always => true,
        AddKey::IfNoneActive => conn
            .query_row(
                "SELECT 1 FROM signing_keys WHERE expires_at IS NULL LIMIT 1",
                [],
                |_| Ok(()),
            )
            .optional()?
            .is_none(),
        AddKey::IfUnknown => conn
            .query_row(
                "SELECT 1 FROM signing_keys WHERE keyid = ?1",
                [&key.keyid],
                |_| Ok(()),
            )
            .optional()?
            .is_none(),
    };
    if !allowed {
        return Ok(false);
    }
    conn.execute(
        "UPDATE signing_keys SET expires_at = ?1 WHERE expires_at IS NULL",
        [expire_active_at],
    )?;
    conn.execute(
        "INSERT INTO signing_keys (keyid, public_key, sealed_private, nonce, created_at, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            key.keyid,
            key.public_key,
            key.sealed_private,
            key.nonce,
            key.created_at,
            key.expires_at
        ],
    )?;
    events::record_all(conn, events)?;
    Ok(true)
}

fn unsigned(conn: &Connection, limit: u32) -> Result<Vec<UnsignedVersion>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT v.package, v.version, v.integrity FROM versions v
         WHERE NOT EXISTS (SELECT 1 FROM version_signatures s
                           WHERE s.package = v.package AND s.version = v.version)
         ORDER BY v.package, v.version LIMIT ?1",
    )?;
    let rows = stmt
        .query_map([limit], |row| {
            Ok(UnsignedVersion {
                package: row.get(0)?,
                version: row.get(1)?,
                integrity: row.get(2)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

fn add_signatures(
    conn: &Connection,
    signatures: &[VersionSignature],
) -> Result<Vec<String>, StoreError> {
    let mut changed: Vec<String> = Vec::new();
    let mut insert = conn.prepare_cached(
        "INSERT INTO version_signatures (package, version, keyid, sig)
         SELECT ?1, ?2, ?3, ?4
         WHERE EXISTS (SELECT 1 FROM versions WHERE package = ?1 AND version = ?2)
           AND NOT EXISTS (SELECT 1 FROM version_signatures WHERE package = ?1 AND version = ?2)",
    )?;
    for signature in signatures {
        let added = insert.execute(params![
            signature.package,
            signature.version,
            signature.keyid,
            signature.sig
        ])?;
        if added > 0 && !changed.contains(&signature.package) {
            changed.push(signature.package.clone());
        }
    }
    // The documents of these packages changed: `_rev` moves, like any other write.
    let now = clock::now_ms();
    for package in &changed {
        conn.execute(
            "UPDATE packages SET rev = rev + 1, modified_at = ?2 WHERE name = ?1",
            params![package, now],
        )?;
    }
    Ok(changed)
}

#[async_trait::async_trait]
impl crate::store::KeyStore for super::Sqlite {
    async fn signing_keys(&self) -> Result<Vec<StoredKey>, StoreError> {
        self.read(all_keys).await
    }

    async fn add_signing_key(
        &self,
        key: StoredKey,
        when: AddKey,
        expire_active_at: i64,
        events: Vec<AuditEvent>,
    ) -> Result<bool, StoreError> {
        self.write(move |tx| add_key(tx, &key, when, expire_active_at, &events))
            .await
    }

    async fn unsigned_versions(&self, limit: u32) -> Result<Vec<UnsignedVersion>, StoreError> {
        self.read(move |conn| unsigned(conn, limit)).await
    }

    async fn add_signatures(
        &self,
        signatures: Vec<VersionSignature>,
    ) -> Result<Vec<String>, StoreError> {
        self.write(move |tx| add_signatures(tx, &signatures)).await
    }
}
