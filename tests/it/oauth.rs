//! Sign-in through OAuth providers: a real `packr login` process and real headless Chromium
//! through oidc-provider on loopback; identity-to-user mapping, state checks and ID-token checks
//! through oauth2-mock-server (GitHub-shaped, or as an OpenID provider), driven over raw HTTP.

use std::time::Duration;

use packr::config::{Protocol, ProviderConfig};
use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use serde_json::{Value, json};

use crate::support::clients::ClientEnv;
use crate::support::oidc::{
    CLIENT_ID, CLIENT_SECRET, GitHubUser, MockProvider, OidcProvider, sign_in_with_browser,
};
use crate::support::server::TestServer;
use crate::web_login::{finished, login_url, packr_login, screenshot};

fn provider(id: &'static str, protocol: Protocol) -> ProviderConfig {
    ProviderConfig {
        id,
        display_name: format!("Test {id}"),
        client_id: CLIENT_ID.to_owned(),
        client_secret: Some(CLIENT_SECRET.into()),
        protocol,
    }
}

fn oidc(issuer: &str) -> ProviderConfig {
    provider(
        "oidc",
        Protocol::Oidc {
            issuer: issuer.to_owned(),
        },
    )
}

pub(crate) fn github(mock: &MockProvider) -> ProviderConfig {
    provider(
        "github",
        Protocol::GitHub {
            authorize_url: format!("{}/authorize", mock.url),
            token_url: format!("{}/token", mock.url),
            api_url: mock.url.clone(),
        },
    )
}

pub(crate) async fn server_with(provider: ProviderConfig, auto_create_users: bool) -> TestServer {
    TestServer::start_with(|config| {
        config.login.device_poll_interval = Duration::from_secs(1);
        config.oauth.providers.push(provider);
        config.oauth.auto_create_users = auto_create_users;
    })
    .await
}

/// A pending device login's user code.
pub(crate) async fn user_code(server: &TestServer) -> String {
    let start: Value = reqwest::Client::new()
        .post(format!("{}/-/v1/device/authorize", server.url))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("client_id=oauth-test")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    start["user_code"].as_str().unwrap().to_owned()
}

/// One answer, redirects not followed.
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) location: String,
    /// `name=value` of each cookie set.
    pub(crate) cookies: Vec<String>,
    pub(crate) body: String,
}

impl Answer {
    pub(crate) fn cookie(&self, name: &str) -> Option<&str> {
        self.cookies
            .iter()
            .find(|c| c.starts_with(&format!("{name}=")))
            .map(String::as_str)
    }
}

pub(crate) async fn get(url: &str, cookie: Option<&str>) -> Answer {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut request = http.get(url);
    if let Some(cookie) = cookie {
        request = request.header(COOKIE, cookie);
    }
    let response = request.send().await.unwrap();
    let header = |value: &reqwest::header::HeaderValue| value.to_str().unwrap().to_owned();
    Answer {
        status: response.status(),
        location: response
            .headers()
            .get(LOCATION)
            .map(header)
            .unwrap_or_default(),
        cookies: response
            .headers()
            .get_all(SET_COOKIE)
            .iter()
            .map(|v| header(v).split(';').next().unwrap().to_owned())
            .collect(),
        body: response.text().await.unwrap(),
    }
}

/// `url` with its `name=...` query parameter replaced by `param`.
fn replace_param(url: &str, name: &str, param: &str) -> String {
    let (base, query) = url.split_once('?').unwrap();
    let params: Vec<&str> = query
        .split('&')
        .map(|p| {
            if p.starts_with(&format!("{name}=")) {
                param
            } else {
                p
            }
        })
        .collect();
    format!("{base}?{}", params.join("&"))
}

/// Starts a sign-in at `provider` (a mock that redirects back at once): the callback URL the
/// provider sent the browser to, and the state cookie the browser holds.
pub(crate) async fn provider_redirect(
    server: &TestServer,
    provider: &str,
    code: &str,
) -> (String, String) {
    let login = get(
        &format!("{}/api/auth/login/{provider}?code={code}", server.url),
        None,
    )
    .await;
    assert_eq!(login.status, StatusCode::FOUND, "{}", login.body);
    let cookie = login
        .cookie("packr_oauth_state")
        .expect("a state cookie")
        .to_owned();
    let at_provider = get(&login.location, None).await;
    assert_eq!(
        at_provider.status,
        StatusCode::FOUND,
        "{}",
        at_provider.body
    );
    assert!(
        at_provider
            .location
            .starts_with(&format!("{}/api/auth/callback/{provider}?", server.url)),
        "{}",
        at_provider.location
    );
    (at_provider.location, cookie)
}

/// Signs in at `provider` and follows the way back to `/-/cli/auth`: the user it names there.
pub(crate) async fn sign_in(server: &TestServer, provider: &str) -> String {
    let code = user_code(server).await;
    let (callback, state) = provider_redirect(server, provider, &code).await;
    let back = get(&callback, Some(&state)).await;
    assert_eq!(back.status, StatusCode::FOUND, "{}", back.body);
    assert_eq!(back.location, format!("/-/cli/auth?code={code}"));
    let session = back.cookie("packr_session").expect("a session cookie");
    let page = get(&format!("{}{}", server.url, back.location), Some(session)).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let (_, rest) = page
        .body
        .split_once(r#"id="signed-in-as">"#)
        .unwrap_or_else(|| panic!("not signed in:\n{}", page.body));
    rest.split('<').next().unwrap().to_owned()
}

/// Signs in at `provider` expecting a failure page: its status and text.
pub(crate) async fn refused_sign_in(server: &TestServer, provider: &str) -> Answer {
    let code = user_code(server).await;
    let (callback, state) = provider_redirect(server, provider, &code).await;
    let answer = get(&callback, Some(&state)).await;
    assert!(answer.cookie("packr_session").is_none());
    answer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packr_login_completes_through_a_real_oidc_provider_in_the_browser() {
    let mut idp = OidcProvider::start().await;
    let server = server_with(oidc(&idp.issuer), false).await;
    idp.allow_redirect(&format!("{}/api/auth/callback/oidc", server.url))
        .await;
    server.add_user("alice", "alice-password-1", "maintainer");
    server.add_user("root", "root-password-1", "admin");
    let npm = ClientEnv::new(&server, None);
    let mut child = packr_login(&server, &npm.npmrc_path()).await;
    let (url, _) = login_url(&mut child).await;

    let signed = sign_in_with_browser(
        &url,
        "oidc",
        "alice",
        "approve",
        &screenshot("oauth-oidc.png"),
    )
    .await;
    assert_eq!(signed.signed_in_as, "alice", "{signed:?}");
    assert!(signed.result.contains("logged in as alice"), "{signed:?}");
    let output = finished(child).await;
    assert!(
        output.status.success(),
        "packr login: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    npm.npm()
        .arg("whoami")
        .succeeds()
        .await
        .assert_mentions("alice");

    let admin = server.token("root", "admin", &[]);
    let (status, log) = server
        .get_json(
            "/api/v1/audit-log?action=user.login&actor=alice",
            Some(&admin),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{log}");
    let vias: Vec<&Value> = log["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["details"]["via"])
        .collect();
    assert!(vias.contains(&&json!("oidc")), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oidc_identity_matching_no_user_gets_a_clear_refusal_in_the_browser() {
    let mut idp = OidcProvider::start().await;
    let server = server_with(oidc(&idp.issuer), false).await;
    idp.allow_redirect(&format!("{}/api/auth/callback/oidc", server.url))
        .await;
    let code = user_code(&server).await;
    let signed = sign_in_with_browser(
        &format!("{}/-/cli/auth?code={code}", server.url),
        "oidc",
        "mallory",
        "approve",
        &screenshot("oauth-refused.png"),
    )
    .await;
    assert_eq!(signed.status, 403, "{signed:?}");
    assert!(
        signed
            .error
            .contains("No Packr account has the e-mail address mallory@example.com"),
        "{signed:?}"
    );
    assert!(signed.signed_in_as.is_empty());
}

#[tokio::test]
async fn with_auto_create_on_a_github_identity_gets_its_own_user_once() {
    let octocat = GitHubUser {
        login: "octocat",
        id: 583231,
        email: Some("octocat@github.example"),
        verified: true,
    };
    let mock = MockProvider::github(&octocat).await;
    let server = server_with(github(&mock), true).await;
    // The name is taken by someone else (another e-mail), so the new user gets a suffix.
    server.add_user("octocat", "other-password-1", "reader");
    assert_eq!(sign_in(&server, "github").await, "octocat-2");
    assert_eq!(
        sign_in(&server, "github").await,
        "octocat-2",
        "the second sign-in uses the link"
    );
}

#[tokio::test]
async fn without_auto_create_only_a_verified_email_links_a_github_identity() {
    let unverified = MockProvider::github(&GitHubUser {
        login: "al",
        id: 1,
        email: Some("alice@example.com"),
        verified: false,
    })
    .await;
    let server = server_with(github(&unverified), false).await;
    server.add_user("alice", "alice-password-1", "maintainer");
    let refused = refused_sign_in(&server, "github").await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    assert!(
        refused
            .body
            .contains("did not share a verified e-mail address"),
        "{}",
        refused.body
    );

    let verified = MockProvider::github(&GitHubUser {
        login: "al",
        id: 1,
        email: Some("Alice@Example.com"),
        verified: true,
    })
    .await;
    let server = server_with(github(&verified), false).await;
    server.add_user("alice", "alice-password-1", "maintainer");
    assert_eq!(sign_in(&server, "github").await, "alice");
}

#[tokio::test]
async fn a_tampered_replayed_foreign_or_refused_state_never_signs_in() {
    let mock = MockProvider::github(&GitHubUser {
        login: "octocat",
        id: 7,
        email: Some("octocat@github.example"),
        verified: true,
    })
    .await;
    let server = server_with(github(&mock), true).await;
    let code = user_code(&server).await;
    let refused = |answer: &Answer, text: &str| {
        assert!(answer.status.is_client_error(), "{}", answer.body);
        assert!(answer.cookie("packr_session").is_none());
        assert!(answer.body.contains(text), "{text} in\n{}", answer.body);
    };

    let (callback, state) = provider_redirect(&server, "github", &code).await;
    let tampered = callback.replacen("state=", "state=x", 1);
    refused(
        &get(&tampered, Some(&state)).await,
        "invalid, expired or already used",
    );
    let signed_in = get(&callback, Some(&state)).await;
    assert_eq!(signed_in.status, StatusCode::FOUND, "{}", signed_in.body);
    assert!(signed_in.cookie("packr_session").is_some());
    refused(
        &get(&callback, Some(&state)).await,
        "invalid, expired or already used",
    );

    let (callback, _) = provider_redirect(&server, "github", &code).await;
    refused(&get(&callback, None).await, "started in another browser");
    refused(&get(&callback, None).await, "already used");

    let (callback, state) = provider_redirect(&server, "github", &code).await;
    let elsewhere = callback.replacen("/callback/github", "/callback/oidc", 1);
    let unknown = get(&elsewhere, Some(&state)).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND, "{}", unknown.body);

    let (callback, state) = provider_redirect(&server, "github", &code).await;
    let denied = get(
        &replace_param(&callback, "code", "error=access_denied"),
        Some(&state),
    )
    .await;
    refused(&denied, "did not sign you in: access_denied");
    assert!(denied.body.contains(&format!("/-/cli/auth?code={code}")));

    let (callback, state) = provider_redirect(&server, "github", &code).await;
    let bogus = get(
        &replace_param(&callback, "code", "code=bogus"),
        Some(&state),
    )
    .await;
    refused(&bogus, "did not complete the sign-in");

    let bad_code = get(
        &format!("{}/api/auth/login/github?code=%3Cscript%3E", server.url),
        None,
    )
    .await;
    refused(&bad_code, "not a login code");
    let unknown = get(
        &format!("{}/api/auth/login/nope?code={code}", server.url),
        None,
    )
    .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn id_tokens_are_checked_for_audience_and_nonce_and_otherwise_sign_in() {
    // The mock's ID token names `johndoe` and carries no e-mail, so userinfo is asked; its
    // verified address links the identity to the existing user.
    let userinfo =
        json!({ "sub": "johndoe", "email": "johndoe@example.com", "email_verified": true });
    let good = MockProvider::oidc(&json!({}), &userinfo).await;
    let server = server_with(oidc(&good.url), false).await;
    server.add_user("johndoe", "john-password-1", "reader");
    assert_eq!(sign_in(&server, "oidc").await, "johndoe");

    for (claims, complaint) in [
        (
            json!({ "aud": "another-client" }),
            "issued to another client (aud)",
        ),
        (json!({ "nonce": "from-elsewhere" }), "nonce does not match"),
        (
            json!({ "iss": "http://127.0.0.1:9" }),
            "issued by another issuer",
        ),
        (json!({ "exp": 1_000_000_000 }), "it has expired"),
    ] {
        let mock = MockProvider::oidc(&claims, &userinfo).await;
        let server = server_with(oidc(&mock.url), true).await;
        let refused = refused_sign_in(&server, "oidc").await;
        assert_eq!(
            refused.status,
            StatusCode::BAD_REQUEST,
            "{claims}: {}",
            refused.body
        );
        assert!(
            refused.body.contains(complaint),
            "{claims}: {}",
            refused.body
        );
    }
}
