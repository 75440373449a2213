//! Secrets and durability as the real `packr serve` shows them: key files that are empty or
//! short stop the server before it answers, and an acknowledged publish is synced to disk (the
//! blob, its directory entry and the database log) before the 201.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;

use crate::support::publish_body::PublishBody;
use crate::support::serve_process::ServeProcess;
use crate::support::server::{add_user, packr_binary, token};

/// A free loopback address for `packr serve --listen`.
fn free_address() -> String {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("finding a free port")
        .to_string()
}

/// `packr serve` on `data_dir` with only `env` among `PACKR_*` variables, appended to `command`:
/// the `packr` binary itself, or a tracer whose last argument is the binary.
fn serve_command(
    mut command: Command,
    data_dir: &Path,
    listen: &str,
    env: &[(&str, &str)],
) -> Command {
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("PACKR_") {
            command.env_remove(key);
        }
    }
    command
        .args(["serve", "--listen", listen, "--data-dir"])
        .arg(data_dir)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    command
}

/// Runs `packr serve` and expects it to refuse to start: its exit status and stderr. Fails when
/// its port answers while it keeps running, or when it neither exits nor answers within 30 s.
/// (The port is free when picked, but another test's server may take it before this one would:
/// an answer alone does not say which process gave it, a refusal exits soon after anyway.)
fn serve_refuses(data_dir: &Path, env: &[(&str, &str)]) -> (ExitStatus, String) {
    let listen = free_address();
    let log = data_dir.join("serve.stderr");
    let mut child = serve_command(Command::new(packr_binary()), data_dir, &listen, env)
        .stderr(std::fs::File::create(&log).expect("creating the log"))
        .spawn()
        .expect("spawning packr serve");
    let started = Instant::now();
    let mut answered: Option<Instant> = None;
    let status = loop {
        if let Some(status) = child.try_wait().expect("polling packr serve") {
            break status;
        }
        if answered.is_none() && std::net::TcpStream::connect(&listen).is_ok() {
            answered = Some(Instant::now());
        }
        let serving = answered.is_some_and(|at| at.elapsed() > Duration::from_secs(5));
        if serving || started.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "packr serve started with a bad secret ({env:?}):\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (status, std::fs::read_to_string(&log).unwrap_or_default())
}

#[test]
fn packr_serve_refuses_an_empty_or_short_key_file_and_never_answers() {
    let short = "ab".repeat(31);
    for file in ["session.key", "jwt.key", "webhook.key"] {
        for contents in ["", "\n", short.as_str()] {
            let data = tempfile::tempdir().expect("temp dir");
            let secrets = data.path().join("secrets");
            std::fs::create_dir_all(&secrets).expect("creating secrets/");
            std::fs::write(secrets.join(file), contents).expect("writing the key file");
            let (status, stderr) = serve_refuses(data.path(), &[]);
            assert!(!status.success(), "{file} = {contents:?}: {status}");
            assert!(
                stderr.contains(&format!("secrets/{file}")) && stderr.contains("at least 32 bytes"),
                "{file} = {contents:?}: the message names the file and the rule:\n{stderr}"
            );
            assert_eq!(
                std::fs::read_to_string(secrets.join(file)).expect("the key file stays"),
                contents,
                "a bad key is reported, not silently replaced"
            );
        }
    }
}

#[test]
fn packr_serve_refuses_a_short_or_non_hex_secret_in_the_environment() {
    let cases = [
        ("PACKR_JWT_SECRET", "not-a-long-secret".to_owned()),
        ("PACKR_JWT_SECRET", "ab".repeat(31)),
        ("PACKR_SECRET_KEY", "ab".repeat(16)),
        ("PACKR_SECRET_KEY", "zz".repeat(32)),
    ];
    for (var, value) in &cases {
        let data = tempfile::tempdir().expect("temp dir");
        let (status, stderr) = serve_refuses(data.path(), &[(var, value)]);
        assert!(!status.success(), "{var}={value}: {status}");
        assert!(stderr.contains(var), "{var}={value}:\n{stderr}");
        assert!(
            !stderr.contains(value.as_str()),
            "the secret itself is not printed:\n{stderr}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_keys_are_whole_private_and_kept_and_a_long_hex_secret_is_accepted() {
    let data = tempfile::tempdir().expect("temp dir");
    let mut serve = ServeProcess::start(data.path(), "serve.log", &[]).await;
    serve.kill().await;
    let secrets = data.path().join("secrets");
    let mut keys = Vec::new();
    for file in ["jwt.key", "session.key", "webhook.key"] {
        let text = std::fs::read_to_string(secrets.join(file)).expect("the generated key");
        assert!(
            text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()),
            "{file}: {text:?}"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(secrets.join(file))
                .expect("metadata")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{file}");
        }
        keys.push(text);
    }
    let mut names: Vec<_> = std::fs::read_dir(&secrets)
        .expect("secrets/")
        .map(|entry| entry.expect("entry").file_name())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["jwt.key", "session.key", "webhook.key"],
        "no temporary files"
    );

    let long = "0123456789abcdef".repeat(6);
    let serve = ServeProcess::start(
        data.path(),
        "serve2.log",
        &[("PACKR_JWT_SECRET", &long), ("PACKR_SECRET_KEY", &keys[2])],
    )
    .await;
    let health = reqwest::get(serve.url("/-/health/ready"))
        .await
        .expect("ready");
    assert_eq!(health.status(), StatusCode::OK);
    for (file, before) in ["jwt.key", "session.key", "webhook.key"].iter().zip(&keys) {
        assert_eq!(
            &std::fs::read_to_string(secrets.join(file)).expect("key"),
            before
        );
    }
}

/// One traced system call: its name and the path strace printed for its first argument.
#[derive(Debug)]
struct Call {
    name: String,
    line: String,
}

/// The `fsync`, `fdatasync`, `syncfs` and `rename*` calls in an `strace -f -y` log, in order.
fn calls(log: &str) -> Vec<Call> {
    log.lines()
        .filter_map(|line| {
            let rest = line
                .split_once(' ')
                .map_or(line, |(_, rest)| rest)
                .trim_start();
            let name = rest.split('(').next()?.trim();
            let known = [
                "fsync",
                "fdatasync",
                "syncfs",
                "rename",
                "renameat",
                "renameat2",
            ];
            known.contains(&name).then(|| Call {
                name: name.to_owned(),
                line: line.to_owned(),
            })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acknowledged_publish_has_synced_its_blob_its_directory_and_then_the_database_log() {
    let data = tempfile::tempdir().expect("temp dir");
    add_user(data.path(), "alice", "correct horse battery", "admin");
    let token = token(data.path(), "alice", "maintainer", &[]);

    let listen = free_address();
    let trace = data.path().join("strace.log");
    let mut strace = Command::new("strace");
    strace
        .args(["-f", "-qq", "-y", "-e"])
        .arg("trace=fsync,fdatasync,syncfs,rename,renameat,renameat2")
        .arg("-o")
        .arg(&trace)
        .arg(packr_binary());
    let mut traced = serve_command(strace, data.path(), &listen, &[]);
    traced.stderr(Stdio::null());
    let mut child = traced.spawn().expect("spawning strace packr serve");
    let url = format!("http://{listen}");
    let http = reqwest::Client::new();
    let started = Instant::now();
    while http
        .get(format!("{url}/-/health/live"))
        .send()
        .await
        .is_err()
    {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "packr serve did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let before = calls(&std::fs::read_to_string(&trace).unwrap_or_default()).len();

    let body = PublishBody::new("durable", "1.0.0");
    let response = http
        .put(format!("{url}/durable"))
        .bearer_auth(&token)
        .json(&body.json())
        .send()
        .await
        .expect("PUT /durable");
    assert_eq!(response.status(), StatusCode::CREATED);
    let log = std::fs::read_to_string(&trace).expect("the strace log");
    let _ = child.kill();
    let _ = child.wait();

    let publish: Vec<Call> = calls(&log).into_iter().skip(before).collect();
    let rename = publish
        .iter()
        .position(|c| c.name.starts_with("rename") && c.line.contains("/blobs/"))
        .unwrap_or_else(|| panic!("the blob is renamed into place: {publish:#?}"));
    // One syncfs of the blob store's file system puts both the bytes and the renamed entry on disk.
    let blob_sync = rename
        + publish[rename..]
            .iter()
            .position(|c| c.name == "syncfs" && c.line.contains("/blobs>"))
            .unwrap_or_else(|| {
                panic!("the blob and its directory entry are synced after the rename: {publish:#?}")
            });
    assert!(
        publish[blob_sync..]
            .iter()
            .any(|c| c.name.contains("sync") && c.line.contains("packr.db-wal")),
        "after the blob, the commit syncs the write-ahead log before the 201: {publish:#?}"
    );
}
