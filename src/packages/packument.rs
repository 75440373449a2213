//! Packuments: the full and abbreviated documents npm-protocol.md §3.3-3.5 describe, rendered on a
//! cache miss into the one representation asked for (form and encoding), with ETags.
//! `dist.tarball` is derived from the public URL here, never stored.
//!
//! A miss is on the hot path of a cold install, so a document is written straight from the
//! stored manifests: each manifest is split into its top-level fields, whose values are copied as
//! stored, and only `dist` (and `deprecated`) is written anew. Stored manifests are serde_json's
//! own output (`Value::to_string`: sorted keys, no whitespace, its escaping), so the copied bytes
//! are what parsing and serialising them again would give, and the documents are byte for byte
//! the ones the `serde_json::Value` rendering made (tests below compare both). A manifest the
//! split cannot take (not an object, an escaped key) goes through the `Value` rendering.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::BTreeMap;

use flate2::{Compress, Compression, Crc, Decompress, FlushCompress, FlushDecompress, Status};
use md5::Md5;
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::RegistryError;
use super::cache::{Form, Rendered, Variant};
use crate::clock;
use crate::store::packages::{PackageRecord, VersionRow};
use crate::store::renderings::StoredDocument;

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

/// Renders one representation of a package's packument for a public base URL.
pub fn render(
    record: &PackageRecord,
    base_url: &str,
    variant: Variant,
) -> Result<Rendered, RegistryError> {
    let (plain, cuts) = document(record, base_url, variant.form)?;
    let last_modified = clock::http_date(record.modified_at);
    let based = Based::on(cuts, base_url, None);
    finish(plain, based, variant.gzip, last_modified)
}

/// The plain JSON of one document on `base_url`, and where the base went (`None`: not
/// spliceable, see [`Cuts`]).
fn document(record: &PackageRecord, base_url: &str, form: Form) -> Result<Spliced, RegistryError> {
    let mut cuts = Cuts::new(base_url);
    let plain = match form {
        Form::Full => full_document(record, base_url, &mut cuts)?,
        Form::Abbreviated => abbreviated_document(record, base_url, &mut cuts)?,
    };
    Ok((plain, cuts.into_offsets()))
}

/// The representation asked for, made from another of the same document and data: `from`
/// (its body gzip or not) rendered on `from_base`, with `base_url` spliced in where `from_base` was written.
/// `None` when `from` cannot be spliced (see [`Cuts`]).
pub fn rebase(
    from: &Rendered,
    from_base: &str,
    base_url: &str,
    gzip: bool,
) -> Result<Option<Rendered>, RegistryError> {
    let same_base = from_base == base_url;
    let cuts = match &from.base_cuts {
        _ if same_base => None,
        Some(cuts) if !needs_escaping(base_url) => Some(cuts),
        _ => return Ok(None),
    };
    let plain: Cow<[u8]> = if from.gzip {
        Cow::Owned(gunzip(&from.body)?)
    } else {
        Cow::Borrowed(&from.body)
    };
    let Some(cuts) = cuts else {
        // Another encoding of the same bytes.
        let based = Based::on(from.base_cuts.clone(), base_url, from.template);
        return finish(plain.into_owned(), based, gzip, from.last_modified.clone()).map(Some);
    };
    let (out, offsets) = splice(&plain, cuts, from_base, base_url)?;
    let based = Based::on(offsets, base_url, from.template);
    finish(out, based, gzip, from.last_modified.clone()).map(Some)
}

/// A document on no base URL, as stored: `None` when it cannot be spliced (see [`Cuts`]).
pub fn stored_document(
    record: &PackageRecord,
    form: Form,
) -> Result<Option<StoredDocument>, RegistryError> {
    let (plain, cuts) = document(record, "", form)?;
    Ok(cuts.map(|cuts| StoredDocument {
        digest: Some(digest([&plain[..]])),
        plain,
        cuts: cuts.into_vec(),
        last_modified: clock::http_date(record.modified_at),
    }))
}

/// The representation asked for, from a stored document with `base_url` spliced in; `None` when
/// that base cannot be (it needs JSON escaping).
pub fn from_stored(
    document: &StoredDocument,
    base_url: &str,
    gzip: bool,
) -> Result<Option<Rendered>, RegistryError> {
    if needs_escaping(base_url) {
        return Ok(None);
    }
    let (plain, cuts) = splice(&document.plain, &document.cuts, "", base_url)?;
    let based = Based::on(cuts, base_url, document.digest);
    finish(plain, based, gzip, document.last_modified.clone()).map(Some)
}

/// JSON bytes, and where their base URL is (`None`: not spliceable).
type Spliced = (Vec<u8>, Option<Box<[u32]>>);

/// `plain` with `base_url` written where `cuts` say `from_base` is, and where it now is.
fn splice(
    plain: &[u8],
    cuts: &[u32],
    from_base: &str,
    base_url: &str,
) -> Result<Spliced, RegistryError> {
    let mut out = Vec::with_capacity(plain.len() + cuts.len() * base_url.len());
    let mut offsets = Vec::with_capacity(cuts.len());
    let mut done = 0;
    for &cut in cuts {
        let cut = cut as usize;
        let end = cut + from_base.len();
        // Only ever where the rendering wrote the base: anything else is a bug, not served.
        if cut < done || plain.get(cut..end) != Some(from_base.as_bytes()) {
            return Err(RegistryError::Internal(
                "a packument's base URL is not where it was written".into(),
            ));
        }
        out.extend_from_slice(&plain[done..cut]);
        offsets.push(out.len());
        out.extend_from_slice(base_url.as_bytes());
        done = end;
    }
    out.extend_from_slice(&plain[done..]);
    let offsets: Result<Box<[u32]>, _> = offsets.into_iter().map(u32::try_from).collect();
    Ok((out, offsets.ok()))
}

/// The first half of a SHA-256, what ETags are made of.
pub type EtagDigest = [u8; 16];

/// The digest of the concatenation of `parts`.
fn digest<'a>(parts: impl IntoIterator<Item = &'a [u8]>) -> EtagDigest {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part);
    }
    let mut out = EtagDigest::default();
    out.copy_from_slice(&hasher.finalize()[..16]);
    out
}

/// Where a document's base URL is, for its ETag: a spliceable document's ETag is made of its
/// template (the document on no base URL) and the base, so a miss served from a stored or cached
/// template hashes the base, not the whole document again (on a 3,000-version document, 2 ms).
struct Based<'a> {
    cuts: Option<Box<[u32]>>,
    base_url: &'a str,
    /// The template's digest when known; worked out from the document when not.
    template: Option<EtagDigest>,
}

impl<'a> Based<'a> {
    fn on(cuts: Option<Box<[u32]>>, base_url: &'a str, template: Option<EtagDigest>) -> Self {
        Self {
            cuts,
            base_url,
            template,
        }
    }

    /// The ETag's hex tag of `plain`, and its template's digest when spliceable.
    fn tag(&self, plain: &[u8]) -> (String, Option<EtagDigest>) {
        let Some(cuts) = &self.cuts else {
            return (hex::encode(digest([plain])), None);
        };
        let template = self.template.unwrap_or_else(|| {
            // The document with the base left out at each cut: the stored template's bytes.
            let mut parts = Vec::with_capacity(cuts.len() + 1);
            let mut done = 0;
            for &cut in cuts.iter() {
                let cut = cut as usize;
                parts.push(plain.get(done.min(cut)..cut).unwrap_or_default());
                done = cut + self.base_url.len();
            }
            parts.push(plain.get(done..).unwrap_or_default());
            digest(parts)
        });
        let tag = hex::encode(digest([&template[..], self.base_url.as_bytes()]));
        (tag, Some(template))
    }
}

/// A representation from its plain JSON: ETags of the plain JSON (see [`Based`]), gzip-compressed
/// if asked.
fn finish(
    plain: Vec<u8>,
    based: Based<'_>,
    gzip: bool,
    last_modified: String,
) -> Result<Rendered, RegistryError> {
    let (tag, template) = based.tag(&plain);
    let gzip = gzip && plain.len() > SMALL_DOCUMENT_BYTES;
    let body = if gzip { self::gzip(&plain)? } else { plain };
    Ok(Rendered {
        body: body.into(),
        gzip,
        etag: format!("\"{tag}\""),
        gzip_etag: format!("\"{tag}-gz\""),
        last_modified,
        base_cuts: based.cuts,
        template,
    })
}

/// Where a rendering wrote its base URL (the start of each tarball URL), so another base can be
/// spliced in without rendering again. A document is spliceable only when that is the one place
/// the base went into: not when an attestation URL was made absolute on it or a version went
/// through the `Value` rendering (those are rare), nor when the base needed JSON escaping.
struct Cuts {
    offsets: Vec<usize>,
    spliceable: bool,
}

impl Cuts {
    fn new(base_url: &str) -> Self {
        Self {
            offsets: Vec::new(),
            spliceable: !needs_escaping(base_url),
        }
    }

    fn into_offsets(self) -> Option<Box<[u32]>> {
        if !self.spliceable {
            return None;
        }
        let offsets: Result<Box<[u32]>, _> = self.offsets.into_iter().map(u32::try_from).collect();
        offsets.ok()
    }
}

/// Whether serde_json would escape anything in `s` (so it is not written verbatim).
fn needs_escaping(s: &str) -> bool {
    s.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\')
}

/// The versions by version string (the order of a JSON object's keys as serde_json writes them),
/// a later row replacing an earlier one of the same version, as inserting into a map does.
fn versions_by_key(record: &PackageRecord) -> BTreeMap<&str, &VersionRow> {
    record
        .versions
        .iter()
        .map(|row| (row.version.as_str(), row))
        .collect()
}

/// `{"email":..,"name":..}` of each maintainer, as `json!` ordered their keys.
fn write_maintainers(out: &mut Vec<u8>, record: &PackageRecord) -> Result<(), RegistryError> {
    out.push(b'[');
    for (i, (name, email)) in record.maintainers.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"email\":");
        write_str(out, email)?;
        out.extend_from_slice(b",\"name\":");
        write_str(out, name)?;
        out.push(b'}');
    }
    out.push(b']');
    Ok(())
}

fn write_str(out: &mut Vec<u8>, s: &str) -> Result<(), RegistryError> {
    serde_json::to_writer(out, s).map_err(internal)
}

fn write_json<T: serde::Serialize + ?Sized>(out: &mut Vec<u8>, v: &T) -> Result<(), RegistryError> {
    serde_json::to_writer(out, v).map_err(internal)
}

fn internal(e: impl std::fmt::Display) -> RegistryError {
    RegistryError::Internal(e.to_string())
}

/// Writes `{"<version>":<object>,..}` in the given form.
fn write_versions(
    out: &mut Vec<u8>,
    record: &PackageRecord,
    base_url: &str,
    form: Form,
    cuts: &mut Cuts,
) -> Result<(), RegistryError> {
    out.push(b'{');
    for (i, (version, row)) in versions_by_key(record).into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_str(out, version)?;
        out.push(b':');
        write_version(out, &record.name, row, base_url, form, cuts)?;
    }
    out.push(b'}');
    Ok(())
}

/// The abbreviated document (`application/vnd.npm.install-v1+json`).
fn abbreviated_document(
    record: &PackageRecord,
    base_url: &str,
    cuts: &mut Cuts,
) -> Result<Vec<u8>, RegistryError> {
    let name = record.name.as_str();
    let mut out = Vec::with_capacity(256 + record.versions.len() * 640);
    // The keys in serde_json's (sorted) order.
    out.extend_from_slice(b"{\"_rev\":");
    write_str(&mut out, &rev(name, record.rev))?;
    out.extend_from_slice(b",\"dist-tags\":");
    write_json(&mut out, &record.dist_tags)?;
    out.extend_from_slice(b",\"maintainers\":");
    write_maintainers(&mut out, record)?;
    out.extend_from_slice(b",\"modified\":");
    write_str(&mut out, &clock::iso(record.modified_at))?;
    out.extend_from_slice(b",\"name\":");
    write_str(&mut out, name)?;
    out.extend_from_slice(b",\"versions\":");
    write_versions(&mut out, record, base_url, Form::Abbreviated, cuts)?;
    out.push(b'}');
    Ok(out)
}

/// One root field of the full document.
enum Root<'a> {
    Str(&'a str),
    Raw(&'a str),
    Owned(String),
    DistTags,
    Maintainers,
    Time,
    Users,
    Versions,
}

/// The full document (`application/json`).
fn full_document(
    record: &PackageRecord,
    base_url: &str,
    cuts: &mut Cuts,
) -> Result<Vec<u8>, RegistryError> {
    let name = record.name.as_str();
    let rev = rev(name, record.rev);
    let mut root: BTreeMap<&str, Root> = BTreeMap::new();
    root.insert("_id", Root::Str(name));
    root.insert("_rev", Root::Str(&rev));
    root.insert("name", Root::Str(name));
    root.insert("dist-tags", Root::DistTags);
    // Hoisted fields are never among those a version object writes anew (`dist`, `deprecated`),
    // so they are copied from the stored manifest.
    let latest = record
        .dist_tags
        .get("latest")
        .and_then(|v| record.versions.iter().rev().find(|row| &row.version == v));
    if let Some(row) = latest {
        match serde_json::from_str::<BTreeMap<&str, &RawValue>>(&row.manifest) {
            Ok(fields) => {
                for field in HOISTED_FIELDS {
                    if let Some(value) = fields.get(field) {
                        root.insert(field, Root::Raw(value.get()));
                    }
                }
            }
            Err(_) => {
                let object = version_object(name, row, base_url)?;
                for field in HOISTED_FIELDS {
                    if let Some(value) = object.get(field) {
                        root.insert(field, Root::Owned(value.to_string()));
                    }
                }
            }
        }
    }
    let readme = record
        .dist_tags
        .get("latest")
        .and_then(|v| record.versions.iter().find(|row| &row.version == v))
        .and_then(|row| row.readme.as_deref())
        .unwrap_or_default();
    root.insert("readme", Root::Str(readme));
    root.insert("maintainers", Root::Maintainers);
    root.insert("time", Root::Time);
    root.insert("users", Root::Users);
    root.insert("versions", Root::Versions);

    let mut out = Vec::with_capacity(1024 + readme.len() + record.versions.len() * 1024);
    out.push(b'{');
    for (i, (key, value)) in root.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_str(&mut out, key)?;
        out.push(b':');
        match value {
            Root::Str(s) => write_str(&mut out, s)?,
            Root::Raw(raw) => out.extend_from_slice(raw.as_bytes()),
            Root::Owned(json) => out.extend_from_slice(json.as_bytes()),
            Root::DistTags => write_json(&mut out, &record.dist_tags)?,
            Root::Maintainers => write_maintainers(&mut out, record)?,
            Root::Time => {
                let mut time = BTreeMap::new();
                time.insert("created", clock::iso(record.created_at));
                time.insert("modified", clock::iso(record.modified_at));
                for row in &record.versions {
                    time.insert(row.version.as_str(), clock::iso(row.published_at));
                }
                write_json(&mut out, &time)?;
            }
            Root::Users => out.extend_from_slice(b"{}"),
            Root::Versions => write_versions(&mut out, record, base_url, Form::Full, cuts)?,
        }
    }
    out.push(b'}');
    Ok(out)
}

/// Writes one version object in `form`: straight from the stored manifest's fields, or through
/// [`version_object`] when they cannot be split.
fn write_version(
    out: &mut Vec<u8>,
    name: &str,
    row: &VersionRow,
    base_url: &str,
    form: Form,
    cuts: &mut Cuts,
) -> Result<(), RegistryError> {
    let (start, cut) = (out.len(), cuts.offsets.len());
    if write_version_direct(out, name, row, base_url, form, cuts).is_some() {
        return Ok(());
    }
    out.truncate(start);
    cuts.offsets.truncate(cut);
    cuts.spliceable = false;
    let object = version_object(name, row, base_url)?;
    match form {
        Form::Full => write_json(out, &object),
        Form::Abbreviated => write_json(out, &abbreviate(&object)),
    }
}

/// A field of a version object as written.
enum Field<'a> {
    Raw(&'a str),
    Dist,
    Deprecated(&'a str),
}

fn write_version_direct(
    out: &mut Vec<u8>,
    name: &str,
    row: &VersionRow,
    base_url: &str,
    form: Form,
    cuts: &mut Cuts,
) -> Option<()> {
    let stored: BTreeMap<&str, &RawValue> = serde_json::from_str(&row.manifest).ok()?;
    let mut fields: BTreeMap<&str, Field> = stored
        .iter()
        .map(|(key, value)| (*key, Field::Raw(value.get())))
        .collect();
    // `dist` is written anew when it is an object or absent; anything else stays as stored.
    let dist: BTreeMap<&str, &RawValue> = match stored.get("dist") {
        None => BTreeMap::new(),
        Some(raw) if raw.get().starts_with('{') => serde_json::from_str(raw.get()).ok()?,
        Some(_) => return None,
    };
    fields.insert("dist", Field::Dist);
    if let Some(message) = &row.deprecated {
        fields.insert("deprecated", Field::Deprecated(message));
    }
    out.push(b'{');
    let mut first = true;
    for (key, field) in &fields {
        if form == Form::Abbreviated && !ABBREVIATED_FIELDS.contains(key) {
            continue;
        }
        if !first {
            out.push(b',');
        }
        first = false;
        serde_json::to_writer(&mut *out, key).ok()?;
        out.push(b':');
        match field {
            Field::Raw(raw) => out.extend_from_slice(raw.as_bytes()),
            Field::Deprecated(message) => serde_json::to_writer(&mut *out, message).ok()?,
            Field::Dist => write_dist(out, &dist, name, row, base_url, cuts)?,
        }
    }
    out.push(b'}');
    Some(())
}

/// `dist` with `tarball` (and `signatures`) set and a stored attestations path made absolute.
fn write_dist(
    out: &mut Vec<u8>,
    stored: &BTreeMap<&str, &RawValue>,
    name: &str,
    row: &VersionRow,
    base_url: &str,
    cuts: &mut Cuts,
) -> Option<()> {
    let tarball = tarball_url(base_url, name, &row.version);
    let mut fields: BTreeMap<&str, Option<&str>> =
        stored.iter().map(|(k, v)| (*k, Some(v.get()))).collect();
    // `None`: written below.
    fields.insert("tarball", None);
    if !row.signatures.is_empty() {
        fields.insert("signatures", None);
    }
    if stored.contains_key("attestations") {
        fields.insert("attestations", None);
    }
    out.push(b'{');
    for (i, (key, raw)) in fields.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        serde_json::to_writer(&mut *out, key).ok()?;
        out.push(b':');
        match (*key, raw) {
            (_, Some(raw)) => out.extend_from_slice(raw.as_bytes()),
            ("tarball", None) => {
                // After the opening quote; a base needing no escaping is written verbatim.
                cuts.offsets.push(out.len() + 1);
                serde_json::to_writer(&mut *out, &tarball).ok()?
            }
            ("signatures", None) => serde_json::to_writer(&mut *out, &row.signatures).ok()?,
            (_, None) => {
                let mut attestations: Value =
                    serde_json::from_str(stored.get("attestations")?.get()).ok()?;
                if let Some(Value::String(url)) = attestations
                    .get_mut("url")
                    .filter(|u| u.as_str().is_some_and(|u| u.starts_with('/')))
                {
                    *url = format!("{base_url}{url}");
                    cuts.spliceable = false;
                }
                serde_json::to_writer(&mut *out, &attestations).ok()?;
            }
        }
    }
    out.push(b'}');
    Some(())
}

/// Documents up to this size are sent uncompressed even to a client that accepts gzip: with the
/// response's headers they fit one TCP segment (an MSS of 1,460 bytes) plain or compressed, so
/// compressing saves no packet, only CPU (as much as the rest of a cache miss).
pub const SMALL_DOCUMENT_BYTES: usize = 1_024;

/// Documents up to this size are compressed at the fastest level: for a few KB, setting up
/// a better level's work costs more than the bytes it saves.
const FAST_GZIP_BYTES: usize = 16 * 1024;

thread_local! {
    /// Deflate states per thread (fast and default level), reset for each document: a new one
    /// allocates and clears a few hundred KB, which costs more than compressing a small packument.
    static DEFLATE: RefCell<[Option<Compress>; 2]> = const { RefCell::new([None, None]) };
}

/// Documents over this size are compressed at the fastest level again: a 3,000-version
/// packument (about 2 MB) takes 13 ms at level 2 and 7 ms at level 1, most of a cold read, for
/// about a quarter more bytes.
const HUGE_GZIP_BYTES: usize = 512 * 1024;

/// `plain` gzipped: the fastest level for small and huge documents, a middle one between.
pub fn gzip(plain: &[u8]) -> Result<Vec<u8>, RegistryError> {
    let (slot, level) = if plain.len() <= FAST_GZIP_BYTES || plain.len() > HUGE_GZIP_BYTES {
        (0, Compression::fast())
    } else {
        (1, Compression::new(BIG_GZIP_LEVEL))
    };
    let mut out = Vec::with_capacity(plain.len() / 3 + 64);
    out.extend_from_slice(&GZIP_HEADER);
    DEFLATE
        .with(|cell| {
            let mut states = cell.borrow_mut();
            let deflate = states[slot].get_or_insert_with(|| Compress::new(level, false));
            deflate.reset();
            deflate_all(deflate, plain, &mut out)
        })
        .map_err(internal)?;
    let mut crc = Crc::new();
    crc.update(plain);
    out.extend_from_slice(&crc.sum().to_le_bytes());
    // ISIZE is the length modulo 2^32 (RFC 1952).
    out.extend_from_slice(&(plain.len() as u32).to_le_bytes());
    out.shrink_to_fit();
    Ok(out)
}

thread_local! {
    /// An inflate state per thread, reset for each document (as [`DEFLATE`]).
    static INFLATE: RefCell<Option<Decompress>> = const { RefCell::new(None) };
}

/// The JSON of a body [`gzip`] made (its header and trailer, so no name or extra fields).
fn gunzip(body: &[u8]) -> Result<Vec<u8>, RegistryError> {
    let corrupt = || RegistryError::Internal("a cached packument's gzip is corrupt".into());
    let (header, rest) = body
        .split_at_checked(GZIP_HEADER.len())
        .ok_or_else(corrupt)?;
    let (deflated, trailer) = rest
        .split_at_checked(rest.len().checked_sub(8).ok_or_else(corrupt)?)
        .ok_or_else(corrupt)?;
    if header != GZIP_HEADER {
        return Err(corrupt());
    }
    let size = u32::from_le_bytes(trailer[4..].try_into().map_err(|_| corrupt())?);
    let mut out = Vec::with_capacity(size as usize);
    INFLATE.with(|cell| {
        let mut state = cell.borrow_mut();
        let inflate = state.get_or_insert_with(|| Decompress::new(false));
        inflate.reset(false);
        let status = inflate
            .decompress_vec(deflated, &mut out, FlushDecompress::Finish)
            .map_err(|_| corrupt())?;
        if status == Status::StreamEnd && out.len() == size as usize {
            Ok(out)
        } else {
            Err(corrupt())
        }
    })
}

/// The level of documents over [`FAST_GZIP_BYTES`] (a 3,000-version packument is a few MB).
const BIG_GZIP_LEVEL: u32 = 2;

/// The gzip header: no name, no time, OS unknown (RFC 1952).
const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255];

/// Compresses all of `input` into `out` and ends the deflate stream.
fn deflate_all(
    deflate: &mut Compress,
    input: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), flate2::CompressError> {
    loop {
        let read = usize::try_from(deflate.total_in()).unwrap_or(usize::MAX);
        if out.capacity() - out.len() < 64 {
            out.reserve(out.len().max(256));
        }
        let rest = input.get(read..).unwrap_or_default();
        if deflate.compress_vec(rest, out, FlushCompress::Finish)? == Status::StreamEnd {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests;
