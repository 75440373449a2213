//! Three `packr serve` processes on one PostgreSQL database and one S3 bucket are one registry:
//! what is written through one instance is read through the others, a webhook delivery is sent
//! once whichever instances run (and after one is killed), and a device login started on one
//! instance is finished through the others.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::support::postgres::{TestDatabase, fresh_database};
use crate::support::s3::S3Server;
use crate::support::serve_process::ServeProcess;
use crate::support::server::{
    add_user, package_path, token, write_shared_secrets, write_store_env,
};
use crate::webhooks::{Client, LOOPBACK, Receiver, eventually};

/// The longest a change on one instance may take to show on another: notifications arrive in
/// milliseconds; this leaves room for a loaded test machine.
const PROPAGATION: Duration = Duration::from_secs(2);

/// One registry served by several instances that share nothing but the database and the bucket.
struct Cluster {
    instances: Vec<ServeProcess>,
    env: Vec<(String, String)>,
    /// Where the `packr` command line finds the store ([`write_store_env`]).
    admin_dir: PathBuf,
    _dirs: Vec<TempDir>,
    _database: TestDatabase,
    _s3: S3Server,
}

impl Cluster {
    async fn start(instances: usize, extra: &[(&str, &str)]) -> Self {
        Self::start_with_replica(instances, extra, None).await
    }

    /// As [`Cluster::start`], the instances reading packages from `replica` too.
    async fn start_with_replica(
        instances: usize,
        extra: &[(&str, &str)],
        replica: Option<&crate::support::postgres::Replica>,
    ) -> Self {
        let database = fresh_database().await;
        let s3 = S3Server::start().await;
        let shared = tempfile::tempdir().unwrap();
        let secrets = shared.path().join("secrets");
        write_shared_secrets(&secrets);
        let mut env = s3.env();
        env.push(("PACKR_DATABASE_URL".into(), database.url.clone()));
        env.push(("PACKR_SECRETS_DIR".into(), secrets.display().to_string()));
        if let Some(replica) = replica {
            env.push((
                "PACKR_DATABASE_REPLICA_URL".into(),
                replica.url(&database.name),
            ));
        }
        env.extend(
            extra
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        write_store_env(shared.path(), &database.url, &secrets);
        let mut cluster = Self {
            instances: Vec::new(),
            env,
            admin_dir: shared.path().to_owned(),
            _dirs: vec![shared],
            _database: database,
            _s3: s3,
        };
        for _ in 0..instances {
            cluster.add_instance().await;
        }
        cluster
    }

    /// Starts one more instance, with an empty data directory of its own.
    async fn add_instance(&mut self) {
        let dir = tempfile::tempdir().unwrap();
        let env: Vec<(&str, &str)> = self
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let name = format!("serve-{}.log", self.instances.len());
        self.instances
            .push(ServeProcess::start(dir.path(), &name, &env).await);
        self._dirs.push(dir);
    }

    fn client(&self, instance: usize) -> Client {
        Client::new(&self.instances[instance].url)
    }

    fn admin_dir(&self) -> &Path {
        &self.admin_dir
    }
}

/// The packument of `name` as instance `on` serves it.
async fn packument(cluster: &Cluster, on: usize, name: &str, token: &str) -> (StatusCode, Value) {
    cluster
        .client(on)
        .send("GET", &package_path(name), token, None)
        .await
}

/// Waits until instance `on` serves a packument for which `check` holds; how long it took.
async fn shows(
    cluster: &Cluster,
    on: usize,
    name: &str,
    token: &str,
    what: &str,
    check: impl Fn(StatusCode, &Value) -> bool,
) -> Duration {
    let started = Instant::now();
    eventually(&format!("{what} on instance {on}"), PROPAGATION, || async {
        let (status, body) = packument(cluster, on, name, token).await;
        check(status, &body).then_some(())
    })
    .await;
    started.elapsed()
}

#[tokio::test]
async fn what_one_instance_writes_the_others_serve() {
    let cluster = Cluster::start(3, &[]).await;
    add_user(cluster.admin_dir(), "alice", "alice-pass-1", "maintainer");
    add_user(cluster.admin_dir(), "bob", "bob-pass-1", "maintainer");
    let alice = token(cluster.admin_dir(), "alice", "maintainer", &[]);

    cluster.client(0).publish(&alice, "left-pad", "1.0.0").await;
    // Every instance reads it, and caches it.
    for on in 0..3 {
        let (status, body) = packument(&cluster, on, "left-pad", &alice).await;
        assert_eq!(status, StatusCode::OK, "instance {on}: {body}");
    }

    let mut waits = Vec::new();
    cluster.client(1).publish(&alice, "left-pad", "1.1.0").await;
    for on in [0, 2] {
        waits.push(
            shows(
                &cluster,
                on,
                "left-pad",
                &alice,
                "1.1.0 as latest",
                |_, body| {
                    body["dist-tags"]["latest"] == "1.1.0" && body["versions"]["1.1.0"].is_object()
                },
            )
            .await,
        );
    }
    // The tarball written through one instance downloads through another.
    let (_, document) = packument(&cluster, 2, "left-pad", &alice).await;
    let tarball_url = document["versions"]["1.1.0"]["dist"]["tarball"]
        .as_str()
        .unwrap();
    let path = tarball_url
        .split_once("/left-pad/")
        .map(|(_, rest)| format!("/left-pad/{rest}"))
        .unwrap();
    let download = reqwest::Client::new()
        .get(cluster.instances[0].url(&path))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap();
    assert_eq!(download.status(), StatusCode::OK);
    assert!(!download.bytes().await.unwrap().is_empty());

    let (status, body) = cluster
        .client(2)
        .send(
            "PUT",
            "/-/package/left-pad/dist-tags/legacy",
            &alice,
            Some(&json!("1.0.0")),
        )
        .await;
    assert!(status.is_success(), "{body}");
    for on in [0, 1] {
        waits.push(
            shows(
                &cluster,
                on,
                "left-pad",
                &alice,
                "the legacy tag",
                |_, body| body["dist-tags"]["legacy"] == "1.0.0",
            )
            .await,
        );
    }

    // An owner change on one instance: bob may publish through another at once.
    let (status, document) = cluster
        .client(0)
        .send("GET", "/left-pad?write=true", &alice, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    // What `npm owner add` sends.
    let rev = document["_rev"].as_str().unwrap();
    let changed = json!({
        "_id": "left-pad",
        "_rev": rev,
        "maintainers": [
            { "name": "alice", "email": "alice@example.com" },
            { "name": "bob", "email": "bob@example.com" }
        ]
    });
    let (status, body) = cluster
        .client(0)
        .send(
            "PUT",
            &format!("/left-pad/-rev/{rev}"),
            &alice,
            Some(&changed),
        )
        .await;
    assert!(status.is_success(), "{body}");
    let bob = token(cluster.admin_dir(), "bob", "maintainer", &[]);
    cluster.client(2).publish(&bob, "left-pad", "1.2.0").await;

    // A whole-package unpublish through one instance: the others answer 404.
    let (_, document) = cluster
        .client(1)
        .send("GET", "/left-pad?write=true", &alice, None)
        .await;
    let rev = document["_rev"].as_str().unwrap();
    let (status, body) = cluster
        .client(1)
        .send("DELETE", &format!("/left-pad/-rev/{rev}"), &alice, None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for on in [0, 2] {
        waits.push(
            shows(
                &cluster,
                on,
                "left-pad",
                &alice,
                "the unpublish",
                |status, _| status == StatusCode::NOT_FOUND,
            )
            .await,
        );
    }
    let slowest = waits.iter().max().unwrap();
    eprintln!("changes reached the other instances within {slowest:?} (every wait: {waits:?})");
}

#[tokio::test]
async fn a_revoked_token_is_refused_by_every_instance() {
    let cluster = Cluster::start(2, &[]).await;
    add_user(cluster.admin_dir(), "alice", "alice-pass-1", "maintainer");
    let alice = token(cluster.admin_dir(), "alice", "maintainer", &[]);
    let ci = token(cluster.admin_dir(), "alice", "ci-readonly", &[]);
    // Both instances have checked the token and trust it for a while.
    for on in 0..2 {
        let (status, body) = cluster.client(on).send("GET", "/-/whoami", &ci, None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let (status, body) = cluster
        .client(0)
        .send("DELETE", &format!("/-/user/token/{ci}"), &alice, None)
        .await;
    assert!(status.is_success(), "{body}");
    eventually(
        "instance 1 to refuse the revoked token",
        PROPAGATION,
        || async {
            let (status, _) = cluster.client(1).send("GET", "/-/whoami", &ci, None).await;
            (status == StatusCode::UNAUTHORIZED).then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn each_delivery_is_sent_once_by_whichever_instances_run() {
    let receiver = Receiver::start(0).await;
    let cluster = Cluster::start(
        3,
        &[
            ("PACKR_WEBHOOK_ALLOWED_NETWORKS", LOOPBACK),
            ("PACKR_WEBHOOK_RETRY_SCHEDULE", "1s,1s,1s"),
            // A killed instance's claims lapse after twice this and 5 s.
            ("PACKR_WEBHOOK_TIMEOUT", "2s"),
        ],
    )
    .await;
    add_user(cluster.admin_dir(), "root", "root-pass-1", "admin");
    let root = token(cluster.admin_dir(), "root", "admin", &[]);
    let (_, secret) = cluster
        .client(0)
        .create_hook(
            &root,
            json!({ "url": receiver.url, "events": ["package.published"] }),
        )
        .await;
    receiver.set_secret(&secret);

    let mut cluster = cluster;
    for n in 0..12 {
        let on = if n > 5 { [0, 2][n % 2] } else { n % 3 };
        cluster
            .client(on)
            .publish(&root, &format!("pkg-{n}"), "1.0.0")
            .await;
        if n == 5 {
            // An instance dies mid-stream: whatever it held is sent by the others.
            cluster.instances[1].kill().await;
        }
    }
    let hits = eventually("12 deliveries", Duration::from_secs(30), || async {
        let hits = receiver.hits();
        (hits.len() >= 12).then_some(hits)
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let hits_after = receiver.hits();
    let mut ids: Vec<&str> = hits_after.iter().map(|hit| hit.delivery.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 12, "every delivery arrives, none lost: {hits:?}");
    // Instances never send one delivery at once; only a send the killed instance had under way
    // when it died may be sent again (at least once, as webhooks promise).
    assert!(hits_after.len() <= 13, "sent twice: {hits_after:?}");
    assert!(hits_after.iter().all(|hit| hit.signature_ok));
}

#[tokio::test]
async fn the_login_rate_limit_holds_for_the_cluster_as_a_whole() {
    let cluster = Cluster::start(3, &[("PACKR_LOGIN_RATE_LIMIT", "3/m")]).await;
    add_user(cluster.admin_dir(), "alice", "alice-pass-1", "maintainer");
    let guess = json!({ "name": "alice", "password": "not-her-password" });
    let attempt = |on: usize| {
        let client = cluster.client(on);
        let guess = guess.clone();
        async move {
            client
                .send("PUT", "/-/user/org.couchdb.user:alice", "", Some(&guess))
                .await
        }
    };
    // Three guesses, one per instance: each instance alone has used a third of its bucket.
    for on in 0..3 {
        let (status, body) = attempt(on).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "instance {on}: {body}");
    }
    for on in 0..3 {
        let (status, body) = attempt(on).await;
        assert_eq!(
            status,
            StatusCode::TOO_MANY_REQUESTS,
            "instance {on}: {body}"
        );
        assert!(
            body["error"].as_str().unwrap().contains("try again in"),
            "{body}"
        );
    }
}

/// A form POST to `url` with `cookies`, redirects not followed.
async fn post_form(url: &str, fields: &[(&str, &str)], cookies: Option<&str>) -> reqwest::Response {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut request = http
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(serde_urlencoded::to_string(fields).unwrap());
    if let Some(cookies) = cookies {
        request = request.header("cookie", cookies);
    }
    request.send().await.unwrap()
}

/// `name=value` of each cookie a response sets.
fn cookies_of(response: &reqwest::Response) -> Vec<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|value| value.to_str().ok()?.split(';').next().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn a_device_login_started_on_one_instance_is_approved_on_another_and_polled_on_a_third() {
    let cluster = Cluster::start(3, &[("PACKR_DEVICE_POLL_INTERVAL", "1s")]).await;
    add_user(cluster.admin_dir(), "alice", "alice-pass-1", "maintainer");
    let [a, b, c] = [0, 1, 2].map(|on| cluster.instances[on].url.clone());

    let start: Value = post_form(
        &format!("{a}/-/v1/device/authorize"),
        &[("client_id", "cli")],
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    let user_code = start["user_code"].as_str().unwrap();
    let device_code = start["device_code"].as_str().unwrap();

    // The browser, on instance B: the page, signing in, approving.
    let page = reqwest::get(format!("{b}/-/cli/auth?code={user_code}"))
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let nonce = cookies_of(&page)
        .into_iter()
        .find(|cookie| cookie.starts_with("packr_csrf="))
        .expect("a CSRF nonce cookie");
    let html = page.text().await.unwrap();
    let (_, rest) = html.split_once(r#"name="csrf" value=""#).unwrap();
    let csrf = rest.split('"').next().unwrap().to_owned();
    let login = post_form(
        &format!("{b}/-/cli/auth/login"),
        &[
            ("csrf", &csrf),
            ("code", user_code),
            ("username", "alice"),
            ("password", "alice-pass-1"),
        ],
        Some(&nonce),
    )
    .await;
    assert_eq!(login.status(), StatusCode::SEE_OTHER);
    let session = cookies_of(&login)
        .into_iter()
        .find(|cookie| cookie.starts_with("packr_session="))
        .expect("a session cookie");
    let cookies = format!("{nonce}; {session}");
    let decided = post_form(
        &format!("{b}/-/cli/auth/decide"),
        &[
            ("csrf", &csrf),
            ("code", user_code),
            ("decision", "approve"),
        ],
        Some(&cookies),
    )
    .await;
    let html = decided.text().await.unwrap();
    assert!(html.contains("Approved"), "{html}");

    // The terminal polls instance C and gets a token that works on A.
    let poll: Value = post_form(
        &format!("{c}/-/v1/device/token"),
        &[
            ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
            ("device_code", device_code),
        ],
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    let token = poll["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no token: {poll}"));
    let (status, whoami) = cluster
        .client(0)
        .send("GET", "/-/whoami", token, None)
        .await;
    assert_eq!(status, StatusCode::OK, "{whoami}");
    assert_eq!(whoami["username"], "alice");
}

#[tokio::test]
async fn restarting_each_instance_in_turn_under_an_install_loop_fails_no_install() {
    let mut cluster = Cluster::start(3, &[]).await;
    add_user(cluster.admin_dir(), "alice", "alice-pass-1", "maintainer");
    let alice = token(cluster.admin_dir(), "alice", "maintainer", &[]);
    for name in ["rolling-a", "rolling-b", "rolling-c"] {
        cluster.client(0).publish(&alice, name, "1.0.0").await;
    }
    let backends: Vec<String> = cluster
        .instances
        .iter()
        .map(|i| i.listen().to_owned())
        .collect();
    let refs: Vec<&str> = backends.iter().map(String::as_str).collect();
    let balancer = crate::support::haproxy::Haproxy::start(&refs).await;

    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let installs = {
        let (url, token, done) = (balancer.url.clone(), alice.clone(), done.clone());
        tokio::spawn(async move {
            let client = crate::support::clients::ClientEnv::for_registry(&url, Some(&token));
            let mut rounds = 0;
            while !done.load(std::sync::atomic::Ordering::SeqCst) || rounds < 2 {
                client.clear_caches();
                let _ = std::fs::remove_dir_all(client.project().join("node_modules"));
                let _ = std::fs::remove_file(client.project().join("package-lock.json"));
                client
                    .npm()
                    .args([
                        "install",
                        "rolling-a",
                        "rolling-b",
                        "rolling-c",
                        "--no-save",
                    ])
                    .succeeds()
                    .await;
                for name in ["rolling-a", "rolling-b", "rolling-c"] {
                    assert!(
                        client
                            .project()
                            .join("node_modules")
                            .join(name)
                            .join("package.json")
                            .exists()
                    );
                }
                rounds += 1;
            }
            rounds
        })
    };

    for (at, listen) in backends.iter().enumerate() {
        tokio::time::sleep(Duration::from_millis(700)).await;
        let status = cluster.instances[at].terminate().await;
        assert!(status.success(), "instance {at} stopped with {status}");
        let dir = tempfile::tempdir().unwrap();
        let env: Vec<(&str, &str)> = cluster
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let restarted = ServeProcess::start_at(dir.path(), listen, "restarted.log", &env).await;
        cluster.instances[at] = restarted;
        cluster._dirs.push(dir);
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let rounds = installs.await.expect("every install in the loop succeeded");
    eprintln!("{rounds} installs through three rolling restarts");
    assert!(rounds >= 3, "the loop ran {rounds} installs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn npm_pnpm_and_yarn_work_through_three_instances_in_rotation_with_a_replica() {
    use crate::support::clients::ClientEnv;
    use crate::support::fixtures::{Package, assert_installed};

    let replica = crate::support::postgres::replica().await;
    let cluster = Cluster::start_with_replica(3, &[], Some(&replica)).await;
    add_user(cluster.admin_dir(), "alice", "alice-pass-1", "maintainer");
    let alice = token(cluster.admin_dir(), "alice", "maintainer", &[]);
    let backends: Vec<String> = cluster
        .instances
        .iter()
        .map(|i| i.listen().to_owned())
        .collect();
    let refs: Vec<&str> = backends.iter().map(String::as_str).collect();
    // Round robin: each request of a client goes to the next instance.
    let balancer = crate::support::haproxy::Haproxy::start(&refs).await;
    // yarn 1 sends the token for unscoped packages only with always-auth.
    let env = ClientEnv::for_registry(&balancer.url, Some(&alice)).with_always_auth();

    for package in [
        Package::new("greeting", "1.0.0"),
        Package::new("greeting", "1.1.0"),
        Package::new("@acme/widget", "1.0.0").dependency("greeting", "~1.0.0"),
    ] {
        let dir = env.package(&package);
        env.npm().arg("publish").current_dir(dir).succeeds().await;
    }
    for client in ["npm", "pnpm", "yarn1", "yarn4"] {
        let project = env.new_project(&format!("with-{client}"));
        let command = match client {
            "npm" => env.npm().arg("install"),
            "pnpm" => env.pnpm().arg("add"),
            "yarn1" => env.yarn1().arg("add"),
            _ => env.yarn4().arg("add"),
        };
        command
            .args(["@acme/widget", "greeting"])
            .current_dir(&project)
            .succeeds()
            .await;
        assert_installed(&project, "@acme/widget", "1.0.0");
        assert_installed(&project, "greeting", "1.1.0");
        env.clear_caches();
    }
    // A dist-tag set through the balancer is what every instance then serves.
    env.npm()
        .args(["dist-tag", "add", "greeting@1.0.0", "stable"])
        .succeeds()
        .await;
    for on in 0..3 {
        shows(
            &cluster,
            on,
            "greeting",
            &alice,
            "the stable tag",
            |_, body| body["dist-tags"]["stable"] == "1.0.0",
        )
        .await;
    }
    // The replica served reads too.
    let health: Value = reqwest::get(cluster.instances[0].url("/-/health"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(health.to_string().contains("replica"), "{health}");
}
