//! Packuments: the full and abbreviated documents npm-protocol.md §3.3-3.5 describe, rendered once
//! per write into bytes with ETags. `dist.tarball` is derived from the public URL here, never stored.

use std::io::Write;

use flate2::Compression;
use flate2::write::GzEncoder;
use md5::Md5;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::RegistryError;
use super::cache::{PackumentSet, Rendered};
use crate::clock;
use crate::store::packages::{PackageRecord, VersionRow};

/// Version fields kept in the abbreviated document (npm's 2024 list, plus `libc` and
/// `bundledDependencies`, which pnpm and npm read).
const ABBREVIATED_FIELDS: &[&str] = &[
    "name",
    "version",
    "deprecated",
    "dependencies",
    "acceptDependencies",
    "optionalDependencies",
    "devDependencies",
    "bundleDependencies",
    "bundledDependencies",
    "peerDependencies",
    "peerDependenciesMeta",
    "bin",
    "directories",
    "dist",
    "engines",
    "_hasShrinkwrap",
    "hasInstallScript",
    "funding",
    "cpu",
    "os",
    "libc",
];

/// Root fields hoisted from the version `latest` points to.
const HOISTED_FIELDS: &[&str] = &[
    "description",
    "author",
    "license",
    "homepage",
    "repository",
    "bugs",
    "keywords",
    "contributors",
    "readmeFilename",
];

/// The canonical tarball URL: `<base>/<name>/-/<name without scope>-<version>.tgz`.
pub fn tarball_url(base_url: &str, name: &str, version: &str) -> String {
    let bare = name.rsplit('/').next().unwrap_or(name);
    format!("{base_url}/{name}/-/{bare}-{version}.tgz")
}

/// `_rev`: `<write count>-<32 hex>`, safe to paste into a URL path unescaped.
pub fn rev(name: &str, rev: i64) -> String {
    let digest = Md5::digest(format!("{name}:{rev}").as_bytes());
    format!("{rev}-{}", hex::encode(digest))
}

/// The full version object of one stored version.
pub fn version_object(
    name: &str,
    row: &VersionRow,
    base_url: &str,
) -> Result<Value, RegistryError> {
    let mut manifest: Map<String, Value> = serde_json::from_str(&row.manifest).map_err(|e| {
        RegistryError::Internal(format!(
            "stored manifest of {name}@{} is corrupt: {e}",
            row.version
        ))
    })?;
    let dist = manifest
        .entry("dist")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(dist) = dist {
        dist.insert(
            "tarball".into(),
            Value::String(tarball_url(base_url, name, &row.version)),
        );
        if !row.signatures.is_empty() {
            dist.insert("signatures".into(), json!(row.signatures));
        }
        // Stored as a path (provenance.rs); npm needs an absolute URL.
        if let Some(Value::String(url)) = dist
            .get_mut("attestations")
            .and_then(|a| a.get_mut("url"))
            .filter(|u| u.as_str().is_some_and(|u| u.starts_with('/')))
        {
            *url = format!("{base_url}{url}");
        }
    }
    if let Some(message) = &row.deprecated {
        manifest.insert("deprecated".into(), Value::String(message.clone()));
    }
    Ok(Value::Object(manifest))
}

fn abbreviate(full: &Value) -> Value {
    let Value::Object(fields) = full else {
        return full.clone();
    };
    let kept = fields
        .iter()
        .filter(|(key, _)| ABBREVIATED_FIELDS.contains(&key.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Value::Object(kept)
}

/// Renders both documents of a package for a public base URL.
pub fn render(record: &PackageRecord, base_url: &str) -> Result<PackumentSet, RegistryError> {
    let name = record.name.as_str();
    let mut versions = Map::new();
    let mut abbreviated_versions = Map::new();
    let mut time = Map::new();
    time.insert("created".into(), clock::iso(record.created_at).into());
    time.insert("modified".into(), clock::iso(record.modified_at).into());
    for row in &record.versions {
        let object = version_object(name, row, base_url)?;
        abbreviated_versions.insert(row.version.clone(), abbreviate(&object));
        versions.insert(row.version.clone(), object);
        time.insert(row.version.clone(), clock::iso(row.published_at).into());
    }
    let maintainers: Vec<Value> = record
        .maintainers
        .iter()
        .map(|(name, email)| json!({ "name": name, "email": email }))
        .collect();
    let rev = rev(name, record.rev);

    let mut full = Map::new();
    full.insert("_id".into(), name.into());
    full.insert("_rev".into(), rev.clone().into());
    full.insert("name".into(), name.into());
    full.insert("dist-tags".into(), json!(record.dist_tags));
    let latest = record.dist_tags.get("latest");
    if let Some(Value::Object(latest)) = latest.and_then(|v| versions.get(v)) {
        for field in HOISTED_FIELDS {
            if let Some(value) = latest.get(*field) {
                full.insert((*field).into(), value.clone());
            }
        }
    }
    let readme = latest
        .and_then(|v| record.versions.iter().find(|row| &row.version == v))
        .and_then(|row| row.readme.clone())
        .unwrap_or_default();
    full.insert("readme".into(), readme.into());
    full.insert("maintainers".into(), Value::Array(maintainers.clone()));
    full.insert("time".into(), Value::Object(time));
    full.insert("users".into(), json!({}));
    full.insert("versions".into(), Value::Object(versions));

    let abbreviated = json!({
        "name": name,
        "_rev": rev,
        "modified": clock::iso(record.modified_at),
        "dist-tags": record.dist_tags,
        "maintainers": maintainers,
        "versions": abbreviated_versions,
    });
    Ok(PackumentSet {
        full: encode(&Value::Object(full))?,
        abbreviated: encode(&abbreviated)?,
        last_modified: clock::http_date(record.modified_at),
    })
}

fn encode(document: &Value) -> Result<Rendered, RegistryError> {
    let plain = serde_json::to_vec(document).map_err(|e| RegistryError::Internal(e.to_string()))?;
    let mut encoder = GzEncoder::new(Vec::with_capacity(plain.len() / 4), Compression::default());
    encoder
        .write_all(&plain)
        .map_err(|e| RegistryError::Internal(e.to_string()))?;
    let gzip = encoder
        .finish()
        .map_err(|e| RegistryError::Internal(e.to_string()))?;
    let tag = hex::encode(&Sha256::digest(&plain)[..16]);
    Ok(Rendered {
        plain: plain.into(),
        gzip: gzip.into(),
        etag: format!("\"{tag}\""),
        gzip_etag: format!("\"{tag}-gz\""),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tarball_urls_keep_the_scope_slash_and_drop_it_from_the_file() {
        assert_eq!(
            tarball_url("http://r", "@acme/b", "2.0.0"),
            "http://r/@acme/b/-/b-2.0.0.tgz"
        );
        assert_eq!(
            tarball_url("http://r", "left-pad", "1.0.0-rc.1"),
            "http://r/left-pad/-/left-pad-1.0.0-rc.1.tgz"
        );
    }

    #[test]
    fn revs_change_with_every_write_and_are_url_safe() {
        let a = rev("x", 1);
        let b = rev("x", 2);
        assert_ne!(a, b);
        assert!(a.starts_with("1-") && a.len() == 34);
        assert!(a.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-'));
    }
}
