//! Tarball inspection: reading a published `.tgz` in memory, refusing unsafe or oversized archives,
//! and extracting what the registry needs from it (package.json, README, counts).

use std::cell::Cell;
use std::io::{self, Read};

use flate2::read::MultiGzDecoder;
use tar::EntryType;

/// The largest `package.json` Packr reads; real ones are a few KiB.
const MAX_PACKAGE_JSON_BYTES: u64 = 10 * 1024 * 1024;

/// How much README text the manifest keeps.
const MAX_README_BYTES: u64 = 64 * 1024;

/// Decompressed bytes allowed per entry for its header, padding and pax or GNU long-name records.
const ENTRY_OVERHEAD_BYTES: u64 = 4 * 1024;

/// Decompressed bytes allowed beyond the entries: the end-of-archive blocks and record padding.
const ARCHIVE_SLACK_BYTES: u64 = 1024 * 1024;

/// The gzip magic number every `.tgz` starts with.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// How much of a tarball Packr is willing to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TarballLimits {
    /// The largest compressed tarball accepted.
    pub max_compressed_bytes: u64,
    /// The largest total size of the entries' contents once unpacked.
    pub max_unpacked_bytes: u64,
    /// The largest number of entries (files, folders, links) in the archive.
    pub max_entries: u64,
}

impl Default for TarballLimits {
    fn default() -> Self {
        TarballLimits {
            max_compressed_bytes: 64 * 1024 * 1024,
            max_unpacked_bytes: 512 * 1024 * 1024,
            max_entries: 100_000,
        }
    }
}

/// What the registry learns from a tarball that passed inspection.
#[derive(Debug, Clone, PartialEq)]
pub struct TarballManifest {
    /// `<root>/package.json`, which is always a JSON object.
    pub package_json: serde_json::Value,
    /// The single top-level folder, usually `package` (`@types/*` tarballs use e.g. `node`).
    pub root: String,
    /// How many regular files the tarball holds.
    pub file_count: u64,
    /// The total size of the regular files, npm's `dist.unpackedSize`.
    pub unpacked_size: u64,
    /// Whether `<root>/npm-shrinkwrap.json` exists.
    pub has_shrinkwrap: bool,
    /// Whether `<root>/binding.gyp` exists, for which npm runs `node-gyp rebuild` on install.
    pub has_binding_gyp: bool,
    /// The package's README, if it has one directly in the top-level folder.
    pub readme: Option<Readme>,
}

/// A README found in the tarball.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Readme {
    /// The file name as packed, such as `README.md`.
    pub filename: String,
    /// The text, at most 64 KiB, with invalid UTF-8 replaced.
    pub text: String,
}

/// Why a tarball cannot be accepted.
#[derive(Debug, thiserror::Error)]
pub enum TarballError {
    /// The compressed tarball is larger than the limit.
    #[error(
        "the tarball is {size} bytes, more than the registry's limit of {limit} bytes; publish fewer or smaller files"
    )]
    TooLarge {
        /// The tarball's size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// The bytes are not gzip-compressed.
    #[error("the tarball is not gzip-compressed; publish the .tgz file that npm pack makes")]
    NotGzip,
    /// The gzip stream or the tar archive inside it is corrupt.
    #[error(
        "the tarball cannot be read as a gzip-compressed tar archive ({0}); publish the .tgz file that npm pack makes"
    )]
    Unreadable(String),
    /// The archive holds nothing.
    #[error("the tarball contains no files; publish the .tgz file that npm pack makes")]
    Empty,
    /// The archive holds more entries than the limit.
    #[error(
        "the tarball has more than {limit} entries, the registry's limit; publish fewer files (see \"files\" in package.json)"
    )]
    TooManyEntries {
        /// The limit.
        limit: u64,
    },
    /// The archive unpacks to more than the limit.
    #[error(
        "the tarball unpacks to more than {limit} bytes, the registry's limit; publish fewer or smaller files (see \"files\" in package.json)"
    )]
    UnpackedTooLarge {
        /// The limit.
        limit: u64,
    },
    /// The archive inflates to more than its entries account for: oversized headers, or data after its end.
    #[error(
        "the tarball holds more data than its entries account for (oversized headers, or data after the end of the archive); publish the .tgz file that npm pack makes"
    )]
    UnaccountedData,
    /// An entry's path is absolute or climbs out with `..`.
    #[error(
        "the tarball contains the unsafe path {0:?} (absolute, or with a .. component); publish the .tgz file that npm pack makes"
    )]
    UnsafePath(String),
    /// An entry sits outside any folder.
    #[error(
        "the tarball contains {0:?} outside a top-level folder; npm pack puts every file under package/"
    )]
    TopLevelFile(String),
    /// Entries sit under different top-level folders.
    #[error(
        "the tarball has more than one top-level folder ({first} and {second}); npm pack puts every file under package/"
    )]
    SeveralRoots {
        /// The first folder seen.
        first: String,
        /// Another one.
        second: String,
    },
    /// The top-level folder's name is not UTF-8.
    #[error("the tarball's top-level folder {0:?} is not valid UTF-8; npm pack names it package/")]
    RootNotUtf8(String),
    /// There is no `<root>/package.json`.
    #[error("the tarball has no {root}/package.json; publish the .tgz file that npm pack makes")]
    MissingPackageJson {
        /// The top-level folder.
        root: String,
    },
    /// `package.json` appears twice, so what npm unpacks could differ from what was checked.
    #[error(
        "the tarball contains {root}/package.json more than once (in some letter case); publish the .tgz file that npm pack makes"
    )]
    DuplicatePackageJson {
        /// The top-level folder.
        root: String,
    },
    /// `package.json` is larger than Packr reads.
    #[error(
        "{root}/package.json is {size} bytes, more than the limit of 10 MiB; make it smaller and pack again"
    )]
    PackageJsonTooLarge {
        /// The top-level folder.
        root: String,
        /// Its size.
        size: u64,
    },
    /// `package.json` is not a JSON object.
    #[error("{root}/package.json is not a valid JSON object ({reason}); fix it and pack again")]
    InvalidPackageJson {
        /// The top-level folder.
        root: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// Reads a gzip-compressed npm tarball in memory and returns what the registry needs from it.
///
/// Pure: nothing is written anywhere. Reading stops as soon as a limit is crossed, so a gzip bomb
/// costs no more than the limits allow. The caller compares `package_json`'s name and version with
/// the publish metadata.
pub fn inspect_tarball(
    bytes: &[u8],
    limits: &TarballLimits,
) -> Result<TarballManifest, TarballError> {
    let size = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
    if size > limits.max_compressed_bytes {
        return Err(TarballError::TooLarge {
            size,
            limit: limits.max_compressed_bytes,
        });
    }
    if !bytes.starts_with(&GZIP_MAGIC) {
        return Err(TarballError::NotGzip);
    }
    let budget = Budget {
        read: Cell::new(0),
        allowed: Cell::new(ARCHIVE_SLACK_BYTES),
        earned: Cell::new(ARCHIVE_SLACK_BYTES),
    };
    let reader = Metered {
        // npm's gunzip reads every concatenated gzip member, so a second member could carry
        // entries (another package.json) that a single-member reader would never see.
        inner: MultiGzDecoder::new(bytes),
        budget: &budget,
    };
    let mut walk = Walk::new(limits, &budget);
    let mut archive = tar::Archive::new(reader);
    // node-tar ends an archive at two consecutive zero blocks, but carries on after a single one;
    // reading past every zero block to the end of the stream sees whatever npm could unpack.
    archive.set_ignore_zeros(true);
    let result = walk.archive(archive);
    match result {
        // The metered reader fails once more was inflated than the entries account for.
        Err(TarballError::Unreadable(_)) if budget.read.get() > budget.allowed.get() => {
            Err(TarballError::UnaccountedData)
        }
        Err(err) => Err(err),
        Ok(()) => walk.finish(),
    }
}

/// How many decompressed bytes have been read, and how many may be.
struct Budget {
    read: Cell<u64>,
    /// The reader fails past this: the smaller of `earned` and the current entry's window.
    allowed: Cell<u64>,
    /// What the entries seen so far justify in total.
    earned: Cell<u64>,
}

/// A reader that fails as soon as more is read than the budget allows.
struct Metered<'b, R> {
    inner: R,
    budget: &'b Budget,
}

impl<R: Read> Read for Metered<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let read = self.budget.read.get().saturating_add(n as u64);
        self.budget.read.set(read);
        if read > self.budget.allowed.get() {
            return Err(io::Error::other(
                "more data than the tarball's entries account for",
            ));
        }
        Ok(n)
    }
}

/// The state of one pass over the archive's entries.
struct Walk<'a> {
    limits: &'a TarballLimits,
    budget: &'a Budget,
    entries: u64,
    data_bytes: u64,
    root: Option<String>,
    package_json: Option<serde_json::Value>,
    package_json_seen: bool,
    file_count: u64,
    unpacked_size: u64,
    has_shrinkwrap: bool,
    has_binding_gyp: bool,
    readme: Option<(ReadmeKind, Readme)>,
}

/// How well a file name fits npm's choice of README; lower is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum ReadmeKind {
    Markdown,
    Bare,
    Other,
}

impl<'a> Walk<'a> {
    fn new(limits: &'a TarballLimits, budget: &'a Budget) -> Self {
        Walk {
            limits,
            budget,
            entries: 0,
            data_bytes: 0,
            root: None,
            package_json: None,
            package_json_seen: false,
            file_count: 0,
            unpacked_size: 0,
            has_shrinkwrap: false,
            has_binding_gyp: false,
            readme: None,
        }
    }

    /// Visits every entry up to the end of the gzip stream, which also verifies its checksums.
    fn archive<R: Read>(&mut self, mut archive: tar::Archive<R>) -> Result<(), TarballError> {
        for entry in archive.entries().map_err(unreadable)? {
            self.entry(&mut entry.map_err(unreadable)?)?;
        }
        Ok(())
    }

    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<(), TarballError> {
        let size = entry.size();
        self.count(size)?;
        let kind = entry.header().entry_type();
        if kind == EntryType::XGlobalHeader {
            // Global pax records (git archive writes one) describe the archive, not a file.
            return Ok(());
        }
        check_path(&entry.header().path_bytes())?;
        let path = entry.path_bytes().into_owned();
        let parts = check_path(&path)?;
        let Some((top, inside)) = parts.split_first() else {
            // `./` names the archive's own folder; npm strips it like any first component.
            return if kind == EntryType::Directory {
                Ok(())
            } else {
                Err(unsafe_path(&path))
            };
        };
        if inside.is_empty() && kind != EntryType::Directory {
            return Err(TarballError::TopLevelFile(
                String::from_utf8_lossy(&path).into_owned(),
            ));
        }
        let root = self.enter_root(top)?;
        if !matches!(kind, EntryType::Regular | EntryType::Continuous) {
            // npm packs only files and folders; links and devices are never unpacked by Packr.
            return Ok(());
        }
        self.file_count += 1;
        self.unpacked_size = self.unpacked_size.saturating_add(size);
        if let [name] = inside {
            self.root_file(&root, name, entry)?;
        }
        Ok(())
    }

    /// Counts one entry and its data against the limits before any of its data is inflated.
    ///
    /// Every entry's data is inflated to reach the next header, whatever its type, so all of it
    /// counts against the unpacked limit, and it widens the budget of the metered reader.
    fn count(&mut self, size: u64) -> Result<(), TarballError> {
        self.entries += 1;
        if self.entries > self.limits.max_entries {
            let limit = self.limits.max_entries;
            return Err(TarballError::TooManyEntries { limit });
        }
        self.data_bytes = self.data_bytes.saturating_add(size);
        if self.data_bytes > self.limits.max_unpacked_bytes {
            let limit = self.limits.max_unpacked_bytes;
            return Err(TarballError::UnpackedTooLarge { limit });
        }
        let padded = size.saturating_add(511) & !511;
        let earned = self
            .budget
            .earned
            .get()
            .saturating_add(padded)
            .saturating_add(ENTRY_OVERHEAD_BYTES);
        self.budget.earned.set(earned);
        // The tar reader holds pax and long-name records in memory, so the records up to the next
        // entry get a window of their own: without it, the overhead thousands of small entries
        // left unspent could all go into one record, hundreds of MiB from a small upload.
        let window = self
            .budget
            .read
            .get()
            .saturating_add(padded)
            .saturating_add(ENTRY_OVERHEAD_BYTES)
            .saturating_add(ARCHIVE_SLACK_BYTES);
        self.budget.allowed.set(earned.min(window));
        Ok(())
    }

    /// Records the top-level folder, refusing a second one, and returns its name.
    fn enter_root(&mut self, top: &[u8]) -> Result<String, TarballError> {
        match &self.root {
            Some(root) if root.as_bytes() == top => Ok(root.clone()),
            Some(root) => Err(TarballError::SeveralRoots {
                first: root.clone(),
                second: String::from_utf8_lossy(top).into_owned(),
            }),
            None => {
                let root = std::str::from_utf8(top).map_err(|_| {
                    TarballError::RootNotUtf8(String::from_utf8_lossy(top).into_owned())
                })?;
                self.root = Some(root.to_owned());
                Ok(root.to_owned())
            }
        }
    }

    /// Looks at a regular file directly inside the top-level folder.
    fn root_file<R: Read>(
        &mut self,
        root: &str,
        name: &[u8],
        entry: &mut tar::Entry<'_, R>,
    ) -> Result<(), TarballError> {
        if name.eq_ignore_ascii_case(b"package.json") {
            // A case-insensitive file system unpacks `PACKAGE.JSON` over `package.json`, so any
            // second spelling could replace the manifest that was checked.
            if self.package_json_seen {
                return Err(TarballError::DuplicatePackageJson {
                    root: root.to_owned(),
                });
            }
            self.package_json_seen = true;
            if name == b"package.json" {
                self.package_json = Some(read_package_json(root, entry)?);
            }
        } else if name == b"npm-shrinkwrap.json" {
            self.has_shrinkwrap = true;
        } else if name == b"binding.gyp" {
            self.has_binding_gyp = true;
        } else if let Some(kind) = readme_kind(name)
            && self.readme.as_ref().is_none_or(|(best, _)| kind < *best)
        {
            let mut text = Vec::new();
            entry
                .take(MAX_README_BYTES)
                .read_to_end(&mut text)
                .map_err(unreadable)?;
            let filename = String::from_utf8_lossy(name).into_owned();
            let readme = Readme {
                filename,
                text: lossy_text(&text),
            };
            self.readme = Some((kind, readme));
        }
        Ok(())
    }

    fn finish(self) -> Result<TarballManifest, TarballError> {
        let root = self.root.ok_or(TarballError::Empty)?;
        let Some(package_json) = self.package_json else {
            return Err(TarballError::MissingPackageJson { root });
        };
        Ok(TarballManifest {
            package_json,
            root,
            file_count: self.file_count,
            unpacked_size: self.unpacked_size,
            has_shrinkwrap: self.has_shrinkwrap,
            has_binding_gyp: self.has_binding_gyp,
            readme: self.readme.map(|(_, readme)| readme),
        })
    }
}

/// Splits a tar path into its components, refusing absolute paths, drive letters and `..`.
///
/// Both separators count: Windows clients unpack `\` as one. Empty and `.` components are dropped.
fn check_path(path: &[u8]) -> Result<Vec<&[u8]>, TarballError> {
    if path.is_empty() || path.starts_with(b"/") || path.starts_with(b"\\") {
        return Err(unsafe_path(path));
    }
    let parts: Vec<&[u8]> = path
        .split(|b| *b == b'/' || *b == b'\\')
        .filter(|part| !part.is_empty() && *part != b".")
        .collect();
    let is_drive =
        |part: &[u8]| part.len() == 2 && part[0].is_ascii_alphabetic() && part[1] == b':';
    if parts.iter().any(|part| *part == b"..") || parts.first().is_some_and(|part| is_drive(part)) {
        return Err(unsafe_path(path));
    }
    Ok(parts)
}

fn unsafe_path(path: &[u8]) -> TarballError {
    TarballError::UnsafePath(String::from_utf8_lossy(path).into_owned())
}

fn unreadable(err: io::Error) -> TarballError {
    TarballError::Unreadable(err.to_string())
}

fn read_package_json<R: Read>(
    root: &str,
    entry: &mut tar::Entry<'_, R>,
) -> Result<serde_json::Value, TarballError> {
    let size = entry.size();
    if size > MAX_PACKAGE_JSON_BYTES {
        return Err(TarballError::PackageJsonTooLarge {
            root: root.to_owned(),
            size,
        });
    }
    // The size was checked just above: reserving it once avoids growing (and copying) the buffer
    // to twice what the file holds.
    let mut raw = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    entry
        .take(MAX_PACKAGE_JSON_BYTES)
        .read_to_end(&mut raw)
        .map_err(unreadable)?;
    let invalid = |reason: String| TarballError::InvalidPackageJson {
        root: root.to_owned(),
        reason,
    };
    // npm strips a UTF-8 byte order mark before parsing; serde_json would refuse it.
    let json = raw.strip_prefix("\u{feff}".as_bytes()).unwrap_or(&raw);
    match serde_json::from_slice(json) {
        Ok(value @ serde_json::Value::Object(_)) => Ok(value),
        Ok(_) => Err(invalid("it is not an object".to_owned())),
        Err(err) => Err(invalid(err.to_string())),
    }
}

/// Ranks a file name the way npm picks a README: `README.md` and other markdown first, then a
/// bare `README`, then any other `README.*`; `None` if it is not a README at all.
fn readme_kind(name: &[u8]) -> Option<ReadmeKind> {
    let lower = name.to_ascii_lowercase();
    let rest = lower.strip_prefix(b"readme")?;
    let Some(extension) = rest.strip_prefix(b".") else {
        return rest.is_empty().then_some(ReadmeKind::Bare);
    };
    // npm tests the name with /\.m?a?r?k?d?o?w?n?$/i: the extension picks letters of "markdown" in order.
    let mut letters = b"markdown".iter();
    let markdown = extension.iter().all(|c| letters.any(|m| m == c));
    Some(if markdown {
        ReadmeKind::Markdown
    } else {
        ReadmeKind::Other
    })
}

/// Decodes text lossily, dropping a character the size cap cut in half rather than replacing it.
fn lossy_text(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(text) => text.to_owned(),
        Err(err) if err.error_len().is_none() => {
            String::from_utf8_lossy(&bytes[..err.valid_up_to()]).into_owned()
        }
        Err(_) => String::from_utf8_lossy(bytes).into_owned(),
    }
}

#[cfg(test)]
mod tests;
