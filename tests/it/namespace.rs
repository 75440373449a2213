//! The npm namespace belongs to packages: names that match Packr's own words (`health`, `cli`,
//! `api`, `web`, ...) publish, install and answer `GET /<name>` and `GET /<name>/<tag>` with the
//! package's documents, because Packr's own one- and two-segment endpoints live under `/-/`.

use futures_util::future::join_all;
use reqwest::StatusCode;

use crate::support::clients::ClientEnv;
use crate::support::fixtures::{Package, assert_installed};
use crate::support::server::TestServer;

/// Each package and the dist-tags it gets, chosen so that `/<name>/<tag>` is a path Packr used,
/// or might be tempted to use, for itself.
const PACKAGES: &[(&str, &[&str])] = &[
    ("health", &["live", "ready"]),
    ("cli", &["auth"]),
    ("api", &["auth", "admin"]),
    ("agent", &["ready"]),
    ("metrics", &["live"]),
    ("mcp", &["auth"]),
    ("web", &["login"]),
    ("healthz", &["live"]),
    ("login", &["device"]),
    ("auth", &["login", "callback"]),
    ("admin", &["tokens"]),
    ("ping", &["live"]),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packages_named_like_packr_endpoints_publish_install_and_answer_their_own_paths() {
    let server = TestServer::start().await;
    server.add_user("alice", "alice-password-1", "maintainer");
    let token = server.token("alice", "maintainer", &[]);
    let npm = ClientEnv::new(&server, Some(&token));

    // A few npm processes at a time: the machine is shared.
    for batch in PACKAGES.chunks(4) {
        join_all(batch.iter().map(|(name, tags)| {
            let npm = &npm;
            async move {
                let dir = npm.package(&Package::new(name, "1.0.0"));
                npm.npm()
                    .arg("publish")
                    .current_dir(dir)
                    .succeeds()
                    .await
                    .assert_mentions(&format!("+ {name}@1.0.0"));
                for tag in *tags {
                    npm.npm()
                        .args(["dist-tag", "add", &format!("{name}@1.0.0"), tag])
                        .succeeds()
                        .await;
                }
            }
        }))
        .await;
    }

    let names: Vec<String> = PACKAGES.iter().map(|(n, _)| format!("{n}@1.0.0")).collect();
    npm.npm().arg("install").args(&names).succeeds().await;
    for (name, _) in PACKAGES {
        assert_installed(&npm.project(), name, "1.0.0");
    }

    for (name, tags) in PACKAGES {
        let (status, packument) = server.get_json(&format!("/{name}"), Some(&token)).await;
        assert_eq!(status, StatusCode::OK, "GET /{name}: {packument}");
        assert_eq!(packument["name"], *name, "GET /{name}: {packument}");
        assert_eq!(packument["dist-tags"]["latest"], "1.0.0", "{packument}");
        for tag in *tags {
            assert_eq!(packument["dist-tags"][tag], "1.0.0", "{name}: {packument}");
            let path = format!("/{name}/{tag}");
            let (status, version) = server.get_json(&path, Some(&token)).await;
            assert_eq!(status, StatusCode::OK, "GET {path}: {version}");
            assert_eq!(version["name"], *name, "GET {path}: {version}");
            assert_eq!(version["version"], "1.0.0", "GET {path}: {version}");
            assert!(
                version["dist"]["tarball"].is_string(),
                "GET {path}: {version}"
            );
        }
    }
}

#[tokio::test]
async fn packr_answers_its_health_checks_and_login_page_under_the_dash_prefix_only() {
    let server = TestServer::start().await;
    for path in ["/-/health", "/-/health/live", "/-/health/ready"] {
        let (status, body) = server.get_json(path, None).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        assert_eq!(body["status"], "ok", "{path}: {body}");
    }
    let page = reqwest::get(format!("{}/-/cli/auth", server.url))
        .await
        .expect("GET /-/cli/auth");
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.expect("the page");
    assert!(html.contains("action=\"/-/cli/auth"), "{html}");
    // With no package of those names, the old paths are plain package lookups now.
    server.add_user("alice", "alice-password-1", "maintainer");
    let token = server.token("alice", "maintainer", &[]);
    for path in ["/health", "/health/live", "/health/ready", "/cli/auth"] {
        let (status, body) = server.get_json(path, Some(&token)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
        assert!(body["error"].is_string(), "{path}: {body}");
    }
}
