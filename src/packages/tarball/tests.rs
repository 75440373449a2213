//! Tests of tarball inspection: crafted archives and the real corpus.

use super::*;
use std::io::Write as _;
use std::path::PathBuf;

use flate2::Compression;
use flate2::write::GzEncoder;

const PACKAGE_JSON: &[u8] = br#"{"name":"left-pad","version":"1.0.0"}"#;

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// A header whose name field is written byte for byte, since the tar builder refuses `..`.
fn raw_header(name: &[u8], kind: EntryType, size: u64) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.as_old_mut().name[..name.len()].copy_from_slice(name);
    header.set_mode(0o644);
    header.set_size(size);
    header.set_entry_type(kind);
    header.set_cksum();
    header
}

/// Builds a tarball entry by entry; `finish` adds the end blocks and compresses it.
struct TarballBuilder(tar::Builder<Vec<u8>>);

impl TarballBuilder {
    fn new() -> Self {
        TarballBuilder(tar::Builder::new(Vec::new()))
    }

    fn file(mut self, path: &str, data: &[u8]) -> Self {
        let mut header = tar::Header::new_gnu();
        header.set_mode(0o644);
        header.set_size(data.len() as u64);
        self.0.append_data(&mut header, path, data).unwrap();
        self
    }

    fn dir(mut self, path: &str) -> Self {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(EntryType::Directory);
        header.set_mode(0o755);
        header.set_size(0);
        self.0.append_data(&mut header, path, io::empty()).unwrap();
        self
    }

    fn raw(mut self, name: &[u8], kind: EntryType, data: &[u8]) -> Self {
        self.0
            .append(&raw_header(name, kind, data.len() as u64), data)
            .unwrap();
        self
    }

    fn symlink(mut self, path: &str, target: &str) -> Self {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(EntryType::Symlink);
        header.set_size(0);
        self.0.append_link(&mut header, path, target).unwrap();
        self
    }

    /// A pax extended header whose records apply to the next entry.
    fn pax(self, kind: EntryType, key: &str, value: &str) -> Self {
        let body = format!(" {key}={value}\n");
        let mut length = body.len() + 1;
        if format!("{length}{body}").len() != length {
            length += 1;
        }
        self.raw(b"PaxHeaders/x", kind, format!("{length}{body}").as_bytes())
    }

    fn tar(self) -> Vec<u8> {
        self.0.into_inner().unwrap()
    }

    fn finish(self) -> Vec<u8> {
        gzip(&self.tar())
    }
}

fn inspect(bytes: &[u8]) -> Result<TarballManifest, TarballError> {
    inspect_tarball(bytes, &TarballLimits::default())
}

fn minimal() -> TarballBuilder {
    TarballBuilder::new().file("package/package.json", PACKAGE_JSON)
}

#[test]
fn a_package_folder_tarball_is_inspected() {
    let tarball = TarballBuilder::new()
        .dir("package/")
        .file("package/package.json", PACKAGE_JSON)
        .file("package/README.md", b"# left-pad")
        .dir("package/lib/")
        .file("package/lib/index.js", b"module.exports = 1;\n")
        .file("package/npm-shrinkwrap.json", b"{}")
        .finish();
    let manifest = inspect(&tarball).unwrap();
    assert_eq!(manifest.root, "package");
    assert_eq!(manifest.package_json["name"], "left-pad");
    assert_eq!(manifest.file_count, 4);
    assert_eq!(
        manifest.unpacked_size,
        (PACKAGE_JSON.len() + 10 + 20 + 2) as u64
    );
    assert!(manifest.has_shrinkwrap);
    assert_eq!(
        manifest.readme,
        Some(Readme {
            filename: "README.md".into(),
            text: "# left-pad".into()
        })
    );
}

#[test]
fn a_binding_gyp_at_the_root_is_noticed_and_one_deeper_is_not() {
    let with_gyp = TarballBuilder::new()
        .file("package/package.json", PACKAGE_JSON)
        .file("package/binding.gyp", b"{}")
        .finish();
    assert!(inspect(&with_gyp).unwrap().has_binding_gyp);
    let nested = TarballBuilder::new()
        .file("package/package.json", PACKAGE_JSON)
        .file("package/src/binding.gyp", b"{}")
        .finish();
    assert!(!inspect(&nested).unwrap().has_binding_gyp);
}

#[test]
fn a_types_style_root_folder_is_accepted() {
    let tarball = TarballBuilder::new()
        .file(
            "node/package.json",
            br#"{"name":"@types/node","version":"22.0.0"}"#,
        )
        .file("node/index.d.ts", b"export {};")
        .finish();
    let manifest = inspect(&tarball).unwrap();
    assert_eq!(manifest.root, "node");
    assert!(!manifest.has_shrinkwrap);
    assert_eq!(manifest.readme, None);
}

#[test]
fn dot_slash_prefixes_are_stripped_before_finding_the_root() {
    let tarball = TarballBuilder::new()
        .raw(b"./", EntryType::Directory, b"")
        .raw(b"./package/package.json", EntryType::Regular, PACKAGE_JSON)
        .finish();
    assert_eq!(inspect(&tarball).unwrap().root, "package");
}

#[test]
fn two_top_level_folders_are_refused() {
    let tarball = minimal().file("other/index.js", b"").finish();
    let err = inspect(&tarball).unwrap_err();
    assert!(
        matches!(&err, TarballError::SeveralRoots { first, second } if first == "package" && second == "other")
    );
}

#[test]
fn a_file_outside_any_folder_is_refused() {
    let tarball = minimal().file("index.js", b"").finish();
    assert!(
        matches!(inspect(&tarball).unwrap_err(), TarballError::TopLevelFile(path) if path == "index.js")
    );
}

#[test]
fn a_dot_dot_entry_is_refused() {
    for name in [
        &b"package/../evil"[..],
        b"../evil",
        b"package\\..\\..\\evil",
    ] {
        let tarball = minimal().raw(name, EntryType::Regular, b"x").finish();
        assert!(
            matches!(inspect(&tarball).unwrap_err(), TarballError::UnsafePath(_)),
            "{name:?}"
        );
    }
}

#[test]
fn an_absolute_path_is_refused() {
    for name in [&b"/etc/passwd"[..], b"\\evil", b"C:/evil", b"c:\\evil"] {
        let tarball = minimal().raw(name, EntryType::Regular, b"x").finish();
        assert!(
            matches!(inspect(&tarball).unwrap_err(), TarballError::UnsafePath(_)),
            "{name:?}"
        );
    }
}

#[test]
fn a_dot_dot_in_a_gnu_long_name_is_refused() {
    let long = format!("package/{}/../../../evil\0", "a".repeat(120));
    let tarball = minimal()
        .raw(b"././@LongLink", EntryType::GNULongName, long.as_bytes())
        .raw(b"package/harmless", EntryType::Regular, b"x")
        .finish();
    assert!(
        matches!(inspect(&tarball).unwrap_err(), TarballError::UnsafePath(path) if path.ends_with("/evil"))
    );
}

#[test]
fn a_dot_dot_in_the_raw_header_is_refused_even_when_a_pax_path_hides_it() {
    let tarball = minimal()
        .pax(EntryType::XHeader, "path", "package/harmless")
        .raw(b"../evil", EntryType::Regular, b"x")
        .finish();
    assert!(
        matches!(inspect(&tarball).unwrap_err(), TarballError::UnsafePath(path) if path == "../evil")
    );
}

#[test]
fn long_names_from_gnu_and_pax_headers_are_read() {
    let deep = format!("package/{}/index.js", "d".repeat(150));
    let tarball = minimal()
        .file(&deep, b"gnu")
        .pax(
            EntryType::XHeader,
            "path",
            &format!("package/{}/pax.js", "p".repeat(150)),
        )
        .raw(b"package/truncated", EntryType::Regular, b"pax")
        .finish();
    let manifest = inspect(&tarball).unwrap();
    assert_eq!(manifest.file_count, 3);
}

#[test]
fn an_oversized_pax_header_is_refused_before_it_is_buffered() {
    let tarball = minimal()
        .pax(EntryType::XHeader, "comment", &"c".repeat(2 * 1024 * 1024))
        .file("package/index.js", b"")
        .finish();
    assert!(matches!(
        inspect(&tarball).unwrap_err(),
        TarballError::UnaccountedData
    ));
}

#[test]
fn a_pax_global_header_is_not_an_entry_of_the_package() {
    let tarball = TarballBuilder::new()
        .pax(EntryType::XGlobalHeader, "comment", "git archive")
        .file("package/package.json", PACKAGE_JSON)
        .finish();
    assert_eq!(inspect(&tarball).unwrap().file_count, 1);
}

#[test]
fn links_are_skipped_but_their_paths_are_checked() {
    let tarball = minimal().symlink("package/link", "/etc/passwd").finish();
    assert_eq!(inspect(&tarball).unwrap().file_count, 1);
    let tarball = minimal()
        .raw(b"package/../link", EntryType::Symlink, b"")
        .finish();
    assert!(matches!(
        inspect(&tarball).unwrap_err(),
        TarballError::UnsafePath(_)
    ));
}

#[test]
fn bytes_that_are_not_gzip_are_refused() {
    assert!(matches!(
        inspect(b"PK\x03\x04 a zip file"),
        Err(TarballError::NotGzip)
    ));
    assert!(matches!(
        inspect(&minimal().tar()),
        Err(TarballError::NotGzip)
    ));
    assert!(matches!(inspect(b""), Err(TarballError::NotGzip)));
}

#[test]
fn gzip_that_does_not_hold_a_tar_is_refused() {
    let err = inspect(&gzip(&[b'x'; 2048])).unwrap_err();
    assert!(matches!(err, TarballError::Unreadable(_)), "{err}");
}

#[test]
fn a_truncated_or_corrupted_gzip_is_refused() {
    let tarball = minimal().file("package/index.js", &[7; 5000]).finish();
    let truncated = &tarball[..tarball.len() / 2];
    assert!(matches!(
        inspect(truncated).unwrap_err(),
        TarballError::Unreadable(_)
    ));
    let mut bad_checksum = tarball.clone();
    let crc = bad_checksum.len() - 8;
    bad_checksum[crc] ^= 0xff;
    assert!(matches!(
        inspect(&bad_checksum).unwrap_err(),
        TarballError::Unreadable(_)
    ));
}

#[test]
fn entries_after_a_single_zero_block_are_inspected_as_npm_would_unpack_them() {
    let mut tar = minimal().tar();
    tar.truncate(tar.len() - 512);
    tar.extend(minimal().tar());
    let err = inspect(&gzip(&tar)).unwrap_err();
    assert!(
        matches!(err, TarballError::DuplicatePackageJson { .. }),
        "{err}"
    );
}

#[test]
fn every_gzip_member_is_inspected_as_npm_would_unpack_it() {
    let mut first = minimal().tar();
    first.truncate(first.len() - 1024);
    let mut tarball = gzip(&first);
    tarball.extend(minimal().finish());
    let err = inspect(&tarball).unwrap_err();
    assert!(
        matches!(err, TarballError::DuplicatePackageJson { .. }),
        "{err}"
    );
}

#[test]
fn garbage_after_the_archive_is_refused() {
    let mut tar = minimal().tar();
    tar.extend([b'x'; 512]);
    assert!(matches!(
        inspect(&gzip(&tar)).unwrap_err(),
        TarballError::Unreadable(_)
    ));
    let mut tarball = minimal().finish();
    tarball.extend(b"trailing bytes");
    assert!(matches!(
        inspect(&tarball).unwrap_err(),
        TarballError::Unreadable(_)
    ));
}

#[test]
fn an_empty_archive_is_refused() {
    assert!(matches!(
        inspect(&TarballBuilder::new().finish()),
        Err(TarballError::Empty)
    ));
}

#[test]
fn a_missing_package_json_is_refused() {
    let tarball = TarballBuilder::new()
        .file("package/index.js", b"")
        .file("package/lib/package.json", b"{}")
        .finish();
    let err = inspect(&tarball).unwrap_err();
    assert_eq!(
        err.to_string(),
        "the tarball has no package/package.json; publish the .tgz file that npm pack makes"
    );
}

#[test]
fn a_package_json_that_is_not_a_json_object_is_refused() {
    for body in [&b"[1]"[..], b"{\"name\":", b""] {
        let tarball = TarballBuilder::new()
            .file("package/package.json", body)
            .finish();
        assert!(
            matches!(
                inspect(&tarball).unwrap_err(),
                TarballError::InvalidPackageJson { .. }
            ),
            "{body:?}"
        );
    }
}

#[test]
fn a_package_json_with_a_byte_order_mark_is_read() {
    let tarball = TarballBuilder::new()
        .file(
            "package/package.json",
            &[b"\xef\xbb\xbf", PACKAGE_JSON].concat(),
        )
        .finish();
    assert_eq!(inspect(&tarball).unwrap().package_json["version"], "1.0.0");
}

#[test]
fn a_second_package_json_in_any_case_is_refused() {
    for second in ["package/package.json", "package/PACKAGE.JSON"] {
        let tarball = minimal().file(second, br#"{"name":"evil"}"#).finish();
        assert!(
            matches!(
                inspect(&tarball).unwrap_err(),
                TarballError::DuplicatePackageJson { .. }
            ),
            "{second}"
        );
    }
}

#[test]
fn an_oversized_package_json_is_refused_before_it_is_read() {
    let tarball = minimal()
        .raw(b"package/package.json", EntryType::Regular, b"")
        .tar();
    let mut header = raw_header(
        b"package/package.json",
        EntryType::Regular,
        MAX_PACKAGE_JSON_BYTES + 1,
    );
    header.set_cksum();
    let mut tar = header.as_bytes().to_vec();
    tar.extend_from_slice(&tarball);
    assert!(matches!(
        inspect(&gzip(&tar)).unwrap_err(),
        TarballError::PackageJsonTooLarge { .. }
    ));
}

#[test]
fn the_best_readme_is_chosen_as_npm_does() {
    let tarball = minimal()
        .file("package/docs/README.md", b"nested")
        .file("package/readme.txt", b"text")
        .file("package/README", b"bare")
        .file("package/Readme.markdown", b"markdown")
        .file("package/README.md", b"second markdown")
        .file("package/README-zh.md", b"not a readme")
        .finish();
    let readme = inspect(&tarball).unwrap().readme.unwrap();
    assert_eq!(
        readme,
        Readme {
            filename: "Readme.markdown".into(),
            text: "markdown".into()
        }
    );
}

#[test]
fn readme_text_is_capped_and_decoded_lossily() {
    let mut text = vec![b'a'; MAX_README_BYTES as usize - 1];
    text.extend_from_slice("é and more".as_bytes());
    let tarball = minimal()
        .file("package/README", &text)
        .file("package/README.txt", b"\xffbad")
        .finish();
    let readme = inspect(&tarball).unwrap().readme.unwrap();
    assert_eq!(readme.text, "a".repeat(MAX_README_BYTES as usize - 1));
    let tarball = minimal().file("package/README.txt", b"\xffbad").finish();
    assert_eq!(
        inspect(&tarball).unwrap().readme.unwrap().text,
        "\u{fffd}bad"
    );
}

#[test]
fn too_many_entries_are_refused() {
    let limits = TarballLimits {
        max_entries: 3,
        ..TarballLimits::default()
    };
    let tarball = minimal()
        .dir("package/lib/")
        .file("package/a.js", b"")
        .finish();
    inspect_tarball(&tarball, &limits).unwrap();
    let tarball = minimal()
        .dir("package/lib/")
        .file("package/a.js", b"")
        .file("package/b.js", b"")
        .finish();
    let err = inspect_tarball(&tarball, &limits).unwrap_err();
    assert!(matches!(err, TarballError::TooManyEntries { limit: 3 }));
}

#[test]
fn a_tarball_over_the_compressed_limit_is_refused() {
    let tarball = minimal().finish();
    let limits = TarballLimits {
        max_compressed_bytes: 10,
        ..TarballLimits::default()
    };
    let err = inspect_tarball(&tarball, &limits).unwrap_err();
    assert!(matches!(err, TarballError::TooLarge { limit: 10, .. }));
}

#[test]
fn files_adding_up_to_more_than_the_unpacked_limit_are_refused() {
    let limits = TarballLimits {
        max_unpacked_bytes: 4096,
        ..TarballLimits::default()
    };
    let tarball = minimal().file("package/a.bin", &[0; 2000]).finish();
    inspect_tarball(&tarball, &limits).unwrap();
    let tarball = minimal()
        .file("package/a.bin", &[0; 2000])
        .file("package/b.bin", &[0; 2100])
        .finish();
    let err = inspect_tarball(&tarball, &limits).unwrap_err();
    assert!(matches!(
        err,
        TarballError::UnpackedTooLarge { limit: 4096 }
    ));
}

const BOMB_BYTES: u64 = 600 * 1024 * 1024;

/// `zeros` zero bytes behind one header that claims `claimed` bytes, compressed as a stream.
///
/// With `corrupt_tail` the stream goes on with bytes that cannot be inflated, so only a reader
/// that stops at the limit reports the limit; one that read on would report corruption.
fn gzip_bomb(claimed: u64, zeros: u64, corrupt_tail: bool) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::fast());
    encoder
        .write_all(raw_header(b"package/bomb.bin", EntryType::Regular, claimed).as_bytes())
        .unwrap();
    io::copy(&mut io::repeat(0).take(zeros), &mut encoder).unwrap();
    if !corrupt_tail {
        return encoder.finish().unwrap();
    }
    encoder.flush().unwrap();
    let mut bytes = encoder.get_ref().clone();
    bytes.extend_from_slice(&[0xff; 1024]);
    bytes
}

fn one_mib_unpacked() -> TarballLimits {
    TarballLimits {
        max_unpacked_bytes: 1024 * 1024,
        ..TarballLimits::default()
    }
}

#[test]
fn a_gzip_bomb_is_refused_at_its_header() {
    let bomb = gzip_bomb(BOMB_BYTES, BOMB_BYTES, false);
    let err = inspect_tarball(&bomb, &one_mib_unpacked()).unwrap_err();
    assert!(
        matches!(err, TarballError::UnpackedTooLarge { limit: 1048576 }),
        "{err}"
    );
    let truncated = gzip_bomb(8 * 1024 * 1024, 4 * 1024 * 1024, true);
    let err = inspect_tarball(&truncated, &one_mib_unpacked()).unwrap_err();
    assert!(
        matches!(err, TarballError::UnpackedTooLarge { .. }),
        "read past the limit: {err}"
    );
    // With room for the claimed size the reader does reach the corrupt tail, which shows the
    // assertion above is not vacuous.
    let roomy = TarballLimits {
        max_unpacked_bytes: 16 * 1024 * 1024,
        ..TarballLimits::default()
    };
    assert!(matches!(
        inspect_tarball(&truncated, &roomy).unwrap_err(),
        TarballError::Unreadable(_)
    ));
}

#[test]
fn a_gzip_bomb_whose_header_lies_is_refused_once_the_zeros_exceed_what_its_entries_account_for() {
    // The header claims an empty file, so the zeros read as end-of-archive blocks and padding.
    let bomb = gzip_bomb(0, BOMB_BYTES, false);
    let err = inspect_tarball(&bomb, &TarballLimits::default()).unwrap_err();
    assert!(matches!(err, TarballError::UnaccountedData), "{err}");
    let truncated = gzip_bomb(0, 4 * 1024 * 1024, true);
    let err = inspect_tarball(&truncated, &TarballLimits::default()).unwrap_err();
    assert!(
        matches!(err, TarballError::UnaccountedData),
        "read past the limit: {err}"
    );
}

#[test]
fn every_corpus_tarball_is_inspected_and_digested_as_npm_published_it() {
    let corpus = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus");
    if !corpus.is_dir() {
        println!("skipped: no corpus at {}", corpus.display());
        return;
    }
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(corpus.join("manifest.json")).unwrap()).unwrap();
    let tarballs = manifest["tarballs"].as_array().unwrap();
    assert_eq!(tarballs.len(), 555);
    for expected in tarballs {
        let file = expected["filename"].as_str().unwrap();
        let bytes = std::fs::read(corpus.join("tarballs").join(file)).unwrap();
        let inspected = inspect(&bytes).unwrap_or_else(|err| panic!("{file}: {err}"));
        assert_eq!(inspected.package_json["name"], expected["name"], "{file}");
        assert_eq!(
            inspected.package_json["version"], expected["version"],
            "{file}"
        );
        assert_eq!(
            inspected.root,
            expected["root"].as_str().unwrap_or("package"),
            "{file}"
        );
        let digests = crate::packages::integrity::Digests::of(&bytes);
        assert_eq!(
            digests.sha512_integrity,
            expected["integrity"].as_str().unwrap(),
            "{file}"
        );
        assert_eq!(
            digests.sha1_hex,
            expected["shasum"].as_str().unwrap(),
            "{file}"
        );
    }
}
