//! Real npm 11 processes against the real server: publish, install, ci, view, dist-tag, deprecate,
//! unpublish, owner, login/whoami/logout, scoped CI tokens, conflicts, concurrency and restarts.

use std::fs;

use reqwest::StatusCode;
use serde_json::Value;

use crate::support::clients::ClientEnv;
use crate::support::fixtures::{Package, assert_installed};
use crate::support::on_each_storage;
use crate::support::server::{Storage, TestServer, package_path};

/// A server with the maintainer `alice`, and an npm sandbox logged in with her maintainer token.
struct Setup {
    server: TestServer,
    token: String,
    npm: ClientEnv,
}

impl Setup {
    async fn start_on(storage: Storage) -> Self {
        Self::on(TestServer::start_on(storage).await)
    }

    fn on(server: TestServer) -> Self {
        server.add_user("alice", "alice-password-1", "maintainer");
        let token = server.token("alice", "maintainer", &[]);
        let npm = ClientEnv::new(&server, Some(&token));
        Self { server, token, npm }
    }

    /// `npm publish EXTRA` of the fixture as `name@version`, asserting success.
    async fn publish(&self, name: &str, version: &str, extra: &[&str]) {
        let dir = self.npm.package(&Package::new(name, version));
        self.npm
            .npm()
            .arg("publish")
            .args(extra)
            .current_dir(dir)
            .succeeds()
            .await
            .assert_mentions(&format!("+ {name}@{version}"));
    }

    async fn packument(&self, name: &str) -> Value {
        self.server.packument(name, &self.token).await
    }

    async fn status_of(&self, path: &str) -> StatusCode {
        self.server.get_json(path, Some(&self.token)).await.0
    }
}

fn versions_of(packument: &Value) -> Vec<String> {
    let mut versions: Vec<String> = packument["versions"]
        .as_object()
        .map(|versions| versions.keys().cloned().collect())
        .unwrap_or_default();
    versions.sort();
    versions
}

on_each_storage!(
    npm_publishes_and_installs_scoped_and_unscoped_packages_and_ci_reinstalls_them,
    flavor = "multi_thread",
    worker_threads = 2
);
async fn npm_publishes_and_installs_scoped_and_unscoped_packages_and_ci_reinstalls_them(
    storage: Storage,
) {
    let setup = Setup::start_on(storage).await;
    setup.publish("greeting", "1.0.0", &[]).await;
    let widget = setup
        .npm
        .package(&Package::new("@acme/widget", "1.0.0").dependency("greeting", "^1.0.0"));
    setup
        .npm
        .npm()
        .arg("publish")
        .current_dir(widget)
        .succeeds()
        .await
        .assert_mentions("+ @acme/widget@1.0.0");

    let view = setup
        .npm
        .npm()
        .args(["view", "@acme/widget", "version"])
        .succeeds()
        .await;
    assert_eq!(
        view.stdout.trim(),
        "1.0.0",
        "npm view @acme/widget version\n{view}"
    );
    let view = setup
        .npm
        .npm()
        .args(["view", "greeting", "version"])
        .succeeds()
        .await;
    assert_eq!(
        view.stdout.trim(),
        "1.0.0",
        "npm view greeting version\n{view}"
    );

    let project = setup.npm.project();
    setup
        .npm
        .npm()
        .args(["install", "@acme/widget"])
        .succeeds()
        .await;
    assert_installed(&project, "@acme/widget", "1.0.0");
    assert_installed(&project, "greeting", "1.0.0");
    let lock = fs::read_to_string(project.join("package-lock.json")).expect("npm wrote a lockfile");
    let lock: Value = serde_json::from_str(&lock).expect("the lockfile is JSON");
    let resolved = &lock["packages"]["node_modules/@acme/widget"]["resolved"];
    assert_eq!(
        resolved,
        &Value::from(format!(
            "{}/@acme/widget/-/widget-1.0.0.tgz",
            setup.server.url
        )),
        "resolved URL in package-lock.json"
    );

    let fresh = setup.npm.new_project("ci-project");
    for file in ["package.json", "package-lock.json"] {
        fs::copy(project.join(file), fresh.join(file)).expect("copying the project");
    }
    setup.npm.clear_caches();
    setup
        .npm
        .npm()
        .arg("ci")
        .current_dir(&fresh)
        .succeeds()
        .await;
    assert_installed(&fresh, "@acme/widget", "1.0.0");
    assert_installed(&fresh, "greeting", "1.0.0");
}

on_each_storage!(
    npm_dist_tags_are_listed_added_and_removed_and_a_beta_publish_leaves_latest_alone,
    flavor = "multi_thread",
    worker_threads = 2
);
async fn npm_dist_tags_are_listed_added_and_removed_and_a_beta_publish_leaves_latest_alone(
    storage: Storage,
) {
    let setup = Setup::start_on(storage).await;
    setup.publish("greeting", "1.0.0", &[]).await;
    setup.publish("greeting", "1.1.0", &["--tag", "beta"]).await;

    let tags = setup
        .npm
        .npm()
        .args(["dist-tag", "ls", "greeting"])
        .succeeds()
        .await;
    assert_eq!(
        tags.stdout.trim(),
        "beta: 1.1.0\nlatest: 1.0.0",
        "npm dist-tag ls\n{tags}"
    );
    let packument = setup.packument("greeting").await;
    assert_eq!(packument["dist-tags"]["latest"], "1.0.0");
    assert_eq!(packument["dist-tags"]["beta"], "1.1.0");

    setup
        .npm
        .npm()
        .args(["dist-tag", "add", "greeting@1.0.0", "stable"])
        .succeeds()
        .await
        .assert_mentions("+stable: greeting@1.0.0");
    let tags = setup
        .npm
        .npm()
        .args(["dist-tag", "ls", "greeting"])
        .succeeds()
        .await;
    assert_eq!(
        tags.stdout.trim(),
        "beta: 1.1.0\nlatest: 1.0.0\nstable: 1.0.0",
        "npm dist-tag ls after add\n{tags}"
    );

    setup
        .npm
        .npm()
        .args(["dist-tag", "rm", "greeting", "stable"])
        .succeeds()
        .await
        .assert_mentions("-stable: greeting@1.0.0");
    let packument = setup.packument("greeting").await;
    assert_eq!(
        packument["dist-tags"],
        serde_json::json!({ "latest": "1.0.0", "beta": "1.1.0" }),
        "dist-tags after rm"
    );

    // Installing without a range takes latest, not the newer beta.
    setup
        .npm
        .npm()
        .args(["install", "greeting"])
        .succeeds()
        .await;
    assert_installed(&setup.npm.project(), "greeting", "1.0.0");
}

on_each_storage!(
    npm_deprecate_marks_a_version_and_undeprecate_clears_it,
    flavor = "multi_thread",
    worker_threads = 2
);
async fn npm_deprecate_marks_a_version_and_undeprecate_clears_it(storage: Storage) {
    let setup = Setup::start_on(storage).await;
    setup.publish("greeting", "1.0.0", &[]).await;
    setup.publish("greeting", "2.0.0", &[]).await;

    setup
        .npm
        .npm()
        .args(["deprecate", "greeting@1.0.0", "use 2"])
        .succeeds()
        .await;
    let packument = setup.packument("greeting").await;
    assert_eq!(packument["versions"]["1.0.0"]["deprecated"], "use 2");
    assert!(
        packument["versions"]["2.0.0"].get("deprecated").is_none(),
        "2.0.0 must stay undeprecated: {}",
        packument["versions"]["2.0.0"]
    );
    setup
        .npm
        .npm()
        .args(["install", "greeting@1.0.0"])
        .succeeds()
        .await
        .assert_mentions("deprecated greeting@1.0.0: use 2");

    setup
        .npm
        .npm()
        .args(["undeprecate", "greeting@1.0.0"])
        .succeeds()
        .await;
    let packument = setup.packument("greeting").await;
    let deprecated = &packument["versions"]["1.0.0"]["deprecated"];
    assert!(
        deprecated.is_null() || deprecated == "",
        "undeprecate must clear the message, found {deprecated}"
    );
    let fresh = setup.npm.new_project("after-undeprecate");
    setup
        .npm
        .npm()
        .args(["install", "greeting@1.0.0"])
        .current_dir(&fresh)
        .succeeds()
        .await
        .assert_does_not_mention("deprecated");
    assert_installed(&fresh, "greeting", "1.0.0");
}

on_each_storage!(
    npm_unpublish_removes_a_version_for_good_and_force_removes_the_package,
    flavor = "multi_thread",
    worker_threads = 2
);
async fn npm_unpublish_removes_a_version_for_good_and_force_removes_the_package(storage: Storage) {
    let setup = Setup::start_on(storage).await;
    setup.publish("greeting", "1.0.0", &[]).await;
    setup.publish("greeting", "1.1.0", &[]).await;

    setup
        .npm
        .npm()
        .args(["unpublish", "greeting@1.0.0"])
        .succeeds()
        .await
        .assert_mentions("- greeting@1.0.0");
    let packument = setup.packument("greeting").await;
    assert_eq!(versions_of(&packument), ["1.1.0"]);
    assert_eq!(packument["dist-tags"]["latest"], "1.1.0");
    assert_eq!(
        setup.status_of("/greeting/-/greeting-1.0.0.tgz").await,
        StatusCode::NOT_FOUND,
        "the unpublished tarball must be gone"
    );
    assert_eq!(
        setup.status_of("/greeting/-/greeting-1.1.0.tgz").await,
        StatusCode::OK,
        "the remaining tarball must stay"
    );
    let remaining = setup.server.stored_blobs().await;
    assert_eq!(
        remaining.len(),
        1,
        "only the blob of 1.1.0 may remain: {remaining:?}"
    );

    let again = setup.npm.package(&Package::new("greeting", "1.0.0"));
    let refused = setup
        .npm
        .npm()
        .args(["publish", "--tag", "old"])
        .current_dir(again)
        .fails()
        .await;
    refused
        .assert_mentions("E403")
        .assert_mentions("You cannot publish over the previously published versions: 1.0.0.");

    setup
        .npm
        .npm()
        .args(["unpublish", "greeting", "--force"])
        .succeeds()
        .await
        .assert_mentions("- greeting");
    assert_eq!(
        setup.status_of(&package_path("greeting")).await,
        StatusCode::NOT_FOUND,
        "the packument of a removed package"
    );
    assert_eq!(
        setup.status_of("/greeting/-/greeting-1.1.0.tgz").await,
        StatusCode::NOT_FOUND,
        "tarballs of a removed package"
    );
    let stored = setup.server.stored_blobs().await;
    assert!(
        stored.is_empty(),
        "no blob may outlive the package (1.1.0 was {remaining:?}): {stored:?}"
    );
}

on_each_storage!(
    npm_owner_add_lets_another_maintainer_publish_and_owner_rm_stops_them,
    flavor = "multi_thread",
    worker_threads = 2
);
async fn npm_owner_add_lets_another_maintainer_publish_and_owner_rm_stops_them(storage: Storage) {
    let setup = Setup::start_on(storage).await;
    setup.server.add_user("bob", "bob-password-1", "maintainer");
    let bob = ClientEnv::new(
        &setup.server,
        Some(&setup.server.token("bob", "maintainer", &[])),
    );
    setup.publish("greeting", "1.0.0", &[]).await;

    let owners = setup
        .npm
        .npm()
        .args(["owner", "ls", "greeting"])
        .succeeds()
        .await;
    assert_eq!(
        owners.stdout.trim(),
        "alice <alice@example.com>",
        "npm owner ls\n{owners}"
    );

    let before = bob.package(&Package::new("greeting", "1.0.1"));
    bob.npm()
        .arg("publish")
        .current_dir(before)
        .fails()
        .await
        .assert_mentions("E403");

    setup
        .npm
        .npm()
        .args(["owner", "add", "bob", "greeting"])
        .succeeds()
        .await
        .assert_mentions("+ bob (greeting)");
    let owners = setup
        .npm
        .npm()
        .args(["owner", "ls", "greeting"])
        .succeeds()
        .await;
    assert_eq!(
        owners.stdout.trim(),
        "alice <alice@example.com>\nbob <bob@example.com>",
        "npm owner ls after add\n{owners}"
    );
    let added = bob.package(&Package::new("greeting", "1.1.0"));
    bob.npm()
        .arg("publish")
        .current_dir(added)
        .succeeds()
        .await
        .assert_mentions("+ greeting@1.1.0");

    setup
        .npm
        .npm()
        .args(["owner", "rm", "bob", "greeting"])
        .succeeds()
        .await
        .assert_mentions("- bob (greeting)");
    let removed = bob.package(&Package::new("greeting", "1.2.0"));
    bob.npm()
        .arg("publish")
        .current_dir(removed)
        .fails()
        .await
        .assert_mentions("E403");
    let packument = setup.packument("greeting").await;
    assert_eq!(versions_of(&packument), ["1.0.0", "1.1.0"]);
}

on_each_storage!(
    npm_login_whoami_and_logout_round_trip_and_logout_revokes_the_token,
    flavor = "multi_thread",
    worker_threads = 2
);
async fn npm_login_whoami_and_logout_round_trip_and_logout_revokes_the_token(storage: Storage) {
    let server = TestServer::start_on(storage).await;
    server.add_user("carol", "carol-password-1", "maintainer");
    let mut npm = ClientEnv::new(&server, None);

    // Legacy login: npm asks for the username and password on a terminal (web login, npm's
    // default, is covered with a real browser in web_login.rs).
    npm.npm()
        .args(["login", "--auth-type=legacy"])
        .answering(&[("Username:", "carol"), ("Password:", "carol-password-1")])
        .succeeds()
        .await
        .assert_mentions(&format!("Logged in on {}/.", server.url));
    let npmrc = fs::read_to_string(npm.npmrc_path()).expect("reading .npmrc");
    let key = format!("//{}/:_authToken=", server.host());
    let token = npmrc
        .lines()
        .find_map(|line| line.strip_prefix(&key))
        .unwrap_or_else(|| panic!("npm login wrote no {key} line:\n{npmrc}"))
        .to_owned();

    let whoami = npm.npm().arg("whoami").succeeds().await;
    assert_eq!(whoami.stdout.trim(), "carol", "npm whoami\n{whoami}");

    npm.npm().arg("logout").succeeds().await;
    let npmrc = fs::read_to_string(npm.npmrc_path()).expect("reading .npmrc");
    assert!(
        !npmrc.contains(&token),
        "npm logout left the token in .npmrc:\n{npmrc}"
    );

    npm.set_token(Some(&token));
    npm.npm()
        .arg("whoami")
        .fails()
        .await
        .assert_mentions("E401");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn npm_with_a_scoped_ci_token_publishes_only_in_its_scope_and_a_readonly_token_only_installs()
{
    let server = TestServer::start().await;
    server.add_user("ci", "ci-password-1", "maintainer");
    server.add_user("reader", "reader-password-1", "reader");
    let ci = ClientEnv::new(&server, Some(&server.token("ci", "ci-publish", &["@acme"])));

    let inside = ci.package(&Package::new("@acme/x", "1.0.0"));
    ci.npm()
        .arg("publish")
        .current_dir(inside)
        .succeeds()
        .await
        .assert_mentions("+ @acme/x@1.0.0");
    let outside = ci.package(&Package::new("@other/y", "1.0.0"));
    ci.npm()
        .arg("publish")
        .current_dir(outside)
        .fails()
        .await
        .assert_mentions("E403")
        .assert_mentions("@acme");

    let reader = ClientEnv::new(&server, Some(&server.token("reader", "ci-readonly", &[])));
    reader.npm().args(["install", "@acme/x"]).succeeds().await;
    assert_installed(&reader.project(), "@acme/x", "1.0.0");
    let attempt = reader.package(&Package::new("@acme/x", "1.1.0"));
    reader
        .npm()
        .arg("publish")
        .current_dir(attempt)
        .fails()
        .await
        .assert_mentions("E403");
    let (status, body) = server
        .get_json(
            &package_path("@acme/x"),
            Some(&server.token("ci", "ci-readonly", &[])),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(versions_of(&body), ["1.0.0"]);
}

on_each_storage!(
    npm_cannot_publish_over_an_existing_version,
    flavor = "multi_thread",
    worker_threads = 2
);
async fn npm_cannot_publish_over_an_existing_version(storage: Storage) {
    let setup = Setup::start_on(storage).await;
    setup.publish("greeting", "1.0.0", &[]).await;
    let changed = setup
        .npm
        .package(&Package::new("greeting", "1.0.0").file("CHANGELOG.md", "A different 1.0.0.\n"));

    // npm 11 checks the packument first and refuses by itself...
    setup
        .npm
        .npm()
        .arg("publish")
        .current_dir(&changed)
        .fails()
        .await
        .assert_mentions("You cannot publish over the previously published versions");
    // ...and with --force it skips that check, so what npm prints is the server's 403.
    setup
        .npm
        .npm()
        .args(["publish", "--force"])
        .current_dir(&changed)
        .fails()
        .await
        .assert_mentions("E403")
        .assert_mentions("You cannot publish over the previously published versions: 1.0.0.");

    // A retry of the very same bytes (what npm does after a 5xx) is accepted and changes nothing.
    let same = setup.npm.package(&Package::new("greeting", "1.0.0"));
    setup
        .npm
        .npm()
        .args(["publish", "--force"])
        .current_dir(&same)
        .succeeds()
        .await;
    let tarball = reqwest::Client::new()
        .get(format!(
            "{}/greeting/-/greeting-1.0.0.tgz",
            setup.server.url
        ))
        .bearer_auth(&setup.token)
        .send()
        .await
        .expect("GET the tarball");
    assert_eq!(tarball.status(), StatusCode::OK);
    let bytes = tarball.bytes().await.expect("tarball body");
    assert!(
        !contains(&bytes, b"CHANGELOG.md"),
        "the refused tarball must not have replaced the published one"
    );
}

/// Whether the gunzipped `tgz` contains the bytes `needle`.
fn contains(tgz: &[u8], needle: &[u8]) -> bool {
    use std::io::Read;

    let mut tar = Vec::new();
    flate2::read::GzDecoder::new(tgz)
        .read_to_end(&mut tar)
        .expect("the tarball is gzip");
    tar.windows(needle.len()).any(|window| window == needle)
}

on_each_storage!(
    sixteen_concurrent_npm_publishes_of_one_package_all_land,
    flavor = "multi_thread",
    worker_threads = 2
);
async fn sixteen_concurrent_npm_publishes_of_one_package_all_land(storage: Storage) {
    let setup = Setup::start_on(storage).await;
    let mut runs = tokio::task::JoinSet::new();
    for patch in 0..16 {
        let version = format!("1.0.{patch}");
        let dir = setup.npm.package(&Package::new("greeting", &version));
        // Each version gets its own tag: npm 11 refuses an implicit `latest` that is lower than a
        // version already published, which concurrent publishes cannot avoid.
        let run = setup
            .npm
            .npm()
            .args(["publish", "--tag", &format!("build{patch}")])
            .current_dir(dir)
            .succeeds();
        runs.spawn(async move {
            run.await.assert_mentions(&format!("+ greeting@{version}"));
        });
    }
    while let Some(result) = runs.join_next().await {
        if let Err(err) = result {
            std::panic::resume_unwind(err.into_panic());
        }
    }

    let packument = setup.packument("greeting").await;
    let mut expected: Vec<String> = (0..16).map(|patch| format!("1.0.{patch}")).collect();
    expected.sort();
    assert_eq!(versions_of(&packument), expected);
    for patch in 0..16 {
        assert_eq!(
            packument["dist-tags"][format!("build{patch}")],
            format!("1.0.{patch}"),
            "dist-tags: {}",
            packument["dist-tags"]
        );
        assert!(
            packument["time"][format!("1.0.{patch}")].is_string(),
            "time of 1.0.{patch}: {}",
            packument["time"]
        );
    }
    let latest = packument["dist-tags"]["latest"]
        .as_str()
        .unwrap_or_default();
    assert!(
        expected.iter().any(|version| version == latest),
        "latest must be one of the versions: {}",
        packument["dist-tags"]
    );
}

on_each_storage!(
    npm_installs_with_the_same_token_after_a_server_restart,
    flavor = "multi_thread",
    worker_threads = 2
);
async fn npm_installs_with_the_same_token_after_a_server_restart(storage: Storage) {
    let mut setup = Setup::start_on(storage).await;
    setup.publish("@acme/widget", "1.0.0", &[]).await;

    setup.server.restart().await;
    setup.npm.point_at(&setup.server);
    setup.npm.clear_caches();

    setup
        .npm
        .npm()
        .args(["install", "@acme/widget"])
        .succeeds()
        .await;
    assert_installed(&setup.npm.project(), "@acme/widget", "1.0.0");
    setup.publish("@acme/widget", "1.1.0", &[]).await;
    let packument = setup.packument("@acme/widget").await;
    assert_eq!(versions_of(&packument), ["1.0.0", "1.1.0"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn npm_install_follows_a_tarball_redirect_to_a_presigned_s3_url() {
    let server =
        TestServer::start_on_with(Storage::S3, |config| config.tarball_redirect = true).await;
    let setup = Setup::on(server);
    setup.publish("greeting", "1.0.0", &[]).await;

    let redirect = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("an HTTP client")
        .get(format!(
            "{}/greeting/-/greeting-1.0.0.tgz",
            setup.server.url
        ))
        .bearer_auth(&setup.token)
        .send()
        .await
        .expect("GET the tarball");
    assert_eq!(redirect.status(), StatusCode::FOUND);
    let location = redirect.headers()["location"].to_str().unwrap_or_default();
    let s3 = setup.server.s3.as_ref().expect("an S3 server");
    assert!(
        location.starts_with(&s3.endpoint) && location.contains("X-Amz-Signature="),
        "the redirect must go to a presigned URL on the S3 server: {location}"
    );
    // The redirect itself is cached briefly (the URL expires); the object's answer is immutable.
    assert_eq!(redirect.headers()["cache-control"], "private, max-age=60");
    let object = reqwest::get(location).await.expect("GET the presigned URL");
    assert_eq!(object.status(), StatusCode::OK);
    assert_eq!(
        object.headers()["cache-control"],
        "private, max-age=31536000, immutable"
    );

    // npm checks the bytes it got from S3 against the packument's sha512 integrity.
    setup
        .npm
        .npm()
        .args(["install", "greeting"])
        .succeeds()
        .await;
    assert_installed(&setup.npm.project(), "greeting", "1.0.0");
}
