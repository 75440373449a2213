//! The publish pipeline (SPEC §5): parse, inspect the tarball, authorize, commit.

use base64::Engine;
use bytes::Bytes;
use serde_json::{Map, Value, json};

use super::integrity::{self, Digests};
use super::manifest;
use super::provenance;
use super::registry::may_publish;
use super::tarball::{self, TarballManifest};
use super::{DistTag, PackageName, Registry, RegistryError, Version};
use crate::audit::AuditEvent;
use crate::auth::{Caller, Permission};
use crate::clock;
use crate::store::BlobKey;
use crate::store::attestations::StoredAttestation;
use crate::store::packages::{NewVersion, PublishOutcome, VersionRow};

/// Fields clients add that must not be served back (local paths, client-side bookkeeping).
const STRIPPED_FIELDS: &[&str] = &[
    "_resolved",
    "_from",
    "_integrity",
    "_where",
    "_shasum",
    "_spec",
    "_attachments",
    "readme",
    "deprecated",
    "_npmUser",
    "_rev",
    "maintainers",
];

/// A publish request that passed the shape checks (step 1).
#[derive(Debug)]
pub struct PublishRequest {
    /// The package.
    pub name: PackageName,
    /// The version.
    pub version: Version,
    /// The version object as sent.
    pub manifest: Map<String, Value>,
    /// The dist-tag to move.
    pub tag: DistTag,
    /// `public` or `restricted`.
    pub access: &'static str,
    /// The tarball bytes.
    pub tarball: Bytes,
    /// README text sent in the body, if any.
    pub readme: Option<String>,
    /// The Sigstore bundle of `npm publish --provenance` (the `.sigstore` attachment), as sent.
    pub provenance: Option<String>,
}

/// What a successful publish did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Published {
    /// The version is new.
    Created,
    /// The same bytes were published before (a client retry); nothing changed.
    AlreadyThere,
}

fn invalid(message: impl Into<String>) -> RegistryError {
    RegistryError::Invalid(message.into())
}

fn single_entry<'a>(
    object: &'a Map<String, Value>,
    what: &str,
) -> Result<(&'a String, &'a Value), RegistryError> {
    let mut entries = object.iter();
    match (entries.next(), entries.next()) {
        (Some(entry), None) => Ok(entry),
        (None, _) => Err(invalid(format!("the publish body has no {what}"))),
        _ => Err(invalid(format!(
            "the publish body must carry exactly one {what}; publish one version per request"
        ))),
    }
}

/// Step 1: checks the body's shape against the URL name and decodes the attachment.
pub fn parse(url_name: &PackageName, body: Value) -> Result<PublishRequest, RegistryError> {
    let Value::Object(mut body) = body else {
        return Err(invalid("the publish body must be a JSON object"));
    };
    for field in ["name", "_id"] {
        if let Some(value) = body.get(field)
            && value.as_str() != Some(url_name.as_str())
        {
            return Err(invalid(format!(
                "`{field}` in the body ({value}) does not match the package in the URL ({url_name})"
            )));
        }
    }
    let Some(Value::Object(versions)) = body.remove("versions") else {
        return Err(invalid("the publish body has no `versions` object"));
    };
    let (version_key, manifest) = single_entry(&versions, "version")?;
    let version = Version::parse(version_key)?;
    let Value::Object(manifest) = manifest.clone() else {
        return Err(invalid(format!(
            "versions[\"{version_key}\"] must be an object"
        )));
    };
    if manifest.get("name").and_then(Value::as_str) != Some(url_name.as_str()) {
        return Err(invalid(format!(
            "versions[\"{version_key}\"].name must be {url_name}"
        )));
    }
    if manifest.get("version").and_then(Value::as_str) != Some(version_key.as_str()) {
        return Err(invalid(format!(
            "versions[\"{version_key}\"].version must be {version_key}"
        )));
    }
    let tag = parse_tag(body.get("dist-tags"), version_key)?;
    let access = parse_access(body.get("access"), url_name)?;
    let tarball = parse_attachment(body.get("_attachments"), url_name, version_key)?;
    let provenance = parse_provenance(body.get("_attachments"), url_name, version_key)?;
    let readme = manifest
        .get("readme")
        .or_else(|| body.get("readme"))
        .and_then(Value::as_str)
        .filter(|text| !text.starts_with("ERROR: No README data found"))
        .map(str::to_owned);
    Ok(PublishRequest {
        name: url_name.clone(),
        version,
        manifest,
        tag,
        access,
        tarball,
        readme,
        provenance,
    })
}

/// The `<name>-<version>.sigstore` attachment: its `data` is the bundle JSON as a plain string
/// (libnpmpublish), not base64.
fn parse_provenance(
    attachments: Option<&Value>,
    name: &PackageName,
    version: &str,
) -> Result<Option<String>, RegistryError> {
    let key = format!("{name}-{version}.sigstore");
    let Some(attachment) = attachments.and_then(|a| a.get(&key)) else {
        return Ok(None);
    };
    attachment
        .get("data")
        .and_then(Value::as_str)
        .map(|data| Some(data.to_owned()))
        .ok_or_else(|| {
            invalid(format!(
                "_attachments[\"{key}\"].data must be the Sigstore bundle as a JSON string"
            ))
        })
}

fn parse_tag(tags: Option<&Value>, version: &str) -> Result<DistTag, RegistryError> {
    let tags = match tags {
        None | Some(Value::Null) => return Ok(DistTag::parse("latest")?),
        Some(Value::Object(tags)) if tags.is_empty() => return Ok(DistTag::parse("latest")?),
        Some(Value::Object(tags)) => tags,
        Some(_) => return Err(invalid("`dist-tags` must be an object")),
    };
    let (tag, target) = single_entry(tags, "dist-tag")?;
    if target.as_str() != Some(version) {
        return Err(invalid(format!(
            "dist-tags.{tag} must point at the published version {version}"
        )));
    }
    Ok(DistTag::parse(tag)?)
}

fn parse_access(access: Option<&Value>, name: &PackageName) -> Result<&'static str, RegistryError> {
    match access {
        None | Some(Value::Null) => Ok(if name.scope().is_some() {
            "restricted"
        } else {
            "public"
        }),
        Some(Value::String(s)) if s == "public" => Ok("public"),
        Some(Value::String(s)) if s == "restricted" && name.scope().is_none() => {
            Err(invalid(format!(
                "an unscoped package cannot be restricted: publish {name} with --access public or give it a scope"
            )))
        }
        Some(Value::String(s)) if s == "restricted" => Ok("restricted"),
        Some(other) => Err(invalid(format!(
            "`access` must be \"public\" or \"restricted\", not {other}"
        ))),
    }
}

fn parse_attachment(
    attachments: Option<&Value>,
    name: &PackageName,
    version: &str,
) -> Result<Bytes, RegistryError> {
    let Some(Value::Object(attachments)) = attachments else {
        return Err(invalid("the publish body has no `_attachments`"));
    };
    let expected = format!("{name}-{version}.tgz");
    let sigstore = format!("{name}-{version}.sigstore");
    if let Some(extra) = attachments
        .keys()
        .find(|k| **k != expected && **k != sigstore)
    {
        return Err(invalid(format!(
            "unexpected attachment `{extra}`; the tarball must be attached as `{expected}`"
        )));
    }
    let attachment = attachments
        .get(&expected)
        .ok_or_else(|| invalid(format!("the tarball must be attached as `{expected}`")))?;
    let data = attachment
        .get("data")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            invalid(format!(
                "_attachments[\"{expected}\"].data must be a base64 string"
            ))
        })?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(data)
        .map_err(|e| {
            invalid(format!(
                "_attachments[\"{expected}\"].data is not valid base64: {e}"
            ))
        })?;
    if let Some(length) = attachment.get("length")
        && length.as_u64() != Some(bytes.len() as u64)
    {
        return Err(invalid(format!(
            "_attachments[\"{expected}\"].length is {length} but the data decodes to {} bytes",
            bytes.len()
        )));
    }
    Ok(bytes.into())
}

/// Step 2: digests and contents of the tarball must agree with the metadata.
fn inspect(
    request: &PublishRequest,
    limits: &tarball::TarballLimits,
) -> Result<(Digests, TarballManifest), RegistryError> {
    let digests = Digests::of(&request.tarball);
    let dist = request.manifest.get("dist");
    integrity::check(
        &digests,
        dist.and_then(|d| d.get("integrity"))
            .and_then(Value::as_str),
        dist.and_then(|d| d.get("shasum")).and_then(Value::as_str),
    )?;
    let contents = tarball::inspect_tarball(&request.tarball, limits)?;
    let inner_name = contents.package_json.get("name").and_then(Value::as_str);
    let inner_version = contents.package_json.get("version").and_then(Value::as_str);
    if inner_name != Some(request.name.as_str())
        || inner_version != Some(&request.version.to_string())
    {
        return Err(invalid(format!(
            "the tarball's package.json names {}@{}, but the metadata says {}@{}",
            inner_name.unwrap_or("(no name)"),
            inner_version.unwrap_or("(no version)"),
            request.name,
            request.version
        )));
    }
    Ok((digests, contents))
}

/// The version object as stored: the client's manifest, cleaned, with the fields npm installs by
/// taken from the tarball, plus the server's fields.
fn stored_manifest(
    request: &PublishRequest,
    caller: &Caller,
    digests: &Digests,
    contents: &TarballManifest,
) -> Map<String, Value> {
    let mut manifest = request.manifest.clone();
    for field in STRIPPED_FIELDS {
        manifest.remove(*field);
    }
    manifest.insert(
        "_id".into(),
        format!("{}@{}", request.name, request.version).into(),
    );
    manifest.insert(
        "_npmUser".into(),
        json!({ "name": caller.name, "email": caller.email }),
    );
    manifest.insert(
        "dist".into(),
        json!({
            "integrity": digests.sha512_integrity,
            "shasum": digests.sha1_hex,
            "fileCount": contents.file_count,
            "unpackedSize": contents.unpacked_size,
        }),
    );
    manifest::apply_tarball_fields(&mut manifest, contents);
    manifest.insert("_hasShrinkwrap".into(), contents.has_shrinkwrap.into());
    manifest
}

/// A publish body checked end to end (shape, tarball, provenance, org policy), with the version
/// object as it will be stored: what a publish commits and a stage keeps for its approval.
pub(super) struct Prepared {
    pub(super) request: PublishRequest,
    pub(super) digests: Digests,
    pub(super) manifest: Map<String, Value>,
    pub(super) readme: Option<String>,
    pub(super) provenance: Option<provenance::CheckedBundle>,
    /// Details of the `package.published` event.
    pub(super) details: Value,
    /// Whether it came through a trusted-publisher token.
    pub(super) trusted_publisher: bool,
    pub(super) key: BlobKey,
}

impl Registry {
    /// Steps 1-2 and the policy: everything a publish or a stage checks before storing anything.
    pub(super) async fn prepare(
        &self,
        caller: &Caller,
        url_name: &PackageName,
        body: Value,
        staging: bool,
    ) -> Result<Prepared, RegistryError> {
        let limits = self.settings.tarball_limits;
        let trust = self.settings.sigstore_trust_root.clone();
        // The CI run's identity, when a trusted-publishing token publishes or stages.
        let publisher = if caller
            .scopes
            .iter()
            .any(|s| s.starts_with("publish:") || s.starts_with("stage:"))
        {
            self.store.exchange_identity(&caller.token_id).await?
        } else {
            None
        };
        let (request, digests, contents, provenance) = tokio::task::spawn_blocking({
            let url_name = url_name.clone();
            move || {
                let request = parse(&url_name, body)?;
                let (digests, contents) = inspect(&request, &limits)?;
                let provenance = request
                    .provenance
                    .as_deref()
                    .map(|bundle| {
                        provenance::check(
                            bundle,
                            &request.name,
                            &request.version,
                            &digests.sha512_hex,
                            &[
                                request.manifest.get("repository"),
                                contents.package_json.get("repository"),
                            ],
                            trust.as_deref(),
                        )
                    })
                    .transpose()?;
                Ok::<_, RegistryError>((request, digests, contents, provenance))
            }
        })
        .await
        .map_err(|e| RegistryError::Internal(e.to_string()))??;

        // Provenance from another build than the trusted publisher's is not this publish's.
        if let (Some(identity), Some(signer)) = (
            &publisher,
            provenance.as_ref().and_then(|p| p.signer.as_ref()),
        ) {
            signer
                .check_token(identity)
                .map_err(RegistryError::ProvenanceIdentity)?;
        }
        let mut manifest = stored_manifest(&request, caller, &digests, &contents);
        if let (Some(checked), Some(Value::Object(dist))) = (&provenance, manifest.get_mut("dist"))
        {
            dist.insert(
                "attestations".into(),
                provenance::dist_attestations(&request.name, &request.version, checked),
            );
        }
        // A trusted-publishing token: the CI run that published is part of the version.
        let trusted_publisher = publisher.is_some();
        if let Some(identity) = &publisher {
            manifest.insert("trustedPublisher".into(), identity.clone());
            manifest.insert(
                "_npmUser".into(),
                json!({ "name": caller.name, "email": caller.email, "trustedPublisher": identity }),
            );
        }
        if let Some((slug, policy)) =
            super::policy::governing(&self.store, url_name.as_str()).await?
        {
            let submission = super::policy::Submission {
                package: url_name.as_str(),
                staging,
                provenance: provenance.is_some(),
                trusted_publisher,
            };
            super::policy::check(&slug, &policy, &submission)?;
        }
        let key = BlobKey::parse(&digests.sha512_hex)
            .ok_or_else(|| RegistryError::Internal("sha512 hex has the wrong shape".into()))?;
        let readme = request
            .readme
            .clone()
            .or_else(|| contents.readme.as_ref().map(|r| r.text.clone()));
        let mut details = json!({ "version": request.version, "tag": request.tag, "integrity": digests.sha512_integrity });
        if let Some(checked) = &provenance {
            details["provenance"] = checked.summary();
        }
        Ok(Prepared {
            request,
            digests,
            manifest,
            readme,
            provenance,
            details,
            trusted_publisher,
            key,
        })
    }

    /// The registry signatures of `name@version` with `integrity` (none when nothing signs).
    pub(super) async fn sign_version(
        &self,
        name: &str,
        version: &str,
        integrity: &str,
    ) -> Result<Vec<crate::store::packages::Signature>, RegistryError> {
        match &self.signing {
            Some(signing) => signing
                .sign(name, version, integrity)
                .await
                .map_err(|e| RegistryError::Internal(format!("signing the version: {e:#}"))),
            None => Ok(Vec::new()),
        }
    }

    /// Publishes one version: every step passes or nothing is visible.
    #[tracing::instrument(skip_all, fields(package = %url_name))]
    pub async fn publish(
        &self,
        caller: &Caller,
        url_name: &PackageName,
        body: Value,
    ) -> Result<Published, RegistryError> {
        caller.require_for(Permission::Publish, "publish", url_name.as_str())?;
        let Prepared {
            request,
            digests,
            manifest,
            readme,
            provenance,
            details,
            key,
            ..
        } = self.prepare(caller, url_name, body, false).await?;
        // Signed once here, never on reads: the signature is stored with the version.
        let signatures = self
            .sign_version(
                request.name.as_str(),
                &request.version.to_string(),
                &digests.sha512_integrity,
            )
            .await?;
        let (claim, shared) = self.put_claimed(&key, request.tarball.clone()).await?;

        let new = NewVersion {
            package: request.name.to_string(),
            access: request.access.to_owned(),
            row: VersionRow {
                version: request.version.to_string(),
                manifest: Value::Object(manifest).to_string(),
                integrity: digests.sha512_integrity.clone(),
                shasum: digests.sha1_hex.clone(),
                blob_key: key.as_str().to_owned(),
                size: request.tarball.len() as i64,
                deprecated: None,
                readme,
                published_at: clock::now_ms(),
                signatures,
            },
            tag: request.tag.to_string(),
            publisher_id: caller.user_id,
            attestations: provenance
                .into_iter()
                .map(|checked| StoredAttestation {
                    predicate_type: checked.predicate_type,
                    bundle: checked.bundle,
                })
                .collect(),
        };
        let actor = caller.clone();
        let event =
            AuditEvent::by(caller, "package.published", details).on_package(request.name.as_str());
        let package = new.package.clone();
        // Decided inside the commit's transaction, so two first publishes cannot both win.
        let decide = Box::new(move |facts: &_| may_publish(facts, &actor, &package));
        let result = self
            .store
            .commit_publish(new, vec![event], decide)
            .await
            .and_then(|outcome| self.outcome(outcome, &request, &digests));
        if result.is_err() {
            // Nothing may stay behind from a refused publish, not even its bytes.
            self.discard_blob(&claim, shared, key).await;
        } else {
            // Released once the version is committed, so a discard elsewhere sees one or the other.
            drop(shared);
        }
        result
    }

    fn outcome(
        &self,
        outcome: PublishOutcome,
        request: &PublishRequest,
        digests: &Digests,
    ) -> Result<Published, RegistryError> {
        match outcome {
            PublishOutcome::Committed => {
                self.invalidate(&request.name);
                tracing::info!(version = %request.version, tag = %request.tag, "published");
                Ok(Published::Created)
            }
            PublishOutcome::Exists { integrity } if integrity == digests.sha512_integrity => {
                Ok(Published::AlreadyThere)
            }
            PublishOutcome::Exists { .. } => {
                Err(RegistryError::VersionExists(request.version.to_string()))
            }
            PublishOutcome::Retired => {
                Err(RegistryError::VersionRetired(request.version.to_string()))
            }
            PublishOutcome::Staged { id } => Err(super::stage::staged_conflict(
                request.name.as_str(),
                &request.version.to_string(),
                &id,
            )),
        }
    }
}
