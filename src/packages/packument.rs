//! Packuments: the full and abbreviated documents npm-protocol.md §3.3-3.5 describe, rendered once
//! per write into bytes with ETags. `dist.tarball` is derived from the public URL here, never stored.

use flate2::{Compress, Compression, FlushCompress, Status};
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
pub(super) const HOISTED_FIELDS: &[&str] = &[
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

pub(super) fn abbreviate(full: &Value) -> Value {
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
    let (gzip, etag, gzip_etag) = compress_and_tag(&plain)?;
    Ok(Rendered {
        plain: plain.into(),
        gzip: gzip.into(),
        etag,
        gzip_etag,
    })
}

/// The gzip bytes, ETag and gzip ETag of a document: the one place they are made, for fresh
/// renders and stored renderings alike.
pub(super) fn compress_and_tag(plain: &[u8]) -> Result<(Vec<u8>, String, String), RegistryError> {
    let gzip = gzip(plain).map_err(|e| RegistryError::Internal(e.to_string()))?;
    let (etag, gzip_etag) = tags(plain);
    Ok((gzip, etag, gzip_etag))
}

thread_local! {
    /// A deflate state per thread, reset for each document: a new one allocates and clears a few
    /// hundred KB, which costs more than compressing a small packument.
    static DEFLATE: std::cell::RefCell<Option<Compress>> = const { std::cell::RefCell::new(None) };
}

/// `plain` gzipped at the default level: the same bytes as `flate2::write::GzEncoder` makes.
fn gzip(plain: &[u8]) -> Result<Vec<u8>, flate2::CompressError> {
    let mut out = Vec::with_capacity(plain.len() / 4 + 64);
    out.extend_from_slice(&GZIP_HEADER);
    DEFLATE.with(|cell| {
        let mut cell = cell.borrow_mut();
        let deflate = cell.get_or_insert_with(|| Compress::new(Compression::default(), false));
        deflate.reset();
        // As GzEncoder does: all the input without flushing, then the end, into at most 32 KiB
        // of output per call (how much room deflate has changes where its blocks end).
        let mut room = Vec::with_capacity(32 * 1024);
        loop {
            let read = usize::try_from(deflate.total_in()).unwrap_or(usize::MAX);
            let input = plain.get(read..).unwrap_or_default();
            let flush = if input.is_empty() {
                FlushCompress::Finish
            } else {
                FlushCompress::None
            };
            room.clear();
            let status = deflate.compress_vec(input, &mut room, flush)?;
            out.extend_from_slice(&room);
            if status == Status::StreamEnd {
                return Ok(());
            }
        }
    })?;
    gzip_trailer(&mut out, plain);
    Ok(out)
}

/// The gzip header [`gzip`] writes (GzEncoder's: no flags, no mtime, no extra flags at the
/// default level, OS unknown).
pub(super) const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255];

/// Appends a stored (uncompressed, not final) deflate block holding `bytes` at a byte boundary.
pub(super) fn stored_block(out: &mut Vec<u8>, bytes: &[u8]) -> Option<()> {
    let len = u16::try_from(bytes.len()).ok()?;
    out.push(0);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&(!len).to_le_bytes());
    out.extend_from_slice(bytes);
    Some(())
}

/// Appends the gzip trailer of `plain`: its CRC-32 and its length modulo 2^32.
pub(super) fn gzip_trailer(out: &mut Vec<u8>, plain: &[u8]) {
    let mut crc = flate2::Crc::new();
    crc.update(plain);
    out.extend_from_slice(&crc.sum().to_le_bytes());
    out.extend_from_slice(&(plain.len() as u32).to_le_bytes());
}

/// `plain` gzipped with each of `cuts` (start, length; in order, none longer than 65,535 bytes)
/// in a stored block of its own, the stream fully flushed before each (so nothing after refers
/// back across it): another text can take a cut's place in the gzip bytes with nothing
/// compressed again. Also answers where each stored block starts. `None` when a cut does not fit.
pub(super) fn gzip_around(
    plain: &[u8],
    cuts: impl IntoIterator<Item = (usize, usize)>,
) -> Option<(Vec<u8>, Vec<usize>)> {
    let mut out = Vec::with_capacity(plain.len() / 3 + 64);
    out.extend_from_slice(&GZIP_HEADER);
    let mut starts = Vec::new();
    DEFLATE.with(|cell| {
        let mut cell = cell.borrow_mut();
        let deflate = cell.get_or_insert_with(|| Compress::new(Compression::default(), false));
        deflate.reset();
        let mut from = 0;
        for (at, len) in cuts {
            feed(deflate, plain.get(from..at)?, FlushCompress::Full, &mut out)?;
            starts.push(out.len());
            stored_block(&mut out, plain.get(at..at + len)?)?;
            from = at + len;
        }
        feed(deflate, plain.get(from..)?, FlushCompress::Finish, &mut out)
    })?;
    gzip_trailer(&mut out, plain);
    Some((out, starts))
}

/// Compresses all of `input` and then flushes as `flush` asks.
fn feed(
    deflate: &mut Compress,
    input: &[u8],
    flush: FlushCompress,
    out: &mut Vec<u8>,
) -> Option<()> {
    let finish = matches!(flush, FlushCompress::Finish);
    let start = deflate.total_in();
    let mut room = Vec::with_capacity(32 * 1024);
    loop {
        let read = usize::try_from(deflate.total_in() - start).ok()?;
        room.clear();
        let status = deflate
            .compress_vec(input.get(read..)?, &mut room, flush)
            .ok()?;
        out.extend_from_slice(&room);
        let consumed = deflate.total_in() - start == input.len() as u64;
        if (finish && status == Status::StreamEnd)
            || (!finish && consumed && room.len() < room.capacity())
        {
            return Some(());
        }
    }
}

/// The plain and gzip ETags of a document, both from its plain bytes.
pub(super) fn tags(plain: &[u8]) -> (String, String) {
    let tag = hex::encode(&Sha256::digest(plain)[..16]);
    (format!("\"{tag}\""), format!("\"{tag}-gz\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_makes_gzip_encoders_bytes_with_a_reused_state() {
        use std::io::Write;
        let big: Vec<u8> = (0..300_000u32)
            .flat_map(|n| format!("{{\"v{n}\":{}}},", n % 977).into_bytes())
            .collect();
        for plain in [
            &b""[..],
            b"{}",
            b"{\"name\":\"x\"}",
            &big,
            b"again, after a big one",
        ] {
            let mut encoder = flate2::write::GzEncoder::new(Vec::new(), Compression::default());
            encoder.write_all(plain).unwrap();
            assert_eq!(gzip(plain).unwrap(), encoder.finish().unwrap());
        }
    }

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
