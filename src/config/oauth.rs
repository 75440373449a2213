//! Sign-in through OAuth providers: the `PACKR_OAUTH_*`, `PACKR_OIDC_*` and `PACKR_GITHUB_*`
//! flags, validated into [`OAuthConfig`]. A provider is on when its client ID is set.
//!
//! GitLab and Google are OpenID Connect providers, so they are presets of the generic OIDC
//! provider: only their default issuer and display name differ.

use anyhow::bail;
use clap::Args;
use secrecy::SecretString;

use super::parse_secret;

/// Flags of the OAuth providers (flattened into `packr serve`).
#[derive(Debug, Clone, Args)]
pub struct OAuthArgs {
    /// Client ID of the GitHub OAuth app; setting it turns GitHub sign-in on.
    #[arg(long, env = "PACKR_OAUTH_GITHUB_CLIENT_ID")]
    pub github_client_id: Option<String>,

    /// Client secret of the GitHub OAuth app.
    #[arg(long, env = "PACKR_OAUTH_GITHUB_CLIENT_SECRET", hide_env_values = true, value_parser = parse_secret)]
    pub github_client_secret: Option<SecretString>,

    /// GitHub's authorization page (override for GitHub Enterprise or tests).
    #[arg(
        long,
        env = "PACKR_GITHUB_AUTHORIZE_URL",
        default_value = "https://github.com/login/oauth/authorize"
    )]
    pub github_authorize_url: String,

    /// GitHub's token endpoint.
    #[arg(
        long,
        env = "PACKR_GITHUB_TOKEN_URL",
        default_value = "https://github.com/login/oauth/access_token"
    )]
    pub github_token_url: String,

    /// Base of GitHub's REST API (`/user` and `/user/emails` are read from it).
    #[arg(
        long,
        env = "PACKR_GITHUB_API_URL",
        default_value = "https://api.github.com"
    )]
    pub github_api_url: String,

    /// Client ID of the GitLab application; setting it turns GitLab sign-in on.
    #[arg(long, env = "PACKR_OAUTH_GITLAB_CLIENT_ID")]
    pub gitlab_client_id: Option<String>,

    /// Client secret of the GitLab application.
    #[arg(long, env = "PACKR_OAUTH_GITLAB_CLIENT_SECRET", hide_env_values = true, value_parser = parse_secret)]
    pub gitlab_client_secret: Option<SecretString>,

    /// GitLab's OIDC issuer (a self-managed GitLab's URL).
    #[arg(
        long,
        env = "PACKR_GITLAB_ISSUER",
        default_value = "https://gitlab.com"
    )]
    pub gitlab_issuer: String,

    /// Client ID of the Google OAuth client; setting it turns Google sign-in on.
    #[arg(long, env = "PACKR_OAUTH_GOOGLE_CLIENT_ID")]
    pub google_client_id: Option<String>,

    /// Client secret of the Google OAuth client.
    #[arg(long, env = "PACKR_OAUTH_GOOGLE_CLIENT_SECRET", hide_env_values = true, value_parser = parse_secret)]
    pub google_client_secret: Option<SecretString>,

    /// Google's OIDC issuer.
    #[arg(
        long,
        env = "PACKR_GOOGLE_ISSUER",
        default_value = "https://accounts.google.com"
    )]
    pub google_issuer: String,

    /// Client ID at a generic OpenID Connect provider; needs `PACKR_OIDC_ISSUER`.
    #[arg(long, env = "PACKR_OAUTH_OIDC_CLIENT_ID")]
    pub oidc_client_id: Option<String>,

    /// Client secret at the generic OpenID Connect provider.
    #[arg(long, env = "PACKR_OAUTH_OIDC_CLIENT_SECRET", hide_env_values = true, value_parser = parse_secret)]
    pub oidc_client_secret: Option<SecretString>,

    /// Issuer URL of the generic OpenID Connect provider (its discovery document is read from
    /// `<issuer>/.well-known/openid-configuration`).
    #[arg(long, env = "PACKR_OIDC_ISSUER")]
    pub oidc_issuer: Option<String>,

    /// Name shown on the "Sign in with ..." button of the generic OIDC provider.
    #[arg(long, env = "PACKR_OIDC_NAME", default_value = "OpenID Connect")]
    pub oidc_name: String,

    /// Create a Packr user on the first sign-in of an identity that matches no user; when off, an
    /// identity is only linked to an existing user with the same verified e-mail.
    #[arg(long, env = "PACKR_OAUTH_AUTO_CREATE_USERS", default_value_t = false)]
    pub oauth_auto_create_users: bool,

    /// E-mail domains (comma-separated, e.g. `example.com,example.org`) that accounts created on
    /// sign-in may have; others are refused. Unset: any domain.
    #[arg(long, env = "PACKR_OAUTH_ALLOWED_DOMAINS")]
    pub oauth_allowed_domains: Option<String>,
}

/// The validated OAuth settings.
#[derive(Debug, Clone, Default)]
pub struct OAuthConfig {
    /// The providers that are on, in the order their buttons are shown.
    pub providers: Vec<ProviderConfig>,
    /// Whether an identity matching no user creates one.
    pub auto_create_users: bool,
    /// The e-mail domains (lower-case) accounts created on sign-in may have; empty for any.
    pub allowed_domains: Vec<String>,
}

/// One configured provider; `Debug` redacts the secret.
#[derive(Debug, Clone)]
pub struct ProviderConfig {
    /// Its name in URLs (`/api/auth/callback/<id>`) and in the identity table: `github`,
    /// `gitlab`, `google` or `oidc`.
    pub id: &'static str,
    /// The name on its button.
    pub display_name: String,
    /// The OAuth client ID.
    pub client_id: String,
    /// The OAuth client secret; `None` for a public client (PKCE only).
    pub client_secret: Option<SecretString>,
    /// How the provider is spoken to.
    pub protocol: Protocol,
}

/// How a provider authenticates people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Protocol {
    /// OpenID Connect: endpoints from the issuer's discovery document, identity from a verified
    /// ID token.
    Oidc {
        /// The issuer URL, without a trailing slash.
        issuer: String,
    },
    /// GitHub's OAuth apps: plain OAuth 2, identity from the REST API.
    GitHub {
        /// The authorization page.
        authorize_url: String,
        /// The token endpoint.
        token_url: String,
        /// The REST API's base, without a trailing slash.
        api_url: String,
    },
}

impl OAuthConfig {
    /// Validates the flags: a client ID turns a provider on; a secret or generic issuer without
    /// one is a mistake.
    pub fn from_args(args: OAuthArgs) -> anyhow::Result<Self> {
        let mut providers = Vec::new();
        let github = GitHubUrls {
            authorize_url: http_url("PACKR_GITHUB_AUTHORIZE_URL", &args.github_authorize_url)?,
            token_url: http_url("PACKR_GITHUB_TOKEN_URL", &args.github_token_url)?,
            api_url: http_url("PACKR_GITHUB_API_URL", &args.github_api_url)?,
        };
        let candidates = [
            (
                "github",
                "GitHub".to_owned(),
                args.github_client_id,
                args.github_client_secret,
            ),
            (
                "gitlab",
                "GitLab".to_owned(),
                args.gitlab_client_id,
                args.gitlab_client_secret,
            ),
            (
                "google",
                "Google".to_owned(),
                args.google_client_id,
                args.google_client_secret,
            ),
            (
                "oidc",
                args.oidc_name.trim().to_owned(),
                args.oidc_client_id,
                args.oidc_client_secret,
            ),
        ];
        for (id, display_name, client_id, client_secret) in candidates {
            let name = id.to_uppercase();
            let client_id = client_id
                .map(|c| c.trim().to_owned())
                .filter(|c| !c.is_empty());
            let Some(client_id) = client_id else {
                if client_secret.is_some() {
                    bail!(
                        "PACKR_OAUTH_{name}_CLIENT_SECRET is set but PACKR_OAUTH_{name}_CLIENT_ID is not"
                    );
                }
                if id == "oidc"
                    && args
                        .oidc_issuer
                        .as_deref()
                        .is_some_and(|i| !i.trim().is_empty())
                {
                    bail!("PACKR_OIDC_ISSUER is set but PACKR_OAUTH_OIDC_CLIENT_ID is not");
                }
                continue;
            };
            let protocol = match id {
                "github" => Protocol::GitHub {
                    authorize_url: github.authorize_url.clone(),
                    token_url: github.token_url.clone(),
                    api_url: github.api_url.clone(),
                },
                "gitlab" => oidc("PACKR_GITLAB_ISSUER", &args.gitlab_issuer)?,
                "google" => oidc("PACKR_GOOGLE_ISSUER", &args.google_issuer)?,
                _ => match args.oidc_issuer.as_deref().map(str::trim) {
                    None | Some("") => bail!(
                        "PACKR_OAUTH_OIDC_CLIENT_ID needs PACKR_OIDC_ISSUER, the provider's issuer URL"
                    ),
                    Some(issuer) => oidc("PACKR_OIDC_ISSUER", issuer)?,
                },
            };
            if display_name.is_empty() {
                bail!("PACKR_OIDC_NAME must not be empty");
            }
            providers.push(ProviderConfig {
                id,
                display_name,
                client_id,
                client_secret,
                protocol,
            });
        }
        let allowed_domains = allowed_domains(args.oauth_allowed_domains.as_deref())?;
        if !allowed_domains.is_empty() && !args.oauth_auto_create_users {
            bail!(
                "PACKR_OAUTH_ALLOWED_DOMAINS limits the accounts created on sign-in, but PACKR_OAUTH_AUTO_CREATE_USERS is off; turn it on, or unset PACKR_OAUTH_ALLOWED_DOMAINS"
            );
        }
        Ok(Self {
            providers,
            auto_create_users: args.oauth_auto_create_users,
            allowed_domains,
        })
    }
}

/// Parses `example.com, @Example.org` into lower-case domains.
fn allowed_domains(list: Option<&str>) -> anyhow::Result<Vec<String>> {
    let mut domains = Vec::new();
    for entry in list.unwrap_or("").split(',') {
        let domain = entry.trim().trim_start_matches('@').to_ascii_lowercase();
        if domain.is_empty() {
            continue;
        }
        let valid = domain.contains('.')
            && domain.split('.').all(|label| {
                !label.is_empty()
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            });
        if !valid {
            bail!(
                "PACKR_OAUTH_ALLOWED_DOMAINS: `{}` is not an e-mail domain such as example.com",
                entry.trim()
            );
        }
        domains.push(domain);
    }
    Ok(domains)
}

struct GitHubUrls {
    authorize_url: String,
    token_url: String,
    api_url: String,
}

fn oidc(variable: &str, issuer: &str) -> anyhow::Result<Protocol> {
    Ok(Protocol::Oidc {
        issuer: http_url(variable, issuer)?,
    })
}

/// An `http://` or `https://` URL without its trailing slash.
fn http_url(variable: &str, url: &str) -> anyhow::Result<String> {
    let url = url.trim();
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        bail!("{variable} must start with http:// or https://, got {url}");
    }
    Ok(url.trim_end_matches('/').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(clap::Parser)]
    struct Flags {
        #[command(flatten)]
        args: OAuthArgs,
    }

    fn config_from(flags: &[&str]) -> anyhow::Result<OAuthConfig> {
        let parsed = <Flags as clap::Parser>::try_parse_from(
            std::iter::once("packr").chain(flags.iter().copied()),
        )?;
        OAuthConfig::from_args(parsed.args)
    }

    #[test]
    fn no_client_id_means_no_provider() {
        let config = config_from(&[]).unwrap();
        assert!(config.providers.is_empty());
        assert!(!config.auto_create_users);
    }

    #[test]
    fn presets_fill_in_the_issuers_and_debug_redacts_the_secrets() {
        let config = config_from(&[
            "--gitlab-client-id",
            "gl-id",
            "--gitlab-client-secret",
            "gl-very-secret",
            "--google-client-id",
            "g-id",
            "--github-client-id",
            "gh-id",
            "--github-api-url",
            "http://127.0.0.1:9/api/",
        ])
        .unwrap();
        let ids: Vec<_> = config.providers.iter().map(|p| p.id).collect();
        assert_eq!(ids, ["github", "gitlab", "google"]);
        assert_eq!(
            config.providers[1].protocol,
            Protocol::Oidc {
                issuer: "https://gitlab.com".into()
            }
        );
        let Protocol::GitHub { api_url, .. } = &config.providers[0].protocol else {
            panic!("GitHub speaks its own protocol");
        };
        assert_eq!(api_url, "http://127.0.0.1:9/api");
        let debug = format!("{config:?}");
        assert!(!debug.contains("gl-very-secret"), "{debug}");
    }

    #[test]
    fn a_generic_provider_needs_its_issuer() {
        let err = config_from(&["--oidc-client-id", "x"]).unwrap_err();
        assert!(err.to_string().contains("PACKR_OIDC_ISSUER"), "{err}");
        let err = config_from(&["--oidc-issuer", "https://id.example"]).unwrap_err();
        assert!(
            err.to_string().contains("PACKR_OAUTH_OIDC_CLIENT_ID"),
            "{err}"
        );
        let err =
            config_from(&["--oidc-client-id", "x", "--oidc-issuer", "id.example"]).unwrap_err();
        assert!(err.to_string().contains("http://"), "{err}");
    }

    #[test]
    fn allowed_domains_are_a_lower_case_list_and_need_auto_create() {
        let config = config_from(&[
            "--oauth-auto-create-users",
            "--oauth-allowed-domains",
            " Example.com, @corp.example.org ,",
        ])
        .unwrap();
        assert_eq!(config.allowed_domains, ["example.com", "corp.example.org"]);
        let err = config_from(&["--oauth-allowed-domains", "example.com"]).unwrap_err();
        assert!(
            err.to_string().contains("PACKR_OAUTH_AUTO_CREATE_USERS"),
            "{err}"
        );
        for bad in ["localhost", "a@b.example", "exa mple.com", "-x.example"] {
            let flag = format!("--oauth-allowed-domains={bad}");
            let err = config_from(&["--oauth-auto-create-users", &flag]).unwrap_err();
            assert!(err.to_string().contains("not an e-mail domain"), "{err}");
        }
    }

    #[test]
    fn a_secret_without_its_client_id_is_refused() {
        let err = config_from(&["--google-client-secret", "s"]).unwrap_err();
        assert!(
            err.to_string().contains("PACKR_OAUTH_GOOGLE_CLIENT_ID"),
            "{err}"
        );
    }
}
