//! Matching an ID token's claims against a trusted publisher, and the identity recorded on what
//! the exchanged token publishes (npm-protocol.md §12.5).

use serde_json::{Value, json};

use crate::store::trust::TrustedPublisherRow;

/// The CI system an issuer belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    /// GitHub Actions.
    Github,
    /// GitLab CI.
    Gitlab,
}

impl Provider {
    /// `github` or `gitlab`, as `npm trust` names them.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Github => "github",
            Self::Gitlab => "gitlab",
        }
    }

    /// The claim naming the repository (GitHub) or project (GitLab).
    pub fn repository_claim(self) -> &'static str {
        match self {
            Self::Github => "repository",
            Self::Gitlab => "project_path",
        }
    }

    /// The claim whose path names the workflow or pipeline file.
    pub fn file_claim(self) -> &'static str {
        match self {
            Self::Github => "workflow_ref",
            Self::Gitlab => "ci_config_ref_uri",
        }
    }
}

fn text<'v>(claims: &'v Value, name: &str) -> Option<&'v str> {
    claims.get(name).and_then(Value::as_str)
}

/// The workflow or pipeline file a token's claims name: of GitHub's
/// `owner/repo/.github/workflows/release.yml@refs/heads/main` the path after the repository,
/// and of GitLab's `gitlab.com/group/project//.gitlab-ci.yml@refs/heads/main` the path after
/// `//`; both without the `@ref`.
pub fn token_file(provider: Provider, claims: &Value) -> Option<String> {
    let full = text(claims, provider.file_claim())?;
    let path = full.split_once('@').map_or(full, |(path, _)| path);
    match provider {
        Provider::Github => {
            let repository = text(claims, "repository")?;
            let rest = path.strip_prefix(repository)?.strip_prefix('/')?;
            Some(rest.to_owned())
        }
        Provider::Gitlab => path.split_once("//").map(|(_, file)| file.to_owned()),
    }
}

/// Whether a configured file matches the token's: the same path, or the configured bare file
/// name of a GitHub workflow (`release.yml` for `.github/workflows/release.yml`).
fn same_file(provider: Provider, configured: &str, actual: &str) -> bool {
    let configured = configured.trim_start_matches("./");
    configured == actual
        || (provider == Provider::Github
            && actual.strip_prefix(".github/workflows/") == Some(configured))
}

/// Why a token's claims do not match one trusted publisher; `None` when they do.
pub fn mismatch(provider: Provider, row: &TrustedPublisherRow, claims: &Value) -> Option<String> {
    let wanted = |name: &str| row.claims.get(name).and_then(Value::as_str);
    let repo_claim = provider.repository_claim();
    let repository = text(claims, repo_claim);
    if repository != wanted(repo_claim) {
        return Some(format!(
            "the ID token's {repo_claim} is {}, but the trusted publisher names {}",
            repository.unwrap_or("(none)"),
            wanted(repo_claim).unwrap_or("(none)")
        ));
    }
    let configured_file = row
        .claims
        .get(provider.file_claim())
        .and_then(|f| f.get("file"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    let file = token_file(provider, claims);
    if !file
        .as_deref()
        .is_some_and(|file| same_file(provider, configured_file, file))
    {
        return Some(format!(
            "the ID token's workflow file is {} ({}), but the trusted publisher names {configured_file}",
            file.as_deref().unwrap_or("(none)"),
            provider.file_claim()
        ));
    }
    if let Some(environment) = wanted("environment").filter(|e| !e.is_empty()) {
        let actual = text(claims, "environment");
        if actual != Some(environment) {
            return Some(format!(
                "the ID token's environment is {}, but the trusted publisher requires {environment}",
                actual.unwrap_or("(none)")
            ));
        }
    }
    None
}

/// What is recorded about the CI run: in the audit log, on the token's exchange and as the
/// version's `trustedPublisher`.
pub fn identity(provider: Provider, issuer: &str, claims: &Value, publisher_id: &str) -> Value {
    let mut identity = json!({
        "type": provider.as_str(),
        "issuer": issuer,
        "id": publisher_id,
        "repository": text(claims, provider.repository_claim()),
        "workflow": token_file(provider, claims),
        "ref": text(claims, "ref"),
        "sha": text(claims, "sha"),
        "environment": text(claims, "environment"),
    });
    let run = match provider {
        Provider::Github => claims.get("run_id"),
        Provider::Gitlab => claims.get("pipeline_id"),
    };
    identity["run_id"] = run.cloned().unwrap_or(Value::Null);
    if let Value::Object(map) = &mut identity {
        map.retain(|_, v| !v.is_null());
    }
    identity
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(claims: Value) -> TrustedPublisherRow {
        TrustedPublisherRow {
            id: "t".into(),
            package: Some("p".into()),
            org: None,
            kind: "github".into(),
            claims,
            permissions: vec!["createPackage".into()],
            created_by: 1,
            created_at: 0,
        }
    }

    #[test]
    fn github_claims_match_on_repository_file_and_environment() {
        let publisher =
            row(json!({"repository": "acme/lib", "workflow_ref": {"file": "release.yml"}}));
        let token = json!({"repository": "acme/lib",
            "workflow_ref": "acme/lib/.github/workflows/release.yml@refs/heads/main"});
        assert_eq!(mismatch(Provider::Github, &publisher, &token), None);
        let other = json!({"repository": "acme/lib",
            "workflow_ref": "acme/lib/.github/workflows/ci.yml@refs/heads/main"});
        assert!(
            mismatch(Provider::Github, &publisher, &other)
                .unwrap()
                .contains("ci.yml")
        );
        let fork = json!({"repository": "evil/lib",
            "workflow_ref": "evil/lib/.github/workflows/release.yml@refs/heads/main"});
        assert!(
            mismatch(Provider::Github, &publisher, &fork)
                .unwrap()
                .contains("evil/lib")
        );
        let with_env = row(
            json!({"repository": "acme/lib", "workflow_ref": {"file": "release.yml"},
            "environment": "production"}),
        );
        assert!(
            mismatch(Provider::Github, &with_env, &token)
                .unwrap()
                .contains("production")
        );
    }

    #[test]
    fn gitlab_files_come_after_the_double_slash() {
        let publisher = row(
            json!({"project_path": "g/sub/p", "ci_config_ref_uri": {"file": ".gitlab-ci.yml"}}),
        );
        let token = json!({"project_path": "g/sub/p",
            "ci_config_ref_uri": "gitlab.com/g/sub/p//.gitlab-ci.yml@refs/heads/main"});
        assert_eq!(mismatch(Provider::Gitlab, &publisher, &token), None);
    }
}
