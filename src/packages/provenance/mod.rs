//! Provenance (npm-protocol.md §12.4): the Sigstore bundle `npm publish --provenance` attaches
//! as `<name>-<version>.sigstore`. Packr checks that its in-toto statement is about the tarball
//! being published, and, when an operator configured Sigstore's trust root, that it was signed
//! by a certificate of that root's Fulcio CA (see [`trust_root`]).

pub mod trust_root;
mod x509;

use base64::Engine;
use serde_json::{Map, Value, json};

use super::{PackageName, RegistryError, Version};
pub use trust_root::TrustRoot;

/// Every Sigstore bundle media type starts so (`…bundle+json;version=0.2`, `…bundle.v0.3+json`).
const BUNDLE_MEDIA_TYPE: &str = "application/vnd.dev.sigstore.bundle";
/// The DSSE payload type of an in-toto statement.
const IN_TOTO_PAYLOAD: &str = "application/vnd.in-toto+json";
/// Statement versions npm sends: v1 from GitHub Actions, v0.1 from GitLab.
const STATEMENT_TYPES: &[&str] = &[
    "https://in-toto.io/Statement/v1",
    "https://in-toto.io/Statement/v0.1",
];

/// A bundle that passed the checks, ready to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedBundle {
    /// The statement's `predicateType` (SLSA provenance v1 from GitHub, v0.2 from GitLab).
    pub predicate_type: String,
    /// The bundle as sent, served back unchanged at the attestations URL.
    pub bundle: String,
    /// Whether its certificate chain and signature were verified against the configured trust
    /// root; `false` when none is configured.
    pub verified: bool,
}

fn invalid(message: impl Into<String>) -> RegistryError {
    RegistryError::Invalid(message.into())
}

/// The package URL npm writes as the statement's subject: the scope's `@` as `%40`
/// (npm-package-arg `toPurl`), the `/` kept.
pub fn purl(name: &PackageName, version: &Version) -> String {
    let name = name.as_str();
    let name = name
        .strip_prefix('@')
        .map_or_else(|| name.to_owned(), |rest| format!("%40{rest}"));
    format!("pkg:npm/{name}@{version}")
}

/// Reads a subject purl as (name, version), ignoring qualifiers (`?repository_url=` is what
/// `toPurl` adds for a registry other than npmjs).
fn read_purl(purl: &str) -> Option<(String, String)> {
    let rest = purl.strip_prefix("pkg:npm/")?;
    let rest = rest.split(['?', '#']).next()?;
    let (name, version) = rest.rsplit_once('@')?;
    let name = name
        .replace("%40", "@")
        .replace("%2F", "/")
        .replace("%2f", "/");
    Some((name, version.to_owned()))
}

/// The attestation the stored manifest carries as `dist.attestations`; the URL is made
/// absolute with the public base URL when a document is rendered.
pub fn dist_attestations(name: &PackageName, version: &Version, checked: &CheckedBundle) -> Value {
    json!({
        "url": attestations_path(name, version),
        "provenance": { "predicateType": checked.predicate_type, "verified": checked.verified },
    })
}

/// `/-/npm/v1/attestations/<name>@<version>`, the scope's slash encoded as npmjs writes it.
pub fn attestations_path(name: &PackageName, version: &Version) -> String {
    format!(
        "/-/npm/v1/attestations/{}@{version}",
        name.as_str().replace('/', "%2f")
    )
}

/// Checks a bundle attached to the publish of `name@version` whose tarball has SHA-512
/// `sha512_hex`. With a trust root it must also verify; every refusal says what differed.
pub fn check(
    text: &str,
    name: &PackageName,
    version: &Version,
    sha512_hex: &str,
    trust: Option<&TrustRoot>,
) -> Result<CheckedBundle, RegistryError> {
    let bundle: Map<String, Value> = serde_json::from_str(text)
        .map_err(|e| invalid(format!("the provenance bundle is not a JSON object: {e}")))?;
    let media_type = bundle
        .get("mediaType")
        .and_then(Value::as_str)
        .unwrap_or("");
    if !media_type.starts_with(BUNDLE_MEDIA_TYPE) {
        return Err(invalid(format!(
            "the provenance bundle's mediaType is {media_type:?}, not a Sigstore bundle ({BUNDLE_MEDIA_TYPE}…)"
        )));
    }
    let envelope = Envelope::read(&bundle)?;
    let statement: Map<String, Value> = serde_json::from_slice(&envelope.payload).map_err(|e| {
        invalid(format!(
            "the provenance bundle's DSSE payload is not an in-toto statement: {e}"
        ))
    })?;
    let statement_type = statement.get("_type").and_then(Value::as_str).unwrap_or("");
    if !STATEMENT_TYPES.contains(&statement_type) {
        return Err(invalid(format!(
            "the provenance statement's _type is {statement_type:?}, not an in-toto statement"
        )));
    }
    let predicate_type = statement
        .get("predicateType")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| invalid("the provenance statement has no predicateType"))?;
    check_subject(&statement, name, version, sha512_hex)?;
    let verified = match trust {
        Some(trust) => {
            verify(&bundle, &envelope, trust)?;
            true
        }
        None => false,
    };
    Ok(CheckedBundle {
        predicate_type: predicate_type.to_owned(),
        bundle: text.to_owned(),
        verified,
    })
}

/// The statement must name this package and version, with the tarball's SHA-512.
fn check_subject(
    statement: &Map<String, Value>,
    name: &PackageName,
    version: &Version,
    sha512_hex: &str,
) -> Result<(), RegistryError> {
    let expected = purl(name, version);
    let subjects = statement
        .get("subject")
        .and_then(Value::as_array)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| invalid("the provenance statement has no subject"))?;
    let named: Vec<(&str, Option<(String, String)>)> = subjects
        .iter()
        .map(|s| {
            let purl = s.get("name").and_then(Value::as_str).unwrap_or("");
            (purl, read_purl(purl))
        })
        .collect();
    let position = named.iter().position(|(_, read)| {
        read.as_ref()
            .is_some_and(|(n, v)| n == name.as_str() && *v == version.to_string())
    });
    let Some(position) = position else {
        let (purl, read) = &named[0];
        let differs = match read {
            Some((n, _)) if n != name.as_str() => format!("names the package {n}"),
            Some((_, v)) => format!("names the version {v}"),
            None => "is not an npm package URL".to_owned(),
        };
        return Err(invalid(format!(
            "the provenance statement's subject {purl:?} {differs}, but this publish is {expected}"
        )));
    };
    let digest = subjects[position]
        .get("digest")
        .and_then(|d| d.get("sha512"))
        .and_then(Value::as_str)
        .unwrap_or("");
    if !digest.eq_ignore_ascii_case(sha512_hex) {
        return Err(invalid(format!(
            "the provenance statement's subject digest sha512 is {:?}, but the tarball's sha512 is {sha512_hex}",
            digest
        )));
    }
    Ok(())
}

/// The DSSE envelope of a bundle.
struct Envelope {
    payload_type: String,
    payload: Vec<u8>,
    signature: Vec<u8>,
}

impl Envelope {
    fn read(bundle: &Map<String, Value>) -> Result<Self, RegistryError> {
        let b64 = base64::engine::general_purpose::STANDARD;
        let envelope = bundle
            .get("dsseEnvelope")
            .ok_or_else(|| invalid("the provenance bundle has no dsseEnvelope"))?;
        let payload_type = envelope
            .get("payloadType")
            .and_then(Value::as_str)
            .unwrap_or("");
        if payload_type != IN_TOTO_PAYLOAD {
            return Err(invalid(format!(
                "the provenance bundle's payloadType is {payload_type:?}, not {IN_TOTO_PAYLOAD}"
            )));
        }
        let payload = envelope
            .get("payload")
            .and_then(Value::as_str)
            .and_then(|p| b64.decode(p).ok())
            .ok_or_else(|| invalid("the provenance bundle's dsseEnvelope.payload is not base64"))?;
        let signature = envelope
            .get("signatures")
            .and_then(|s| s.get(0))
            .and_then(|s| s.get("sig"))
            .and_then(Value::as_str)
            .and_then(|s| b64.decode(s).ok())
            .ok_or_else(|| {
                invalid("the provenance bundle's dsseEnvelope.signatures[0].sig is missing or not base64")
            })?;
        Ok(Self {
            payload_type: payload_type.to_owned(),
            payload,
            signature,
        })
    }

    /// DSSE's pre-authentication encoding: what the signature is over.
    fn pae(&self) -> Vec<u8> {
        let mut message = format!(
            "DSSEv1 {} {} {} ",
            self.payload_type.len(),
            self.payload_type,
            self.payload.len()
        )
        .into_bytes();
        message.extend_from_slice(&self.payload);
        message
    }
}

/// The signing certificate chains to a Fulcio CA of the trust root, was valid when the
/// transparency log took the entry, and its key signed the envelope. The Rekor inclusion proof
/// and signed entry timestamp are not checked.
fn verify(
    bundle: &Map<String, Value>,
    envelope: &Envelope,
    trust: &TrustRoot,
) -> Result<(), RegistryError> {
    let material = bundle.get("verificationMaterial");
    let leaf = material
        .and_then(|m| {
            m.get("certificate")
                .and_then(|c| c.get("rawBytes"))
                .or_else(|| m.pointer("/x509CertificateChain/certificates/0/rawBytes"))
        })
        .and_then(Value::as_str)
        .and_then(|raw| base64::engine::general_purpose::STANDARD.decode(raw).ok())
        .ok_or_else(|| {
            invalid("the provenance bundle has no signing certificate (verificationMaterial.certificate)")
        })?;
    let leaf = x509::Cert::parse(&leaf).map_err(|e| {
        invalid(format!(
            "the provenance signing certificate is unreadable: {e}"
        ))
    })?;
    // The log's time as the bundle states it (Rekor's promise of it is not verified); a Rekor v2
    // entry has none, and npm publishes right after signing, so the publish time stands in.
    let logged_at = material
        .and_then(|m| m.pointer("/tlogEntries/0/integratedTime"))
        .and_then(|t| {
            t.as_str()
                .and_then(|s| s.parse().ok())
                .or_else(|| t.as_i64())
        })
        .filter(|t: &i64| *t > 0)
        .unwrap_or_else(|| crate::clock::now_ms() / 1000);
    if !leaf.valid_at(logged_at) {
        return Err(invalid(
            "the provenance signing certificate was not valid when the bundle was logged (or, without a log time, now)",
        ));
    }
    trust.chains(&leaf, logged_at).map_err(invalid)?;
    leaf.verify_sha256(&envelope.pae(), &envelope.signature)
        .map_err(|e| {
            invalid(format!(
                "the provenance bundle's DSSE signature does not verify with its certificate: {e}"
            ))
        })
}

impl super::Registry {
    /// The attestations of `name@version` for `GET /-/npm/v1/attestations/…`, readable by whoever
    /// may read the packument; a version without any is not found.
    pub async fn attestations(
        &self,
        reader: Option<&crate::auth::Caller>,
        name: &PackageName,
        version: &Version,
    ) -> Result<Value, RegistryError> {
        let not_found = || format!("no attestations found for {name}@{version}");
        self.require_read(reader, name, not_found).await?;
        let stored = self
            .store
            .attestations(name.as_str(), &version.to_string())
            .await?;
        if stored.is_empty() {
            return Err(RegistryError::NotFound(not_found()));
        }
        let attestations = stored
            .into_iter()
            .map(|a| {
                let bundle: Value = serde_json::from_str(&a.bundle).map_err(|e| {
                    RegistryError::Internal(format!("stored bundle of {name}@{version}: {e}"))
                })?;
                Ok(json!({ "predicateType": a.predicate_type, "bundle": bundle }))
            })
            .collect::<Result<Vec<_>, RegistryError>>()?;
        Ok(json!({ "attestations": attestations }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(n: &str) -> PackageName {
        PackageName::parse(n).unwrap()
    }

    #[test]
    fn purls_encode_the_scope_at_as_npm_does() {
        let v = Version::parse("1.2.3").unwrap();
        assert_eq!(purl(&name("@acme/b"), &v), "pkg:npm/%40acme/b@1.2.3");
        assert_eq!(purl(&name("left-pad"), &v), "pkg:npm/left-pad@1.2.3");
        assert_eq!(
            read_purl("pkg:npm/%40acme/b@1.2.3?repository_url=https://r"),
            Some(("@acme/b".into(), "1.2.3".into()))
        );
    }

    #[test]
    fn pae_matches_the_dsse_spec_example() {
        let envelope = Envelope {
            payload_type: "http://example.com/HelloWorld".into(),
            payload: b"hello world".to_vec(),
            signature: Vec::new(),
        };
        assert_eq!(
            envelope.pae(),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
        );
    }
}
