//! The blob-store contract, run against every backend: the filesystem store and the S3 store on a
//! real S3 server (s3s-fs, which checks signatures). Plus what only S3 has: presigned URLs, and
//! outages that must surface as `BlobError::Unavailable` within the retry budget.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::TryStreamExt;
use packr::config::S3Config;
use packr::store::blob::fs::FsBlobStore;
use packr::store::blob::s3::S3BlobStore;
use packr::store::{BlobError, BlobKey, BlobStore};
use reqwest::StatusCode;
use sha2::{Digest, Sha512};

use crate::support::on_each_storage;
use crate::support::s3::S3Server;
use crate::support::server::Storage;

/// The longest an outage may take to be reported: four quick attempts and 0.7 s of pauses, with
/// room for a loaded machine.
const RETRY_BUDGET: Duration = Duration::from_secs(5);

/// A store under test, and what keeps its backend alive.
struct Backend {
    store: Arc<dyn BlobStore>,
    s3: Option<S3Server>,
    _dir: tempfile::TempDir,
}

impl Backend {
    async fn start(storage: Storage) -> Self {
        let dir = tempfile::tempdir().unwrap();
        match storage {
            Storage::Fs => Self {
                store: Arc::new(FsBlobStore::open(dir.path()).unwrap()),
                s3: None,
                _dir: dir,
            },
            Storage::S3 => {
                let s3 = S3Server::start().await;
                Self {
                    store: Arc::new(S3BlobStore::new(&s3.config()).unwrap()),
                    s3: Some(s3),
                    _dir: dir,
                }
            }
        }
    }
}

/// Bytes and their content address.
fn blob(seed: u8, len: usize) -> (BlobKey, Bytes) {
    let bytes: Vec<u8> = (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect();
    let key = BlobKey::parse(&hex::encode(Sha512::digest(&bytes))).unwrap();
    (key, Bytes::from(bytes))
}

/// Reads a blob whole, asserting the announced length matches the bytes.
async fn read(store: &dyn BlobStore, key: &BlobKey) -> Option<Vec<u8>> {
    let blob = store.get(key).await.unwrap()?;
    let length = blob.length;
    let chunks: Vec<Bytes> = blob.body.try_collect().await.unwrap();
    let bytes = chunks.concat();
    assert_eq!(length, bytes.len() as u64, "announced length");
    Some(bytes)
}

on_each_storage!(a_stored_blob_reads_back_with_its_length);
async fn a_stored_blob_reads_back_with_its_length(storage: Storage) {
    let backend = Backend::start(storage).await;
    let store = backend.store.as_ref();
    // Large enough to arrive in several chunks.
    let (key, bytes) = blob(1, 700 * 1024 + 3);
    store.put(&key, bytes.clone()).await.unwrap();
    assert_eq!(read(store, &key).await.unwrap(), bytes);
    let (empty_key, empty) = blob(2, 0);
    store.put(&empty_key, empty).await.unwrap();
    assert_eq!(read(store, &empty_key).await.unwrap(), Vec::<u8>::new());
}

on_each_storage!(a_missing_blob_is_none);
async fn a_missing_blob_is_none(storage: Storage) {
    let backend = Backend::start(storage).await;
    let (key, _) = blob(3, 10);
    assert!(backend.store.get(&key).await.unwrap().is_none());
}

on_each_storage!(deleting_is_idempotent_and_leaves_other_blobs_alone);
async fn deleting_is_idempotent_and_leaves_other_blobs_alone(storage: Storage) {
    let backend = Backend::start(storage).await;
    let store = backend.store.as_ref();
    let (gone, gone_bytes) = blob(4, 100);
    let (kept, kept_bytes) = blob(5, 100);
    store.delete(&gone).await.unwrap();
    store.put(&gone, gone_bytes).await.unwrap();
    store.put(&kept, kept_bytes.clone()).await.unwrap();
    store.delete(&gone).await.unwrap();
    store.delete(&gone).await.unwrap();
    assert!(store.get(&gone).await.unwrap().is_none());
    assert_eq!(read(store, &kept).await.unwrap(), kept_bytes);
}

on_each_storage!(storing_a_key_twice_is_harmless);
async fn storing_a_key_twice_is_harmless(storage: Storage) {
    let backend = Backend::start(storage).await;
    let store = backend.store.as_ref();
    let (key, bytes) = blob(6, 4096);
    store.put(&key, bytes.clone()).await.unwrap();
    store.put(&key, bytes.clone()).await.unwrap();
    assert_eq!(read(store, &key).await.unwrap(), bytes);
}

on_each_storage!(concurrent_writes_of_one_key_all_succeed);
async fn concurrent_writes_of_one_key_all_succeed(storage: Storage) {
    let backend = Backend::start(storage).await;
    let (key, bytes) = blob(7, 64 * 1024);
    let writes = (0..8).map(|_| backend.store.put(&key, bytes.clone()));
    for result in futures_util::future::join_all(writes).await {
        result.unwrap();
    }
    assert_eq!(read(backend.store.as_ref(), &key).await.unwrap(), bytes);
}

on_each_storage!(a_working_store_passes_its_check);
async fn a_working_store_passes_its_check(storage: Storage) {
    let backend = Backend::start(storage).await;
    backend.store.check().await.unwrap();
}

#[tokio::test]
async fn the_filesystem_store_has_no_presigned_urls() {
    let backend = Backend::start(Storage::Fs).await;
    let (key, bytes) = blob(8, 10);
    backend.store.put(&key, bytes).await.unwrap();
    assert_eq!(backend.store.presigned_get(&key).await.unwrap(), None);
}

#[tokio::test]
async fn s3_objects_live_under_the_prefix_in_a_fan_out() {
    let backend = Backend::start(Storage::S3).await;
    let (key, bytes) = blob(9, 10);
    backend.store.put(&key, bytes).await.unwrap();
    let k = key.as_str();
    let keys = backend.s3.as_ref().unwrap().keys().await;
    assert_eq!(keys, [format!("tarballs/{}/{}/{k}", &k[0..2], &k[2..4])]);
}

#[tokio::test]
async fn a_presigned_url_serves_the_bytes_and_a_tampered_one_is_refused() {
    let backend = Backend::start(Storage::S3).await;
    let (key, bytes) = blob(10, 300 * 1024);
    backend.store.put(&key, bytes.clone()).await.unwrap();
    let url = backend.store.presigned_get(&key).await.unwrap().unwrap();
    assert!(
        url.starts_with(&backend.s3.as_ref().unwrap().endpoint),
        "{url}"
    );

    let response = reqwest::get(&url).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.bytes().await.unwrap(), bytes);

    let tampered = tamper_signature(&url);
    let refused = reqwest::get(&tampered).await.unwrap();
    assert!(
        refused.status().is_client_error(),
        "a tampered signature must be refused, got {}",
        refused.status()
    );
    let (other, _) = blob(11, 10);
    let k = key.as_str();
    let swapped = url.replace(k, other.as_str());
    let refused = reqwest::get(&swapped).await.unwrap();
    assert!(
        refused.status().is_client_error(),
        "a URL signed for another key must be refused, got {}",
        refused.status()
    );
}

/// Changes one hex digit of `X-Amz-Signature`.
fn tamper_signature(url: &str) -> String {
    let at = url.find("X-Amz-Signature=").unwrap() + "X-Amz-Signature=".len();
    let mut tampered = url.to_owned();
    let digit = if &url[at..=at] == "0" { "1" } else { "0" };
    tampered.replace_range(at..=at, digit);
    tampered
}

#[tokio::test]
async fn a_stopped_s3_server_makes_every_operation_unavailable_within_the_retry_budget() {
    let mut backend = Backend::start(Storage::S3).await;
    let (key, bytes) = blob(12, 100);
    backend.store.put(&key, bytes.clone()).await.unwrap();
    backend.s3.as_mut().unwrap().stop();
    let store = backend.store.as_ref();

    let started = Instant::now();
    assert_unavailable(store.check().await);
    assert_unavailable(store.get(&key).await.map(drop));
    assert_unavailable(store.put(&key, bytes).await);
    assert_unavailable(store.delete(&key).await);
    let elapsed = started.elapsed();
    assert!(
        elapsed < 4 * RETRY_BUDGET,
        "four operations took {elapsed:?}"
    );
    // Each one retried with backoff rather than giving up at once.
    assert!(
        elapsed >= 4 * Duration::from_millis(700),
        "four operations took only {elapsed:?}"
    );
}

#[tokio::test]
async fn an_s3_server_that_never_answers_times_out_and_is_unavailable() {
    // Accepts connections and never answers them.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", silent.local_addr().unwrap());
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });
    let s3 = S3Server::start().await;
    let config = S3Config {
        endpoint: Some(endpoint),
        timeout: Duration::from_millis(300),
        ..s3.config()
    };
    let store = S3BlobStore::new(&config).unwrap();
    let (key, _) = blob(13, 10);

    let started = Instant::now();
    assert_unavailable(store.get(&key).await.map(drop));
    let elapsed = started.elapsed();
    // Four attempts of 0.3 s plus 0.7 s of pauses.
    assert!(
        elapsed >= Duration::from_millis(1_900) && elapsed < RETRY_BUDGET,
        "took {elapsed:?}"
    );
    holder.abort();
}

#[tokio::test]
async fn wrong_credentials_are_refused_not_unavailable() {
    let backend = Backend::start(Storage::S3).await;
    let mut config = backend.s3.as_ref().unwrap().config();
    if let Some(keys) = config.credentials.as_mut() {
        keys.secret_access_key = "not-the-secret".into();
    }
    let store = S3BlobStore::new(&config).unwrap();
    let (key, bytes) = blob(14, 10);
    let err = store.put(&key, bytes).await.unwrap_err();
    assert!(matches!(err, BlobError::Refused(_)), "{err:?}");
    assert!(err.to_string().contains("SignatureDoesNotMatch"), "{err}");
}

#[track_caller]
fn assert_unavailable(result: Result<(), BlobError>) {
    match result {
        Err(BlobError::Unavailable(cause)) => {
            assert!(cause.contains("4 times"), "{cause}");
        }
        other => panic!("expected BlobError::Unavailable, got {other:?}"),
    }
}
