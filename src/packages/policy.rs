//! Org publishing policy: what a publish or a stage under `@slug/` must carry (a provenance
//! bundle, a trusted-publisher token), whether versions go through an approval, and who may give
//! it. The policy is set by registry admins (`PUT /api/v1/admin/orgs/{slug}/policy`, `packr org
//! policy`); every change is an audit event.

use serde_json::{Value, json};

use super::RegistryError;
use crate::audit::AuditEvent;
use crate::auth::Caller;
use crate::orgs::{OrgError, scope_slug};
use crate::store::Store;
use crate::store::orgs::{OrgAnswer, OrgQuery};
pub use crate::store::stages::OrgPolicy;

const FIELDS: &[&str] = &[
    "require_approval",
    "approvers",
    "require_provenance",
    "require_trusted_publishing",
];

/// Reads a policy body: `{"require_approval": bool, "approvers": [name, …],
/// "require_provenance": bool, "require_trusted_publishing": bool}`; absent fields are off/empty.
pub fn parse(body: &Value) -> Result<OrgPolicy, OrgError> {
    let Value::Object(fields) = body else {
        return Err(OrgError::Invalid(
            "the policy must be a JSON object like {\"require_approval\": true, \"approvers\": [\"alice\", \"release-team\"]}".into(),
        ));
    };
    if let Some(unknown) = fields.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(OrgError::Invalid(format!(
            "unknown policy field `{unknown}`; the fields are {}",
            FIELDS.join(", ")
        )));
    }
    let flag = |name: &str| match fields.get(name) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(on)) => Ok(*on),
        Some(other) => Err(OrgError::Invalid(format!(
            "`{name}` must be true or false, not {other}"
        ))),
    };
    let approvers = match fields.get("approvers") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(list)) => list
            .iter()
            .map(|entry| match entry.as_str().map(str::trim) {
                Some(name) if !name.is_empty() && name.len() <= 214 => Ok(name.to_owned()),
                _ => Err(OrgError::Invalid(format!(
                    "each approver must be a user or team name, not {entry}"
                ))),
            })
            .collect::<Result<Vec<_>, _>>()?,
        Some(other) => Err(OrgError::Invalid(format!(
            "`approvers` must be an array of user or team names, not {other}"
        )))?,
    };
    let policy = OrgPolicy {
        require_approval: flag("require_approval")?,
        approvers,
        require_provenance: flag("require_provenance")?,
        require_trusted_publishing: flag("require_trusted_publishing")?,
    };
    if policy.require_approval && policy.approvers.is_empty() {
        return Err(OrgError::Invalid(
            "require_approval needs at least one approver (a user, or a team of the org) in `approvers`".into(),
        ));
    }
    Ok(policy)
}

/// The policy as JSON, with the org it belongs to.
pub fn to_json(slug: &str, policy: &OrgPolicy) -> Value {
    json!({
        "org": slug,
        "require_approval": policy.require_approval,
        "approvers": policy.approvers,
        "require_provenance": policy.require_provenance,
        "require_trusted_publishing": policy.require_trusted_publishing,
    })
}

/// The policy of org `slug`.
pub async fn get(store: &Store, slug: &str) -> Result<OrgPolicy, OrgError> {
    store
        .org_policy(slug)
        .await?
        .ok_or_else(|| OrgError::NotFound(format!("there is no org named {slug}")))
}

/// Sets the policy of org `slug` after checking that each approver names a user or a team of
/// the org, recording a `org.policy_changed` event by `actor` (the operator when `None`).
pub async fn set(
    store: &Store,
    actor: Option<&Caller>,
    slug: &str,
    policy: OrgPolicy,
) -> Result<OrgPolicy, OrgError> {
    let before = get(store, slug).await?;
    let teams = teams(store, slug).await?;
    for name in &policy.approvers {
        let team = name.rsplit(':').next().unwrap_or(name);
        if !teams.iter().any(|t| t == team) && store.find_user_by_name(name).await?.is_none() {
            return Err(OrgError::Invalid(format!(
                "approver `{name}` is neither a user nor a team of {slug}"
            )));
        }
    }
    let details = json!({ "before": to_json(slug, &before), "after": to_json(slug, &policy) });
    let event = match actor {
        Some(caller) => AuditEvent::by(caller, "org.policy_changed", details),
        None => AuditEvent::by_operator("org.policy_changed", details),
    }
    .on_org(slug);
    if !store
        .set_org_policy(slug, policy.clone(), vec![event])
        .await?
    {
        return Err(OrgError::NotFound(format!("there is no org named {slug}")));
    }
    Ok(policy)
}

async fn teams(store: &Store, slug: &str) -> Result<Vec<String>, OrgError> {
    let answer = store
        .query_org(slug, 0, OrgQuery::Teams, Box::new(|_, _| Ok(())))
        .await?;
    Ok(match answer {
        OrgAnswer::List(names) => names,
        _ => Vec::new(),
    })
}

/// Whether `user` is one of the policy's approvers: named, or in a named team of org `slug`
/// (`team` or `slug:team`).
pub async fn is_approver(
    store: &Store,
    slug: &str,
    policy: &OrgPolicy,
    user: &str,
) -> Result<bool, RegistryError> {
    for name in &policy.approvers {
        if name == user {
            return Ok(true);
        }
        let team = name.rsplit(':').next().unwrap_or(name).to_owned();
        let answer = store
            .query_org(
                slug,
                0,
                OrgQuery::TeamMembers(team),
                Box::new(|_, _| Ok(())),
            )
            .await
            .map_err(|e| RegistryError::Internal(e.to_string()))?;
        if let OrgAnswer::List(members) = answer
            && members.iter().any(|m| m == user)
        {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The org and policy governing `package`, when its scope is an org's.
pub async fn governing(
    store: &Store,
    package: &str,
) -> Result<Option<(String, OrgPolicy)>, RegistryError> {
    let Some(slug) = scope_slug(package) else {
        return Ok(None);
    };
    Ok(store
        .org_policy(slug)
        .await?
        .map(|policy| (slug.to_owned(), policy)))
}

/// What a publish or stage brings before the policy.
pub struct Submission<'a> {
    /// The package.
    pub package: &'a str,
    /// Whether this is `npm stage publish` (else a plain publish).
    pub staging: bool,
    /// Whether a provenance bundle matching the tarball came with it.
    pub provenance: bool,
    /// Whether it came through a trusted-publisher token.
    pub trusted_publisher: bool,
}

/// Refuses what the policy of org `slug` forbids, naming the rule and how to satisfy it.
pub fn check(slug: &str, policy: &OrgPolicy, what: &Submission<'_>) -> Result<(), RegistryError> {
    let denied = |message: String| Err(RegistryError::PolicyDenied(message));
    if policy.require_approval && !what.staging {
        return denied(format!(
            "@{slug} requires an approval for every release: run `npm stage publish` instead of `npm publish`, then an approver ({}) runs `npm stage approve <id>`",
            policy.approvers.join(", ")
        ));
    }
    if policy.require_trusted_publishing && !what.trusted_publisher {
        return denied(format!(
            "@{slug} requires trusted publishing: {} must come from a CI workflow trusted with `npm trust github {} --repo OWNER/REPO --file WORKFLOW.yml` (or `npm trust gitlab`), not from a user's token",
            what.package, what.package
        ));
    }
    if policy.require_provenance && !what.provenance {
        return denied(format!(
            "@{slug} requires provenance: publish {} from CI with `npm publish --provenance` (or `npm stage publish --provenance`) so that a Sigstore provenance bundle matching the tarball is attached",
            what.package
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_policy_body_is_checked_field_by_field() {
        let ok =
            parse(&json!({"require_approval": true, "approvers": ["alice", "release"]})).unwrap();
        assert!(ok.require_approval && !ok.require_provenance);
        assert_eq!(ok.approvers, ["alice", "release"]);
        for (body, needle) in [
            (json!([]), "JSON object"),
            (
                json!({"require_aproval": true}),
                "unknown policy field `require_aproval`",
            ),
            (
                json!({"require_provenance": "yes"}),
                "`require_provenance` must be true or false",
            ),
            (
                json!({"approvers": "alice"}),
                "`approvers` must be an array",
            ),
            (json!({"approvers": [""]}), "each approver"),
            (json!({"require_approval": true}), "at least one approver"),
        ] {
            let err = parse(&body).unwrap_err().to_string();
            assert!(err.contains(needle), "{body}: {err}");
        }
    }

    #[test]
    fn each_rule_names_itself_and_its_remedy() {
        let policy = OrgPolicy {
            require_approval: true,
            approvers: vec!["bob".into()],
            require_provenance: true,
            require_trusted_publishing: true,
        };
        let mut what = Submission {
            package: "@acme/x",
            staging: false,
            provenance: false,
            trusted_publisher: false,
        };
        let err = check("acme", &policy, &what).unwrap_err().to_string();
        assert!(err.contains("npm stage publish"), "{err}");
        what.staging = true;
        let err = check("acme", &policy, &what).unwrap_err().to_string();
        assert!(
            err.contains("requires trusted publishing") && err.contains("npm trust github"),
            "{err}"
        );
        what.trusted_publisher = true;
        let err = check("acme", &policy, &what).unwrap_err().to_string();
        assert!(
            err.contains("requires provenance") && err.contains("--provenance"),
            "{err}"
        );
        what.provenance = true;
        assert!(check("acme", &policy, &what).is_ok());
    }
}
