//! Package owners (maintainers): `npm owner add/rm` PUT the new list (npm-protocol.md §6.3).

use serde_json::Value;

use super::{PackageName, Registry, RegistryError};
use crate::audit::AuditEvent;
use crate::auth::{Caller, Permission};

/// The maintainer names a PUT body asks for.
pub fn requested_maintainers(body: &Value) -> Result<Vec<String>, RegistryError> {
    let Some(Value::Array(list)) = body.get("maintainers") else {
        return Err(RegistryError::Invalid(
            "the body has no `maintainers` list".into(),
        ));
    };
    let mut names: Vec<String> = list
        .iter()
        .map(|m| {
            m.get("name")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| RegistryError::Invalid("each maintainer needs a `name`".into()))
        })
        .collect::<Result<_, _>>()?;
    names.sort();
    names.dedup();
    if names.is_empty() {
        return Err(RegistryError::Invalid(
            "a package must keep at least one maintainer; add the new owner before removing the last one".into(),
        ));
    }
    Ok(names)
}

impl Registry {
    /// Replaces the maintainers of a package with the users named in the body.
    #[tracing::instrument(skip_all, fields(package = %name))]
    pub async fn set_owners(
        &self,
        caller: &Caller,
        name: &PackageName,
        body: &Value,
    ) -> Result<(), RegistryError> {
        caller.require_for(Permission::Publish, "change owners", name.as_str())?;
        self.require_maintainer(caller, name).await?;
        let names = requested_maintainers(body)?;
        let event = AuditEvent::by(
            caller,
            "package.owners.changed",
            serde_json::json!({ "maintainers": names }),
        )
        .on_package(name.as_str());
        let missing = self
            .store
            .set_maintainers(name.as_str(), names, vec![event])
            .await?;
        if let Some(missing) = missing {
            return Err(RegistryError::Invalid(format!(
                "there is no user named {missing}; they must have an account before owning a package"
            )));
        }
        self.invalidate(name);
        Ok(())
    }
}
