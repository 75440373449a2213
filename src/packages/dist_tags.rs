//! Dist-tags: list, point a tag at a version, remove a tag (npm-protocol.md §7).

use std::collections::BTreeMap;

use super::{DistTag, PackageName, Registry, RegistryError, Version};
use serde_json::json;

use crate::audit::AuditEvent;
use crate::auth::{Caller, Permission};

impl Registry {
    /// The dist-tags of a package.
    pub async fn dist_tags(
        &self,
        name: &PackageName,
    ) -> Result<BTreeMap<String, String>, RegistryError> {
        self.store
            .dist_tags(name.as_str())
            .await?
            .ok_or_else(|| RegistryError::NotFound(format!("package not found: {name}")))
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
        let (tag_text, version_text) = (tag.to_string(), version.to_string());
        let event = AuditEvent::by(
            caller,
            "dist-tag.changed",
            json!({ "tag": tag_text, "version": version_text }),
        )
        .on_package(name.as_str());
        let tags = self
            .store
            .set_dist_tag(name.as_str(), &tag_text, &version_text, vec![event])
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
        let event = AuditEvent::by(
            caller,
            "dist-tag.changed",
            json!({ "tag": tag, "version": null }),
        )
        .on_package(name.as_str());
        let Some(tags) = self
            .store
            .remove_dist_tag(name.as_str(), tag, vec![event])
            .await?
        else {
            return Err(RegistryError::NotFound(format!(
                "{name} has no dist-tag {tag}"
            )));
        };
        self.invalidate(name);
        Ok(tags)
    }
}
