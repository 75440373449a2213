//! Publish and unpublish rules an attacker would probe: manifest confusion (a version document
//! hiding what its tarball does), unpublish with a stale `_rev`, taking over a fully unpublished
//! name, and refused publishes sharing bytes with accepted ones.

use std::fs;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::clients::ClientEnv;
use crate::support::fixtures::Package;
use crate::support::publish_body::{PublishBody, tarball};
use crate::support::server::{TestServer, package_path};

/// A server with the maintainer `alice` and raw HTTP helpers using her token.
struct Registry {
    server: TestServer,
    http: reqwest::Client,
    alice: String,
}

impl Registry {
    async fn start() -> Self {
        let server = TestServer::start().await;
        server.add_user("alice", "alice-password-1", "maintainer");
        let alice = server.token("alice", "maintainer", &[]);
        Self {
            server,
            http: reqwest::Client::new(),
            alice,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.url)
    }

    async fn send(&self, request: reqwest::RequestBuilder, token: &str) -> (StatusCode, Value) {
        let response = request.bearer_auth(token).send().await.unwrap();
        let status = response.status();
        let body = response.bytes().await.unwrap();
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    async fn publish_as(&self, token: &str, body: &PublishBody) -> (StatusCode, Value) {
        let request = self.http.put(self.url(&package_path(&body.name)));
        self.send(request.json(&body.json()), token).await
    }

    async fn publish(&self, body: &PublishBody) -> (StatusCode, Value) {
        self.publish_as(&self.alice, body).await
    }

    /// The packument as `npm unpublish` reads it before writing.
    async fn read_for_write(&self, name: &str) -> Value {
        let path = format!("{}?write=true", package_path(name));
        let (status, body) = self.send(self.http.get(self.url(&path)), &self.alice).await;
        assert_eq!(status, StatusCode::OK, "GET {path}: {body}");
        body
    }

    async fn put_rev(&self, name: &str, document: &Value) -> (StatusCode, Value) {
        let rev = document["_rev"].as_str().expect("the packument has a _rev");
        let path = format!("{}/-rev/{rev}", package_path(name));
        self.send(self.http.put(self.url(&path)).json(document), &self.alice)
            .await
    }

    async fn versions(&self, name: &str) -> Vec<String> {
        let packument = self.server.packument(name, &self.alice).await;
        let mut versions: Vec<String> = packument["versions"]
            .as_object()
            .map(|versions| versions.keys().cloned().collect())
            .unwrap_or_default();
        versions.sort();
        versions
    }
}

fn assert_error(status: StatusCode, body: &Value, expected: StatusCode) -> String {
    assert_eq!(status, expected, "{body}");
    assert_eq!(body["status"], expected.as_u16(), "{body}");
    body["error"]
        .as_str()
        .unwrap_or_else(|| panic!("an `error` string: {body}"))
        .to_owned()
}

// Item 8: the version document is built from the tarball's package.json where npm acts on it.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postinstall_dependency_and_bin_hidden_from_the_json_are_served_and_npm_acts_on_them() {
    let registry = Registry::start().await;
    let (status, body) = registry
        .publish(&PublishBody::new("helper-dep", "1.0.0"))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    let package_json = json!({
        "name": "sneaky", "version": "1.0.0", "main": "index.js",
        "bin": "./cli.js",
        "scripts": { "postinstall": "node postinstall.js" },
        "dependencies": { "helper-dep": "^1.0.0" },
    });
    let postinstall =
        "require('fs').writeFileSync(require('path').join(__dirname, 'postinstall-ran'), 'yes');\n";
    let packed = tarball(
        "package",
        &package_json,
        &[
            ("index.js", "module.exports = 'sneaky';\n"),
            ("cli.js", "#!/usr/bin/env node\nconsole.log('sneaky');\n"),
            ("postinstall.js", postinstall),
        ],
    );
    // The JSON says only name, version and main: no scripts, no dependencies, no bin.
    let hiding = PublishBody::new("sneaky", "1.0.0").with_tarball(packed);
    assert!(hiding.json()["versions"]["1.0.0"].get("scripts").is_none());
    let (status, body) = registry.publish(&hiding).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    let full = registry.server.packument("sneaky", &registry.alice).await;
    let version = &full["versions"]["1.0.0"];
    assert_eq!(version["scripts"]["postinstall"], "node postinstall.js");
    assert_eq!(version["hasInstallScript"], true, "{version}");
    assert_eq!(version["dependencies"], json!({ "helper-dep": "^1.0.0" }));
    assert_eq!(version["bin"], json!({ "sneaky": "cli.js" }));

    let (status, abbreviated) = registry
        .send(
            registry
                .http
                .get(registry.url("/sneaky"))
                .header("accept", "application/vnd.npm.install-v1+json"),
            &registry.alice,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let version = &abbreviated["versions"]["1.0.0"];
    assert_eq!(version["hasInstallScript"], true, "{abbreviated}");
    assert_eq!(version["dependencies"]["helper-dep"], "^1.0.0");
    assert_eq!(version["bin"]["sneaky"], "cli.js");

    let npm = ClientEnv::new(&registry.server, Some(&registry.alice));
    npm.npm().args(["install", "sneaky"]).succeeds().await;
    let project = npm.project();
    let lock: Value =
        serde_json::from_str(&fs::read_to_string(project.join("package-lock.json")).unwrap())
            .unwrap();
    let locked = &lock["packages"]["node_modules/sneaky"];
    assert_eq!(locked["hasInstallScript"], true, "{locked}");
    assert_eq!(locked["dependencies"]["helper-dep"], "^1.0.0", "{locked}");
    assert!(
        project
            .join("node_modules/helper-dep/package.json")
            .exists(),
        "npm installed the dependency the JSON hid"
    );
    assert!(
        project.join("node_modules/.bin/sneaky").exists(),
        "npm linked the bin the JSON hid"
    );
    assert_eq!(
        fs::read_to_string(project.join("node_modules/sneaky/postinstall-ran")).unwrap(),
        "yes",
        "npm ran the postinstall script"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ordinary_npm_publish_keeps_its_bin_scripts_and_dependencies() {
    let registry = Registry::start().await;
    let npm = ClientEnv::new(&registry.server, Some(&registry.alice));
    let dir = npm.package(&Package::new("honest", "1.0.0").dependency("left-pad", "^1.3.0"));
    let mut manifest: Value =
        serde_json::from_str(&fs::read_to_string(dir.join("package.json")).unwrap()).unwrap();
    manifest["bin"] = json!({ "honest": "./index.js" });
    manifest["scripts"] = json!({ "test": "node index.js" });
    manifest["engines"] = json!({ "node": ">=18" });
    fs::write(dir.join("package.json"), manifest.to_string()).unwrap();
    npm.npm()
        .arg("publish")
        .current_dir(dir)
        .succeeds()
        .await
        .assert_mentions("+ honest@1.0.0");
    let version = &registry.server.packument("honest", &registry.alice).await["versions"]["1.0.0"];
    assert_eq!(version["bin"], json!({ "honest": "index.js" }));
    assert_eq!(version["scripts"]["test"], "node index.js");
    assert_eq!(version["dependencies"]["left-pad"], "^1.3.0");
    assert_eq!(version["engines"]["node"], ">=18");
    assert!(version.get("hasInstallScript").is_none(), "{version}");
}

// Item 12: unpublish honours `_rev`.

#[tokio::test]
async fn an_unpublish_with_a_stale_rev_is_refused_with_409_and_removes_nothing() {
    let registry = Registry::start().await;
    for version in ["1.0.0", "1.1.0"] {
        let (status, body) = registry.publish(&PublishBody::new("race", version)).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let mut stale = registry.read_for_write("race").await;
    // CI publishes after the client's read.
    let (status, body) = registry.publish(&PublishBody::new("race", "1.2.0")).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    stale["versions"].as_object_mut().unwrap().remove("1.0.0");
    let (status, body) = registry.put_rev("race", &stale).await;
    let message = assert_error(status, &body, StatusCode::CONFLICT);
    assert!(
        message.contains("race") && message.contains("changed") && message.contains("again"),
        "{message}"
    );
    assert_eq!(registry.versions("race").await, ["1.0.0", "1.1.0", "1.2.0"]);

    let path = format!("/race/-rev/{}", stale["_rev"].as_str().unwrap());
    let (status, body) = registry
        .send(registry.http.delete(registry.url(&path)), &registry.alice)
        .await;
    assert_error(status, &body, StatusCode::CONFLICT);
    assert_eq!(registry.versions("race").await, ["1.0.0", "1.1.0", "1.2.0"]);

    let mut fresh = registry.read_for_write("race").await;
    fresh["versions"].as_object_mut().unwrap().remove("1.0.0");
    let (status, body) = registry.put_rev("race", &fresh).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(registry.versions("race").await, ["1.1.0", "1.2.0"]);
}

#[tokio::test]
async fn an_unpublish_never_removes_a_version_its_body_did_not_know_about() {
    let registry = Registry::start().await;
    for version in ["1.0.0", "1.1.0", "1.2.0"] {
        let (status, body) = registry.publish(&PublishBody::new("known", version)).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    // A body whose `time` lists only what its writer saw: 1.2.0 is missing from both maps.
    let mut document = registry.read_for_write("known").await;
    for field in ["versions", "time"] {
        document[field].as_object_mut().unwrap().remove("1.2.0");
    }
    document["versions"]
        .as_object_mut()
        .unwrap()
        .remove("1.0.0");
    let (status, body) = registry.put_rev("known", &document).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(registry.versions("known").await, ["1.1.0", "1.2.0"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn npm_unpublish_of_one_version_still_works() {
    let registry = Registry::start().await;
    let npm = ClientEnv::new(&registry.server, Some(&registry.alice));
    for version in ["1.0.0", "1.1.0"] {
        let dir = npm.package(&Package::new("greeting", version));
        npm.npm().arg("publish").current_dir(dir).succeeds().await;
    }
    npm.npm()
        .args(["unpublish", "greeting@1.0.0"])
        .succeeds()
        .await
        .assert_mentions("- greeting@1.0.0");
    assert_eq!(registry.versions("greeting").await, ["1.1.0"]);
    let (status, _) = registry
        .server
        .get_json("/greeting/-/greeting-1.0.0.tgz", Some(&registry.alice))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

// Item 5: a fully unpublished name keeps a tombstone.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fully_unpublished_name_can_be_published_again_only_by_a_former_maintainer() {
    let registry = Registry::start().await;
    registry
        .server
        .add_user("bob", "bob-password-1", "maintainer");
    let bob = registry.server.token("bob", "maintainer", &[]);
    let alice_npm = ClientEnv::new(&registry.server, Some(&registry.alice));
    let bob_npm = ClientEnv::new(&registry.server, Some(&bob));

    let dir = alice_npm.package(&Package::new("left-pad", "1.3.0"));
    alice_npm
        .npm()
        .arg("publish")
        .current_dir(dir)
        .succeeds()
        .await;
    alice_npm
        .npm()
        .args(["unpublish", "left-pad", "--force"])
        .succeeds()
        .await
        .assert_mentions("- left-pad");

    let dir = bob_npm.package(&Package::new("left-pad", "1.3.1"));
    bob_npm
        .npm()
        .arg("publish")
        .current_dir(dir)
        .fails()
        .await
        .assert_mentions("E403")
        .assert_mentions("left-pad was unpublished")
        .assert_mentions("only its former maintainers");
    let (status, _) = registry
        .server
        .get_json(&package_path("left-pad"), Some(&bob))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "bob's publish left nothing");

    let dir = alice_npm.package(&Package::new("left-pad", "1.3.1"));
    alice_npm
        .npm()
        .arg("publish")
        .current_dir(dir)
        .succeeds()
        .await
        .assert_mentions("+ left-pad@1.3.1");
    assert_eq!(registry.versions("left-pad").await, ["1.3.1"]);
    let again = alice_npm.package(&Package::new("left-pad", "1.3.0"));
    alice_npm
        .npm()
        .args(["publish", "--tag", "old"])
        .current_dir(again)
        .fails()
        .await
        .assert_mentions("You cannot publish over the previously published versions: 1.3.0.");
}

#[tokio::test]
async fn a_registry_admin_may_publish_a_tombstoned_name_and_a_stranger_may_not() {
    let registry = Registry::start().await;
    registry
        .server
        .add_user("mallory", "mallory-pass-1", "maintainer");
    registry.server.add_user("root", "root-password-1", "admin");
    let mallory = registry.server.token("mallory", "maintainer", &[]);
    let root = registry.server.token("root", "admin", &[]);
    let (status, body) = registry
        .publish(&PublishBody::new("right-pad", "1.0.0"))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let document = registry.read_for_write("right-pad").await;
    let path = format!("/right-pad/-rev/{}", document["_rev"].as_str().unwrap());
    let (status, body) = registry
        .send(registry.http.delete(registry.url(&path)), &registry.alice)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let (status, body) = registry
        .publish_as(&mallory, &PublishBody::new("right-pad", "1.0.1"))
        .await;
    let message = assert_error(status, &body, StatusCode::FORBIDDEN);
    assert!(message.contains("right-pad was unpublished"), "{message}");
    let (status, body) = registry
        .publish_as(&root, &PublishBody::new("right-pad", "2.0.0"))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    // The `_rev` read before the unpublish does not match the new package, so it deletes nothing.
    let fresh = registry.read_for_write("right-pad").await;
    assert_ne!(fresh["_rev"], document["_rev"]);
    let (status, body) = registry
        .send(registry.http.delete(registry.url(&path)), &root)
        .await;
    assert_error(status, &body, StatusCode::CONFLICT);
    assert_eq!(registry.versions("right-pad").await, ["2.0.0"]);
}

// Low: a refused publish never deletes the bytes an accepted publish of the same tarball uses.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_publish_of_the_same_bytes_never_deletes_an_accepted_publishs_tarball() {
    let registry = Registry::start().await;
    registry
        .server
        .add_user("mallory", "mallory-pass-1", "maintainer");
    let mallory = registry.server.token("mallory", "maintainer", &[]);
    let (status, body) = registry.publish(&PublishBody::new("shared", "0.0.1")).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    for round in 0..20 {
        let body = PublishBody::new("shared", &format!("1.0.{round}"));
        // mallory is not a maintainer: her copy passes every step up to the commit, then is refused.
        let (accepted, refused) = tokio::join!(
            registry.publish(&body),
            registry.publish_as(&mallory, &body)
        );
        assert_eq!(accepted.0, StatusCode::CREATED, "{}", accepted.1);
        assert_eq!(refused.0, StatusCode::FORBIDDEN, "{}", refused.1);
        let path = format!("/shared/-/shared-1.0.{round}.tgz");
        let response = registry
            .send(registry.http.get(registry.url(&path)), &registry.alice)
            .await;
        assert_eq!(response.0, StatusCode::OK, "round {round}: {path}");
    }
}

#[tokio::test]
async fn an_unpublished_org_package_goes_back_to_the_orgs_maintainers_only() {
    let registry = Registry::start().await;
    let server = &registry.server;
    server.add_user("root", "root-password-1", "admin");
    server.add_user("carol", "carol-password-1", "maintainer");
    server.add_user("dave", "dave-password-1", "maintainer");
    let root = server.token("root", "admin", &[]);
    let carol = server.token("carol", "maintainer", &[]);
    let dave = server.token("dave", "maintainer", &[]);
    let admin_post = |path: &str, body: Value| {
        let request = registry.http.post(registry.url(path)).json(&body);
        registry.send(request, &root)
    };
    let (status, body) = admin_post(
        "/api/v1/admin/orgs",
        json!({ "slug": "acme", "display_name": "Acme" }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    for user in ["alice", "carol"] {
        let (status, body) = admin_post(
            "/api/v1/admin/orgs/acme/members",
            json!({ "user": user, "role": "maintainer" }),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let (status, body) = registry
        .publish(&PublishBody::new("@acme/tool", "1.0.0"))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let document = registry.read_for_write("@acme/tool").await;
    let path = format!(
        "{}/-rev/{}",
        package_path("@acme/tool"),
        document["_rev"].as_str().unwrap()
    );
    let (status, body) = registry
        .send(registry.http.delete(registry.url(&path)), &registry.alice)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let (status, body) = registry
        .publish_as(&dave, &PublishBody::new("@acme/tool", "1.0.1"))
        .await;
    let message = assert_error(status, &body, StatusCode::FORBIDDEN);
    assert!(message.contains("not a member"), "{message}");
    // carol never maintained @acme/tool, but the org's maintainers may publish under @acme.
    let (status, body) = registry
        .publish_as(&carol, &PublishBody::new("@acme/tool", "1.0.1"))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}
