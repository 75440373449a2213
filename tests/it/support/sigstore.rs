//! Sigstore bundles built by the tests: a throwaway Fulcio-like CA (a P-384 root and issuing
//! CA, as Fulcio has), a P-256 signing certificate per bundle, an in-toto statement in a DSSE
//! envelope, and the bundle JSON `npm publish --provenance` attaches (v0.3 media type). The
//! transparency log entry is shaped like Rekor's but no log ever saw it.

use base64::Engine;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, PKCS_ECDSA_P384_SHA384, SigningKey,
};
use serde_json::{Value, json};

pub const SLSA_V1: &str = "https://slsa.dev/provenance/v1";
pub const BUNDLE_V03: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
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

/// A CA issuing signing certificates.
pub struct TestCa {
    root: Vec<u8>,
    intermediate: Vec<u8>,
    issuer: Issuer<'static, KeyPair>,
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

    /// A bundle whose certificate this CA issued, signing `statement`.
    pub fn bundle(&self, statement: &Value) -> String {
        self.bundle_signing(statement, statement)
    }

    /// A bundle carrying `statement` with a signature over `signed` (a forgery when they differ).
    pub fn bundle_signing(&self, statement: &Value, signed: &Value) -> String {
        self.bundle_with(statement, signed, params("ci@example.test", false))
    }

    /// A bundle whose signing certificate had expired (in 2021) when it was logged (now).
    pub fn expired_bundle(&self, statement: &Value) -> String {
        let mut leaf = params("ci@example.test", false);
        leaf.not_before = rcgen::date_time_ymd(2021, 1, 1);
        leaf.not_after = rcgen::date_time_ymd(2021, 1, 2);
        self.bundle_with(statement, statement, leaf)
    }

    fn bundle_with(&self, statement: &Value, signed: &Value, leaf: CertificateParams) -> String {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let leaf = leaf.signed_by(&key, &self.issuer).unwrap();
        let payload = serde_json::to_vec(statement).unwrap();
        let signature = key
            .sign(&pae(&serde_json::to_vec(signed).unwrap()))
            .unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        json!({
            "mediaType": BUNDLE_V03,
            "verificationMaterial": {
                "certificate": { "rawBytes": b64(leaf.der()) },
                "tlogEntries": [{
                    "logIndex": "1",
                    "logId": { "keyId": b64(b"test log") },
                    "kindVersion": { "kind": "dsse", "version": "0.0.1" },
                    "integratedTime": now.to_string(),
                }],
                "timestampVerificationData": {},
            },
            "dsseEnvelope": {
                "payload": b64(&payload),
                "payloadType": "application/vnd.in-toto+json",
                "signatures": [{ "sig": b64(&signature) }],
            },
        })
        .to_string()
    }
}

/// A `trusted_root.json` trusting `cas`.
pub fn trusted_root(cas: &[&TestCa]) -> Value {
    json!({
        "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
        "tlogs": [],
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
