//! Blobs as files under `<data dir>/blobs/ab/<key>`, written to a temporary file and renamed.
//!
//! One level of 256 directories: a second level (`ab/cd/`, the first layout) made nearly every
//! publish create a directory as well as a file, and directory creation is the costliest part of
//! a publish on ext4. Stores in that layout are moved over when opened.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt;
use tokio_util::io::ReaderStream;

use super::{Blob, BlobError, BlobKey, BlobStore};
use crate::store::group_sync::GroupSync;

/// The filesystem blob store.
pub struct FsBlobStore {
    root: PathBuf,
    /// Puts a written blob, and the directory entry naming it, on disk before `put` returns.
    sync: Arc<GroupSync>,
}

impl FsBlobStore {
    /// Uses (and creates) `root` for blobs.
    pub fn open(root: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(root.join("tmp"))?;
        move_from_two_levels(root)?;
        Ok(Self {
            sync: Arc::new(GroupSync::file_system(root)),
            root: root.to_owned(),
        })
    }

    fn path(&self, key: &BlobKey) -> PathBuf {
        let k = key.as_str();
        self.root.join(&k[0..2]).join(k)
    }
}

/// Marks a store in the one-level layout, so that opening it does not list every blob again.
const LAYOUT_MARKER: &str = "layout-1";

/// Moves blobs stored as `ab/cd/<key>` to `ab/<key>` and removes the emptied `cd/` directories.
fn move_from_two_levels(root: &Path) -> std::io::Result<()> {
    let marker = root.join(LAYOUT_MARKER);
    if marker.exists() {
        return Ok(());
    }
    for first in std::fs::read_dir(root)? {
        let first = first?.path();
        if !first.is_dir() || first.file_name().is_some_and(|n| n == "tmp") {
            continue;
        }
        for second in std::fs::read_dir(&first)? {
            let second = second?.path();
            if !second.is_dir() {
                continue;
            }
            for blob in std::fs::read_dir(&second)? {
                let blob = blob?;
                std::fs::rename(blob.path(), first.join(blob.file_name()))?;
            }
            std::fs::remove_dir(&second)?;
        }
    }
    std::fs::write(
        marker,
        b"blobs are stored as <first two hex digits>/<key>\n",
    )
}

/// Writes `bytes` to `path` through a temporary file in `tmp_dir`, so readers see the whole blob
/// or nothing, then waits until the bytes and the directory entry naming them are on disk: the
/// version that names the blob is committed only after that. One `syncfs` covers every blob
/// renamed before it started, where a `fsync` of each file and of its directory would cost
/// concurrent publishes two journal commits each.
fn write_durably(
    sync: &GroupSync,
    tmp_dir: &Path,
    path: &Path,
    bytes: &[u8],
) -> std::io::Result<()> {
    // An existing file may be another put's of the same bytes, renamed but not yet synced: the
    // wait below covers it either way.
    if !path.try_exists()? {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        // A unique temporary name, so concurrent writers of one key never share a file.
        let tmp = tmp_dir.join(uuid::Uuid::new_v4().to_string());
        let written = std::fs::File::create(&tmp).and_then(|mut file| file.write_all(bytes));
        let renamed = written.and_then(|()| std::fs::rename(&tmp, path));
        if renamed.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        renamed?;
    }
    sync.wait(sync.committed()?)
}

#[async_trait::async_trait]
impl BlobStore for FsBlobStore {
    /// One machine's directory serves one instance (with PostgreSQL, only under
    /// `PACKR_ALLOW_LOCAL_BLOBS`): its claims stay in memory.
    fn shared(&self) -> bool {
        false
    }

    async fn put(&self, key: &BlobKey, bytes: Bytes) -> Result<(), BlobError> {
        let (tmp_dir, path) = (self.root.join("tmp"), self.path(key));
        let sync = Arc::clone(&self.sync);
        // One trip to the blocking pool for the whole write, not one per file operation.
        tokio::task::spawn_blocking(move || write_durably(&sync, &tmp_dir, &path, &bytes))
            .await
            .map_err(std::io::Error::other)??;
        Ok(())
    }

    async fn get(&self, key: &BlobKey) -> Result<Option<Blob>, BlobError> {
        let file = match tokio::fs::File::open(self.path(key)).await {
            Ok(file) => file,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(err.into()),
        };
        let length = file.metadata().await?.len();
        // Large reads: a 4 MiB tarball in 256 KiB chunks cost a quarter less CPU than in 64 KiB ones.
        let body = ReaderStream::with_capacity(file, 256 * 1024).boxed();
        Ok(Some(Blob { length, body }))
    }

    async fn delete(&self, key: &BlobKey) -> Result<(), BlobError> {
        match tokio::fs::remove_file(self.path(key)).await {
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => Err(err.into()),
            _ => Ok(()),
        }
    }

    async fn check(&self) -> Result<(), BlobError> {
        tokio::fs::metadata(&self.root).await?;
        Ok(())
    }

    async fn presigned_get(&self, _key: &BlobKey) -> Result<Option<String>, BlobError> {
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn read_all(store: &FsBlobStore, key: &BlobKey) -> Option<Vec<u8>> {
        let blob = store.get(key).await.unwrap()?;
        let chunks: Vec<_> = blob.body.collect().await;
        Some(
            chunks
                .into_iter()
                .flat_map(|c| c.unwrap().to_vec())
                .collect(),
        )
    }

    // Reading back, idempotent puts and deletes are covered for both stores in tests/it/blob_store.rs;
    // these are what only the filesystem layout has.
    #[tokio::test]
    async fn a_blob_lies_one_level_down_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsBlobStore::open(dir.path()).unwrap();
        let key = BlobKey::parse(&"ab".repeat(64)).unwrap();
        store
            .put(&key, Bytes::from_static(b"tarball"))
            .await
            .unwrap();
        let path = dir.path().join("ab").join(key.as_str());
        assert_eq!(std::fs::read(path).unwrap(), b"tarball");
        assert_eq!(
            std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
            0
        );
    }

    #[tokio::test]
    async fn blobs_in_the_two_level_layout_are_moved_when_the_store_opens() {
        let dir = tempfile::tempdir().unwrap();
        let key = BlobKey::parse(&"cd".repeat(64)).unwrap();
        let old = dir.path().join("cd").join("cd");
        std::fs::create_dir_all(&old).unwrap();
        std::fs::write(old.join(key.as_str()), b"old layout").unwrap();
        let store = FsBlobStore::open(dir.path()).unwrap();
        assert_eq!(read_all(&store, &key).await.unwrap(), b"old layout");
        assert!(!old.exists());
        // Opened again, the marker spares the walk; the blob stays where it is.
        let store = FsBlobStore::open(dir.path()).unwrap();
        assert_eq!(read_all(&store, &key).await.unwrap(), b"old layout");
    }
}
