//! Sigstore's trust root (`trusted_root.json`, media type
//! `application/vnd.dev.sigstore.trustedroot+json;version=0.1`), as far as Packr uses it: the
//! Fulcio certificate authorities, each a chain (issuing CA first, root last) and the time range
//! it issued certificates in. Its `tlogs` (Rekor keys) are not read: Rekor inclusion is not checked.

use std::path::Path;

use base64::Engine;
use serde::Deserialize;

use super::x509::Cert;

/// The Fulcio CAs a signing certificate may chain to.
pub struct TrustRoot {
    authorities: Vec<Authority>,
}

impl std::fmt::Debug for TrustRoot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TrustRoot({} Fulcio CAs)", self.authorities.len())
    }
}

struct Authority {
    chain: Vec<Cert>,
    /// Unix seconds; `None` for an open end.
    start: Option<i64>,
    end: Option<i64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RootFile {
    #[serde(default)]
    certificate_authorities: Vec<AuthorityFile>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AuthorityFile {
    cert_chain: ChainFile,
    #[serde(default)]
    valid_for: Option<RangeFile>,
}

#[derive(Deserialize)]
struct ChainFile {
    certificates: Vec<RawFile>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawFile {
    raw_bytes: String,
}

#[derive(Deserialize)]
struct RangeFile {
    start: Option<String>,
    end: Option<String>,
}

fn seconds(time: Option<&String>) -> Result<Option<i64>, String> {
    time.map(|t| {
        chrono::DateTime::parse_from_rfc3339(t)
            .map(|t| t.timestamp())
            .map_err(|e| format!("validFor time {t:?}: {e}"))
    })
    .transpose()
}

impl TrustRoot {
    /// Reads a `trusted_root.json`.
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Parses the JSON of a `trusted_root.json`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let file: RootFile =
            serde_json::from_str(text).map_err(|e| format!("not a Sigstore trusted root: {e}"))?;
        let mut authorities = Vec::new();
        for authority in file.certificate_authorities {
            let chain = authority
                .cert_chain
                .certificates
                .iter()
                .map(|c| {
                    let der = base64::engine::general_purpose::STANDARD
                        .decode(&c.raw_bytes)
                        .map_err(|e| format!("certificate rawBytes is not base64: {e}"))?;
                    Cert::parse(&der)
                })
                .collect::<Result<Vec<_>, _>>()?;
            if chain.is_empty() {
                return Err("a certificate authority has an empty certChain".into());
            }
            let range = authority.valid_for.as_ref();
            authorities.push(Authority {
                chain,
                start: seconds(range.and_then(|r| r.start.as_ref()))?,
                end: seconds(range.and_then(|r| r.end.as_ref()))?,
            });
        }
        if authorities.is_empty() {
            return Err("it names no certificateAuthorities".into());
        }
        Ok(Self { authorities })
    }

    /// Checks that `leaf` was issued, at `at` (unix seconds), by one of the CAs: its chain's
    /// first certificate signed the leaf and each one is signed by the next.
    pub fn chains(&self, leaf: &Cert, at: i64) -> Result<(), String> {
        let mut reasons = Vec::new();
        for authority in &self.authorities {
            if authority.start.is_some_and(|s| at < s) || authority.end.is_some_and(|e| at > e) {
                reasons.push("a CA was not valid at that time".to_owned());
                continue;
            }
            match authority.verify(leaf, at) {
                Ok(()) => return Ok(()),
                Err(reason) => reasons.push(reason),
            }
        }
        Err(format!(
            "the provenance signing certificate does not chain to a Fulcio CA of PACKR_SIGSTORE_TRUST_ROOT ({})",
            reasons.join("; ")
        ))
    }
}

impl Authority {
    fn verify(&self, leaf: &Cert, at: i64) -> Result<(), String> {
        let mut child = leaf;
        for (depth, ca) in self.chain.iter().enumerate() {
            child.issued_by(ca).map_err(|e| {
                if depth == 0 {
                    format!("not issued by that CA: {e}")
                } else {
                    format!("that CA's chain is broken: {e}")
                }
            })?;
            if !ca.valid_at(at) {
                return Err("a CA certificate was expired at the time of signing".into());
            }
            child = ca;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sigstore's public-good trust root, as npm 11 ships it in `@sigstore/tuf/seeds.json`.
    const PUBLIC_GOOD: &str = include_str!("../../../fixtures/sigstore/trusted_root.json");

    #[test]
    fn sigstores_public_trust_root_loads_and_its_fulcio_chains_verify() {
        let root = TrustRoot::parse(PUBLIC_GOOD).unwrap();
        assert_eq!(root.authorities.len(), 2);
        let current = &root.authorities[1];
        assert_eq!(current.end, None);
        assert_eq!(current.start, Some(1_649_880_375));
        // The issuing CA (P-384, ecdsa-with-SHA384) is signed by the root.
        assert_eq!(current.chain.len(), 2);
        current.chain[0].issued_by(&current.chain[1]).unwrap();
        // The root signed itself; nothing else signed the issuing CA.
        current.chain[1].issued_by(&current.chain[1]).unwrap();
        assert!(current.chain[1].issued_by(&current.chain[0]).is_err());
    }

    #[test]
    fn a_file_without_authorities_is_refused() {
        let err = TrustRoot::parse(r#"{"certificateAuthorities":[]}"#).unwrap_err();
        assert_eq!(err, "it names no certificateAuthorities");
    }
}
