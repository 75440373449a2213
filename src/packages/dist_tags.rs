//! Dist-tags: list, point a tag at a version, remove a tag (npm-protocol.md §7).

use std::collections::BTreeMap;

use super::{DistTag, PackageName, Registry, RegistryError, Version};
use serde_json::json;

use crate::audit::AuditEvent;
use crate::auth::{Caller, Permission};
use crate::clock;
use crate::store::sqlite::events;
use crate::store::sqlite::packages as rows;

impl Registry {
    /// The dist-tags of a package.
    pub async fn dist_tags(
        &self,
        name: &PackageName,
    ) -> Result<BTreeMap<String, String>, RegistryError> {
        let package = name.as_str().to_owned();
        let (exists, tags) = self
            .db
            .read(move |conn| {
                Ok((
                    rows::exists(conn, &package)?,
                    rows::dist_tags(conn, &package)?,
                ))
            })
            .await?;
        if !exists {
            return Err(RegistryError::NotFound(format!(
                "package not found: {name}"
            )));
        }
        Ok(tags)
    }

    /// Points `tag` at an existing `version`; returns the new tag map.
    pub async fn set_dist_tag(
        &self,
        caller: &Caller,
        name: &PackageName,
        tag: &str,
        version: &str,
    ) -> Result<BTreeMap<String, String>, RegistryError> {
        caller.require_for(Permission::Publish, "change dist-tags", name.as_str())?;
        let tag = DistTag::parse(tag)?;
        let version = Version::parse(version.trim())?;
        self.require_maintainer(caller, name).await?;
        let record = self.load(name).await?;
        if !record
            .versions
            .iter()
            .any(|v| v.version == version.to_string())
        {
            return Err(RegistryError::NotFound(format!(
                "version not found: {name}@{version}; publish it before tagging it"
            )));
        }
        let (package, tag_text, version_text) =
            (name.to_string(), tag.to_string(), version.to_string());
        let event = AuditEvent::by(
            caller,
            "dist-tag.changed",
            json!({ "tag": tag_text, "version": version_text }),
        )
        .on_package(name.as_str());
        let tags = self
            .db
            .write(move |tx| {
                rows::set_dist_tag(tx, &package, &tag_text, &version_text, clock::now_ms())?;
                events::record(tx, &event)?;
                rows::dist_tags(tx, &package)
            })
            .await?;
        self.invalidate(name);
        Ok(tags)
    }

    /// Removes a dist-tag other than `latest`; returns the new tag map.
    pub async fn remove_dist_tag(
        &self,
        caller: &Caller,
        name: &PackageName,
        tag: &str,
    ) -> Result<BTreeMap<String, String>, RegistryError> {
        caller.require_for(Permission::Publish, "change dist-tags", name.as_str())?;
        if tag == "latest" {
            return Err(RegistryError::Invalid(
                "the latest tag cannot be removed; point it at another version with npm dist-tag add".into(),
            ));
        }
        self.require_maintainer(caller, name).await?;
        let (package, tag_text) = (name.to_string(), tag.to_owned());
        let event = AuditEvent::by(
            caller,
            "dist-tag.changed",
            json!({ "tag": tag_text, "version": null }),
        )
        .on_package(name.as_str());
        let (removed, tags) = self
            .db
            .write(move |tx| {
                let removed = rows::delete_dist_tag(tx, &package, &tag_text, clock::now_ms())?;
                if removed {
                    events::record(tx, &event)?;
                }
                Ok((removed, rows::dist_tags(tx, &package)?))
            })
            .await?;
        if !removed {
            return Err(RegistryError::NotFound(format!(
                "{name} has no dist-tag {tag}"
            )));
        }
        self.invalidate(name);
        Ok(tags)
    }
}
