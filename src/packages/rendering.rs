//! Stored renderings (see `crate::store::renderings`): per-version fragments, the documents
//! assembled from them, and the splice of another public base URL into stored bytes.
//!
//! The bytes are exactly what [`packument::render`] makes of the same rows: fragments are the
//! serialization of [`packument::version_object`], and the documents keep serde_json's order
//! (object keys sorted, `versions` last), so assembling is string concatenation. Only the
//! documents' heads (tags, maintainers, `time`, hoisted fields) are serialized per write.

use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::RegistryError;
use super::cache::{PackumentSet, Rendered};
use super::packument::{self, HOISTED_FIELDS};
use crate::clock;
use crate::store::packages::VersionRow;
use crate::store::renderings::{
    Fragment, RenderSource, StoredDocument, StoredRendering, VersionSource,
};

/// Renders one version's fragments: the full and abbreviated version objects, each with the
/// positions its base URL goes at (the tarball URL, and an attestations URL when there is one),
/// the base itself left out.
pub fn fragment(name: &str, row: &VersionRow) -> Result<Fragment, RegistryError> {
    // The objects on an empty base are what the fragments must be once the bases are cut out.
    let bare_full = packument::version_object(name, row, "")?;
    let bare = (
        json_text(&bare_full)?,
        json_text(&packument::abbreviate(&bare_full))?,
    );
    // Rendered on a marker base and cut where it landed; the manifest is the publisher's text, so
    // a marker it happens to contain is passed over for another.
    for attempt in 0..64u32 {
        let marker = escaped(&format!("\u{1}packr-base-{attempt}\u{1}"))?;
        if bare.0.contains(&marker) {
            continue;
        }
        let full =
            packument::version_object(name, row, &format!("\u{1}packr-base-{attempt}\u{1}"))?;
        let abbreviated = packument::abbreviate(&full);
        if let (Some(full_at), Some(abbreviated_at)) = (
            cut(&json_text(&full)?, &marker, &bare.0),
            cut(&json_text(&abbreviated)?, &marker, &bare.1),
        ) {
            return Ok(Fragment {
                full: bare.0,
                full_at,
                abbreviated: bare.1,
                abbreviated_at,
            });
        }
    }
    Err(RegistryError::Internal(format!(
        "no base marker could be placed in the manifest of {}@{}",
        name, row.version
    )))
}

/// Where `marker` sat in `text` (little-endian `u32` offsets into the text without it), if
/// cutting every occurrence out leaves exactly `bare`.
fn cut(text: &str, marker: &str, bare: &str) -> Option<Vec<u8>> {
    let mut out = String::with_capacity(bare.len());
    let mut at = Vec::new();
    let mut from = 0;
    for (i, _) in text.match_indices(marker) {
        out.push_str(&text[from..i]);
        at.extend_from_slice(&u32::try_from(out.len()).ok()?.to_le_bytes());
        from = i + marker.len();
    }
    out.push_str(&text[from..]);
    (out == bare).then_some(at)
}

/// Little-endian `u32` offsets as stored.
fn offsets(at: &[u8]) -> impl Iterator<Item = usize> + '_ {
    at.chunks_exact(4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
}

fn json_text(value: &Value) -> Result<String, RegistryError> {
    serde_json::to_string(value).map_err(|e| RegistryError::Internal(e.to_string()))
}

/// The base URL as it appears inside a JSON string.
fn escaped(base: &str) -> Result<String, RegistryError> {
    let text = json_text(&Value::String(base.to_owned()))?;
    Ok(text[1..text.len() - 1].to_owned())
}

/// Assembles both documents of a package on `base` from its stored fragments.
pub fn assemble(source: &RenderSource, base: &str) -> Result<StoredRendering, RegistryError> {
    let name = source.name.as_str();
    let base_text = escaped(base)?;
    let mut versions: Vec<_> = source.versions.iter().collect();
    // serde_json's maps are ordered by key bytes, as `String`'s `Ord` is.
    versions.sort_unstable_by(|a, b| a.version.cmp(&b.version));

    let mut time = Map::new();
    time.insert("created".into(), clock::iso(source.created_at).into());
    time.insert("modified".into(), clock::iso(source.modified_at).into());
    for v in &versions {
        time.insert(v.version.clone(), clock::iso(v.published_at).into());
    }
    let maintainers: Vec<Value> = source
        .maintainers
        .iter()
        .map(|(name, email)| json!({ "name": name, "email": email }))
        .collect();
    let rev = packument::rev(name, source.rev);

    let mut full = Map::new();
    full.insert("_id".into(), name.into());
    full.insert("_rev".into(), rev.clone().into());
    full.insert("name".into(), name.into());
    full.insert("dist-tags".into(), json!(source.dist_tags));
    let latest = source
        .dist_tags
        .get("latest")
        .filter(|v| versions.iter().any(|row| &row.version == *v));
    let mut readme = String::new();
    if let (Some(_), Some((manifest, latest_readme))) = (latest, &source.latest) {
        // The hoisted fields are the manifest's own: `version_object` adds only `dist.tarball`
        // and `deprecated`, neither hoisted.
        let manifest: Map<String, Value> = serde_json::from_str(manifest).map_err(|e| {
            RegistryError::Internal(format!("stored manifest of {name} is corrupt: {e}"))
        })?;
        for field in HOISTED_FIELDS {
            if let Some(value) = manifest.get(*field) {
                full.insert((*field).into(), value.clone());
            }
        }
        readme = latest_readme.clone().unwrap_or_default();
    }
    full.insert("readme".into(), readme.into());
    full.insert("maintainers".into(), Value::Array(maintainers.clone()));
    full.insert("time".into(), Value::Object(time));
    full.insert("users".into(), json!({}));
    full.insert("versions".into(), json!({}));

    let abbreviated = json!({
        "name": name,
        "_rev": rev,
        "modified": clock::iso(source.modified_at),
        "dist-tags": source.dist_tags,
        "maintainers": maintainers,
        "versions": {},
    });
    let full = document(&Value::Object(full), &versions, &base_text, |f| {
        (&f.full, &f.full_at)
    })?;
    let abbreviated = document(&abbreviated, &versions, &base_text, |f| {
        (&f.abbreviated, &f.abbreviated_at)
    })?;
    Ok(StoredRendering {
        rev: source.rev,
        base: base.to_owned(),
        last_modified: clock::http_date(source.modified_at),
        full,
        abbreviated,
    })
}

/// The head's serialization with the version fragments put into its (last, empty) `versions`.
fn document(
    head: &Value,
    versions: &[&VersionSource],
    base_text: &str,
    pick: impl Fn(&Fragment) -> (&String, &[u8]),
) -> Result<StoredDocument, RegistryError> {
    let head = json_text(head)?;
    let open = head
        .strip_suffix("{}}")
        .filter(|h| h.ends_with("\"versions\":"))
        .ok_or_else(|| RegistryError::Internal("a packument head must end in versions".into()))?;
    let size: usize = versions
        .iter()
        .map(|v| {
            let (text, at) = pick(&v.fragment);
            text.len() + v.version.len() + base_text.len() * (at.len() / 4) + 4
        })
        .sum();
    let mut plain = String::with_capacity(open.len() + size + 2);
    let mut base_at = Vec::with_capacity(versions.len() * 4);
    plain.push_str(open);
    plain.push('{');
    for (i, v) in versions.iter().enumerate() {
        if i > 0 {
            plain.push(',');
        }
        plain.push_str(&json_text(&Value::String(v.version.clone()))?);
        plain.push(':');
        let (text, at) = pick(&v.fragment);
        let mut from = 0;
        for at in offsets(at) {
            let segment = text.get(from..at).ok_or_else(|| {
                RegistryError::Internal(format!("stored fragment of {} is corrupt", v.version))
            })?;
            plain.push_str(segment);
            base_at.extend_from_slice(&offset(plain.len())?);
            plain.push_str(base_text);
            from = at;
        }
        plain.push_str(text.get(from..).unwrap_or_default());
    }
    plain.push_str("}}");
    finish(plain.into_bytes(), base_at, base_text.len())
}

fn offset(at: usize) -> Result<[u8; 4], RegistryError> {
    u32::try_from(at)
        .map(u32::to_le_bytes)
        .map_err(|_| RegistryError::Internal("a packument over 4 GiB cannot be stored".into()))
}

/// Documents smaller than this keep each base URL in a stored block of its own in their gzip
/// bytes, the deflate stream cut around it, so a miss on another base splices the gzip bytes as
/// it splices the JSON, compressing nothing (the cuts cost a small document some percent of its
/// gzip size). Bigger ones are served as one deflate stream on the base they are stored on (cut
/// at every version, a 3,000-version document compresses far worse) and keep the cut bytes
/// beside it for other bases, so no miss compresses megabytes.
pub const CUT_GZIP_BELOW: usize = 64 * 1024;

fn finish(
    plain: Vec<u8>,
    base_at: Vec<u8>,
    base_len: usize,
) -> Result<StoredDocument, RegistryError> {
    let (etag, gzip_etag) = packument::tags(&plain);
    let cut = packument::gzip_around(&plain, offsets(&base_at).map(|at| (at, base_len)));
    let (mut gzip, mut cut_gzip, mut gzip_at) = (Vec::new(), Vec::new(), Vec::new());
    if let Some((bytes, starts)) = cut {
        for start in starts {
            gzip_at.extend_from_slice(&offset(start)?);
        }
        if plain.len() < CUT_GZIP_BELOW {
            gzip = bytes;
        } else {
            cut_gzip = bytes;
        }
    }
    if gzip.is_empty() {
        gzip = packument::compress_and_tag(&plain)?.0;
    }
    Ok(StoredDocument {
        plain,
        gzip,
        etag,
        gzip_etag,
        base_at,
        cut_gzip,
        gzip_at,
    })
}

fn corrupt() -> RegistryError {
    RegistryError::Internal("a stored rendering's base offsets are corrupt".into())
}

/// Gzip bytes and where their stored blocks start.
type SplicedGzip = (Vec<u8>, Vec<u8>);

/// The cut gzip bytes of `doc` with `new` in each base's stored block, for `plain` (the spliced
/// JSON); `None` when it has none (or `new` does not fit a stored block).
fn splice_gzip(
    doc: &StoredDocument,
    old: usize,
    new: &str,
    plain: &[u8],
) -> Result<Option<SplicedGzip>, RegistryError> {
    let cut = if doc.cut_gzip.is_empty() {
        &doc.gzip
    } else {
        &doc.cut_gzip
    };
    if doc.gzip_at.len() != doc.base_at.len() || new.len() > usize::from(u16::MAX) {
        return Ok(None);
    }
    let body_end = cut.len().checked_sub(8).ok_or_else(corrupt)?;
    let mut gzip = Vec::with_capacity(cut.len() + doc.gzip_at.len() * new.len());
    let mut gzip_at = Vec::with_capacity(doc.gzip_at.len());
    let mut from = 0;
    for at in offsets(&doc.gzip_at) {
        gzip.extend_from_slice(cut.get(from..at).ok_or_else(corrupt)?);
        gzip_at.extend_from_slice(&offset(gzip.len())?);
        packument::stored_block(&mut gzip, new.as_bytes()).ok_or_else(corrupt)?;
        from = at + 5 + old;
    }
    gzip.extend_from_slice(cut.get(from..body_end).ok_or_else(corrupt)?);
    packument::gzip_trailer(&mut gzip, plain);
    Ok(Some((gzip, gzip_at)))
}

/// The rendering with its tarball URLs moved to `base`, to serve: the stored bytes between base
/// URLs are copied, the JSON's and the cut gzip's, with nothing compressed again (a big
/// document's gzip is then its cut bytes).
pub fn rebase(rendering: &StoredRendering, base: &str) -> Result<StoredRendering, RegistryError> {
    rebase_with(rendering, base, true)
}

/// [`rebase`] for a rendering to be stored on `base`: compressed as a rendering made on that
/// base would be.
pub fn rebase_to_store(
    rendering: &StoredRendering,
    base: &str,
) -> Result<StoredRendering, RegistryError> {
    rebase_with(rendering, base, false)
}

fn rebase_with(
    rendering: &StoredRendering,
    base: &str,
    splice: bool,
) -> Result<StoredRendering, RegistryError> {
    let old = escaped(&rendering.base)?.len();
    let new = escaped(base)?;
    let move_doc = |doc: &StoredDocument| -> Result<StoredDocument, RegistryError> {
        let count = doc.base_at.len() / 4;
        let mut plain = Vec::with_capacity(doc.plain.len() + count * new.len());
        let mut base_at = Vec::with_capacity(doc.base_at.len());
        let mut from = 0;
        for at in offsets(&doc.base_at) {
            plain.extend_from_slice(doc.plain.get(from..at).ok_or_else(corrupt)?);
            base_at.extend_from_slice(&offset(plain.len())?);
            plain.extend_from_slice(new.as_bytes());
            from = at + old;
        }
        plain.extend_from_slice(doc.plain.get(from..).unwrap_or_default());
        if splice && let Some((gzip, gzip_at)) = splice_gzip(doc, old, &new, &plain)? {
            let (etag, gzip_etag) = packument::tags(&plain);
            return Ok(StoredDocument {
                plain,
                gzip,
                etag,
                gzip_etag,
                base_at,
                cut_gzip: Vec::new(),
                gzip_at,
            });
        }
        finish(plain, base_at, new.len())
    };
    Ok(StoredRendering {
        rev: rendering.rev,
        base: base.to_owned(),
        last_modified: rendering.last_modified.clone(),
        full: move_doc(&rendering.full)?,
        abbreviated: move_doc(&rendering.abbreviated)?,
    })
}

/// The rendering as the cache holds it (no copy of the bytes).
pub fn into_set(rendering: StoredRendering) -> Arc<PackumentSet> {
    let rendered = |doc: StoredDocument| Rendered {
        plain: doc.plain.into(),
        gzip: doc.gzip.into(),
        etag: doc.etag,
        gzip_etag: doc.gzip_etag,
    };
    Arc::new(PackumentSet {
        full: rendered(rendering.full),
        abbreviated: rendered(rendering.abbreviated),
        last_modified: rendering.last_modified,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::store::packages::PackageRecord;
    use crate::store::renderings::VersionSource;

    fn row(version: &str, manifest: Value, deprecated: Option<&str>) -> VersionRow {
        VersionRow {
            version: version.into(),
            manifest: manifest.to_string(),
            integrity: String::new(),
            shasum: String::new(),
            blob_key: String::new(),
            size: 1,
            deprecated: deprecated.map(str::to_owned),
            readme: Some(format!("readme of {version}")),
            published_at: 1_700_000_000_000 + version.len() as i64,
            signatures: Vec::new(),
        }
    }

    fn record() -> PackageRecord {
        let mut record = unsigned_record();
        record.versions[0].signatures = vec![crate::store::packages::Signature {
            keyid: "SHA256:k".into(),
            sig: "MEUCIQ==".into(),
        }];
        record
    }

    fn unsigned_record() -> PackageRecord {
        let tricky = "\u{1}packr-base-0\u{1} and \"quotes\" and </script>";
        PackageRecord {
            name: "@acme/p".into(),
            access: "public".into(),
            rev: 7,
            created_at: 1_600_000_000_000,
            modified_at: 1_700_000_000_500,
            versions: vec![
                row(
                    "2.0.0",
                    json!({"name": "@acme/p", "version": "2.0.0", "description": tricky,
                           "dist": {"shasum": "ab", "integrity": "sha512-x"},
                           "dependencies": {"a": "^1"}, "license": "MIT", "zzz": 1}),
                    None,
                ),
                row(
                    "10.0.0-rc.1",
                    json!({"name": "@acme/p", "version": "10.0.0-rc.1", "description": "ü ✓"}),
                    Some("use 2"),
                ),
                row(
                    "1.0.0",
                    json!({"name": "@acme/p", "version": "1.0.0", "author": {"name": "a"},
                           "dist": {"attestations": {"url": "/-/npm/v1/attestations/@acme/p@1.0.0",
                                                     "provenance": {"predicateType": "x"}}}}),
                    None,
                ),
            ],
            dist_tags: BTreeMap::from([
                ("latest".into(), "2.0.0".into()),
                ("next".into(), "10.0.0-rc.1".into()),
            ]),
            maintainers: vec![("alice".into(), "a@x".into()), ("bob".into(), "b@x".into())],
        }
    }

    fn source(record: &PackageRecord) -> RenderSource {
        let latest = record.dist_tags.get("latest").and_then(|l| {
            let row = record.versions.iter().find(|r| &r.version == l)?;
            Some((row.manifest.clone(), row.readme.clone()))
        });
        RenderSource {
            name: record.name.clone(),
            rev: record.rev,
            created_at: record.created_at,
            modified_at: record.modified_at,
            versions: record
                .versions
                .iter()
                .map(|r| VersionSource {
                    version: r.version.clone(),
                    published_at: r.published_at,
                    fragment: fragment(&record.name, r).unwrap(),
                    fresh: true,
                })
                .collect(),
            dist_tags: record.dist_tags.clone(),
            maintainers: record.maintainers.clone(),
            latest,
        }
    }

    fn gunzip(bytes: &[u8]) -> Vec<u8> {
        use std::io::Read;
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(bytes)
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    fn same(stored: &StoredRendering, fresh: &PackumentSet) {
        for (stored, fresh) in [
            (&stored.full, &fresh.full),
            (&stored.abbreviated, &fresh.abbreviated),
        ] {
            assert_eq!(stored.plain, fresh.plain.as_ref());
            assert_eq!(stored.etag, fresh.etag);
            assert_eq!(gunzip(&stored.gzip), fresh.plain.as_ref());
            assert_eq!(stored.gzip_etag, fresh.gzip_etag);
        }
        assert_eq!(stored.last_modified, fresh.last_modified);
    }

    #[test]
    fn assembled_documents_are_the_renderers_bytes() {
        let record = record();
        let stored = assemble(&source(&record), "http://r:1").unwrap();
        let fresh = packument::render(&record, "http://r:1").unwrap();
        same(&stored, &fresh);
        // Small: the gzip stream is cut around each base.
        assert_eq!(stored.full.gzip_at.len(), stored.full.base_at.len());
    }

    #[test]
    fn a_big_document_is_one_gzip_stream_the_renderers_bytes() {
        let mut record = unsigned_record();
        let template = record.versions[0].clone();
        for n in 0..400 {
            let mut row = template.clone();
            row.version = format!("3.0.{n}");
            row.manifest = row.manifest.replace("2.0.0", &row.version);
            record.versions.push(row);
        }
        let stored = assemble(&source(&record), "http://r:1").unwrap();
        assert!(stored.full.plain.len() >= CUT_GZIP_BELOW);
        assert_eq!(stored.full.gzip_at.len(), stored.full.base_at.len());
        assert_eq!(gunzip(&stored.full.cut_gzip), stored.full.plain);
        let fresh = packument::render(&record, "http://r:1").unwrap();
        same(&stored, &fresh);
        assert_eq!(stored.full.gzip, fresh.full.gzip.as_ref());
        let moved = rebase(&stored, "https://elsewhere").unwrap();
        same(
            &moved,
            &packument::render(&record, "https://elsewhere").unwrap(),
        );
    }

    #[test]
    fn a_rebased_rendering_is_the_render_on_the_other_base() {
        let record = record();
        let stored = assemble(&source(&record), "").unwrap();
        for base in ["http://other.example:8080", "https://r/\"odd\"", ""] {
            let moved = rebase(&stored, base).unwrap();
            // Spliced, not compressed again: the bytes around the bases are the stored ones.
            assert_eq!(
                moved.abbreviated.gzip_at.len(),
                stored.abbreviated.gzip_at.len()
            );
            same(&moved, &packument::render(&record, base).unwrap());
            let back = rebase(&moved, "http://x").unwrap();
            same(&back, &packument::render(&record, "http://x").unwrap());
        }
    }

    #[test]
    fn fragments_carry_every_base_position_and_the_signatures() {
        let record = record();
        let stored = assemble(&source(&record), "http://r:1").unwrap();
        let text = String::from_utf8(stored.full.plain.clone()).unwrap();
        assert!(text.contains("\"url\":\"http://r:1/-/npm/v1/attestations/@acme/p@1.0.0\""));
        assert!(text.contains("\"signatures\":[{\"keyid\":\"SHA256:k\""));
        // Three tarball URLs and one attestations URL, in each document.
        assert_eq!(stored.full.base_at.len() / 4, 4);
        assert_eq!(stored.abbreviated.base_at.len() / 4, 4);
        let moved = rebase(&stored, "https://elsewhere").unwrap();
        same(
            &moved,
            &packument::render(&record, "https://elsewhere").unwrap(),
        );
    }

    #[test]
    fn a_package_whose_latest_is_missing_hoists_nothing() {
        let mut record = record();
        record.dist_tags = BTreeMap::from([("beta".into(), "1.0.0".into())]);
        let stored = assemble(&source(&record), "http://r").unwrap();
        same(&stored, &packument::render(&record, "http://r").unwrap());
    }
}
