//! Package owners (maintainers): `npm owner add/rm` PUT the new list (npm-protocol.md §6.3).

use serde_json::Value;

use super::{PackageName, Registry, RegistryError};
use crate::audit::AuditEvent;
use crate::auth::{Caller, Permission};
use crate::clock;
use crate::store::sqlite::events;
use crate::store::sqlite::{packages as rows, users};

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
        let package = name.to_string();
        let event = AuditEvent::by(
            caller,
            "package.owners.changed",
            serde_json::json!({ "maintainers": names }),
        )
        .on_package(name.as_str());
        let missing = self
            .db
            .write(move |tx| {
                let found = users::find_many(tx, &names)?;
                if let Some(missing) = names.iter().find(|n| !found.iter().any(|u| &&u.name == n)) {
                    return Ok(Some(missing.clone()));
                }
                let ids: Vec<i64> = found.iter().map(|u| u.id).collect();
                rows::set_maintainers(tx, &package, &ids, clock::now_ms())?;
                events::record(tx, &event)?;
                Ok(None)
            })
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
