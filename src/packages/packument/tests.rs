use std::io::Read;

use super::*;
use crate::store::packages::Signature;

/// The documents as rendered before misses wrote them directly: through `serde_json::Value`
/// trees. Every direct rendering must give these bytes, and so these ETags.
fn rendered_through_values(record: &PackageRecord, base_url: &str) -> (Vec<u8>, Vec<u8>) {
    let name = record.name.as_str();
    let mut versions = Map::new();
    let mut abbreviated_versions = Map::new();
    let mut time = Map::new();
    time.insert("created".into(), clock::iso(record.created_at).into());
    time.insert("modified".into(), clock::iso(record.modified_at).into());
    for row in &record.versions {
        let object = version_object(name, row, base_url).unwrap();
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
    (
        serde_json::to_vec(&Value::Object(full)).unwrap(),
        serde_json::to_vec(&abbreviated).unwrap(),
    )
}

/// A manifest as publishing stores it: serde_json's own output of the object.
fn stored(manifest: Value) -> String {
    manifest.to_string()
}

fn row(version: &str, manifest: String, published_at: i64) -> VersionRow {
    VersionRow {
        version: version.into(),
        manifest,
        integrity: "sha512-x".into(),
        shasum: "00".into(),
        blob_key: "sha512/00".into(),
        size: 1,
        deprecated: None,
        readme: None,
        published_at,
        signatures: Vec::new(),
    }
}

fn record(name: &str, versions: Vec<VersionRow>, latest: &str) -> PackageRecord {
    let mut dist_tags = BTreeMap::new();
    dist_tags.insert("latest".to_owned(), latest.to_owned());
    dist_tags.insert("beta".to_owned(), versions[0].version.clone());
    PackageRecord {
        name: name.into(),
        access: "public".into(),
        rev: 7,
        created_at: 1_700_000_000_000,
        modified_at: 1_700_000_123_456,
        versions,
        dist_tags,
        maintainers: vec![
            ("alice".into(), "alice@example.com".into()),
            ("bob \"b\"".into(), "bob@example.com".into()),
        ],
    }
}

fn varied_record() -> PackageRecord {
    let mut one = row(
        "1.0.0",
        stored(json!({
            "name": "@acme/widget", "version": "1.0.0", "description": "Wid\"get\u{1}\u{e9}\u{1F600}",
            "license": "MIT", "keywords": ["a", "b"], "main": "index.js",
            "dependencies": {"left-pad": "^1.0.0"}, "scripts": {"test": "node t.js"},
            "author": {"name": "A", "url": "https://a.example/x?y=1&z=<2>"},
            "engines": {"node": ">=18"}, "float": 1.5e300, "neg": -12, "big": 18446744073709551615u64,
            "null": null, "bin": {"w": "bin/w.js"}, "_hasShrinkwrap": false,
            "dist": {"integrity": "sha512-x", "shasum": "00", "fileCount": 3, "unpackedSize": 1200,
                     "attestations": {"url": "/-/npm/v1/attestations/@acme/widget@1.0.0", "provenance": {"predicateType": "https://slsa.dev/provenance/v1"}}}
        })),
        1_700_000_000_000,
    );
    one.signatures = vec![Signature {
        keyid: "SHA256:k".into(),
        sig: "MEUC".into(),
    }];
    one.readme = Some("# widget\n\nfirst".into());
    let mut two = row(
        "10.0.0-rc.1",
        stored(json!({
            "name": "@acme/widget", "version": "10.0.0-rc.1", "deprecated": "stored one",
            "dist": {"integrity": "sha512-y", "tarball": "http://elsewhere/x.tgz"},
            "readmeFilename": "README.md", "homepage": "https://h.example", "cpu": ["x64"]
        })),
        1_700_000_000_500,
    );
    two.deprecated = Some("use 2 \"now\"".into());
    two.readme = Some("# second".into());
    // No dist at all; published in the same millisecond as the next.
    let three = row(
        "2.0.0",
        stored(
            json!({"name": "@acme/widget", "version": "2.0.0", "os": ["linux"], "funding": "https://f"}),
        ),
        1_700_000_001_000,
    );
    // A dist that is not an object, and an attestations entry that is not a path.
    let four = row(
        "3.0.0",
        stored(json!({"name": "@acme/widget", "version": "3.0.0", "dist": "odd"})),
        1_700_000_001_000,
    );
    let five = row(
        "4.0.0",
        stored(
            json!({"name": "@acme/widget", "version": "4.0.0", "dist": {"attestations": {"url": "https://x/y"}}}),
        ),
        1_700_000_002_000,
    );
    // Keys a direct split cannot borrow (escaped), and one sorting around `dist`.
    let six = row(
        "5.0.0",
        stored(
            json!({"name": "@acme/widget", "version": "5.0.0", "we\"ird": 1, "dista": 2, "dis": 3}),
        ),
        1_700_000_003_000,
    );
    record(
        "@acme/widget",
        vec![one, two, three, four, five, six],
        "10.0.0-rc.1",
    )
}

fn assert_same(record: &PackageRecord, base_url: &str) {
    let (full, abbreviated) = rendered_through_values(record, base_url);
    let direct_full = full_document(record, base_url, &mut Cuts::new(base_url)).unwrap();
    let direct_abbreviated =
        abbreviated_document(record, base_url, &mut Cuts::new(base_url)).unwrap();
    assert_eq!(
        String::from_utf8(direct_full).unwrap(),
        String::from_utf8(full).unwrap()
    );
    assert_eq!(
        String::from_utf8(direct_abbreviated).unwrap(),
        String::from_utf8(abbreviated).unwrap()
    );
}

#[test]
fn direct_documents_are_the_value_renderings_byte_for_byte() {
    assert_same(&varied_record(), "http://127.0.0.1:4873");
    assert_same(&varied_record(), "https://r.example/npm");
    // Latest points at a version with no readme and a manifest of few fields.
    let mut record = varied_record();
    record.dist_tags.insert("latest".into(), "2.0.0".into());
    assert_same(&record, "http://r");
    // Latest points nowhere; no maintainers.
    record.dist_tags.insert("latest".into(), "9.9.9".into());
    record.maintainers.clear();
    assert_same(&record, "http://r");
    // A single plain version, unscoped.
    let plain = record_of_one();
    assert_same(&plain, "http://r");
}

fn record_of_one() -> PackageRecord {
    record(
        "left-pad",
        vec![row(
            "1.0.0",
            stored(json!({"name": "left-pad", "version": "1.0.0", "dist": {"shasum": "00"}})),
            1,
        )],
        "1.0.0",
    )
}

#[test]
fn a_corrupt_manifest_is_an_internal_error_in_both_forms() {
    let mut record = record_of_one();
    record.versions[0].manifest = "{not json".into();
    for form in [Form::Full, Form::Abbreviated] {
        let variant = Variant { form, gzip: false };
        assert!(matches!(
            render(&record, "http://r", variant),
            Err(RegistryError::Internal(_))
        ));
    }
}

#[test]
fn each_variant_has_its_own_bytes_and_shares_the_plain_etag() {
    let record = varied_record();
    let (full, abbreviated) = rendered_through_values(&record, "http://r");
    for (form, plain) in [(Form::Full, full), (Form::Abbreviated, abbreviated)] {
        // Of the document on no base URL and the base, when spliceable; else of the bytes.
        let tag = match stored_document(&record, form).unwrap() {
            Some(template) => {
                let digest = &Sha256::digest(&template.plain)[..16];
                let of_both = Sha256::new()
                    .chain_update(digest)
                    .chain_update(b"http://r")
                    .finalize();
                hex::encode(&of_both[..16])
            }
            None => hex::encode(&Sha256::digest(&plain)[..16]),
        };
        let as_plain = render(&record, "http://r", Variant { form, gzip: false }).unwrap();
        let as_gzip = render(&record, "http://r", Variant { form, gzip: true }).unwrap();
        assert_eq!(&as_plain.body[..], &plain[..]);
        let mut decoded = Vec::new();
        flate2::read::GzDecoder::new(&as_gzip.body[..])
            .read_to_end(&mut decoded)
            .unwrap();
        assert_eq!(decoded, plain);
        for rendered in [&as_plain, &as_gzip] {
            assert_eq!(rendered.etag, format!("\"{tag}\""));
            assert_eq!(rendered.gzip_etag, format!("\"{tag}-gz\""));
            assert_eq!(rendered.last_modified, clock::http_date(record.modified_at));
        }
    }
}

#[test]
fn gzip_with_reused_states_decodes_to_its_input() {
    let big: Vec<u8> = (0..300_000u32)
        .flat_map(|n| format!("{{\"v{n}\":{}}},", n % 977).into_bytes())
        .collect();
    for plain in [
        &b""[..],
        b"{}",
        &big,
        b"{\"name\":\"x\"}",
        &big[..20_000],
        b"again",
    ] {
        let gz = gzip(plain).unwrap();
        let mut decoded = Vec::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut decoded)
            .unwrap();
        assert_eq!(decoded, plain);
    }
    // The big one is compressed, not just wrapped.
    let compressed = gzip(&big).unwrap().len();
    assert!(compressed < big.len() / 2, "{compressed} of {}", big.len());
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

#[test]
fn stored_manifests_take_the_direct_path() {
    let record = varied_record();
    for row in &record.versions[..3] {
        for form in [Form::Full, Form::Abbreviated] {
            let mut out = Vec::new();
            assert!(
                write_version_direct(
                    &mut out,
                    &record.name,
                    row,
                    "http://r",
                    form,
                    &mut Cuts::new("http://r")
                )
                .is_some()
            );
        }
    }
    // The escaped key goes through the `Value` rendering.
    let mut out = Vec::new();
    let odd = &record.versions[5];
    assert!(
        write_version_direct(
            &mut out,
            &record.name,
            odd,
            "http://r",
            Form::Full,
            &mut Cuts::new("http://r")
        )
        .is_none()
    );
}

/// A package whose documents are spliceable: no attestation path, no manifest the direct
/// rendering cannot split.
fn spliceable_record() -> PackageRecord {
    let mut record = varied_record();
    record.versions.truncate(3);
    record.versions[0].manifest = stored(json!({
        "name": "@acme/widget", "version": "1.0.0", "description": "with \"quotes\" and http://a",
        "dist": {"integrity": "sha512-x", "shasum": "00"}
    }));
    record
}

fn plain_of(rendered: &Rendered) -> Vec<u8> {
    if rendered.gzip {
        let mut decoded = Vec::new();
        flate2::read::GzDecoder::new(&rendered.body[..])
            .read_to_end(&mut decoded)
            .unwrap();
        decoded
    } else {
        rendered.body.to_vec()
    }
}

#[test]
fn a_rendering_rebased_onto_another_base_is_that_base_s_rendering() {
    let record = spliceable_record();
    let (from_base, to_base) = (
        "http://127.0.0.1:4873",
        "https://a-longer-mirror.example:8443/npm",
    );
    for form in [Form::Full, Form::Abbreviated] {
        for from_gzip in [false, true] {
            let from = render(
                &record,
                from_base,
                Variant {
                    form,
                    gzip: from_gzip,
                },
            )
            .unwrap();
            assert_eq!(
                from.base_cuts.as_ref().unwrap().len(),
                record.versions.len()
            );
            for gzip in [false, true] {
                let fresh = render(&record, to_base, Variant { form, gzip }).unwrap();
                let rebased = rebase(&from, from_base, to_base, gzip).unwrap().unwrap();
                assert_eq!(plain_of(&rebased), plain_of(&fresh));
                assert_eq!(rebased.etag, fresh.etag);
                assert_eq!(rebased.gzip_etag, fresh.gzip_etag);
                assert_eq!(rebased.last_modified, fresh.last_modified);
                assert_eq!(rebased.base_cuts, fresh.base_cuts);
                // And back again.
                let back = rebase(&rebased, to_base, from_base, from_gzip)
                    .unwrap()
                    .unwrap();
                assert_eq!(plain_of(&back), plain_of(&from));
            }
            // Another encoding on the same base.
            let other = rebase(&from, from_base, from_base, !from_gzip)
                .unwrap()
                .unwrap();
            assert_eq!(plain_of(&other), plain_of(&from));
            assert_eq!(other.etag, from.etag);
        }
    }
}

/// The full document, plain, on `http://a`.
fn full_on_a(record: &PackageRecord) -> Rendered {
    let variant = Variant {
        form: Form::Full,
        gzip: false,
    };
    render(record, "http://a", variant).unwrap()
}

#[test]
fn renderings_with_a_base_written_elsewhere_are_not_spliced() {
    // An attestation path made absolute on the base, and a manifest of the `Value` rendering.
    let record = varied_record();
    let from = full_on_a(&record);
    assert!(from.base_cuts.is_none());
    assert!(
        rebase(&from, "http://a", "http://b", true)
            .unwrap()
            .is_none()
    );
    // A base that JSON escapes is not spliced in either.
    let record = spliceable_record();
    let from = full_on_a(&record);
    assert!(
        rebase(&from, "http://a", "http://b\"", false)
            .unwrap()
            .is_none()
    );
    // Bytes that do not hold the base where the cuts say are refused, not served.
    let mut broken = full_on_a(&record);
    broken.body = bytes::Bytes::from(broken.body.to_vec().split_off(1));
    assert!(rebase(&broken, "http://a", "http://b", false).is_err());
}

#[test]
fn a_stored_document_serves_every_base_s_rendering_byte_for_byte() {
    let record = spliceable_record();
    for form in [Form::Full, Form::Abbreviated] {
        let document = stored_document(&record, form).unwrap().unwrap();
        assert_eq!(document.cuts.len(), record.versions.len());
        assert_eq!(document.last_modified, clock::http_date(record.modified_at));
        for base in [
            "http://127.0.0.1:4873",
            "https://a-longer-mirror.example:8443/npm",
        ] {
            for gzip in [false, true] {
                let fresh = render(&record, base, Variant { form, gzip }).unwrap();
                let served = from_stored(&document, base, gzip).unwrap().unwrap();
                assert_eq!(plain_of(&served), plain_of(&fresh));
                assert_eq!(served.etag, fresh.etag);
                // A row stored without its digest gets the same ETags, worked out on the read.
                let undigested = StoredDocument {
                    digest: None,
                    ..document.clone()
                };
                let served_anyway = from_stored(&undigested, base, gzip).unwrap().unwrap();
                assert_eq!(served_anyway.etag, fresh.etag);
                assert_eq!(served.gzip_etag, fresh.gzip_etag);
                assert_eq!(served.last_modified, fresh.last_modified);
                assert_eq!(served.base_cuts, fresh.base_cuts);
            }
        }
        // A base JSON would escape is not spliced in: the miss renders from the rows.
        assert!(
            from_stored(&document, "http://b\"", false)
                .unwrap()
                .is_none()
        );
    }
}

#[test]
fn documents_with_a_base_written_elsewhere_are_not_stored() {
    // An attestation path made absolute on the base: a stored copy could not serve other bases.
    let record = varied_record();
    assert!(stored_document(&record, Form::Full).unwrap().is_none());
    // Cuts that do not point at the base's place are refused, not served.
    let mut document = stored_document(&spliceable_record(), Form::Abbreviated)
        .unwrap()
        .unwrap();
    document.cuts.reverse();
    assert!(from_stored(&document, "http://a", false).is_err());
}

#[test]
fn documents_that_fit_one_segment_are_sent_plain_when_gzip_is_accepted() {
    let small = record_of_one();
    let rendered = render(
        &small,
        "http://a",
        Variant {
            form: Form::Abbreviated,
            gzip: true,
        },
    )
    .unwrap();
    assert!(rendered.body.len() <= SMALL_DOCUMENT_BYTES);
    assert!(!rendered.gzip);
    assert_eq!(plain_of(&rendered), rendered.body.to_vec());
    let big = varied_record();
    let rendered = render(
        &big,
        "http://a",
        Variant {
            form: Form::Full,
            gzip: true,
        },
    )
    .unwrap();
    assert!(rendered.gzip);
    assert!(plain_of(&rendered).len() > SMALL_DOCUMENT_BYTES);
}
