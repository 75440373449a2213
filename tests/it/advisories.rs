//! Advisories for `npm audit` (issue 11 §5): real npm 11, npm 10, pnpm 10 and yarn 4 audits of
//! an installed internal package, `npm audit fix`, the bulk and npm 6 endpoints over raw HTTP,
//! the admin API and `packr advisory`, and forwarding to an upstream that records what it got.

use std::fs;
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::routing::post;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::clients::ClientEnv;
use crate::support::publish_body::PublishBody;
use crate::support::server::{TestServer, packr};

/// A server with the admin `root` and the maintainer `alice`, each with a token.
struct Setup {
    server: TestServer,
    admin: String,
    alice: String,
    http: reqwest::Client,
}

impl Setup {
    async fn start() -> Self {
        Self::on(TestServer::start().await)
    }

    fn on(server: TestServer) -> Self {
        server.add_user("root", "root-password-1", "admin");
        server.add_user("alice", "alice-password-1", "maintainer");
        Self {
            admin: server.token("root", "admin", &[]),
            alice: server.token("alice", "maintainer", &[]),
            server,
            http: reqwest::Client::new(),
        }
    }

    async fn publish(&self, token: &str, name: &str, version: &str) {
        let body = PublishBody::new(name, version);
        let response = self
            .http
            .put(format!("{}/{}", self.server.url, name.replace('/', "%2f")))
            .bearer_auth(token)
            .json(&body.json())
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_success(),
            "publishing {name}@{version}: {}",
            response.text().await.unwrap()
        );
    }

    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        token: Option<&str>,
    ) -> (StatusCode, Value) {
        let request = match token {
            Some(token) => request.bearer_auth(token),
            None => request,
        };
        let response = request.send().await.unwrap();
        let status = response.status();
        let body = response.bytes().await.unwrap();
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    async fn add_advisory(&self, advisory: Value) -> Value {
        let request = self
            .http
            .post(format!("{}/api/v1/admin/advisories", self.server.url))
            .json(&advisory);
        let (status, body) = self.send(request, Some(&self.admin)).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body
    }

    /// `POST /-/npm/v1/security/advisories/bulk`, gzipped as npm sends it when `gzip`.
    async fn bulk(&self, token: Option<&str>, body: &Value, gzip: bool) -> (StatusCode, Value) {
        let url = format!("{}/-/npm/v1/security/advisories/bulk", self.server.url);
        let request = self
            .http
            .post(url)
            .header("content-type", "application/json");
        let request = if gzip {
            let mut encoder =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            encoder.write_all(body.to_string().as_bytes()).unwrap();
            request
                .header("content-encoding", "gzip")
                .body(encoder.finish().unwrap())
        } else {
            request.body(body.to_string())
        };
        self.send(request, token).await
    }

    async fn npm6(&self, path: &str, token: &str, body: &Value) -> (StatusCode, Value) {
        let request = self
            .http
            .post(format!("{}{path}", self.server.url))
            .json(body);
        self.send(request, Some(token)).await
    }

    async fn audit_actions(&self) -> Vec<(String, String)> {
        let (status, log) = self
            .server
            .get_json("/api/v1/audit-log?per_page=100", Some(&self.admin))
            .await;
        assert_eq!(status, StatusCode::OK, "{log}");
        log["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["action"].as_str().unwrap().starts_with("advisory."))
            .map(|e| {
                (
                    e["action"].as_str().unwrap().to_owned(),
                    e["package"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    }
}

fn vuln_advisory() -> Value {
    json!({
        "package": "@acme/vuln",
        "vulnerable_versions": "<1.1.0",
        "patched_versions": ">=1.1.0",
        "severity": "high",
        "title": "Prototype pollution in vuln",
        "url": "https://security.example.com/advisories/vuln",
        "cwe": ["CWE-1321"],
        "cvss": { "score": 7.5, "vectorString": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:H/A:N" },
    })
}

/// The version of `name` npm's lockfile in `project` records.
fn locked_version(project: &Path, name: &str) -> String {
    let lock: Value =
        serde_json::from_str(&fs::read_to_string(project.join("package-lock.json")).unwrap())
            .unwrap();
    lock["packages"][format!("node_modules/{name}")]["version"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// The version of `name` installed in `project/node_modules`.
fn installed_version(project: &Path, name: &str) -> String {
    let manifest: Value = serde_json::from_str(
        &fs::read_to_string(project.join("node_modules").join(name).join("package.json")).unwrap(),
    )
    .unwrap();
    manifest["version"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn npm_pnpm_and_yarn_audits_report_an_internal_advisory_and_npm_audit_fix_upgrades() {
    let setup = Setup::start().await;
    setup.publish(&setup.alice, "@acme/vuln", "1.0.0").await;
    setup.publish(&setup.alice, "@acme/vuln", "1.1.0").await;
    let env = ClientEnv::new(&setup.server, Some(&setup.alice));
    let npm_project = env.project();
    let pnpm_project = env.new_project("pnpm-project");
    let yarn_project = env.new_project("yarn-project");
    env.npm()
        .args(["install", "@acme/vuln@1.0.0"])
        .succeeds()
        .await;
    env.pnpm()
        .args(["add", "@acme/vuln@1.0.0"])
        .current_dir(&pnpm_project)
        .succeeds()
        .await;
    env.yarn4()
        .args(["add", "@acme/vuln@^1.0.0"])
        .current_dir(&yarn_project)
        .succeeds()
        .await;
    // yarn resolves ^1.0.0 to 1.1.0; pin 1.0.0 so that it too is affected.
    env.yarn4()
        .args(["up", "@acme/vuln@1.0.0"])
        .current_dir(&yarn_project)
        .succeeds()
        .await;
    assert_eq!(installed_version(&yarn_project, "@acme/vuln"), "1.0.0");

    // No advisories: every client reports none and exits 0.
    env.npm()
        .arg("audit")
        .succeeds()
        .await
        .assert_mentions("found 0 vulnerabilities");
    env.npm10()
        .arg("audit")
        .succeeds()
        .await
        .assert_mentions("found 0 vulnerabilities");
    env.pnpm()
        .arg("audit")
        .current_dir(&pnpm_project)
        .succeeds()
        .await
        .assert_mentions("No known vulnerabilities found");
    env.yarn4()
        .args(["npm", "audit"])
        .current_dir(&yarn_project)
        .succeeds()
        .await
        .assert_mentions("No audit suggestions");

    let created = setup.add_advisory(vuln_advisory()).await;
    let id = created["id"].as_i64().unwrap();
    assert_eq!(created["severity"], "high");
    assert_eq!(created["created_by"], "root");

    for npm in [env.npm(), env.npm10()] {
        npm.arg("audit")
            .fails()
            .await
            // npm narrows the range to the published versions it covers.
            .assert_mentions("@acme/vuln  1.0.0")
            .assert_mentions("Severity: high")
            .assert_mentions(
                "Prototype pollution in vuln - https://security.example.com/advisories/vuln",
            )
            .assert_mentions("fix available via `npm audit fix`")
            .assert_mentions("1 high severity vulnerability");
    }
    env.pnpm()
        .arg("audit")
        .current_dir(&pnpm_project)
        .fails()
        .await
        .assert_mentions("Prototype pollution in vuln")
        .assert_mentions("@acme/vuln")
        .assert_mentions(">=1.1.0")
        .assert_mentions("1 high");
    env.yarn4()
        .args(["npm", "audit"])
        .current_dir(&yarn_project)
        .fails()
        .await
        .assert_mentions("@acme/vuln")
        .assert_mentions(&format!("ID: {id}"))
        .assert_mentions("Issue: Prototype pollution in vuln")
        .assert_mentions("Severity: high")
        .assert_mentions("Vulnerable Versions: <1.1.0");

    env.npm().args(["audit", "fix"]).succeeds().await;
    assert_eq!(locked_version(&npm_project, "@acme/vuln"), "1.1.0");
    assert_eq!(installed_version(&npm_project, "@acme/vuln"), "1.1.0");
    env.npm()
        .arg("audit")
        .succeeds()
        .await
        .assert_mentions("found 0 vulnerabilities");

    let delete = setup
        .http
        .delete(format!("{}/api/v1/admin/advisories/{id}", setup.server.url));
    let (status, _) = setup.send(delete, Some(&setup.admin)).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    env.pnpm()
        .arg("audit")
        .current_dir(&pnpm_project)
        .succeeds()
        .await
        .assert_mentions("No known vulnerabilities found");
    assert_eq!(
        setup.audit_actions().await,
        [
            ("advisory.deleted".to_owned(), "@acme/vuln".to_owned()),
            ("advisory.created".to_owned(), "@acme/vuln".to_owned()),
        ]
    );
}

#[tokio::test]
async fn the_bulk_and_npm6_endpoints_answer_from_the_table_gzip_or_plain() {
    let setup = Setup::start().await;
    setup.publish(&setup.alice, "@acme/vuln", "1.0.0").await;
    setup.add_advisory(vuln_advisory()).await;
    let mut exact = vuln_advisory();
    exact["package"] = json!("left-pad");
    exact["vulnerable_versions"] = json!("1.0.0 || >=2.0.0 <2.1.0");
    exact["severity"] = json!("critical");
    exact["patched_versions"] = Value::Null;
    setup.add_advisory(exact).await;

    let asked = json!({
        "@acme/vuln": ["1.0.0", "1.1.0"],
        "left-pad": ["1.0.1", "2.0.3"],
        "clean": ["1.0.0"],
    });
    for gzip in [true, false] {
        let (status, report) = setup.bulk(Some(&setup.alice), &asked, gzip).await;
        assert_eq!(status, StatusCode::OK, "{report}");
        assert_eq!(
            report.as_object().unwrap().keys().collect::<Vec<_>>(),
            ["@acme/vuln", "left-pad"]
        );
        let vuln = &report["@acme/vuln"][0];
        assert_eq!(vuln["vulnerable_versions"], "<1.1.0");
        assert_eq!(vuln["severity"], "high");
        assert_eq!(vuln["cwe"], json!(["CWE-1321"]));
        assert_eq!(vuln["cvss"]["score"], 7.5);
        assert_eq!(report["left-pad"][0]["severity"], "critical");
    }
    let (status, clean) = setup
        .bulk(
            Some(&setup.alice),
            &json!({ "@acme/vuln": ["1.1.0"], "left-pad": ["1.0.1"] }),
            true,
        )
        .await;
    assert_eq!((status, clean), (StatusCode::OK, json!({})));

    // pnpm's tree, rooted at its importer ".".
    let tree = json!({
        "requires": { ".": "1.0.0" },
        "dependencies": { ".": {
            "version": "1.0.0", "dev": false,
            "requires": { "@acme/vuln": "1.0.0" },
            "dependencies": {
                "@acme/vuln": { "version": "1.0.0", "dev": false },
                "tool": { "version": "3.0.0", "dev": true,
                          "dependencies": { "left-pad": { "version": "2.0.3", "dev": true } } },
            },
        }},
        "install": [], "remove": [], "metadata": {},
    });
    for path in [
        "/-/npm/v1/security/audits/quick",
        "/-/npm/v1/security/audits",
    ] {
        let (status, report) = setup.npm6(path, &setup.alice, &tree).await;
        assert_eq!(status, StatusCode::OK, "{report}");
        let advisories = report["advisories"].as_object().unwrap();
        assert_eq!(advisories.len(), 2, "{report}");
        let vuln = advisories
            .values()
            .find(|a| a["module_name"] == "@acme/vuln")
            .unwrap();
        assert_eq!(vuln["patched_versions"], ">=1.1.0");
        assert_eq!(
            vuln["findings"],
            json!([{ "version": "1.0.0", "paths": [".>@acme/vuln"] }])
        );
        let pad = advisories
            .values()
            .find(|a| a["module_name"] == "left-pad")
            .unwrap();
        assert_eq!(pad["patched_versions"], "<0.0.0", "no fix known");
        assert_eq!(pad["findings"][0]["paths"], json!([".>tool>left-pad"]));
        assert_eq!(
            report["metadata"]["vulnerabilities"],
            json!({ "info": 0, "low": 0, "moderate": 0, "high": 1, "critical": 1 })
        );
        assert_eq!(report["metadata"]["dependencies"], 2);
        assert_eq!(report["metadata"]["devDependencies"], 2);
    }

    // A big lockfile: past the 64 KiB a request without a token may send, within the limit a
    // token allows.
    let mut big: serde_json::Map<String, Value> = (0..4000)
        .map(|n| (format!("some-dependency-{n}"), json!(["1.0.0", "2.0.0"])))
        .collect();
    big.insert("@acme/vuln".into(), json!(["1.0.0"]));
    let big = Value::Object(big);
    assert!(big.to_string().len() > 128 * 1024);
    let (status, report) = setup.bulk(Some(&setup.alice), &big, false).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(
        report.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["@acme/vuln"]
    );

    let (status, refused) = setup.bulk(Some(&setup.alice), &json!(["x"]), false).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    assert!(
        refused["error"]
            .as_str()
            .unwrap()
            .contains("map package names")
    );
    let (status, _) = setup.bulk(None, &asked, true).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "audits need read access, like packuments"
    );
}

#[tokio::test]
async fn a_restricted_packages_advisories_are_shown_only_to_its_readers() {
    let setup = Setup::start().await;
    setup.server.add_user("bob", "bob-password-1", "maintainer");
    let bob = setup.server.token("bob", "maintainer", &[]);
    let org = setup
        .http
        .post(format!("{}/api/v1/admin/orgs", setup.server.url))
        .json(&json!({ "slug": "acme", "display_name": "Acme" }));
    assert_eq!(
        setup.send(org, Some(&setup.admin)).await.0,
        StatusCode::CREATED
    );
    let member = setup
        .http
        .post(format!(
            "{}/api/v1/admin/orgs/acme/members",
            setup.server.url
        ))
        .json(&json!({ "user": "alice", "role": "maintainer" }));
    assert_eq!(
        setup.send(member, Some(&setup.admin)).await.0,
        StatusCode::CREATED
    );
    setup.publish(&setup.alice, "@acme/vuln", "1.0.0").await;
    setup.add_advisory(vuln_advisory()).await;

    let asked = json!({ "@acme/vuln": ["1.0.0"] });
    let (_, for_alice) = setup.bulk(Some(&setup.alice), &asked, true).await;
    assert_eq!(for_alice["@acme/vuln"].as_array().unwrap().len(), 1);
    let (status, for_bob) = setup.bulk(Some(&bob), &asked, true).await;
    assert_eq!((status, for_bob), (StatusCode::OK, json!({})));
    let tree = json!({ "dependencies": { "@acme/vuln": { "version": "1.0.0" } } });
    let (_, report) = setup
        .npm6("/-/npm/v1/security/audits/quick", &bob, &tree)
        .await;
    assert_eq!(report["advisories"], json!({}));
}

/// An npm-compatible bulk endpoint on loopback that records every body it gets and answers
/// with one advisory for every name it is asked about, and one for `lodash` always.
struct RecordingUpstream {
    url: String,
    received: Arc<Mutex<Vec<Value>>>,
}

impl RecordingUpstream {
    async fn start() -> Self {
        let received = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&received);
        let app = axum::Router::new().route(
            "/-/npm/v1/security/advisories/bulk",
            post(move |Json(body): Json<Value>| {
                let log = Arc::clone(&log);
                async move {
                    let mut answer = serde_json::Map::new();
                    let names = body.as_object().unwrap().keys().cloned();
                    for name in names.chain(["lodash".to_owned()]) {
                        answer.insert(
                            name.clone(),
                            json!([{ "id": 1_096_316, "url": "https://github.com/advisories/GHSA-x",
                                     "title": format!("Upstream issue in {name}"), "severity": "moderate",
                                     "vulnerable_versions": "<99.0.0", "cwe": ["CWE-400"],
                                     "cvss": { "score": 5.3, "vectorString": null } }]),
                        );
                    }
                    log.lock().unwrap().push(body);
                    Json(Value::Object(answer))
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { url, received }
    }
}

#[tokio::test]
async fn only_names_packr_does_not_host_are_forwarded_upstream_and_the_answers_merged() {
    let upstream = RecordingUpstream::start().await;
    let upstream_url = upstream.url.clone();
    let server =
        TestServer::start_with(move |config| config.audit_upstream = Some(upstream_url)).await;
    let setup = Setup::on(server);
    setup.publish(&setup.alice, "@acme/vuln", "1.0.0").await;
    setup.publish(&setup.alice, "left-pad", "1.0.0").await;
    packr(
        &setup.server.data_dir,
        &["scope", "reserve", "@corp", "--owner", "alice"],
        None,
    );
    setup.add_advisory(vuln_advisory()).await;

    let asked = json!({
        "@acme/vuln": ["1.0.0"],
        "left-pad": ["1.0.0"],
        "@corp/not-published-yet": ["1.0.0"],
        "express": ["4.0.0"],
        "@types/node": ["20.0.0"],
        "JSONStream": ["1.3.1"],
        "not a name": ["1.0.0"],
    });
    let (status, report) = setup.bulk(Some(&setup.alice), &asked, true).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    let received = upstream.received.lock().unwrap().clone();
    assert_eq!(
        received,
        [json!({ "express": ["4.0.0"], "@types/node": ["20.0.0"], "JSONStream": ["1.3.1"] })],
        "only names Packr does not host leave it"
    );
    assert_eq!(
        report.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["@acme/vuln", "@types/node", "JSONStream", "express"],
        "the upstream's answers are merged, for names asked only: {report}"
    );
    assert_eq!(
        report["@acme/vuln"][0]["title"],
        "Prototype pollution in vuln"
    );
    assert_eq!(report["express"][0]["title"], "Upstream issue in express");

    // The npm 6 form forwards the same way.
    let tree = json!({ "dependencies": {
        "left-pad": { "version": "1.0.0" },
        "express": { "version": "4.0.0" },
    }});
    let (_, report) = setup
        .npm6("/-/npm/v1/security/audits", &setup.alice, &tree)
        .await;
    assert_eq!(
        upstream.received.lock().unwrap().last().unwrap(),
        &json!({ "express": ["4.0.0"] })
    );
    let modules: Vec<_> = report["advisories"]
        .as_object()
        .unwrap()
        .values()
        .map(|a| a["module_name"].as_str().unwrap())
        .collect();
    assert_eq!(modules, ["express"]);
}

#[tokio::test]
async fn an_upstream_that_fails_leaves_packrs_own_answer() {
    let dead = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead_url = format!("http://{}", dead.local_addr().unwrap());
    drop(dead);
    let server = TestServer::start_with(move |config| config.audit_upstream = Some(dead_url)).await;
    let setup = Setup::on(server);
    setup.add_advisory(vuln_advisory()).await;
    let asked = json!({ "@acme/vuln": ["1.0.0"], "express": ["4.0.0"] });
    let (status, report) = setup.bulk(Some(&setup.alice), &asked, false).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(
        report.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["@acme/vuln"]
    );
}

#[tokio::test]
async fn admins_and_the_operator_manage_advisories_and_bad_ones_are_refused() {
    let setup = Setup::start().await;
    let data = &setup.server.data_dir;
    let added = packr(
        data,
        &[
            "advisory",
            "add",
            "left-pad",
            "--vulnerable",
            "<1.2.3 || >=2.0.0 <2.1.0",
            "--patched",
            ">=1.2.3 <2.0.0 || >=2.1.0",
            "--severity",
            "moderate",
            "--title",
            "ReDoS in left-pad",
            "--cwe",
            "CWE-1333",
            "--cvss-score",
            "5.3",
        ],
        None,
    );
    let id: i64 = added.split('\t').next().unwrap().trim().parse().unwrap();
    assert!(added.contains("left-pad\t<1.2.3 || >=2.0.0 <2.1.0\tmoderate\tReDoS in left-pad"));
    let listed = packr(data, &["advisory", "list", "--package", "left-pad"], None);
    assert_eq!(listed.lines().count(), 1, "{listed}");

    let (status, list) = setup
        .server
        .get_json(
            "/api/v1/admin/advisories?package=left-pad",
            Some(&setup.admin),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let advisory = &list["advisories"][0];
    assert_eq!(advisory["id"], id);
    assert_eq!(advisory["created_by"], Value::Null);
    assert_eq!(
        advisory["cvss"],
        json!({ "score": 5.3, "vectorString": null })
    );
    let (status, _) = setup
        .server
        .get_json("/api/v1/admin/advisories", Some(&setup.alice))
        .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "only admins manage advisories"
    );

    let (_, report) = setup
        .bulk(Some(&setup.alice), &json!({ "left-pad": ["2.0.9"] }), false)
        .await;
    assert_eq!(report["left-pad"][0]["id"], id);

    packr(data, &["advisory", "rm", &id.to_string()], None);
    let (_, list) = setup
        .server
        .get_json("/api/v1/admin/advisories", Some(&setup.admin))
        .await;
    assert_eq!(list["advisories"], json!([]));
    assert_eq!(
        setup.audit_actions().await,
        [
            ("advisory.deleted".to_owned(), "left-pad".to_owned()),
            ("advisory.created".to_owned(), "left-pad".to_owned()),
        ]
    );

    let refusals = [
        (json!({ "vulnerable_versions": "<1.0.0" }), "package"),
        (
            json!({ "vulnerable_versions": "not a range!" }),
            "vulnerable_versions",
        ),
        (json!({ "severity": "info" }), "severity"),
        (json!({ "url": "javascript:alert(1)" }), "url"),
        (json!({ "cwe": ["79"] }), "cwe"),
        (json!({ "cvss": { "score": 12 } }), "cvss.score"),
        (json!({ "colour": "red" }), "colour"),
    ];
    for (change, field) in refusals {
        let mut body = vuln_advisory();
        if field == "package" {
            body.as_object_mut().unwrap().remove("package");
        }
        for (key, value) in change.as_object().unwrap() {
            body[key] = value.clone();
        }
        let request = setup
            .http
            .post(format!("{}/api/v1/admin/advisories", setup.server.url))
            .json(&body);
        let (status, refused) = setup.send(request, Some(&setup.admin)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{field}: {refused}");
        assert!(
            refused["error"].as_str().unwrap().contains(field),
            "{field}: {refused}"
        );
    }
    let delete = setup
        .http
        .delete(format!("{}/api/v1/admin/advisories/999", setup.server.url));
    let (status, missing) = setup.send(delete, Some(&setup.admin)).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{missing}");
    assert_eq!(
        setup.audit_actions().await.len(),
        2,
        "refusals record nothing"
    );
}
