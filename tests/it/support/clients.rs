//! Real npm, pnpm and yarn processes, each run with an isolated HOME, cache and registry config.
//!
//! The clients are installed once, with the machine's `npm`, into `<target>/test-clients/` (see
//! [`super::install`]), and reused by later runs. Set `PACKR_TEST_VERBOSE=1` (with
//! `-- --nocapture`) to see every command's output.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use tempfile::TempDir;

use super::fixtures::Package;
use super::install::{install_once, npm_install};
use super::server::TestServer;

/// The client versions the suite runs; changing this list reinstalls them.
const CLIENTS: &[&str] = &[
    "npm@11.21.2",
    "npm10@npm:npm@10.9.9",
    "pnpm@10.34.9",
    "yarn@1.22.22",
    "@yarnpkg/cli-dist@4.18.1",
];

/// How long one client command may take before it is killed and the test fails.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(300);

/// The folder holding `node_modules/{npm,pnpm,yarn,@yarnpkg/cli-dist}`, installed on first use.
fn install_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        install_once("test-clients", &CLIENTS.join(" "), |dir| {
            npm_install(dir, CLIENTS)
        })
        .unwrap_or_else(|err| panic!("installing the test clients: {err:#}"))
    })
}

fn modules() -> PathBuf {
    install_dir().join("node_modules")
}

/// npm 11's entry script.
pub fn npm() -> PathBuf {
    modules().join("npm/bin/npm-cli.js")
}

/// A package npm 11 bundles (such as `pacote`), for scripts that do what npm does.
pub fn npm_dependency(name: &str) -> PathBuf {
    modules().join("npm/node_modules").join(name)
}

/// npm 10's entry script (installed under the alias `npm10`).
pub fn npm10() -> PathBuf {
    modules().join("npm10/bin/npm-cli.js")
}

/// pnpm 10's entry script.
pub fn pnpm() -> PathBuf {
    modules().join("pnpm/bin/pnpm.cjs")
}

/// yarn 1 (classic)'s entry script.
pub fn yarn1() -> PathBuf {
    modules().join("yarn/bin/yarn.js")
}

/// yarn 4 (berry)'s bundled entry script.
pub fn yarn4() -> PathBuf {
    modules().join("@yarnpkg/cli-dist/bin/yarn.js")
}

/// A sandbox for client processes: HOME, caches, stores and projects in one temporary folder, and
/// the user-level `.npmrc` and `.yarnrc.yml` pointing at a test server.
pub struct ClientEnv {
    root: TempDir,
    registry: String,
    host: String,
    token: Option<String>,
    always_auth: bool,
}

impl ClientEnv {
    /// A sandbox whose clients use `server` with `token` (None: anonymous).
    pub fn new(server: &TestServer, token: Option<&str>) -> Self {
        Self::for_registry(&server.url, token)
    }

    /// A sandbox whose clients use the registry at `url` (`http://HOST:PORT`) with `token`.
    pub fn for_registry(url: &str, token: Option<&str>) -> Self {
        let root = tempfile::Builder::new()
            .prefix("packr-client-")
            .tempdir()
            .expect("creating the client sandbox");
        for dir in ["home", "project", "packages", "tmp"] {
            fs::create_dir_all(root.path().join(dir)).expect("creating sandbox folders");
        }
        let env = Self {
            root,
            registry: format!("{url}/"),
            host: url.trim_start_matches("http://").to_owned(),
            token: token.map(str::to_owned),
            always_auth: false,
        };
        env.write_project_manifest(&env.project());
        env.write_config();
        env
    }

    /// Adds `always-auth=true` to `.npmrc` (yarn 1 only sends tokens for unscoped packages then).
    pub fn with_always_auth(mut self) -> Self {
        self.always_auth = true;
        self.write_config();
        self
    }

    /// Uses `token` (None: anonymous) from now on.
    pub fn set_token(&mut self, token: Option<&str>) {
        self.token = token.map(str::to_owned);
        self.write_config();
    }

    /// Points the configs at `server` again (its port may have changed after a restart).
    pub fn point_at(&mut self, server: &TestServer) {
        self.registry = format!("{}/", server.url);
        self.host = server.host();
        self.write_config();
    }

    /// The sandbox's HOME.
    pub fn home(&self) -> PathBuf {
        self.root.path().join("home")
    }

    /// The default project folder commands run in (it has a private `package.json`).
    pub fn project(&self) -> PathBuf {
        self.root.path().join("project")
    }

    /// A new empty project folder `name` with a private `package.json`.
    pub fn new_project(&self, name: &str) -> PathBuf {
        let dir = self.root.path().join(name);
        fs::create_dir_all(&dir).expect("creating a project folder");
        self.write_project_manifest(&dir);
        dir
    }

    /// Writes `package` as a publishable folder inside the sandbox and returns its path.
    pub fn package(&self, package: &Package) -> PathBuf {
        package.write_into(&self.root.path().join("packages"))
    }

    /// Empties every client cache and store (for "install from a lockfile with an empty cache").
    pub fn clear_caches(&self) {
        for dir in [
            "npm-cache",
            "pnpm-store",
            "yarn1-cache",
            "yarn-global",
            "home/.cache",
        ] {
            let path = self.root.path().join(dir);
            if path.exists() {
                fs::remove_dir_all(&path).expect("clearing a client cache");
            }
        }
    }

    /// `node SCRIPT ARGS` in the default project, with the sandbox's environment.
    pub fn node(&self, script: PathBuf) -> ClientCommand {
        self.command("node", script)
    }

    /// `npm ARGS` in the default project.
    pub fn npm(&self) -> ClientCommand {
        self.command("npm", npm())
    }

    /// npm 10 (`npm ARGS`) in the default project.
    pub fn npm10(&self) -> ClientCommand {
        self.command("npm10", npm10())
    }

    /// `pnpm ARGS` in the default project.
    pub fn pnpm(&self) -> ClientCommand {
        let store = self.root.path().join("pnpm-store");
        self.command("pnpm", pnpm())
            .env("npm_config_store_dir", store)
    }

    /// yarn 1 (`yarn ARGS`) in the default project.
    pub fn yarn1(&self) -> ClientCommand {
        self.command("yarn1", yarn1())
            .args(["--non-interactive", "--no-progress"])
    }

    /// yarn 4 (`yarn ARGS`) in the default project; it never downloads another yarn.
    pub fn yarn4(&self) -> ClientCommand {
        self.command("yarn4", yarn4())
    }

    fn write_project_manifest(&self, dir: &Path) {
        let manifest = serde_json::json!({
            "name": "packr-test-project",
            "version": "1.0.0",
            "private": true,
        });
        fs::write(dir.join("package.json"), format!("{manifest:#}\n"))
            .expect("writing the project package.json");
    }

    fn write_config(&self) {
        let mut npmrc = format!("registry={}\n", self.registry);
        if let Some(token) = &self.token {
            let _ = writeln!(npmrc, "//{}/:_authToken={token}", self.host);
        }
        if self.always_auth {
            npmrc.push_str("always-auth=true\n");
        }
        fs::write(self.npmrc_path(), npmrc).expect("writing .npmrc");

        let root = self.root.path().display();
        let mut yarnrc = format!(
            "npmRegistryServer: \"{registry}\"\n\
             npmAlwaysAuth: true\n\
             unsafeHttpWhitelist:\n  - \"127.0.0.1\"\n\
             npmMinimalAgeGate: 0\n\
             enableTelemetry: false\n\
             enableGlobalCache: false\n\
             enableImmutableInstalls: false\n\
             enableProgressBars: false\n\
             enableColors: false\n\
             globalFolder: \"{root}/yarn-global\"\n\
             nodeLinker: node-modules\n",
            registry = self.registry.trim_end_matches('/'),
        );
        if let Some(token) = &self.token {
            let _ = writeln!(yarnrc, "npmAuthToken: \"{token}\"");
        }
        fs::write(self.home().join(".yarnrc.yml"), yarnrc).expect("writing .yarnrc.yml");
    }

    /// The user-level `.npmrc` npm, pnpm and yarn 1 read (and `npm login`/`logout` edit).
    pub fn npmrc_path(&self) -> PathBuf {
        self.home().join(".npmrc")
    }

    fn command(&self, name: &str, script: PathBuf) -> ClientCommand {
        let root = self.root.path();
        let home = self.home();
        let bin = modules().join(".bin");
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut paths = vec![bin];
        paths.extend(std::env::split_paths(&path));
        let path = std::env::join_paths(paths).expect("joining PATH");
        let env: Vec<(OsString, OsString)> = [
            ("PATH", path),
            ("HOME", home.clone().into_os_string()),
            ("USERPROFILE", home.clone().into_os_string()),
            ("TMPDIR", root.join("tmp").into_os_string()),
            ("XDG_CONFIG_HOME", home.join(".config").into_os_string()),
            ("XDG_CACHE_HOME", home.join(".cache").into_os_string()),
            ("XDG_DATA_HOME", home.join(".local/share").into_os_string()),
            ("XDG_STATE_HOME", home.join(".local/state").into_os_string()),
            ("LANG", "C.UTF-8".into()),
            ("CI", "true".into()),
            ("NO_COLOR", "1".into()),
            ("FORCE_COLOR", "0".into()),
            ("npm_config_userconfig", self.npmrc_path().into_os_string()),
            (
                "npm_config_globalconfig",
                root.join("global-npmrc").into_os_string(),
            ),
            ("npm_config_cache", root.join("npm-cache").into_os_string()),
            ("npm_config_update_notifier", "false".into()),
            ("npm_config_audit", "false".into()),
            ("npm_config_fund", "false".into()),
            ("npm_config_color", "false".into()),
            ("npm_config_progress", "false".into()),
            (
                "YARN_CACHE_FOLDER",
                root.join("yarn1-cache").into_os_string(),
            ),
            ("YARN_IGNORE_PATH", "1".into()),
            ("YARN_ENABLE_TELEMETRY", "0".into()),
            ("COREPACK_ENABLE_STRICT", "0".into()),
            ("COREPACK_ENABLE_DOWNLOAD_PROMPT", "0".into()),
        ]
        .into_iter()
        .map(|(key, value)| (OsString::from(key), value))
        .collect();
        ClientCommand {
            name: name.to_owned(),
            script,
            args: Vec::new(),
            cwd: self.project(),
            env,
            answers: None,
        }
    }
}

/// One client invocation being assembled; run it with [`ClientCommand::succeeds`] and friends.
pub struct ClientCommand {
    name: String,
    script: PathBuf,
    args: Vec<OsString>,
    cwd: PathBuf,
    env: Vec<(OsString, OsString)>,
    answers: Option<Vec<(String, String)>>,
}

impl ClientCommand {
    /// Appends one argument.
    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Appends arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Runs in `dir` instead of the default project.
    pub fn current_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cwd = dir.into();
        self
    }

    /// Sets an environment variable for this run.
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Runs on a pseudo-terminal (through `support/pty_answer.py`), typing each answer once its
    /// prompt has appeared; for prompts that need a TTY, such as `npm login`'s. stdout then holds
    /// everything the client printed.
    pub fn answering(mut self, answers: &[(&str, &str)]) -> Self {
        self.answers = Some(
            answers
                .iter()
                .map(|(prompt, answer)| ((*prompt).to_owned(), (*answer).to_owned()))
                .collect(),
        );
        self
    }

    /// The command line, for messages.
    fn describe(&self) -> String {
        let mut text = self.name.clone();
        for arg in &self.args {
            text.push(' ');
            text.push_str(&arg.to_string_lossy());
        }
        format!("`{text}` in {}", self.cwd.display())
    }

    /// Runs the command (killed after a generous timeout) and returns what it printed.
    pub async fn run(self) -> ClientOutput {
        let description = self.describe();
        let mut command = match &self.answers {
            None => tokio::process::Command::new("node"),
            Some(answers) => {
                let mut command = tokio::process::Command::new("python3");
                command.arg(
                    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/support/pty_answer.py"),
                );
                for (prompt, answer) in answers {
                    command.args([prompt, answer]);
                }
                command.args(["--", "node"]);
                command
            }
        };
        command
            .arg(&self.script)
            .args(&self.args)
            .current_dir(&self.cwd)
            .env_clear()
            .envs(self.env.iter().map(|(key, value)| (key, value)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let child = command
            .spawn()
            .unwrap_or_else(|err| panic!("spawning {description}: {err}"));
        let output = tokio::time::timeout(CLIENT_TIMEOUT, child.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("{description} did not finish within {CLIENT_TIMEOUT:?}"))
            .unwrap_or_else(|err| panic!("waiting for {description}: {err}"));
        let output = ClientOutput {
            description,
            status: output.status,
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        };
        if std::env::var_os("PACKR_TEST_VERBOSE").is_some() {
            eprintln!("{}\n{output}", output.description);
        }
        output
    }

    /// Runs the command and panics, showing both outputs, unless it exits 0.
    pub async fn succeeds(self) -> ClientOutput {
        let output = self.run().await;
        assert!(
            output.status.success(),
            "{} should have succeeded\n{output}",
            output.description
        );
        output
    }

    /// Runs the command and panics, showing both outputs, if it exits 0.
    pub async fn fails(self) -> ClientOutput {
        let output = self.run().await;
        assert!(
            !output.status.success(),
            "{} should have failed\n{output}",
            output.description
        );
        output
    }
}

/// What a finished client process printed.
pub struct ClientOutput {
    description: String,
    /// Exit status.
    pub status: ExitStatus,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl ClientOutput {
    /// Panics, showing both outputs, unless stdout or stderr contains `text`.
    pub fn assert_mentions(&self, text: &str) -> &Self {
        assert!(
            self.stdout.contains(text) || self.stderr.contains(text),
            "{} should have printed {text:?}\n{self}",
            self.description
        );
        self
    }

    /// Panics, showing both outputs, if stdout or stderr contains `text`.
    pub fn assert_does_not_mention(&self, text: &str) -> &Self {
        assert!(
            !self.stdout.contains(text) && !self.stderr.contains(text),
            "{} should not have printed {text:?}\n{self}",
            self.description
        );
        self
    }
}

impl std::fmt::Display for ClientOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit: {}\n--- stdout\n{}\n--- stderr\n{}",
            self.status, self.stdout, self.stderr
        )
    }
}
