//! Server secrets: taken from the environment, or generated into the data directory on first start.
//!
//! Every secret has one format: hex, at least [`MIN_BYTES`] bytes (64 hex digits). A shorter one is
//! refused at start: an empty `session.key` (left by a crash during a first start) would let anyone
//! sign a session cookie.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

/// The shortest secret Packr starts with, in bytes.
pub const MIN_BYTES: usize = 32;

/// Where an instance finds its secrets, in this order: the environment variable; a file named
/// like the variable in `PACKR_SECRETS_DIR` (a mounted Kubernetes Secret); and, for a registry
/// whose state lives on this machine, a file generated in the data directory on first start.
/// Instances sharing a PostgreSQL database keep no local state, so they must all be given the
/// same secrets: a generated one would differ per instance.
#[derive(Debug, Clone, Default)]
pub struct SecretSource {
    /// `PACKR_SECRETS_DIR`.
    pub dir: Option<PathBuf>,
    /// The data directory, when secrets may be generated there.
    pub generate_in: Option<PathBuf>,
}

impl SecretSource {
    /// The secret named by the environment variable `var` (`file`: its name in the data
    /// directory), or why there is none.
    pub fn secret(&self, var: &str, file: &str) -> anyhow::Result<Vec<u8>> {
        self.lookup(var, file, |name| std::env::var(name).ok())
    }

    fn lookup(
        &self,
        var: &str,
        file: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> anyhow::Result<Vec<u8>> {
        if let Some(text) = env(var).filter(|text| !text.trim().is_empty()) {
            return decode(&text, var);
        }
        if let Some(dir) = &self.dir {
            let path = dir.join(var);
            match std::fs::read_to_string(&path) {
                Ok(text) => return decode(&text, &path.display().to_string()),
                Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
                    return Err(err).with_context(|| format!("reading {}", path.display()));
                }
                Err(_) => {}
            }
        }
        match &self.generate_in {
            Some(data_dir) => load_or_create(data_dir, file),
            None => bail!(
                "{var} is not set. Instances on a shared PostgreSQL database keep no local state, so \
                 every instance needs the same {var}: set it (hex, at least {MIN_BYTES} bytes, e.g. \
                 `openssl rand -hex {MIN_BYTES}`){}",
                match &self.dir {
                    Some(dir) => format!(" or put it in {}", dir.join(var).display()),
                    None => format!(" or mount it as a file named {var} in PACKR_SECRETS_DIR"),
                }
            ),
        }
    }
}

/// Decodes a secret written as hex, refusing one shorter than [`MIN_BYTES`]; `source` names the
/// file or variable it came from, for the message.
pub fn decode(text: &str, source: &str) -> anyhow::Result<Vec<u8>> {
    let text = text.trim();
    let secret = hex::decode(text).with_context(|| {
        format!(
            "{source} must be written as hex digits (at least {} of them): {} characters are not",
            2 * MIN_BYTES,
            text.len()
        )
    })?;
    if secret.len() < MIN_BYTES {
        bail!(
            "{source} holds a {}-byte secret; secrets must be at least {MIN_BYTES} bytes, written as \
             {} or more hex digits (for example `openssl rand -hex {MIN_BYTES}`)",
            secret.len(),
            2 * MIN_BYTES
        );
    }
    Ok(secret)
}

/// Reads `<data dir>/secrets/<file>`, creating it with [`MIN_BYTES`] random bytes (hex, mode 0600)
/// when absent.
pub fn load_or_create(data_dir: &Path, file: &str) -> anyhow::Result<Vec<u8>> {
    let dir = data_dir.join("secrets");
    let path = dir.join(file);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            return decode(&text, &path.display().to_string()).with_context(|| {
                format!(
                    "refusing to start with {}: delete it to generate a new one",
                    path.display()
                )
            });
        }
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
            return Err(err).with_context(|| format!("reading {}", path.display()));
        }
        Err(_) => {}
    }
    create_dir_private(&dir)?;
    let mut secret = vec![0u8; MIN_BYTES];
    rand::fill(&mut secret[..]);
    if write_new(&dir, file, hex::encode(&secret).as_bytes())? {
        Ok(secret)
    } else {
        // Another process created it first: use theirs.
        load_or_create(data_dir, file)
    }
}

fn create_dir_private(dir: &Path) -> anyhow::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(dir)
        .with_context(|| format!("creating {}", dir.display()))
}

/// Writes `dir/file` whole or not at all: a temporary file in `dir` (mode 0600) is written and
/// synced, then linked to its name (renamed where links are not supported), and `dir` is synced. A crash leaves no file or the whole one.
/// A link, unlike a rename, fails when the name exists, so two processes starting at once never
/// replace each other's key. False when `file` already existed.
fn write_new(dir: &Path, file: &str, contents: &[u8]) -> anyhow::Result<bool> {
    let path = dir.join(file);
    let tmp = dir.join(format!(".{file}.{}.tmp", uuid::Uuid::new_v4()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let written = options.open(&tmp).and_then(|mut out| {
        out.write_all(contents)?;
        out.sync_all()
    });
    let placed = written.and_then(|()| match std::fs::hard_link(&tmp, &path) {
        // File systems without hard links (SMB, some FUSE mounts): a rename is just as atomic,
        // but would replace a key another process created in the same instant.
        Err(err) if err.kind() != std::io::ErrorKind::AlreadyExists => std::fs::rename(&tmp, &path),
        linked => linked,
    });
    let _ = std::fs::remove_file(&tmp);
    match placed {
        Ok(()) => {}
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => return Ok(false),
        Err(err) => return Err(err).with_context(|| format!("creating {}", path.display())),
    }
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing {}", dir.display()))?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_comes_from_the_environment_then_the_secrets_dir_then_the_data_dir() {
        let (dir, data) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        std::fs::write(dir.path().join("PACKR_X"), "cd".repeat(32)).unwrap();
        let source = SecretSource {
            dir: Some(dir.path().to_owned()),
            generate_in: Some(data.path().to_owned()),
        };
        let from_env = |name: &str| (name == "PACKR_X").then(|| "ab".repeat(32));
        assert_eq!(
            source.lookup("PACKR_X", "x.key", from_env).unwrap(),
            [0xab; 32]
        );
        assert_eq!(
            source.lookup("PACKR_X", "x.key", |_| None).unwrap(),
            [0xcd; 32]
        );
        let generated = source.lookup("PACKR_Y", "y.key", |_| None).unwrap();
        assert_eq!(load_or_create(data.path(), "y.key").unwrap(), generated);
    }

    #[test]
    fn without_local_state_a_missing_secret_is_refused_naming_the_variable() {
        let dir = tempfile::tempdir().unwrap();
        let source = SecretSource {
            dir: Some(dir.path().to_owned()),
            generate_in: None,
        };
        let err = source
            .lookup("PACKR_JWT_SECRET", "jwt.key", |_| None)
            .unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("PACKR_JWT_SECRET is not set"), "{text}");
        assert!(
            text.contains(&dir.path().join("PACKR_JWT_SECRET").display().to_string()),
            "{text}"
        );
        assert!(
            std::fs::read_dir(dir.path()).unwrap().next().is_none(),
            "nothing generated"
        );
        let bare = SecretSource::default();
        let text = bare
            .lookup("PACKR_SESSION_SECRET", "session.key", |_| None)
            .unwrap_err()
            .to_string();
        assert!(text.contains("PACKR_SECRETS_DIR"), "{text}");
    }

    #[test]
    fn a_generated_key_is_64_hex_digits_readable_only_by_the_owner_and_kept() {
        let data = tempfile::tempdir().unwrap();
        let first = load_or_create(data.path(), "k.key").unwrap();
        assert_eq!(first.len(), MIN_BYTES);
        let path = data.path().join("secrets/k.key");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), hex::encode(&first));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert_eq!(load_or_create(data.path(), "k.key").unwrap(), first);
        let leftovers: Vec<_> = std::fs::read_dir(data.path().join("secrets"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(leftovers, ["k.key"]);
    }

    #[test]
    fn empty_short_and_non_hex_secrets_are_refused_with_their_source() {
        for bad in ["", "\n", "abcd", &"0".repeat(62), &"zz".repeat(32)] {
            let err = decode(bad, "PACKR_X").unwrap_err().to_string();
            assert!(err.contains("PACKR_X"), "{err}");
        }
        assert_eq!(decode(&"ab".repeat(32), "PACKR_X").unwrap(), [0xab; 32]);
        assert_eq!(decode(&"01".repeat(48), "PACKR_X").unwrap().len(), 48);
    }

    #[test]
    fn an_empty_key_file_is_refused_not_replaced() {
        let data = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(data.path().join("secrets")).unwrap();
        let path = data.path().join("secrets/session.key");
        std::fs::write(&path, "").unwrap();
        let err = format!(
            "{:#}",
            load_or_create(data.path(), "session.key").unwrap_err()
        );
        assert!(
            err.contains("session.key") && err.contains("32 bytes"),
            "{err}"
        );
        assert_eq!(std::fs::read(&path).unwrap(), b"");
    }
}
