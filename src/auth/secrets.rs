//! Server secrets: taken from the environment, or generated into the data directory on first start.

use std::io::Write;
use std::path::Path;

use anyhow::Context;

/// Reads `<data dir>/secrets/<file>`, creating it with 32 random bytes (hex, mode 0600) when absent.
pub fn load_or_create(data_dir: &Path, file: &str) -> anyhow::Result<Vec<u8>> {
    let dir = data_dir.join("secrets");
    let path = dir.join(file);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            return hex::decode(text.trim()).with_context(|| {
                format!("{} is not hex; delete it to regenerate", path.display())
            });
        }
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
            return Err(err).with_context(|| format!("reading {}", path.display()));
        }
        Err(_) => {}
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut secret = vec![0u8; 32];
    rand::fill(&mut secret[..]);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(&path) {
        Ok(mut out) => {
            out.write_all(hex::encode(&secret).as_bytes())
                .with_context(|| format!("writing {}", path.display()))?;
            Ok(secret)
        }
        // Another process created it first: use theirs.
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {
            load_or_create(data_dir, file)
        }
        Err(err) => Err(err).with_context(|| format!("creating {}", path.display())),
    }
}
