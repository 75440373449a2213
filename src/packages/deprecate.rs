//! Deprecation: npm PUTs the whole packument back; only the `deprecated` fields are taken from it.

use serde_json::Value;

use super::{PackageName, Registry, RegistryError};
use crate::audit::AuditEvent;
use crate::auth::{Caller, Permission};
use crate::store::packages::PackageRecord;

/// The deprecation changes a PUT of the whole document asks for: `(version, message)`, where
/// `None` (npm sends `""`) clears the message. Versions the package does not have are refused.
pub fn deprecation_changes(
    stored: &PackageRecord,
    body: &Value,
) -> Result<Vec<(String, Option<String>)>, RegistryError> {
    let Some(Value::Object(versions)) = body.get("versions") else {
        return Err(RegistryError::Invalid(
            "the body has no `versions` object".into(),
        ));
    };
    let mut changes = Vec::new();
    for (version, object) in versions {
        let Some(row) = stored.versions.iter().find(|r| &r.version == version) else {
            return Err(RegistryError::Invalid(format!(
                "{}@{version} does not exist; a metadata PUT cannot add versions (use npm publish)",
                stored.name
            )));
        };
        let wanted = match object.get("deprecated") {
            None | Some(Value::Null) => None,
            Some(Value::String(message)) if message.is_empty() => None,
            Some(Value::String(message)) => Some(message.clone()),
            Some(other) => {
                return Err(RegistryError::Invalid(format!(
                    "versions[\"{version}\"].deprecated must be a string, not {other}"
                )));
            }
        };
        if wanted != row.deprecated {
            changes.push((version.clone(), wanted));
        }
    }
    Ok(changes)
}

impl Registry {
    /// Applies the deprecation messages of a whole-document PUT (`npm deprecate`/`undeprecate`).
    #[tracing::instrument(skip_all, fields(package = %name))]
    pub async fn deprecate(
        &self,
        caller: &Caller,
        name: &PackageName,
        body: Value,
    ) -> Result<(), RegistryError> {
        caller.require_for(Permission::Publish, "deprecate", name.as_str())?;
        self.require_maintainer(caller, name).await?;
        let record = self.load(name).await?;
        let changes = deprecation_changes(&record, &body)?;
        if changes.is_empty() {
            return Ok(());
        }
        let details: Vec<Value> = changes
            .iter()
            .map(|(version, message)| serde_json::json!({ "version": version, "message": message }))
            .collect();
        let event = AuditEvent::by(
            caller,
            "package.deprecated",
            serde_json::json!({ "versions": details }),
        )
        .on_package(name.as_str());
        self.store
            .set_deprecations(name.as_str(), changes, vec![event])
            .await?;
        self.invalidate(name);
        Ok(())
    }
}
