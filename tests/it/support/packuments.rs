//! Packuments over HTTP for the miss and rendering tests: publishing versions of a chosen size,
//! and reading as a client that may accept gzip. Each read checks the encoding rule (gzip exactly
//! when accepted and the document is bigger than one segment's worth) and the ETag of what was
//! sent, and gives back the plain JSON.

use reqwest::StatusCode;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::publish_body::PublishBody;
use super::server::TestServer;

/// Publishes `name@version` with the description `<name> at <version>`, its manifest padded by
/// `padding` bytes (to make a package's documents as big as a test needs).
pub async fn publish(server: &TestServer, token: &str, name: &str, version: &str, padding: usize) {
    let mut body = PublishBody::new(name, version).json();
    body["versions"][version]["description"] = json!(format!("{name} at {version}"));
    body["versions"][version]["padding"] = json!("x".repeat(padding));
    let published = reqwest::Client::new()
        .put(format!("{}/{}", server.url, name.replace('/', "%2f")))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(published.status(), StatusCode::CREATED, "{name}@{version}");
}

/// The abbreviated document's media type.
pub const ABBREVIATED: &str = "application/vnd.npm.install-v1+json";

/// One packument response: its status, ETag, whether the body was gzip, and the plain JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Read {
    /// The status.
    pub status: StatusCode,
    /// The `ETag` header, or empty.
    pub etag: String,
    /// Whether the body came gzip-compressed.
    pub gzip: bool,
    /// The JSON (decompressed).
    pub plain: Vec<u8>,
}

/// The strong ETag of a document's plain JSON read on `base_url`, as the registry makes it: of
/// the digest of the document with the base left out of each tarball URL, and the base.
pub fn etag_of(plain: &[u8], base_url: &str) -> String {
    let json = std::str::from_utf8(plain).unwrap();
    let template = json.replace(&format!("\"tarball\":\"{base_url}"), "\"tarball\":\"");
    let digest = &Sha256::digest(template.as_bytes())[..16];
    let tag = Sha256::new()
        .chain_update(digest)
        .chain_update(base_url.as_bytes())
        .finalize();
    format!("\"{}\"", hex::encode(&tag[..16]))
}

/// `GET /<name>` on `host` with `accept`, asking for gzip when `gzip`.
pub async fn read(
    server: &TestServer,
    token: &str,
    name: &str,
    host: &str,
    accept: &str,
    gzip: bool,
) -> Read {
    let mut request = reqwest::Client::new()
        .get(format!("{}/{}", server.url, name.replace('/', "%2f")))
        .bearer_auth(token)
        .header("host", host)
        .header("accept", accept);
    if gzip {
        request = request.header("accept-encoding", "gzip");
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    };
    let etag = header("etag");
    let sent_gzip = header("content-encoding") == "gzip";
    let body = response.bytes().await.unwrap().to_vec();
    let plain = if sent_gzip { gunzip(&body) } else { body };
    if status == StatusCode::OK {
        let big = plain.len() > packr::packages::packument::SMALL_DOCUMENT_BYTES;
        assert_eq!(
            sent_gzip,
            gzip && big,
            "gzip sent for {name} ({} bytes)",
            plain.len()
        );
        let plain_etag = etag_of(&plain, &format!("http://{host}"));
        let expected = if sent_gzip {
            format!("{}-gz\"", plain_etag.trim_end_matches('"'))
        } else {
            plain_etag
        };
        assert_eq!(etag, expected, "{name}");
    }
    Read {
        status,
        etag,
        gzip: sent_gzip,
        plain,
    }
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Read as _;
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .unwrap();
    out
}
