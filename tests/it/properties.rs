//! Property tests (proptest):
//!
//! - Packr's package-name rules against npm's own `validate-npm-package-name`, run as one Node
//!   process that answers a batch of generated names per line.
//! - The tarball inspector fed arbitrary bytes, arbitrary gzip streams, truncated real archives
//!   and crafted bombs: it never panics, and its peak heap use on its own thread stays within a
//!   bound set by the limits, whatever the archive claims.
//!
//! Peak heap use is measured with `allocation-counter`, which becomes this test binary's global
//! allocator; it counts per thread, so other tests running alongside do not disturb a measurement.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Mutex, OnceLock};

use flate2::Compression;
use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;
use packr::packages::PackageName;
use packr::packages::tarball::{TarballLimits, inspect_tarball};
use proptest::prelude::*;
use proptest::test_runner::Config;

use crate::support::install::{install_once, npm_install};

/// `default` cases, or `PROPTEST_CASES` for a deeper run (`PROPTEST_CASES=5000 cargo test --test
/// it properties`).
fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|cases| cases.parse().ok())
        .unwrap_or(default)
}

/// The validator npm 11 bundles; changing it reinstalls.
const VALIDATOR: &str = "validate-npm-package-name@7.0.2";

/// Names generated per Node round trip.
const BATCH: usize = 64;

/// Reads JSON arrays of names, one per line, and answers `[validForNew, validForOld, warnings]`
/// for each, one array per line.
const VALIDATOR_SCRIPT: &str = r"
const validate = require(process.env.VALIDATOR);
const lines = require('readline').createInterface({ input: process.stdin });
lines.on('line', (line) => {
  const verdicts = JSON.parse(line).map((name) => {
    const r = validate(name);
    return [r.validForNewPackages, r.validForOldPackages, r.warnings || []];
  });
  process.stdout.write(JSON.stringify(verdicts) + '\n');
});
";

/// One Node process running [`VALIDATOR_SCRIPT`], shared by every case.
struct NpmValidator {
    _child: Child,
    input: ChildStdin,
    output: BufReader<ChildStdout>,
}

/// npm's verdict on one name.
#[derive(Debug)]
struct Verdict {
    new_packages: bool,
    old_packages: bool,
    warnings: Vec<String>,
}

impl NpmValidator {
    fn start() -> Self {
        let dir = install_once("test-name-validator", VALIDATOR, |dir| {
            npm_install(dir, &[VALIDATOR])
        })
        .unwrap_or_else(|err| panic!("installing {VALIDATOR}: {err:#}"));
        let module = dir.join("node_modules/validate-npm-package-name");
        let mut child = Command::new("node")
            .args(["-e", VALIDATOR_SCRIPT])
            .env("VALIDATOR", &module)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("running node");
        let input = child.stdin.take().unwrap();
        let output = BufReader::new(child.stdout.take().unwrap());
        Self {
            _child: child,
            input,
            output,
        }
    }

    fn check(&mut self, names: &[String]) -> Vec<Verdict> {
        let mut line = serde_json::to_string(names).unwrap();
        line.push('\n');
        self.input.write_all(line.as_bytes()).unwrap();
        self.input.flush().unwrap();
        let mut answer = String::new();
        self.output.read_line(&mut answer).unwrap();
        let verdicts: Vec<(bool, bool, Vec<String>)> = serde_json::from_str(&answer)
            .unwrap_or_else(|err| panic!("node answered {answer:?}: {err}"));
        assert_eq!(verdicts.len(), names.len());
        verdicts
            .into_iter()
            .map(|(new_packages, old_packages, warnings)| Verdict {
                new_packages,
                old_packages,
                warnings,
            })
            .collect()
    }
}

fn npm_verdicts(names: &[String]) -> Vec<Verdict> {
    static NODE: OnceLock<Mutex<NpmValidator>> = OnceLock::new();
    let node = NODE.get_or_init(|| Mutex::new(NpmValidator::start()));
    node.lock().unwrap_or_else(|e| e.into_inner()).check(names)
}

/// Where Packr is deliberately stricter than npm: a scope starting with `.` (it would turn into a
/// relative path) or using `!'()*` (outside Packr's alphabet `[a-z0-9-._~]`). npm accepts both.
fn packr_is_stricter(name: &str) -> bool {
    let Some((scope, _)) = name.strip_prefix('@').and_then(|rest| rest.split_once('/')) else {
        return false;
    };
    scope.starts_with('.') || scope.contains(['!', '\'', '(', ')', '*'])
}

/// Where Packr is deliberately more lenient: Node core module names (`events`, `buffer`,
/// `punycode`) are only a warning for npm, valid for existing packages, and real packages carry
/// them, so Packr must serve and accept them.
fn only_a_core_module_name(name: &str, verdict: &Verdict) -> bool {
    verdict.old_packages && verdict.warnings == [format!("{name} is a core module name")]
}

/// Names and pieces npm treats specially: its exclusion list, core modules, edges.
const SPECIAL: &[&str] = &[
    "node_modules",
    "favicon.ico",
    "Node_Modules",
    "FAVICON.ICO",
    "fs",
    "events",
    "http",
    "punycode",
    "buffer",
    "sys",
    "wasi",
    "fs/promises",
    "node:test",
    "_http_agent",
    "process",
    ".",
    "..",
    "-",
    "_",
    "~",
    "@",
    "@/",
    "/",
    "",
    "a b",
    " a",
    "a ",
    "\u{a0}a",
    "a\u{feff}",
    "%2e%2e",
    "a%20b",
    "CON",
    "a..b",
    "a.",
];

/// Characters that matter to one rule or another.
const CHARS: &[char] = &[
    'a', 'z', 'A', 'Z', '0', '9', '-', '.', '_', '~', '!', '\'', '(', ')', '*', '@', '/', '%', ' ',
    '\t', '\n', ':', '?', '#', '+', '$', '&', '=', ',', ';', '[', '^', '"', '\\', 'é', 'ß',
    '\u{a0}', '\u{2028}', '\u{feff}', '😀',
];

fn piece() -> impl Strategy<Value = String> + Clone {
    prop_oneof![
        4 => "[a-z0-9._-]{1,12}",
        2 => "[a-zA-Z0-9._~!'()*-]{1,12}",
        1 => "[ -~]{1,8}",
        1 => "\\PC{1,6}",
        1 => prop::sample::select(SPECIAL).prop_map(str::to_owned),
        1 => prop::collection::vec(prop::sample::select(CHARS), 1..16)
            .prop_map(|chars| chars.into_iter().collect()),
    ]
}

fn name() -> impl Strategy<Value = String> {
    let prefixes = &[
        ".", "_", "-", "~", " ", "@", "@.", "@_", "@-", "@~", "@x/.", "@x/_", "@x/-", "@@", "%",
    ];
    prop_oneof![
        3 => piece(),
        3 => (piece(), piece()).prop_map(|(scope, bare)| format!("@{scope}/{bare}")),
        1 => (prop::sample::select(prefixes), piece()).prop_map(|(p, rest)| format!("{p}{rest}")),
        1 => (piece(), piece()).prop_map(|(a, b)| format!("{a}/{b}")),
        1 => (210usize..=218, any::<bool>(), any::<bool>()).prop_map(|(n, scoped, upper)| {
            let letter = if upper { "A" } else { "a" };
            if scoped {
                format!("@s/{}", letter.repeat(n - 3))
            } else {
                letter.repeat(n)
            }
        }),
        1 => (prop::sample::select(SPECIAL), any::<bool>()).prop_map(|(n, scoped)| {
            let n = n.to_uppercase();
            if scoped { format!("@acme/{n}") } else { n }
        }),
    ]
}

proptest! {
    #![proptest_config(Config { cases: cases(64), failure_persistence: None, ..Config::default() })]

    #[test]
    fn packr_accepts_exactly_the_names_npm_accepts_for_new_packages(
        names in prop::collection::vec(name(), BATCH),
    ) {
        let verdicts = npm_verdicts(&names);
        for (name, npm) in names.iter().zip(&verdicts) {
            let packr = PackageName::parse(name);
            if packr.is_ok() {
                prop_assert!(
                    npm.new_packages || only_a_core_module_name(name, npm),
                    "Packr accepts {name:?}, npm refuses it: {npm:?}"
                );
            }
            if npm.new_packages && !packr_is_stricter(name) {
                prop_assert!(
                    packr.is_ok(),
                    "npm accepts {name:?}, Packr refuses it: {}",
                    packr.unwrap_err()
                );
            }
        }
    }
}

#[test]
fn the_deliberate_differences_from_npm_are_exactly_the_documented_ones() {
    let names: Vec<String> = [
        "@.hidden/x",
        "@a!b/x",
        "@a(b)/x",
        "events",
        "punycode",
        "fs",
        "left-pad",
    ]
    .map(str::to_owned)
    .to_vec();
    let verdicts = npm_verdicts(&names);
    for (name, npm) in names.iter().zip(&verdicts) {
        let packr = PackageName::parse(name);
        match name.as_str() {
            "@.hidden/x" | "@a!b/x" | "@a(b)/x" => {
                assert!(npm.new_packages && packr.is_err(), "{name}: {npm:?}");
                assert!(packr_is_stricter(name));
            }
            "events" | "punycode" | "fs" => {
                assert!(!npm.new_packages && packr.is_ok(), "{name}: {npm:?}");
                assert!(only_a_core_module_name(name, npm), "{name}: {npm:?}");
            }
            _ => assert!(npm.new_packages && packr.is_ok(), "{name}: {npm:?}"),
        }
    }
}

// ---- the tarball inspector ---------------------------------------------------------------------

/// Peak heap bytes the inspector may hold at once besides `package.json` (read whole, up to
/// 10 MiB): the inflater's state, tar headers, at most about a megabyte of pax or long-name records
/// (growing a buffer copies it once), a README of 64 KiB. Nothing an archive claims may raise it.
const HEAP_BOUND: u64 = 4 * 1024 * 1024;

/// Limits for the crafted bombs: the default entry count, a smaller unpacked size so they stay fast.
const BOMB_LIMITS: TarballLimits = TarballLimits {
    max_compressed_bytes: 64 * 1024 * 1024,
    max_unpacked_bytes: 16 * 1024 * 1024,
    max_entries: 100_000,
};

/// Inspects `bytes` and returns the peak heap bytes it took on this thread, and whether it passed.
fn inspect_measured(bytes: &[u8], limits: &TarballLimits) -> (u64, bool) {
    let mut accepted = false;
    let info = allocation_counter::measure(|| {
        accepted = inspect_tarball(bytes, limits).is_ok();
    });
    (info.bytes_max, accepted)
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    MultiGzDecoder::new(bytes).read_to_end(&mut out).unwrap();
    out
}

/// A small real npm tarball, built here so the test needs no corpus.
fn built_tarball() -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    let files: [(&str, &[u8]); 3] = [
        (
            "package/package.json",
            br#"{"name":"left-pad","version":"1.0.0","main":"index.js"}"#,
        ),
        (
            "package/index.js",
            b"module.exports = (s, n) => s.padStart(n);\n",
        ),
        ("package/README.md", b"# left-pad\n\nPads the left.\n"),
    ];
    for (path, data) in files {
        let mut header = tar::Header::new_gnu();
        header.set_mode(0o644);
        header.set_size(data.len() as u64);
        builder.append_data(&mut header, path, data).unwrap();
    }
    gzip(&builder.into_inner().unwrap())
}

/// Real archives to truncate: the built one, and the smaller tarballs of the shared corpus.
fn real_archives() -> &'static [Vec<u8>] {
    static ARCHIVES: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    ARCHIVES.get_or_init(|| {
        let mut archives = vec![built_tarball()];
        let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/tarballs");
        let mut files: Vec<PathBuf> = std::fs::read_dir(&corpus)
            .map(|dir| dir.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        files.sort();
        for path in files.iter().step_by(25) {
            let bytes = std::fs::read(path).unwrap();
            if bytes.len() <= 64 * 1024 {
                archives.push(bytes);
            }
        }
        archives
    })
}

/// One entry of a crafted archive, written `repeat` times: its type flag, its name, and how many
/// zero bytes it carries.
#[derive(Debug, Clone)]
struct Crafted {
    kind: u8,
    name: &'static str,
    size: usize,
    repeat: usize,
}

fn crafted_entry() -> impl Strategy<Value = Crafted> {
    // Regular files, folders, GNU long names and long links, pax and global pax records, sparse
    // files, symlinks; named so that some land where the inspector reads them.
    let kinds: &[u8] = b"05LKxgS27";
    let names = &[
        "package/package.json",
        "package/README.md",
        "package/index.js",
        "package/lib/a.js",
        "package/",
        "PaxHeaders/x",
    ];
    let sizes = prop_oneof![
        3 => 0usize..2048,
        1 => Just(512 * 1024),
        2 => (1024usize * 1024)..(5 * 1024 * 1024),
    ];
    // Many small entries in a row, as an archive that wants a large allowance would have.
    let repeats = prop_oneof![3 => Just(1usize), 1 => 500usize..3000];
    (
        prop::sample::select(kinds),
        prop::sample::select(names),
        sizes,
        repeats,
    )
        .prop_map(|(kind, name, size, repeat)| Crafted {
            kind,
            name,
            size: if repeat > 1 { size % 1024 } else { size },
            repeat,
        })
}

/// Builds a tar stream of `entries` (each header followed by its zero data, padded to a block),
/// with a valid manifest first when `manifest` is set, and gzips it.
fn crafted_archive(manifest: bool, entries: &[Crafted]) -> Vec<u8> {
    let mut tar = Vec::new();
    let mut push = |kind: u8, name: &str, data: &[u8]| {
        let mut header = tar::Header::new_gnu();
        header.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        header.set_mode(0o644);
        header.set_size(data.len() as u64);
        header.set_entry_type(tar::EntryType::new(kind));
        header.set_cksum();
        tar.extend_from_slice(header.as_bytes());
        tar.extend_from_slice(data);
        tar.resize(tar.len().div_ceil(512) * 512, 0);
    };
    if manifest {
        push(
            b'0',
            "package/package.json",
            br#"{"name":"bomb","version":"1.0.0"}"#,
        );
    }
    for entry in entries {
        let data = vec![0; entry.size];
        for _ in 0..entry.repeat {
            push(entry.kind, entry.name, &data);
        }
    }
    tar.resize(tar.len() + 1024, 0);
    gzip(&tar)
}

proptest! {
    #![proptest_config(Config { cases: cases(48), failure_persistence: None, ..Config::default() })]

    #[test]
    fn arbitrary_bytes_are_refused_without_a_panic(
        bytes in prop::collection::vec(any::<u8>(), 0..4096),
        magic in any::<bool>(),
    ) {
        let mut input = bytes;
        if magic {
            input.splice(0..0, [0x1f, 0x8b, 0x08]);
        }
        let (peak, accepted) = inspect_measured(&input, &TarballLimits::default());
        prop_assert!(!accepted);
        prop_assert!(peak <= HEAP_BOUND, "{peak} bytes");
    }

    #[test]
    fn arbitrary_gzip_streams_are_inspected_without_a_panic(
        bytes in prop::collection::vec(any::<u8>(), 0..8192),
        headers in prop::collection::vec((0usize..8192, any::<[u8; 16]>()), 0..4),
    ) {
        // Random bytes, with some 512-byte blocks given a valid-looking ustar magic and checksum
        // field garbage, so the tar reader gets past its first header now and then.
        let mut tar = bytes;
        for (at, noise) in headers {
            let block = (at / 512) * 512;
            if block + 512 <= tar.len() {
                tar[block + 257..block + 263].copy_from_slice(b"ustar\0");
                tar[block + 100..block + 116].copy_from_slice(&noise);
            }
        }
        let (peak, _) = inspect_measured(&gzip(&tar), &TarballLimits::default());
        prop_assert!(peak <= HEAP_BOUND, "{peak} bytes");
    }

    #[test]
    fn truncated_real_archives_are_refused_without_a_panic(
        pick in any::<prop::sample::Index>(),
        cut in any::<prop::sample::Index>(),
        inner in any::<bool>(),
    ) {
        let archive = pick.get(real_archives());
        let (peak, accepted) = if inner {
            // Cut the tar stream itself and compress it properly: the gzip layer is intact.
            let tar = gunzip(archive);
            let at = cut.index(tar.len());
            inspect_measured(&gzip(&tar[..at]), &TarballLimits::default())
        } else {
            let at = cut.index(archive.len());
            let result = inspect_measured(&archive[..at], &TarballLimits::default());
            prop_assert!(!result.1, "accepted after cutting {} of {} bytes", at, archive.len());
            result
        };
        let _ = accepted;
        prop_assert!(peak <= HEAP_BOUND, "{peak} bytes");
    }
}

proptest! {
    #![proptest_config(Config { cases: cases(32), failure_persistence: None, ..Config::default() })]

    #[test]
    fn crafted_bombs_never_make_the_inspector_hold_more_than_its_bound(
        manifest in any::<bool>(),
        entries in prop::collection::vec(crafted_entry(), 1..6),
    ) {
        let archive = crafted_archive(manifest, &entries);
        let (peak, _) = inspect_measured(&archive, &BOMB_LIMITS);
        // A large package.json is read whole (up to 10 MiB): that much more is fair.
        let manifest_bytes = entries
            .iter()
            .filter(|e| e.name == "package/package.json" && matches!(e.kind, b'0' | b'7'))
            .map(|e| e.size as u64)
            .max()
            .unwrap_or(0);
        prop_assert!(
            peak <= HEAP_BOUND + manifest_bytes,
            "{peak} bytes for {entries:?}"
        );
    }
}

/// The bomb the properties above found: every small entry widens the inflation budget by more
/// than its header uses, and a GNU long-name record after thousands of them spent the sum in memory
/// (tens of MiB here, hundreds with the default 100,000 entries, from an upload under 1 MiB).
#[test]
fn a_long_name_record_cannot_spend_the_allowance_of_earlier_entries() {
    let entries = [
        Crafted {
            kind: b'5',
            name: "package/",
            size: 0,
            repeat: 8000,
        },
        Crafted {
            kind: b'L',
            name: "././@LongLink",
            size: 24 * 1024 * 1024,
            repeat: 1,
        },
        Crafted {
            kind: b'0',
            name: "package/lib/a.js",
            size: 0,
            repeat: 1,
        },
    ];
    let archive = crafted_archive(true, &entries);
    assert!(archive.len() < 1024 * 1024, "{} bytes", archive.len());
    let (peak, accepted) = inspect_measured(&archive, &TarballLimits::default());
    assert!(!accepted);
    assert!(peak <= HEAP_BOUND, "{peak} bytes");
}
