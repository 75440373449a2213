//! The body `npm publish` sends for a one-file package, built by hand for raw protocol tests.

use base64::Engine;
use serde_json::{Value, json};
use sha1::Sha1;
use sha2::{Digest, Sha512};

/// A package version as `npm publish` would send it (npm-protocol.md §5.1).
pub struct PublishBody {
    pub name: String,
    pub version: String,
    pub tarball: Vec<u8>,
    pub tag: String,
    /// A Sigstore bundle sent as the second attachment, as `npm publish --provenance` does.
    pub sigstore: Option<String>,
}

impl PublishBody {
    pub fn new(name: &str, version: &str) -> Self {
        let package_json = json!({ "name": name, "version": version, "main": "index.js" });
        Self {
            name: name.into(),
            version: version.into(),
            tarball: tarball(
                "package",
                &package_json,
                &[("index.js", "module.exports = 42;\n")],
            ),
            tag: "latest".into(),
            sigstore: None,
        }
    }

    pub fn with_tarball(mut self, tarball: Vec<u8>) -> Self {
        self.tarball = tarball;
        self
    }

    /// Attaches `bundle` (JSON text) as `<name>-<version>.sigstore` with the bundle's media type
    /// as content type and the text itself as data, as libnpmpublish does.
    pub fn with_sigstore(mut self, bundle: String) -> Self {
        self.sigstore = Some(bundle);
        self
    }

    /// Hex SHA-512 of the tarball, as an in-toto subject digest carries it.
    pub fn sha512_hex(&self) -> String {
        hex::encode(Sha512::digest(&self.tarball))
    }

    pub fn integrity(&self) -> String {
        let digest = Sha512::digest(&self.tarball);
        format!(
            "sha512-{}",
            base64::engine::general_purpose::STANDARD.encode(digest)
        )
    }

    pub fn json(&self) -> Value {
        let shasum = hex::encode(Sha1::digest(&self.tarball));
        let file = format!("{}-{}.tgz", self.name, self.version);
        let mut body = json!({
            "_id": self.name,
            "name": self.name,
            "description": "a test package",
            "dist-tags": { (self.tag.clone()): self.version },
            "versions": { (self.version.clone()): {
                "name": self.name, "version": self.version, "main": "index.js",
                "readme": "# hello", "_id": format!("{}@{}", self.name, self.version),
                "_resolved": "/tmp/local/path.tgz",
                "dist": { "integrity": self.integrity(), "shasum": shasum,
                          "tarball": format!("http://wrong.example/{file}") }
            }},
            "access": null,
            "_attachments": { (file): {
                "content_type": "application/octet-stream",
                "data": base64::engine::general_purpose::STANDARD.encode(&self.tarball),
                "length": self.tarball.len(),
            }},
        });
        if let Some(bundle) = &self.sigstore {
            let media_type = serde_json::from_str::<Value>(bundle)
                .ok()
                .and_then(|b| b["mediaType"].as_str().map(str::to_owned))
                .unwrap_or_default();
            body["_attachments"][format!("{}-{}.sigstore", self.name, self.version)] = json!({
                "content_type": media_type, "data": bundle, "length": bundle.len(),
            });
        }
        body
    }
}

/// A gzip tarball with `package.json` and files under one top folder.
pub fn tarball(root: &str, package_json: &Value, files: &[(&str, &str)]) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut builder = tar::Builder::new(gz);
    let manifest = serde_json::to_vec(package_json).unwrap();
    let mut entries = vec![("package.json".to_owned(), manifest)];
    entries.extend(
        files
            .iter()
            .map(|(p, c)| (p.to_string(), c.as_bytes().to_vec())),
    );
    for (path, bytes) in entries {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder
            .append_data(&mut header, format!("{root}/{path}"), bytes.as_slice())
            .unwrap();
    }
    builder.into_inner().unwrap().finish().unwrap()
}
