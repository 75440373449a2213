//! The bundle's transparency-log (Rekor) entries, checked as sigstore-js checks them
//! (`packages/verify/src/tlog`): each entry is of a log of the trust root, proven included by its
//! inclusion proof up to a checkpoint the log signed and/or by its inclusion promise (the signed
//! entry timestamp, SET), and its body is about this bundle's signature and payload.

use base64::Engine;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::Envelope;
use super::checkpoint::Checkpoint;
use super::merkle::{self, Hash};
use super::trust_root::Log;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Verifies every entry of `verificationMaterial.tlogEntries` (there must be one) against the
/// trust root's `logs`, for the bundle whose envelope is `envelope` and whose signing certificate
/// is `leaf` (DER). `now` (unix seconds) stands in for the log time an entry does not prove.
/// Returns the log time a verified inclusion promise vouches for, if any.
pub fn verify_entries(
    material: Option<&Value>,
    envelope: &Envelope,
    leaf: &[u8],
    logs: &[Log],
    now: i64,
) -> Result<Option<i64>, String> {
    let entries = material
        .and_then(|m| m.get("tlogEntries"))
        .and_then(Value::as_array)
        .filter(|e| !e.is_empty())
        .ok_or("the provenance bundle has no transparency-log entry (verificationMaterial.tlogEntries)")?;
    let mut logged_at = None;
    for (position, entry) in entries.iter().enumerate() {
        let what = if entries.len() == 1 {
            "the provenance bundle's transparency-log entry".to_owned()
        } else {
            format!("the provenance bundle's transparency-log entry {position}")
        };
        let time = verify_entry(entry, envelope, leaf, logs, now)
            .map_err(|reason| format!("{what} {reason}"))?;
        logged_at = logged_at.or(time);
    }
    Ok(logged_at)
}

fn bytes(entry: &Value, pointer: &str) -> Result<Vec<u8>, String> {
    entry
        .pointer(pointer)
        .and_then(Value::as_str)
        .and_then(|s| B64.decode(s).ok())
        .ok_or_else(|| format!("has no base64 {}", &pointer[1..].replace('/', ".")))
}

/// A protobuf-JSON int64: a string, or a number from a lenient writer.
fn integer(value: Option<&Value>) -> Option<i64> {
    value.and_then(|v| {
        v.as_str()
            .and_then(|s| s.parse().ok())
            .or_else(|| v.as_i64())
    })
}

fn verify_entry(
    entry: &Value,
    envelope: &Envelope,
    leaf: &[u8],
    logs: &[Log],
    now: i64,
) -> Result<Option<i64>, String> {
    let log_id = bytes(entry, "/logId/keyId")?;
    let log = logs.iter().find(|l| l.log_id == log_id).ok_or_else(|| {
        format!(
            "is in the log {}, which is not a tlog of PACKR_SIGSTORE_TRUST_ROOT",
            B64.encode(&log_id)
        )
    })?;
    let body = bytes(entry, "/canonicalizedBody")?;
    let integrated_time = integer(entry.get("integratedTime")).filter(|t| *t > 0);
    let promise = entry.pointer("/inclusionPromise/signedEntryTimestamp");
    let proof = entry.get("inclusionProof");
    if promise.is_none() && proof.is_none() {
        return Err("has neither an inclusion proof nor an inclusion promise".into());
    }
    let mut proven_time = None;
    if promise.is_some() {
        let time = integrated_time.ok_or("has an inclusion promise but no integratedTime")?;
        let index = integer(entry.get("logIndex")).ok_or("has no logIndex")?;
        let set = bytes(entry, "/inclusionPromise/signedEntryTimestamp")?;
        if !log.valid_at(time) {
            return Err(format!(
                "was logged at {time}, outside the validFor of the key of {}",
                log.base_url
            ));
        }
        if !log
            .key
            .verifies(&set_payload(&body, time, &log_id, index), &set)
        {
            return Err(format!(
                "has an inclusion promise (signedEntryTimestamp) that the key of {} did not sign",
                log.base_url
            ));
        }
        proven_time = Some(time);
    }
    if let Some(proof) = proof {
        let at = proven_time.or(integrated_time).unwrap_or(now);
        if !log.valid_at(at) {
            return Err(format!(
                "is proven by a checkpoint of {} at {at}, outside its key's validFor",
                log.base_url
            ));
        }
        verify_proof(proof, &body, log)?;
    }
    check_body(entry, &body, envelope, leaf)?;
    Ok(proven_time)
}

/// What Rekor signs as an entry's SET: the canonical JSON (keys sorted) of
/// `{body, integratedTime, logID, logIndex}`, the body base64, the log id hex.
pub fn set_payload(body: &[u8], integrated_time: i64, log_id: &[u8], log_index: i64) -> Vec<u8> {
    format!(
        r#"{{"body":"{}","integratedTime":{integrated_time},"logID":"{}","logIndex":{log_index}}}"#,
        B64.encode(body),
        hex::encode(log_id)
    )
    .into_bytes()
}

/// The checkpoint is signed by the log's key, and the proof leads from the entry's leaf hash to
/// the checkpoint's root hash.
fn verify_proof(proof: &Value, body: &[u8], log: &Log) -> Result<(), String> {
    let envelope = proof
        .pointer("/checkpoint/envelope")
        .and_then(Value::as_str)
        .ok_or(
            "has an inclusion proof without a checkpoint (inclusionProof.checkpoint.envelope)",
        )?;
    let checkpoint =
        Checkpoint::parse(envelope).map_err(|e| format!("has an unreadable checkpoint: {e}"))?;
    let hint = &log.checkpoint_key_id[..4];
    let signed = checkpoint.signatures.iter().any(|s| {
        s.key_hint == hint
            && log.base_url.contains(&s.name)
            && log.key.verifies(checkpoint.note.as_bytes(), &s.signature)
    });
    if !signed {
        return Err(format!(
            "has a checkpoint that the key of {} did not sign",
            log.base_url
        ));
    }
    let root_hash = bytes(proof, "/rootHash")
        .map_err(|_| "has an inclusion proof without a base64 rootHash")?;
    let tree_size = integer(proof.get("treeSize"));
    if root_hash != checkpoint.root_hash || tree_size != i64::try_from(checkpoint.size).ok() {
        return Err(
            "has an inclusion proof whose rootHash and treeSize are not its checkpoint's".into(),
        );
    }
    let index = integer(proof.get("logIndex"))
        .and_then(|i| u64::try_from(i).ok())
        .ok_or("has an inclusion proof without a logIndex")?;
    let hashes = proof
        .get("hashes")
        .and_then(Value::as_array)
        .ok_or("has an inclusion proof without hashes")?
        .iter()
        .map(|h| {
            h.as_str()
                .and_then(|h| B64.decode(h).ok())
                .and_then(|h| Hash::try_from(h.as_slice()).ok())
                .ok_or("has an inclusion proof hash that is not a base64 SHA-256")
        })
        .collect::<Result<Vec<_>, _>>()?;
    let root = merkle::root_from_proof(index, checkpoint.size, merkle::leaf_hash(body), &hashes)
        .map_err(|e| format!("has an inclusion proof that does not fit: {e}"))?;
    if root.as_slice() != checkpoint.root_hash {
        return Err(
            "has an inclusion proof that does not lead from the entry to the checkpoint's root hash"
                .into(),
        );
    }
    Ok(())
}

/// The logged body must be about this bundle: the same signature, the same payload (or, for
/// hashedrekord, the same signed bytes) and, where the body names it, the same certificate.
fn check_body(entry: &Value, body: &[u8], envelope: &Envelope, leaf: &[u8]) -> Result<(), String> {
    let kind = entry.pointer("/kindVersion/kind").and_then(Value::as_str);
    let version = entry
        .pointer("/kindVersion/version")
        .and_then(Value::as_str);
    let body: Value =
        serde_json::from_slice(body).map_err(|_| "has a canonicalizedBody that is not JSON")?;
    let (body_kind, body_version) = (
        body.get("kind").and_then(Value::as_str),
        body.get("apiVersion").and_then(Value::as_str),
    );
    if kind.is_none() || (kind, version) != (body_kind, body_version) {
        return Err(format!(
            "says it is {}/{} but its body is {}/{}",
            kind.unwrap_or("?"),
            version.unwrap_or("?"),
            body_kind.unwrap_or("?"),
            body_version.unwrap_or("?")
        ));
    }
    let logged = Logged::read(&body)?;
    if logged.signature != envelope.signature {
        return Err("logs another signature than the bundle's DSSE signature".into());
    }
    let (digest, of_what) = if logged.digest_of_pae {
        (Sha256::digest(envelope.pae()), "the DSSE signed bytes")
    } else {
        (Sha256::digest(&envelope.payload), "the DSSE payload")
    };
    if logged.digest != digest.as_slice() {
        return Err(format!(
            "is about another artifact: its hash is not the SHA-256 of {of_what}"
        ));
    }
    if logged.certificate.is_some_and(|c| c != leaf) {
        return Err("names another signing certificate than the bundle's".into());
    }
    Ok(())
}

/// What a body records, whatever its kind.
#[derive(Debug)]
struct Logged {
    signature: Vec<u8>,
    digest: Vec<u8>,
    /// hashedrekord hashes what was signed (the DSSE PAE); dsse and intoto hash the payload.
    digest_of_pae: bool,
    certificate: Option<Vec<u8>>,
}

impl Logged {
    fn read(body: &Value) -> Result<Self, String> {
        let spec = body.get("spec").unwrap_or(&Value::Null);
        let kind = body.get("kind").and_then(Value::as_str).unwrap_or("");
        let version = body.get("apiVersion").and_then(Value::as_str).unwrap_or("");
        let text = |pointer: &str| spec.pointer(pointer).and_then(Value::as_str);
        let b64 = |pointer: &str| text(pointer).and_then(|s| B64.decode(s).ok());
        let hex = |pointer: &str| text(pointer).and_then(|s| hex::decode(s).ok());
        let single = |pointer: &str| {
            spec.pointer(pointer)
                .and_then(Value::as_array)
                .is_some_and(|s| s.len() == 1)
        };
        let logged = match (kind, version) {
            ("dsse", "0.0.1") if single("/signatures") => Logged {
                signature: b64("/signatures/0/signature").unwrap_or_default(),
                digest: hex("/payloadHash/value").unwrap_or_default(),
                digest_of_pae: false,
                certificate: text("/signatures/0/verifier").map(pem_in_base64),
            },
            ("dsse", "0.0.2") if single("/dsseV002/signatures") => Logged {
                signature: b64("/dsseV002/signatures/0/content").unwrap_or_default(),
                digest: b64("/dsseV002/payloadHash/digest").unwrap_or_default(),
                digest_of_pae: false,
                certificate: b64("/dsseV002/signatures/0/verifier/x509Certificate/rawBytes"),
            },
            ("intoto", "0.0.2") if single("/content/envelope/signatures") => Logged {
                // The signature is base64 twice over in an intoto body.
                signature: b64("/content/envelope/signatures/0/sig")
                    .and_then(|s| B64.decode(s).ok())
                    .unwrap_or_default(),
                digest: hex("/content/payloadHash/value").unwrap_or_default(),
                digest_of_pae: false,
                certificate: text("/content/envelope/signatures/0/publicKey").map(pem_in_base64),
            },
            ("hashedrekord", "0.0.1") => Logged {
                signature: b64("/signature/content").unwrap_or_default(),
                digest: hex("/data/hash/value").unwrap_or_default(),
                digest_of_pae: true,
                certificate: text("/signature/publicKey/content").map(pem_in_base64),
            },
            ("hashedrekord", "0.0.2") => Logged {
                signature: b64("/hashedRekordV002/signature/content").unwrap_or_default(),
                digest: b64("/hashedRekordV002/data/digest").unwrap_or_default(),
                digest_of_pae: true,
                certificate: b64("/hashedRekordV002/signature/verifier/x509Certificate/rawBytes"),
            },
            ("dsse" | "intoto", _) => {
                return Err(format!(
                    "has a {kind}/{version} body without exactly one signature, or of a version Packr does not read"
                ));
            }
            _ => {
                return Err(format!(
                    "has a body of kind {kind}/{version}, which Packr does not read (dsse, intoto, hashedrekord)"
                ));
            }
        };
        Ok(logged)
    }
}

/// A certificate as bodies name it: base64 of its PEM text. What does not decode is kept as
/// the (non-DER) bytes it is, so it compares unequal.
fn pem_in_base64(text: &str) -> Vec<u8> {
    let pem = B64.decode(text).unwrap_or_default();
    let pem = String::from_utf8_lossy(&pem);
    let inner: String = pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .map(str::trim)
        .collect();
    B64.decode(inner)
        .unwrap_or_else(|_| pem.as_bytes().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::packages::provenance::trust_root::TrustRoot;

    /// Real entries of the public Rekor logs, in bundles sigstore-js tests with (its
    /// `packages/verify/src/__tests__/__fixtures__/bundles.ts`), checked with Sigstore's public
    /// trust root: the exact formats, not a round trip of Packr's own understanding of them.
    fn real(file: &str) -> (Value, Envelope, Vec<u8>) {
        let path = format!("{}/fixtures/sigstore/{file}", env!("CARGO_MANIFEST_DIR"));
        let bundle: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let envelope = Envelope {
            payload_type: bundle["dsseEnvelope"]["payloadType"]
                .as_str()
                .unwrap()
                .into(),
            payload: bytes(&bundle, "/dsseEnvelope/payload").unwrap(),
            signature: bytes(&bundle, "/dsseEnvelope/signatures/0/sig").unwrap(),
        };
        let leaf = bytes(&bundle, "/verificationMaterial/certificate/rawBytes")
            .or_else(|_| {
                bytes(
                    &bundle,
                    "/verificationMaterial/x509CertificateChain/certificates/0/rawBytes",
                )
            })
            .unwrap();
        (bundle, envelope, leaf)
    }

    fn public_logs() -> Vec<Log> {
        let text = include_str!("../../../fixtures/sigstore/trusted_root.json");
        TrustRoot::parse(text).unwrap().logs
    }

    /// December 2025, when the newest of these entries was logged.
    const NOW: i64 = 1_765_481_768;

    #[test]
    fn a_real_rekor_v1_dsse_entry_verifies_by_its_signed_entry_timestamp() {
        let (bundle, envelope, leaf) = real("rekor-v1-dsse-bundle.json");
        let material = bundle.get("verificationMaterial");
        let time = verify_entries(material, &envelope, &leaf, &public_logs(), NOW);
        assert_eq!(time, Ok(Some(1_685_987_575)));

        // Another integratedTime is not what Rekor promised.
        let mut moved = bundle.clone();
        moved["verificationMaterial"]["tlogEntries"][0]["integratedTime"] = "1685987576".into();
        let err = verify_entries(
            moved.get("verificationMaterial"),
            &envelope,
            &leaf,
            &public_logs(),
            NOW,
        );
        assert_eq!(
            err,
            Err("the provenance bundle's transparency-log entry has an inclusion promise (signedEntryTimestamp) that the key of https://rekor.sigstore.dev did not sign".into())
        );
        // The entry is about this envelope's signature only.
        let mut other = envelope;
        other.signature[10] ^= 1;
        let err = verify_entries(material, &other, &leaf, &public_logs(), NOW).unwrap_err();
        assert!(
            err.ends_with("logs another signature than the bundle's DSSE signature"),
            "{err}"
        );
    }

    #[test]
    fn a_real_rekor_v1_intoto_entry_verifies() {
        let (bundle, envelope, leaf) = real("rekor-v1-intoto-bundle.json");
        let material = bundle.get("verificationMaterial");
        let time = verify_entries(material, &envelope, &leaf, &public_logs(), NOW);
        assert_eq!(time, Ok(Some(1_667_948_287)));
        let mut other = envelope;
        other.payload = b"hello, world?".to_vec();
        let err = verify_entries(material, &other, &leaf, &public_logs(), NOW).unwrap_err();
        assert!(
            err.ends_with(
                "is about another artifact: its hash is not the SHA-256 of the DSSE payload"
            ),
            "{err}"
        );
    }

    #[test]
    fn a_real_rekor_v2_entry_verifies_by_its_inclusion_proof_and_signed_checkpoint() {
        let (bundle, envelope, leaf) = real("rekor-v2-dsse-bundle.json");
        let material = bundle.get("verificationMaterial");
        // An inclusion proof proves no time.
        assert_eq!(
            verify_entries(material, &envelope, &leaf, &public_logs(), NOW),
            Ok(None)
        );

        let mut tampered = bundle.clone();
        tampered["verificationMaterial"]["tlogEntries"][0]["inclusionProof"]["hashes"][3] =
            B64.encode([7u8; 32]).into();
        let err = verify_entries(
            tampered.get("verificationMaterial"),
            &envelope,
            &leaf,
            &public_logs(),
            NOW,
        );
        assert_eq!(
            err,
            Err("the provenance bundle's transparency-log entry has an inclusion proof that does not lead from the entry to the checkpoint's root hash".into())
        );
        let mut unsigned = bundle.clone();
        let checkpoint = &mut unsigned["verificationMaterial"]["tlogEntries"][0]["inclusionProof"]
            ["checkpoint"]["envelope"];
        *checkpoint = checkpoint
            .as_str()
            .unwrap()
            .replace("\n544347\n", "\n544348\n")
            .into();
        let err = verify_entries(
            unsigned.get("verificationMaterial"),
            &envelope,
            &leaf,
            &public_logs(),
            NOW,
        );
        assert_eq!(
            err,
            Err("the provenance bundle's transparency-log entry has a checkpoint that the key of https://log2025-1.rekor.sigstore.dev did not sign".into())
        );
        // Without the public Rekor among the trusted logs, the entry counts for nothing.
        let logs: Vec<Log> = public_logs().into_iter().take(1).collect();
        let err = verify_entries(material, &envelope, &leaf, &logs, NOW).unwrap_err();
        assert!(
            err.ends_with("which is not a tlog of PACKR_SIGSTORE_TRUST_ROOT"),
            "{err}"
        );
    }

    #[test]
    fn the_set_payload_is_rekors_canonical_json() {
        let payload = set_payload(b"{}", 1_700_000_000, &[0xc0, 0xd2], 42);
        assert_eq!(
            String::from_utf8(payload).unwrap(),
            r#"{"body":"e30=","integratedTime":1700000000,"logID":"c0d2","logIndex":42}"#
        );
    }

    #[test]
    fn a_pem_certificate_in_base64_decodes_to_its_der() {
        let der = b"\x30\x03\x02\x01\x01";
        let pem = format!(
            "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
            B64.encode(der)
        );
        assert_eq!(pem_in_base64(&B64.encode(pem)), der.to_vec());
    }

    #[test]
    fn bodies_of_each_kind_name_their_signature_and_hash() {
        let sig = B64.encode(b"sig");
        let dsse = serde_json::json!({"kind": "dsse", "apiVersion": "0.0.1", "spec": {
            "payloadHash": {"algorithm": "sha256", "value": "abcd"},
            "signatures": [{"signature": sig}]}});
        let logged = Logged::read(&dsse).unwrap();
        assert_eq!(
            (logged.signature, logged.digest),
            (b"sig".to_vec(), vec![0xab, 0xcd])
        );
        let intoto = serde_json::json!({"kind": "intoto", "apiVersion": "0.0.2", "spec": {
            "content": {"payloadHash": {"value": "abcd"},
                        "envelope": {"signatures": [{"sig": B64.encode(&sig)}]}}}});
        assert_eq!(Logged::read(&intoto).unwrap().signature, b"sig".to_vec());
        let rekord = serde_json::json!({"kind": "rekord", "apiVersion": "0.0.1", "spec": {}});
        assert!(Logged::read(&rekord).unwrap_err().contains("does not read"));
        let two = serde_json::json!({"kind": "dsse", "apiVersion": "0.0.1", "spec": {
            "signatures": [{"signature": sig}, {"signature": sig}]}});
        assert!(
            Logged::read(&two)
                .unwrap_err()
                .contains("exactly one signature")
        );
    }
}
