//! Sigstore bundles built by the tests: a throwaway Fulcio-like CA (a P-384 root and issuing
//! CA, as Fulcio has), a P-256 signing certificate per bundle carrying Fulcio's identity
//! extensions for a CI build, an in-toto statement in a DSSE envelope, and a throwaway Rekor-like
//! log (a P-256 key) that logs the bundle's `dsse` entry into a real RFC 6962 Merkle tree among
//! other entries, with an inclusion proof, a checkpoint it signs and a signed entry timestamp.
//! The bundle is the JSON `npm publish --provenance` attaches (v0.3 media type).

use base64::Engine;
use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DistinguishedName, DnType, IsCa, Issuer,
    KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, PKCS_ECDSA_P384_SHA384, PublicKeyData,
    SanType, SigningKey,
};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

pub const SLSA_V1: &str = "https://slsa.dev/provenance/v1";
pub const BUNDLE_V03: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
pub const GITHUB_ISSUER: &str = "https://token.actions.githubusercontent.com";

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn params(common_name: &str, ca: bool) -> CertificateParams {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    if ca {
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    } else {
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    }
    params
}

/// The CI build a signing certificate is issued to, as Fulcio writes it.
#[derive(Clone)]
pub struct Build {
    /// The OIDC issuer (`1.3.6.1.4.1.57264.1.8`).
    pub issuer: String,
    /// The source repository URI (`.1.12`).
    pub repository: String,
    /// The workflow file inside it; with the ref it makes the build config URI (`.1.18`).
    pub workflow: String,
    /// The git ref (`.1.14`).
    pub git_ref: String,
}

impl Build {
    /// `https://github.com/<repository>`'s `.github/workflows/<file>` on `refs/heads/main`.
    pub fn github(repository: &str, file: &str) -> Self {
        Self {
            issuer: GITHUB_ISSUER.into(),
            repository: format!("https://github.com/{repository}"),
            workflow: format!(".github/workflows/{file}"),
            git_ref: "refs/heads/main".into(),
        }
    }

    /// The build of `acme/widget`'s `release.yml`, the default of every bundle.
    pub fn acme() -> Self {
        Self::github("acme/widget", "release.yml")
    }

    fn config_uri(&self) -> String {
        format!("{}/{}@{}", self.repository, self.workflow, self.git_ref)
    }

    /// Adds the extensions and SAN to a leaf's parameters.
    fn apply(&self, leaf: &mut CertificateParams) {
        let fulcio = |n: u64, value: &str| {
            CustomExtension::from_oid_content(&[1, 3, 6, 1, 4, 1, 57264, 1, n], utf8_string(value))
        };
        leaf.custom_extensions = vec![
            CustomExtension::from_oid_content(
                &[1, 3, 6, 1, 4, 1, 57264, 1, 1],
                self.issuer.as_bytes().to_vec(),
            ),
            fulcio(8, &self.issuer),
            fulcio(12, &self.repository),
            fulcio(13, "0123456789abcdef0123456789abcdef01234567"),
            fulcio(14, &self.git_ref),
            fulcio(18, &self.config_uri()),
        ];
        leaf.subject_alt_names = vec![SanType::URI(self.config_uri().try_into().unwrap())];
    }
}

/// A DER UTF8String, as Fulcio encodes its extensions from `.1.8` on.
fn utf8_string(value: &str) -> Vec<u8> {
    let bytes = value.as_bytes();
    let mut der = vec![0x0c];
    match bytes.len() {
        n if n < 0x80 => der.push(n as u8),
        n if n < 0x100 => der.extend([0x81, n as u8]),
        n => der.extend([0x82, (n >> 8) as u8, n as u8]),
    }
    der.extend_from_slice(bytes);
    der
}

fn pem(der: &[u8]) -> String {
    let body = b64(der);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        lines.join("\n")
    )
}

/// RFC 6962 leaf and node hashes, and MTH / PATH from the RFC's definitions.
mod merkle {
    use sha2::{Digest, Sha256};

    pub type Hash = [u8; 32];

    pub fn leaf(data: &[u8]) -> Hash {
        Sha256::new()
            .chain_update([0u8])
            .chain_update(data)
            .finalize()
            .into()
    }

    fn node(left: &Hash, right: &Hash) -> Hash {
        Sha256::new()
            .chain_update([1u8])
            .chain_update(left)
            .chain_update(right)
            .finalize()
            .into()
    }

    fn split(n: usize) -> usize {
        let mut k = 1;
        while k * 2 < n {
            k *= 2;
        }
        k
    }

    pub fn root(leaves: &[Hash]) -> Hash {
        if leaves.len() == 1 {
            return leaves[0];
        }
        let k = split(leaves.len());
        node(&root(&leaves[..k]), &root(&leaves[k..]))
    }

    pub fn path(m: usize, leaves: &[Hash]) -> Vec<Hash> {
        if leaves.len() <= 1 {
            return Vec::new();
        }
        let k = split(leaves.len());
        let (mut path, sibling) = if m < k {
            (path(m, &leaves[..k]), root(&leaves[k..]))
        } else {
            (path(m - k, &leaves[k..]), root(&leaves[..k]))
        };
        path.push(sibling);
        path
    }
}

/// A transparency log: a key, the id entries name it by, and its name in checkpoints.
pub struct TestLog {
    key: KeyPair,
    log_id: Vec<u8>,
    host: String,
}

impl TestLog {
    /// A log at `https://<host>`; its id is the SHA-256 of its key's DER, as Rekor's is.
    pub fn new(host: &str) -> Self {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let log_id = Sha256::digest(key.subject_public_key_info()).to_vec();
        Self {
            key,
            log_id,
            host: host.into(),
        }
    }

    /// A log with `log`'s name and id but a key of its own: what it signs, `log`'s key did not.
    pub fn impostor_of(log: &TestLog) -> Self {
        Self {
            key: KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap(),
            log_id: log.log_id.clone(),
            host: log.host.clone(),
        }
    }

    pub fn url(&self) -> String {
        format!("https://{}", self.host)
    }

    /// This log as a `tlogs` entry of a `trusted_root.json`.
    pub fn tlog(&self) -> Value {
        json!({
            "baseUrl": self.url(),
            "hashAlgorithm": "SHA2_256",
            "publicKey": {
                "rawBytes": b64(&self.key.subject_public_key_info()),
                "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                "validFor": { "start": "2020-01-01T00:00:00Z" },
            },
            "logId": { "keyId": b64(&self.log_id) },
        })
    }

    /// A `tlogEntries` item logging `body` as `kind` 0.0.1: leaf 5 of a tree of 7 (the others
    /// are other artifacts' entries), with its audit path, a checkpoint of that tree this log
    /// signs, and the signed entry timestamp of `integratedTime` now.
    pub fn entry(&self, kind: &str, body: &[u8]) -> Value {
        let index = 5;
        let mut leaves: Vec<merkle::Hash> = (0..7)
            .map(|i| merkle::leaf(format!("{{\"another\":\"entry {i}\"}}").as_bytes()))
            .collect();
        leaves[index] = merkle::leaf(body);
        let root = merkle::root(&leaves);
        let proof: Vec<String> = merkle::path(index, &leaves)
            .iter()
            .map(|h| b64(h))
            .collect();
        let note = format!(
            "{} - 1234567\n{}\n{}\n",
            self.host,
            leaves.len(),
            b64(&root)
        );
        let mut signature = self.log_id[..4].to_vec();
        signature.extend(self.key.sign(note.as_bytes()).unwrap());
        let checkpoint = format!("{note}\n\u{2014} {} {}\n", self.host, b64(&signature));
        // The global index differs from the index in this tree, as a Rekor shard's does.
        let log_index = 1000 + index as i64;
        let time = now();
        let set_payload = format!(
            r#"{{"body":"{}","integratedTime":{time},"logID":"{}","logIndex":{log_index}}}"#,
            b64(body),
            hex::encode(&self.log_id)
        );
        json!({
            "logIndex": log_index.to_string(),
            "logId": { "keyId": b64(&self.log_id) },
            "kindVersion": { "kind": kind, "version": "0.0.1" },
            "integratedTime": time.to_string(),
            "inclusionPromise": {
                "signedEntryTimestamp": b64(&self.key.sign(set_payload.as_bytes()).unwrap()),
            },
            "inclusionProof": {
                "logIndex": index.to_string(),
                "rootHash": b64(&root),
                "treeSize": leaves.len().to_string(),
                "hashes": proof,
                "checkpoint": { "envelope": checkpoint },
            },
            "canonicalizedBody": b64(body),
        })
    }
}

/// A CA issuing signing certificates, and the log its bundles are logged in.
pub struct TestCa {
    root: Vec<u8>,
    intermediate: Vec<u8>,
    issuer: Issuer<'static, KeyPair>,
    pub log: TestLog,
}

impl TestCa {
    pub fn new(name: &str) -> Self {
        let root_key = KeyPair::generate_for(&PKCS_ECDSA_P384_SHA384).unwrap();
        let root_params = params(&format!("{name} root"), true);
        let root = root_params.self_signed(&root_key).unwrap();
        let root_issuer = Issuer::new(root_params, root_key);
        let key = KeyPair::generate_for(&PKCS_ECDSA_P384_SHA384).unwrap();
        let intermediate_params = params(&format!("{name} intermediate"), true);
        let intermediate = intermediate_params.signed_by(&key, &root_issuer).unwrap();
        Self {
            root: root.der().to_vec(),
            intermediate: intermediate.der().to_vec(),
            issuer: Issuer::new(intermediate_params, key),
            log: TestLog::new(&format!("{name}.rekor.test")),
        }
    }

    /// This CA as a `certificateAuthorities` entry of a `trusted_root.json`.
    pub fn authority(&self) -> Value {
        json!({
            "subject": { "organization": "packr tests", "commonName": "test fulcio" },
            "uri": "https://fulcio.invalid",
            "certChain": { "certificates": [
                { "rawBytes": b64(&self.intermediate) }, { "rawBytes": b64(&self.root) },
            ]},
            "validFor": { "start": "2020-01-01T00:00:00.000Z" },
        })
    }

    /// A bundle of `statement`, to adjust before it is made.
    pub fn sign(&self, statement: &Value) -> Bundle<'_> {
        Bundle {
            ca: self,
            statement: statement.clone(),
            signed: statement.clone(),
            logged_payload: None,
            build: Build::acme(),
            expired: false,
            log: &self.log,
        }
    }

    /// A bundle whose certificate this CA issued to `acme/widget`'s release workflow, signing
    /// `statement`, logged in this CA's log.
    pub fn bundle(&self, statement: &Value) -> String {
        self.sign(statement).text()
    }

    /// A bundle carrying `statement` with a signature over `signed` (a forgery when they differ).
    pub fn bundle_signing(&self, statement: &Value, signed: &Value) -> String {
        self.sign(statement).signing(signed).text()
    }

    /// A bundle whose signing certificate had expired (in 2021) when it was logged (now).
    pub fn expired_bundle(&self, statement: &Value) -> String {
        self.sign(statement).expired().text()
    }
}

/// A bundle being made.
pub struct Bundle<'a> {
    ca: &'a TestCa,
    statement: Value,
    signed: Value,
    logged_payload: Option<Vec<u8>>,
    build: Build,
    expired: bool,
    log: &'a TestLog,
}

impl<'a> Bundle<'a> {
    /// The signature is over `signed` instead of the statement carried.
    pub fn signing(mut self, signed: &Value) -> Self {
        self.signed = signed.clone();
        self
    }

    /// The log entry names the hash of `other` as its payload's (with the bundle's signature).
    pub fn logging_payload_of(mut self, other: &Value) -> Self {
        self.logged_payload = Some(serde_json::to_vec(other).unwrap());
        self
    }

    /// The certificate is issued to `build`.
    pub fn built_by(mut self, build: Build) -> Self {
        self.build = build;
        self
    }

    /// The certificate was valid for a day in 2021.
    pub fn expired(mut self) -> Self {
        self.expired = true;
        self
    }

    /// Logged in `log` instead of the CA's.
    pub fn in_log(mut self, log: &'a TestLog) -> Self {
        self.log = log;
        self
    }

    pub fn json(self) -> Value {
        let mut leaf = params("", false);
        leaf.distinguished_name = DistinguishedName::new();
        self.build.apply(&mut leaf);
        if self.expired {
            leaf.not_before = rcgen::date_time_ymd(2021, 1, 1);
            leaf.not_after = rcgen::date_time_ymd(2021, 1, 2);
        }
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let leaf = leaf.signed_by(&key, &self.ca.issuer).unwrap();
        let payload = serde_json::to_vec(&self.statement).unwrap();
        let signature = key
            .sign(&pae(&serde_json::to_vec(&self.signed).unwrap()))
            .unwrap();
        let logged_payload = self.logged_payload.as_deref().unwrap_or(&payload);
        // Rekor's dsse 0.0.1 body, keys sorted as Rekor canonicalizes them.
        let body = json!({
            "apiVersion": "0.0.1",
            "kind": "dsse",
            "spec": {
                "envelopeHash": { "algorithm": "sha256", "value": hex::encode(Sha256::digest(&payload)) },
                "payloadHash": { "algorithm": "sha256", "value": hex::encode(Sha256::digest(logged_payload)) },
                "signatures": [{ "signature": b64(&signature), "verifier": b64(pem(leaf.der()).as_bytes()) }],
            },
        });
        let entry = self.log.entry("dsse", body.to_string().as_bytes());
        json!({
            "mediaType": BUNDLE_V03,
            "verificationMaterial": {
                "certificate": { "rawBytes": b64(leaf.der()) },
                "tlogEntries": [entry],
                "timestampVerificationData": {},
            },
            "dsseEnvelope": {
                "payload": b64(&payload),
                "payloadType": "application/vnd.in-toto+json",
                "signatures": [{ "sig": b64(&signature) }],
            },
        })
    }

    pub fn text(self) -> String {
        self.json().to_string()
    }
}

/// A `trusted_root.json` trusting `cas` and their logs.
pub fn trusted_root(cas: &[&TestCa]) -> Value {
    json!({
        "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
        "tlogs": cas.iter().map(|ca| ca.log.tlog()).collect::<Vec<_>>(),
        "certificateAuthorities": cas.iter().map(|ca| ca.authority()).collect::<Vec<_>>(),
        "ctlogs": [],
        "timestampAuthorities": [],
    })
}

/// DSSE's pre-authentication encoding of an in-toto payload.
fn pae(payload: &[u8]) -> Vec<u8> {
    let kind = "application/vnd.in-toto+json";
    let mut message = format!("DSSEv1 {} {kind} {} ", kind.len(), payload.len()).into_bytes();
    message.extend_from_slice(payload);
    message
}

/// npm's package URL of `name@version` (`@` of the scope as `%40`).
pub fn purl(name: &str, version: &str) -> String {
    format!("pkg:npm/{}@{version}", name.replacen('@', "%40", 1))
}

/// An in-toto Statement v1 with SLSA provenance v1 about one subject, as GitHub Actions makes it.
pub fn statement(subject: &str, sha512_hex: &str) -> Value {
    json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{ "name": subject, "digest": { "sha512": sha512_hex } }],
        "predicateType": SLSA_V1,
        "predicate": {
            "buildDefinition": {
                "buildType": "https://slsa-framework.github.io/github-actions-buildtypes/workflow/v1",
                "externalParameters": { "workflow": {
                    "ref": "refs/heads/main", "repository": "https://github.com/acme/widget",
                    "path": ".github/workflows/release.yml" } },
            },
            "runDetails": { "builder": { "id": "https://github.com/actions/runner/github-hosted" } },
        },
    })
}
