//! Real yarn 1 (classic) and yarn 4 (berry) processes against the real server.

use std::fs;

use crate::support::clients::ClientEnv;
use crate::support::fixtures::{Package, assert_installed};
use crate::support::on_each_storage;
use crate::support::server::{Storage, TestServer};

/// A server with the maintainer `alice`, `greeting@1.0.0` and `@acme/widget@1.0.0` (which depends
/// on `greeting`) published with npm, and a sandbox using alice's maintainer token.
async fn registry_with_packages(storage: Storage) -> (TestServer, String, ClientEnv) {
    let server = TestServer::start_on(storage).await;
    server.add_user("alice", "alice-password-1", "maintainer");
    let token = server.token("alice", "maintainer", &[]);
    let env = ClientEnv::new(&server, Some(&token));
    for package in [
        Package::new("greeting", "1.0.0"),
        Package::new("@acme/widget", "1.0.0").dependency("greeting", "^1.0.0"),
    ] {
        let dir = env.package(&package);
        env.npm().arg("publish").current_dir(dir).succeeds().await;
    }
    (server, token, env)
}

on_each_storage!(
    yarn1_adds_scoped_and_unscoped_packages_publishes_a_folder_and_manages_tags,
    flavor = "multi_thread",
    worker_threads = 2
);
async fn yarn1_adds_scoped_and_unscoped_packages_publishes_a_folder_and_manages_tags(
    storage: Storage,
) {
    let (server, token, env) = registry_with_packages(storage).await;
    // yarn 1 sends the token for unscoped packages only with always-auth.
    let env = env.with_always_auth();

    env.yarn1().args(["add", "@acme/widget"]).succeeds().await;
    assert_installed(&env.project(), "@acme/widget", "1.0.0");
    assert_installed(&env.project(), "greeting", "1.0.0");
    let lock = fs::read_to_string(env.project().join("yarn.lock")).expect("yarn wrote a lockfile");
    assert!(
        lock.contains(&format!("{}/@acme/widget/-/widget-1.0.0.tgz", server.url)),
        "yarn.lock:\n{lock}"
    );

    let dir = env.package(&Package::new("@acme/widget", "1.1.0"));
    env.yarn1()
        .args(["publish", "--new-version", "1.1.0", "--no-git-tag-version"])
        .current_dir(dir)
        .succeeds()
        .await
        .assert_mentions("Published.");
    let packument = server.packument("@acme/widget", &token).await;
    assert_eq!(packument["dist-tags"]["latest"], "1.1.0");
    assert_eq!(
        packument["versions"]["1.1.0"]["dist"]["tarball"],
        format!("{}/@acme/widget/-/widget-1.1.0.tgz", server.url),
        "the server, not yarn 1, decides the tarball URL"
    );

    env.yarn1()
        .args(["tag", "add", "@acme/widget@1.0.0", "stable"])
        .succeeds()
        .await;
    let tags = env
        .yarn1()
        .args(["tag", "list", "@acme/widget"])
        .succeeds()
        .await;
    tags.assert_mentions("latest: 1.1.0")
        .assert_mentions("stable: 1.0.0");
    env.yarn1()
        .args(["tag", "remove", "@acme/widget", "stable"])
        .succeeds()
        .await;
    let packument = server.packument("@acme/widget", &token).await;
    assert_eq!(
        packument["dist-tags"],
        serde_json::json!({ "latest": "1.1.0" })
    );

    // A fresh project installs the new latest, unscoped dependency included.
    let fresh = env.new_project("fresh");
    env.yarn1()
        .args(["add", "@acme/widget", "greeting"])
        .current_dir(&fresh)
        .succeeds()
        .await;
    assert_installed(&fresh, "@acme/widget", "1.1.0");
    assert_installed(&fresh, "greeting", "1.0.0");
}

on_each_storage!(
    yarn4_adds_packages_publishes_a_folder_lists_tags_and_knows_who_is_logged_in,
    flavor = "multi_thread",
    worker_threads = 2
);
async fn yarn4_adds_packages_publishes_a_folder_lists_tags_and_knows_who_is_logged_in(
    storage: Storage,
) {
    let (server, token, env) = registry_with_packages(storage).await;

    env.yarn4()
        .args(["add", "@acme/widget", "greeting"])
        .succeeds()
        .await;
    assert_installed(&env.project(), "@acme/widget", "1.0.0");
    assert_installed(&env.project(), "greeting", "1.0.0");

    // yarn 4 publishes a workspace of an installed project.
    let dir = env.package(&Package::new("@acme/widget", "1.1.0"));
    env.yarn4()
        .arg("install")
        .current_dir(&dir)
        .succeeds()
        .await;
    env.yarn4()
        .args(["npm", "publish", "--tag", "beta"])
        .current_dir(&dir)
        .succeeds()
        .await
        .assert_mentions("Package archive published");
    let packument = server.packument("@acme/widget", &token).await;
    assert_eq!(
        packument["dist-tags"],
        serde_json::json!({ "latest": "1.0.0", "beta": "1.1.0" })
    );
    assert!(
        packument["time"]["1.1.0"].is_string(),
        "yarn 4 needs time[version]: {}",
        packument["time"]
    );

    env.yarn4()
        .args(["npm", "tag", "add", "@acme/widget@1.1.0", "stable"])
        .succeeds()
        .await;
    let tags = env
        .yarn4()
        .args(["npm", "tag", "list", "@acme/widget"])
        .succeeds()
        .await;
    tags.assert_mentions("latest")
        .assert_mentions("beta")
        .assert_mentions("stable");
    assert!(
        tags.stdout
            .lines()
            .any(|line| line.contains("stable") && line.contains("1.1.0")),
        "yarn npm tag list\n{tags}"
    );

    let whoami = env.yarn4().args(["npm", "whoami"]).succeeds().await;
    whoami.assert_mentions("alice");

    let fresh = env.new_project("fresh");
    env.yarn4()
        .args(["add", "@acme/widget@beta"])
        .current_dir(&fresh)
        .succeeds()
        .await;
    assert_installed(&fresh, "@acme/widget", "1.1.0");
}
