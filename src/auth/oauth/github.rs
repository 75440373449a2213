//! GitHub's OAuth apps: plain OAuth 2 (no ID token), so the person is read from the REST API:
//! `/user` for the stable id and login, `/user/emails` for a verified address.

use serde::Deserialize;

use super::http::Http;
use super::{Failure, Identity};

/// Scopes asked for: the profile and the e-mail addresses.
pub const SCOPES: &[&str] = &["read:user", "user:email"];

#[derive(Deserialize)]
struct User {
    id: u64,
    login: String,
}

#[derive(Deserialize)]
struct Email {
    email: String,
    #[serde(default)]
    primary: bool,
    #[serde(default)]
    verified: bool,
}

/// Who holds `access_token`: GitHub's numeric user id (logins can be renamed), the login, and the
/// primary verified e-mail (else any verified one).
pub async fn identify(http: &Http, api_url: &str, access_token: &str) -> Result<Identity, Failure> {
    let user: User = http
        .get_json(&format!("{api_url}/user"), Some(access_token))
        .await?;
    let emails: Vec<Email> = http
        .get_json(&format!("{api_url}/user/emails"), Some(access_token))
        .await?;
    let email = emails
        .into_iter()
        .filter(|e| e.verified)
        .max_by_key(|e| e.primary)
        .map(|e| e.email);
    Ok(Identity {
        subject: user.id.to_string(),
        email,
        username: Some(user.login),
    })
}
