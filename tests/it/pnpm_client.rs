//! Real pnpm 10 processes against the real server: corgi packuments, `%2F` scoped names, frozen
//! lockfile installs from an empty store, and `pnpm publish` (which runs npm underneath).

use std::fs;

use crate::support::clients::ClientEnv;
use crate::support::fixtures::{Package, assert_installed};
use crate::support::on_each_storage;
use crate::support::server::{Storage, TestServer};

async fn publish_with_npm(env: &ClientEnv, package: Package) {
    let dir = env.package(&package);
    env.npm().arg("publish").current_dir(dir).succeeds().await;
}

on_each_storage!(
    pnpm_installs_packages_and_reinstalls_a_frozen_lockfile_from_an_empty_store,
    flavor = "multi_thread",
    worker_threads = 2
);
async fn pnpm_installs_packages_and_reinstalls_a_frozen_lockfile_from_an_empty_store(
    storage: Storage,
) {
    let server = TestServer::start_on(storage).await;
    server.add_user("alice", "alice-password-1", "maintainer");
    let token = server.token("alice", "maintainer", &[]);
    let env = ClientEnv::new(&server, Some(&token));
    publish_with_npm(&env, Package::new("greeting", "1.0.0")).await;
    publish_with_npm(&env, Package::new("greeting", "1.1.0")).await;
    publish_with_npm(
        &env,
        Package::new("@acme/widget", "1.0.0").dependency("greeting", "~1.0.0"),
    )
    .await;

    let project = env.project();
    env.pnpm()
        .args(["add", "@acme/widget", "greeting"])
        .succeeds()
        .await;
    assert_installed(&project, "@acme/widget", "1.0.0");
    assert_installed(&project, "greeting", "1.1.0");
    // The widget's own dependency resolved to the 1.0.x line inside pnpm's virtual store.
    let widget_in_store = project.join("node_modules/.pnpm/@acme+widget@1.0.0");
    assert_installed(&widget_in_store, "greeting", "1.0.0");
    let lock = fs::read_to_string(project.join("pnpm-lock.yaml")).expect("pnpm wrote a lockfile");
    assert!(
        lock.contains("'@acme/widget@1.0.0':"),
        "pnpm-lock.yaml:\n{lock}"
    );

    let fresh = env.new_project("frozen");
    for file in ["package.json", "pnpm-lock.yaml"] {
        fs::copy(project.join(file), fresh.join(file)).expect("copying the project");
    }
    env.clear_caches();
    env.pnpm()
        .args(["install", "--frozen-lockfile"])
        .current_dir(&fresh)
        .succeeds()
        .await;
    assert_installed(&fresh, "@acme/widget", "1.0.0");
    assert_installed(&fresh, "greeting", "1.1.0");
}

on_each_storage!(
    pnpm_publishes_a_folder_through_npm,
    flavor = "multi_thread",
    worker_threads = 2
);
async fn pnpm_publishes_a_folder_through_npm(storage: Storage) {
    let server = TestServer::start_on(storage).await;
    server.add_user("alice", "alice-password-1", "maintainer");
    let token = server.token("alice", "maintainer", &[]);
    let env = ClientEnv::new(&server, Some(&token));

    let dir = env.package(&Package::new("@acme/widget", "2.0.0"));
    env.pnpm()
        .args(["publish", "--no-git-checks"])
        .current_dir(dir)
        .succeeds()
        .await
        .assert_mentions("+ @acme/widget@2.0.0");

    let packument = server.packument("@acme/widget", &token).await;
    assert_eq!(packument["dist-tags"]["latest"], "2.0.0");
    assert_eq!(
        packument["versions"]["2.0.0"]["dist"]["tarball"],
        format!("{}/@acme/widget/-/widget-2.0.0.tgz", server.url)
    );

    env.pnpm().args(["add", "@acme/widget"]).succeeds().await;
    assert_installed(&env.project(), "@acme/widget", "2.0.0");
}
