//! Who signed a provenance bundle: the CI identity Fulcio wrote into the signing certificate
//! (sigstore/fulcio `docs/oid-info.md`), and whether it agrees with the package (its
//! `repository`, as npmjs checks it) and with the trusted publisher that published it.

use serde_json::{Value, json};

use super::x509::Cert;

const ISSUER_V1: &str = "1.3.6.1.4.1.57264.1.1";
const ISSUER_V2: &str = "1.3.6.1.4.1.57264.1.8";
const SOURCE_REPOSITORY_URI: &str = "1.3.6.1.4.1.57264.1.12";
const SOURCE_REPOSITORY_DIGEST: &str = "1.3.6.1.4.1.57264.1.13";
const SOURCE_REPOSITORY_REF: &str = "1.3.6.1.4.1.57264.1.14";
const BUILD_CONFIG_URI: &str = "1.3.6.1.4.1.57264.1.18";

/// The signer as its certificate names it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Signer {
    /// The OIDC issuer of the CI's ID token (`https://token.actions.githubusercontent.com`).
    pub issuer: Option<String>,
    /// The source repository URI (`https://github.com/owner/repo`).
    pub repository: Option<String>,
    /// The top-level workflow or pipeline file, relative to the repository
    /// (`.github/workflows/release.yml`, `.gitlab-ci.yml`).
    pub workflow: Option<String>,
    /// The git ref built (`refs/heads/main`).
    pub git_ref: Option<String>,
    /// The commit built.
    pub sha: Option<String>,
    /// The subject alternative name (a workflow URI, or an email for a person).
    pub san: Option<String>,
}

impl Signer {
    /// Reads the Fulcio extensions and the SAN of `cert`.
    pub fn read(cert: &Cert) -> Self {
        let repository = cert.text_extension(SOURCE_REPOSITORY_URI, false);
        let san = cert.san();
        // A workflow's certificate has a build config URI; older ones only a SAN URI naming it.
        let config = cert
            .text_extension(BUILD_CONFIG_URI, false)
            .or_else(|| san.clone().filter(|s| s.contains("://")));
        let workflow = config.map(|c| workflow_file(&c, repository.as_deref()));
        Self {
            issuer: cert
                .text_extension(ISSUER_V2, false)
                .or_else(|| cert.text_extension(ISSUER_V1, true)),
            repository,
            workflow,
            git_ref: cert.text_extension(SOURCE_REPOSITORY_REF, false),
            sha: cert.text_extension(SOURCE_REPOSITORY_DIGEST, false),
            san,
        }
    }

    /// What the version's provenance data records.
    pub fn to_json(&self) -> Value {
        let mut value = json!({
            "issuer": self.issuer, "repository": self.repository, "workflow": self.workflow,
            "ref": self.git_ref, "sha": self.sha, "san": self.san,
        });
        if let Value::Object(map) = &mut value {
            map.retain(|_, v| !v.is_null());
        }
        value
    }

    /// The certificate must name the repository it was built from, and every `repository` the
    /// package states (`(where, value)`: the published manifest's, the tarball's package.json)
    /// must be that repository, as npmjs requires ("Failed to validate repository information").
    pub fn check_package(&self, stated: &[Option<&Value>]) -> Result<(), String> {
        let Some(built_from) = &self.repository else {
            return Err(format!(
                "the provenance signing certificate names no source repository (Fulcio extension {SOURCE_REPOSITORY_URI}): provenance must come from a CI build"
            ));
        };
        let wanted = normalize_repository(built_from);
        let stated: Vec<&Value> = stated.iter().flatten().copied().collect();
        let mismatch = |url: &str| {
            format!(
                "Failed to validate repository information: package.json: \"repository.url\" is {url:?}, expected to match {built_from:?} from provenance"
            )
        };
        if stated.is_empty() {
            return Err(mismatch(""));
        }
        for repository in stated {
            let url = repository_url(repository).unwrap_or_default();
            if wanted.is_none() || normalize_repository(&url) != wanted {
                return Err(mismatch(&url));
            }
        }
        Ok(())
    }

    /// A publish through a trusted-publisher token (`identity` as recorded on the exchange:
    /// `issuer`, `repository` as `owner/repo`, `workflow` as a path) must carry provenance of the
    /// same repository, workflow and issuer.
    pub fn check_token(&self, identity: &Value) -> Result<(), String> {
        let text = |name: &str| identity.get(name).and_then(Value::as_str).unwrap_or("");
        let repository = self
            .repository
            .as_deref()
            .and_then(normalize_repository)
            .and_then(|r| r.split_once('/').map(|(_, path)| path.to_owned()));
        if repository.as_deref() != Some(&text("repository").to_lowercase()) {
            return Err(format!(
                "the provenance was built from {}, but the trusted-publishing token that publishes it was issued to {}",
                self.repository.as_deref().unwrap_or("(no repository)"),
                text("repository")
            ));
        }
        if self.workflow.as_deref() != Some(text("workflow")) {
            return Err(format!(
                "the provenance was built by the workflow {}, but the trusted-publishing token that publishes it was issued to the workflow {}",
                self.workflow.as_deref().unwrap_or("(none)"),
                text("workflow")
            ));
        }
        let issuer = |s: &str| s.trim_end_matches('/').to_owned();
        if self.issuer.as_deref().map(issuer) != Some(issuer(text("issuer"))) {
            return Err(format!(
                "the provenance certificate's OIDC issuer is {}, but the trusted-publishing token came from {}",
                self.issuer.as_deref().unwrap_or("(none)"),
                text("issuer")
            ));
        }
        Ok(())
    }
}

/// The file of a build config URI (`https://github.com/o/r/.github/workflows/x.yml@refs/…`,
/// GitLab's `https://gitlab.com/g/p//.gitlab-ci.yml@refs/…`): the path after the repository,
/// without the `@ref`. A URI outside the repository is kept whole (without its ref).
fn workflow_file(config: &str, repository: Option<&str>) -> String {
    let path = config.split_once('@').map_or(config, |(path, _)| path);
    repository
        .and_then(|r| path.strip_prefix(r.trim_end_matches('/')))
        .filter(|rest| rest.starts_with('/'))
        .map_or(path, |rest| rest.trim_start_matches('/'))
        .to_owned()
}

/// The URL of a package.json `repository`: a string or `{ "url": … }`.
fn repository_url(repository: &Value) -> Option<String> {
    match repository {
        Value::String(url) => Some(url.clone()),
        Value::Object(fields) => fields.get("url").and_then(Value::as_str).map(str::to_owned),
        _ => None,
    }
}

/// A repository URL as `host/path`, lower-cased (GitHub and GitLab paths are case-insensitive),
/// whatever way npm users write it: `git+https://…/r.git`, `git://`, `ssh://git@host/…`,
/// `git@host:o/r`, `github:o/r`, `gitlab:g/p`, `bitbucket:o/r` or the bare `o/r` GitHub shorthand.
pub fn normalize_repository(url: &str) -> Option<String> {
    let url = url.trim();
    let url = url.strip_prefix("git+").unwrap_or(url);
    let shorthand = [
        ("github:", "github.com"),
        ("gitlab:", "gitlab.com"),
        ("bitbucket:", "bitbucket.org"),
    ];
    let (host, path) = if let Some((_, rest)) = url.split_once("://") {
        let (authority, path) = rest.split_once('/')?;
        (
            authority.rsplit_once('@').map_or(authority, |(_, h)| h),
            path,
        )
    } else if let Some((prefix, host)) = shorthand.iter().find(|(p, _)| url.starts_with(p)) {
        (*host, &url[prefix.len()..])
    } else if let Some((user_host, path)) = url.split_once(':') {
        // scp-like `git@github.com:owner/repo.git`
        (
            user_host.rsplit_once('@').map_or(user_host, |(_, h)| h),
            path,
        )
    } else if url.matches('/').count() == 1 && !url.starts_with('/') {
        ("github.com", url)
    } else {
        return None;
    };
    // A port (`host:22`) does not change which repository it is.
    let host = host.split_once(':').map_or(host, |(h, _)| h);
    let path = path.trim_matches('/');
    let path = path.strip_suffix(".git").unwrap_or(path);
    if host.is_empty() || path.is_empty() {
        return None;
    }
    Some(format!("{host}/{path}").to_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_urls_normalize_the_ways_npm_users_write_them() {
        let want = Some("github.com/acme/widget".to_owned());
        for url in [
            "https://github.com/acme/widget",
            "git+https://github.com/acme/widget.git",
            "git://github.com/acme/widget.git",
            "git+ssh://git@github.com/acme/widget.git",
            "ssh://git@github.com:22/acme/widget",
            "git@github.com:acme/widget.git",
            "github:acme/widget",
            "acme/widget",
            "https://github.com/Acme/Widget/",
        ] {
            assert_eq!(normalize_repository(url), want, "{url}");
        }
        assert_eq!(
            normalize_repository("gitlab:group/sub/project"),
            Some("gitlab.com/group/sub/project".into())
        );
        assert_ne!(normalize_repository("https://github.com/acme/other"), want);
        assert_eq!(normalize_repository(""), None);
        assert_eq!(normalize_repository("/local/path"), None);
    }

    #[test]
    fn the_workflow_is_the_config_path_inside_the_repository() {
        let repo = Some("https://github.com/acme/widget");
        assert_eq!(
            workflow_file(
                "https://github.com/acme/widget/.github/workflows/release.yml@refs/heads/main",
                repo
            ),
            ".github/workflows/release.yml"
        );
        assert_eq!(
            workflow_file(
                "https://gitlab.com/g/p//.gitlab-ci.yml@refs/heads/main",
                Some("https://gitlab.com/g/p")
            ),
            ".gitlab-ci.yml"
        );
        // Not `acme/widget-two`'s file under `acme/widget`.
        assert_eq!(
            workflow_file("https://github.com/acme/widget-two/x.yml@v1", repo),
            "https://github.com/acme/widget-two/x.yml"
        );
    }

    fn signer() -> Signer {
        Signer {
            issuer: Some("https://token.actions.githubusercontent.com".into()),
            repository: Some("https://github.com/acme/widget".into()),
            workflow: Some(".github/workflows/release.yml".into()),
            ..Signer::default()
        }
    }

    #[test]
    fn the_package_must_name_the_repository_it_was_built_from() {
        let signer = signer();
        let same = json!({"type": "git", "url": "git+https://github.com/acme/widget.git"});
        assert_eq!(signer.check_package(&[Some(&same), None]), Ok(()));
        let other = json!("https://github.com/evil/widget");
        assert_eq!(
            signer.check_package(&[Some(&same), Some(&other)]),
            Err("Failed to validate repository information: package.json: \"repository.url\" is \"https://github.com/evil/widget\", expected to match \"https://github.com/acme/widget\" from provenance".into())
        );
        assert!(
            signer
                .check_package(&[None, None])
                .unwrap_err()
                .contains("is \"\"")
        );
        let unsigned = Signer::default();
        assert!(
            unsigned
                .check_package(&[Some(&same)])
                .unwrap_err()
                .contains("names no source repository")
        );
    }

    #[test]
    fn a_real_fulcio_certificate_for_a_person_names_no_repository() {
        use base64::Engine;
        // A real Fulcio certificate (in a sigstore-js test bundle) issued to an email identity.
        let path = format!(
            "{}/fixtures/sigstore/rekor-v2-dsse-bundle.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let bundle: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let raw = bundle["verificationMaterial"]["certificate"]["rawBytes"]
            .as_str()
            .unwrap();
        let der = base64::engine::general_purpose::STANDARD
            .decode(raw)
            .unwrap();
        let signer = Signer::read(&Cert::parse(&der).unwrap());
        assert_eq!(
            signer.issuer.as_deref(),
            Some("https://github.com/login/oauth")
        );
        assert_eq!(signer.san.as_deref(), Some("brian@dehamer.com"));
        assert_eq!((&signer.repository, &signer.workflow), (&None, &None));
        assert!(
            signer
                .check_package(&[Some(&json!("https://github.com/acme/widget"))])
                .unwrap_err()
                .contains("names no source repository")
        );
    }

    #[test]
    fn a_trusted_publisher_must_have_built_what_it_publishes() {
        let signer = signer();
        let token = json!({"issuer": "https://token.actions.githubusercontent.com",
            "repository": "acme/widget", "workflow": ".github/workflows/release.yml"});
        assert_eq!(signer.check_token(&token), Ok(()));
        let mut other = token.clone();
        other["repository"] = json!("acme/other");
        assert!(
            signer
                .check_token(&other)
                .unwrap_err()
                .contains("issued to acme/other")
        );
        let mut other = token.clone();
        other["workflow"] = json!(".github/workflows/ci.yml");
        assert!(
            signer
                .check_token(&other)
                .unwrap_err()
                .contains("the workflow .github/workflows/ci.yml")
        );
        let mut other = token;
        other["issuer"] = json!("https://gitlab.com");
        assert!(
            signer
                .check_token(&other)
                .unwrap_err()
                .contains("OIDC issuer")
        );
    }
}
