//! Blobs as files under `<data dir>/blobs/ab/cd/<key>`, written to a temporary file and renamed.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio_util::io::ReaderStream;

use super::{Blob, BlobError, BlobKey, BlobStore};

/// The filesystem blob store.
pub struct FsBlobStore {
    root: PathBuf,
}

impl FsBlobStore {
    /// Uses (and creates) `root` for blobs.
    pub fn open(root: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(root.join("tmp"))?;
        Ok(Self {
            root: root.to_owned(),
        })
    }

    fn path(&self, key: &BlobKey) -> PathBuf {
        let k = key.as_str();
        self.root.join(&k[0..2]).join(&k[2..4]).join(k)
    }
}

#[async_trait::async_trait]
impl BlobStore for FsBlobStore {
    async fn put(&self, key: &BlobKey, bytes: Bytes) -> Result<(), BlobError> {
        let path = self.path(key);
        if tokio::fs::try_exists(&path).await? {
            return Ok(());
        }
        if let Some(dir) = path.parent() {
            tokio::fs::create_dir_all(dir).await?;
        }
        // A unique temporary name, so concurrent writers of one key never share a file.
        let tmp = self.root.join("tmp").join(uuid::Uuid::new_v4().to_string());
        let mut file = tokio::fs::File::create(&tmp).await?;
        file.write_all(&bytes).await?;
        file.sync_all().await?;
        drop(file);
        if let Err(err) = tokio::fs::rename(&tmp, &path).await {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(err.into());
        }
        Ok(())
    }

    async fn get(&self, key: &BlobKey) -> Result<Option<Blob>, BlobError> {
        let file = match tokio::fs::File::open(self.path(key)).await {
            Ok(file) => file,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(err.into()),
        };
        let length = file.metadata().await?.len();
        let body = ReaderStream::with_capacity(file, 64 * 1024).boxed();
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
