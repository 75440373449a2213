//! Credentials that must not outlive a change to their account: a demoted admin's token, a
//! disabled user's tokens, sessions and logins (`packr user disable|enable`), sessions made
//! before a password reset; and OAuth sign-ins that must not reach an admin account by e-mail
//! alone or create accounts outside `PACKR_OAUTH_ALLOWED_DOMAINS`.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::oauth::{github, refused_sign_in, server_with, sign_in};
use crate::support::clients::ClientEnv;
use crate::support::oidc::{GitHubUser, MockProvider};
use crate::support::server::{TestServer, packr};

const ROOT_PASSWORD: &str = "root-password-1";

/// Sends `method path` with a bearer `token` or a `packr_session` cookie and an optional JSON
/// body: the status and the body (`Value::Null` when it is not JSON).
async fn send(
    server: &TestServer,
    method: Method,
    path: &str,
    credential: Credential<'_>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request = reqwest::Client::new().request(method, format!("{}{path}", server.url));
    request = match credential {
        Credential::Token(token) => request.bearer_auth(token),
        Credential::Cookie(cookie) => request.header("cookie", cookie),
        Credential::None => request,
    };
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("the server answers");
    let status = response.status();
    let bytes = response.bytes().await.unwrap_or_default();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// `GET path` with `credential`.
async fn get(server: &TestServer, path: &str, credential: Credential<'_>) -> (StatusCode, Value) {
    send(server, Method::GET, path, credential, None).await
}

#[derive(Clone, Copy)]
enum Credential<'a> {
    Token(&'a str),
    Cookie(&'a str),
    None,
}

/// Signs in through `POST /api/v1/admin/sessions`: the status, and the `packr_session=...`
/// cookie when one was set.
async fn session(server: &TestServer, name: &str, password: &str) -> (StatusCode, Option<String>) {
    let response = reqwest::Client::new()
        .post(format!("{}/api/v1/admin/sessions", server.url))
        .json(&json!({ "name": name, "password": password }))
        .send()
        .await
        .expect("the server answers");
    let cookie = response
        .headers()
        .get("set-cookie")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .map(str::to_owned);
    (response.status(), cookie)
}

/// Asks `check` until it answers `wanted`, for at most 5 s: accounts changed by another process
/// reach the server's memory of checked tokens within a second.
async fn eventually(wanted: StatusCode, check: impl AsyncFn() -> (StatusCode, Value)) -> Value {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (status, body) = check().await;
        if status == wanted {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "still {status} after 5 s, not {wanted}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_demoted_admins_token_acts_with_the_users_current_role() {
    let server = TestServer::start().await;
    server.add_user("root", ROOT_PASSWORD, "admin");
    let used = server.token("root", "admin", &[]);
    let unused = server.token("root", "admin", &[]);
    let create_org = async |token: &str, slug: &str| {
        let org = json!({ "slug": slug, "display_name": slug });
        let path = "/api/v1/admin/orgs";
        send(
            &server,
            Method::POST,
            path,
            Credential::Token(token),
            Some(org),
        )
        .await
    };
    let (status, body) = create_org(&used, "before").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    // `packr user add` on an existing user resets its role: root is a maintainer from now on.
    server.add_user("root", ROOT_PASSWORD, "maintainer");

    let (status, body) = create_org(&unused, "after").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("this token (maintainer) lacks the admin permission"),
        "{body}"
    );
    let body = eventually(StatusCode::FORBIDDEN, async || {
        get(&server, "/api/v1/admin/tokens", Credential::Token(&used)).await
    })
    .await;
    assert!(
        body["error"].as_str().unwrap().contains("admin permission"),
        "{body}"
    );

    // Still a maintainer's token: it reads and names its user.
    let (status, body) = get(&server, "/-/whoami", Credential::Token(&unused)).await;
    assert_eq!(
        (status, &body["username"]),
        (StatusCode::OK, &json!("root"))
    );

    // A reader holds at most read-only tokens, whatever the row says.
    server.add_user("root", ROOT_PASSWORD, "reader");
    let publish = crate::support::publish_body::PublishBody::new("left-pad", "1.0.0");
    let body = eventually(StatusCode::FORBIDDEN, async || {
        send(
            &server,
            Method::PUT,
            "/left-pad",
            Credential::Token(&unused),
            Some(publish.json()),
        )
        .await
    })
    .await;
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("this token (ci-readonly) lacks the publish permission"),
        "{body}"
    );
}

#[tokio::test]
async fn a_disabled_users_tokens_sessions_and_logins_stop_and_enable_brings_back_the_tokens() {
    let server = TestServer::start().await;
    server.add_user("root", ROOT_PASSWORD, "admin");
    server.add_user("auditor", "auditor-password-1", "admin");
    let auditor = server.token("auditor", "admin", &[]);
    let used = server.token("root", "admin", &[]);
    let unused = server.token("root", "maintainer", &[]);
    let (status, cookie) = session(&server, "root", ROOT_PASSWORD).await;
    assert_eq!(status, StatusCode::CREATED);
    let cookie = cookie.expect("a session cookie");
    let orgs = async |credential| get(&server, "/api/v1/admin/orgs", credential).await;
    assert_eq!(orgs(Credential::Cookie(&cookie)).await.0, StatusCode::OK);
    assert_eq!(orgs(Credential::Token(&used)).await.0, StatusCode::OK);

    let printed = packr(&server.data_dir, &["user", "disable", "root"], None);
    assert!(printed.contains("user root disabled"), "{printed}");
    // No new token is issued for the disabled account either.
    let create = ["token", "create", "--user", "root", "--role", "admin"];
    let refused = crate::support::server::packr_command(&server.data_dir, &create)
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("the account root is disabled"),
        "{refused:?}"
    );

    // The session is checked against the account on every request.
    let (status, body) = orgs(Credential::Cookie(&cookie)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    // A token not used lately is refused at once, with a message saying why and what to do.
    let (status, body) = orgs(Credential::Token(&unused)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["code"], "account_disabled", "{body}");
    let message = body["error"].as_str().unwrap();
    assert!(
        message.contains("the account root is disabled")
            && message.contains("packr user enable root"),
        "{body}"
    );
    // One this server checked a moment ago is refused within a second.
    eventually(StatusCode::UNAUTHORIZED, async || {
        orgs(Credential::Token(&used)).await
    })
    .await;
    // Real npm shows the reason.
    let npm = ClientEnv::new(&server, Some(&used));
    npm.npm()
        .arg("whoami")
        .fails()
        .await
        .assert_mentions("the account root is disabled");
    // No new credentials either: neither a password session nor an npm login.
    let (status, cookie_after) = session(&server, "root", ROOT_PASSWORD).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(cookie_after.is_none());
    let (status, body) = send(
        &server,
        Method::PUT,
        "/-/user/org.couchdb.user:root",
        Credential::None,
        Some(json!({ "name": "root", "password": ROOT_PASSWORD })),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("disabled"),
        "{body}"
    );

    let printed = packr(&server.data_dir, &["user", "disable", "root"], None);
    assert!(printed.contains("already disabled"), "{printed}");
    let printed = packr(&server.data_dir, &["user", "enable", "root"], None);
    assert!(printed.contains("user root enabled"), "{printed}");
    assert_eq!(orgs(Credential::Token(&used)).await.0, StatusCode::OK);
    let (status, body) = get(&server, "/-/whoami", Credential::Token(&unused)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // The session from before the disable stays ended; a new sign-in works.
    assert_eq!(
        orgs(Credential::Cookie(&cookie)).await.0,
        StatusCode::UNAUTHORIZED
    );
    let (status, fresh) = session(&server, "root", ROOT_PASSWORD).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(
        orgs(Credential::Cookie(&fresh.unwrap())).await.0,
        StatusCode::OK
    );

    let (status, log) = get(
        &server,
        "/api/v1/audit-log?per_page=100",
        Credential::Token(&auditor),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{log}");
    let changes: Vec<(&str, &str, &str)> = log["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|event| {
            event["action"].as_str().unwrap().starts_with("user.")
                && event["details"]["via"]
                    .as_str()
                    .is_some_and(|via| via.starts_with("packr user"))
        })
        .map(|event| {
            (
                event["action"].as_str().unwrap(),
                event["details"]["user"].as_str().unwrap(),
                event["details"]["via"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        changes,
        [
            ("user.enabled", "root", "packr user enable"),
            ("user.disabled", "root", "packr user disable"),
        ],
        "{log}"
    );
}

#[tokio::test]
async fn a_password_reset_ends_the_sessions_made_before_it() {
    let server = TestServer::start().await;
    server.add_user("root", ROOT_PASSWORD, "admin");
    let (status, before) = session(&server, "root", ROOT_PASSWORD).await;
    assert_eq!(status, StatusCode::CREATED);
    let before = before.expect("a session cookie");
    let orgs = async |cookie: &str| {
        get(&server, "/api/v1/admin/orgs", Credential::Cookie(cookie))
            .await
            .0
    };
    assert_eq!(orgs(&before).await, StatusCode::OK);

    server.add_user("root", "a-new-password-2", "admin");

    assert_eq!(orgs(&before).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        session(&server, "root", ROOT_PASSWORD).await.0,
        StatusCode::UNAUTHORIZED
    );
    let (status, after) = session(&server, "root", "a-new-password-2").await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(orgs(&after.unwrap()).await, StatusCode::OK);
}

fn github_user(email: &str) -> GitHubUser<'_> {
    GitHubUser {
        login: "someone",
        id: 4242,
        email: Some(email),
        verified: true,
    }
}

#[tokio::test]
async fn an_oauth_identity_is_never_signed_in_as_an_admin_by_email_alone() {
    // root's e-mail is root@example.com (TestServer::add_user).
    let mock = MockProvider::github(&github_user("root@example.com")).await;
    for auto_create in [false, true] {
        let server = server_with(github(&mock), auto_create).await;
        server.add_user("root", ROOT_PASSWORD, "admin");
        let refused = refused_sign_in(&server, "github").await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
        assert!(
            refused.body.contains("belongs to an administrator account")
                && refused
                    .body
                    .contains("signing in with their password on the login page first"),
            "{}",
            refused.body
        );
        // Nothing was linked or created: the admin's e-mail still matches only root.
        let admin = server.token("root", "admin", &[]);
        let (_, log) = server
            .get_json(
                "/api/v1/audit-log?action=user.identity.linked",
                Some(&admin),
            )
            .await;
        assert_eq!(log["total"], 0, "{log}");
    }

    // The explicit link: root, signed in with the password in this browser, signs in at the
    // provider; from then on the identity alone signs in as root.
    let server = server_with(github(&mock), false).await;
    server.add_user("root", ROOT_PASSWORD, "admin");
    let (_, session_cookie) = session(&server, "root", ROOT_PASSWORD).await;
    let session_cookie = session_cookie.unwrap();
    let code = crate::oauth::user_code(&server).await;
    let (callback, state) = crate::oauth::provider_redirect(&server, "github", &code).await;
    let linked = crate::oauth::get(&callback, Some(&format!("{state}; {session_cookie}"))).await;
    assert_eq!(linked.status, StatusCode::FOUND, "{}", linked.body);
    assert_eq!(sign_in(&server, "github").await, "root");

    // A maintainer is still linked by a verified e-mail alone (the rule for everyone else).
    let mock = MockProvider::github(&github_user("alice@example.com")).await;
    let server = server_with(github(&mock), false).await;
    server.add_user("alice", "alice-password-1", "maintainer");
    assert_eq!(sign_in(&server, "github").await, "alice");
    // ...unless the account is disabled.
    packr(&server.data_dir, &["user", "disable", "alice"], None);
    let refused = refused_sign_in(&server, "github").await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    assert!(
        refused.body.contains("account alice is disabled"),
        "{}",
        refused.body
    );
}

#[tokio::test]
async fn accounts_created_on_oauth_sign_in_are_limited_to_the_allowed_domains() {
    let start = async |mock: &MockProvider| {
        TestServer::start_with(|config| {
            config.oauth.providers.push(github(mock));
            config.oauth.auto_create_users = true;
            config.oauth.allowed_domains = vec!["example.com".into()];
        })
        .await
    };
    let outsider = MockProvider::github(&GitHubUser {
        login: "mallory",
        id: 1,
        email: Some("mallory@example.com.evil.test"),
        verified: true,
    })
    .await;
    let server = start(&outsider).await;
    let refused = refused_sign_in(&server, "github").await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    assert!(
        refused
            .body
            .contains("only for e-mail addresses at example.com")
            && refused.body.contains("mallory@example.com.evil.test"),
        "{}",
        refused.body
    );

    let insider = MockProvider::github(&GitHubUser {
        login: "jane",
        id: 2,
        email: Some("jane@Example.com"),
        verified: true,
    })
    .await;
    let server = start(&insider).await;
    assert_eq!(sign_in(&server, "github").await, "jane");
}

/// Posts a `/-/cli/auth` form with `cookies`: the status, the `packr_session=...` cookie if one was
/// set, and the page.
async fn post_form(
    server: &TestServer,
    path: &str,
    cookies: &str,
    fields: &[(&str, &str)],
) -> (StatusCode, Option<String>, String) {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = http
        .post(format!("{}{path}", server.url))
        .header("cookie", cookies)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(serde_urlencoded::to_string(fields).unwrap())
        .send()
        .await
        .expect("the server answers");
    let status = response.status();
    let session = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|value| value.to_str().ok()?.split(';').next())
        .find(|cookie| cookie.starts_with("packr_session="))
        .map(str::to_owned);
    (status, session, response.text().await.unwrap())
}

#[tokio::test]
async fn a_disabled_user_can_neither_sign_in_on_the_login_page_nor_approve_a_terminal() {
    let server = TestServer::start().await;
    server.add_user("root", ROOT_PASSWORD, "admin");
    let code = crate::oauth::user_code(&server).await;
    let page = crate::oauth::get(&format!("{}/-/cli/auth?code={code}", server.url), None).await;
    let nonce = page
        .cookie("packr_csrf")
        .expect("a CSRF nonce cookie")
        .to_owned();
    let (_, rest) = page.body.split_once(r#"name="csrf" value=""#).unwrap();
    let csrf = rest.split('"').next().unwrap().to_owned();
    let sign_in = [
        ("csrf", csrf.as_str()),
        ("code", code.as_str()),
        ("username", "root"),
        ("password", ROOT_PASSWORD),
    ];
    let (status, session, _) = post_form(&server, "/-/cli/auth/login", &nonce, &sign_in).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let cookies = format!("{nonce}; {}", session.expect("a session cookie"));

    packr(&server.data_dir, &["user", "disable", "root"], None);

    let page = crate::oauth::get(
        &format!("{}/-/cli/auth?code={code}", server.url),
        Some(&cookies),
    )
    .await;
    assert!(!page.body.contains("signed-in-as"), "{}", page.body);
    let decide = [
        ("csrf", csrf.as_str()),
        ("code", code.as_str()),
        ("decision", "approve"),
    ];
    let (status, _, body) = post_form(&server, "/-/cli/auth/decide", &cookies, &decide).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.contains("Sign in first."), "{body}");
    let (status, session, body) = post_form(&server, "/-/cli/auth/login", &nonce, &sign_in).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(session.is_none());
    assert!(body.contains("The account root is disabled"), "{body}");
}
