//! Package access: visibility (`public`/`restricted`) and who collaborates on a package.

use std::collections::BTreeMap;

use serde_json::json;

use super::{PackageName, Registry, RegistryError};
use crate::audit::AuditEvent;
use crate::auth::{Caller, Permission};

impl Registry {
    /// Whether the package is public.
    pub async fn is_public(&self, name: &PackageName) -> Result<bool, RegistryError> {
        match self.store.package_access(name.as_str()).await? {
            Some(access) => Ok(access == "public"),
            None => Err(RegistryError::NotFound(format!(
                "package not found: {name}"
            ))),
        }
    }

    /// Sets the package's access (`npm access set status=public|private`).
    pub async fn set_access(
        &self,
        caller: &Caller,
        name: &PackageName,
        access: &str,
    ) -> Result<(), RegistryError> {
        caller.require_for(Permission::Publish, "change access", name.as_str())?;
        let access = match access {
            "public" => "public",
            "restricted" | "private" => "restricted",
            other => {
                return Err(RegistryError::Invalid(format!(
                    "access must be public or restricted, not {other}"
                )));
            }
        };
        if access == "restricted" && name.scope().is_none() {
            return Err(RegistryError::Invalid(format!(
                "an unscoped package cannot be restricted: {name}"
            )));
        }
        self.require_maintainer(caller, name).await?;
        let event = AuditEvent::by(
            caller,
            "package.access.changed",
            json!({ "access": access }),
        )
        .on_package(name.as_str());
        self.store
            .set_access(name.as_str(), access, vec![event])
            .await?;
        self.invalidate(name);
        Ok(())
    }

    /// Users who may read or write the package: user → `read`/`write`.
    pub async fn collaborators(
        &self,
        name: &PackageName,
    ) -> Result<BTreeMap<String, String>, RegistryError> {
        self.is_public(name).await?;
        Ok(self.store.collaborators(name.as_str()).await?)
    }
}
