//! Real identity providers on loopback for the OAuth sign-in tests: oidc-provider (a certified
//! OpenID Connect provider library, with its development login and consent pages) and
//! oauth2-mock-server (GitHub-shaped, or a scriptable OpenID provider). Both are installed on
//! first use with npm into `<target>/test-oidc/` (see [`super::install`]). Also drives headless
//! Chromium through a provider sign-in.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use super::browser::run_script;
use super::install::{install_once, npm_install};

/// The provider versions the tests run; changing this list reinstalls them.
const PACKAGES: &[&str] = &["oidc-provider@9.13.3", "oauth2-mock-server@9.3.0"];
/// The client registered at the providers.
pub const CLIENT_ID: &str = "packr-test";
/// Its secret.
pub const CLIENT_SECRET: &str = "packr-secret";

fn install_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        install_once("test-oidc", &PACKAGES.join(" "), |dir| {
            npm_install(dir, PACKAGES)
        })
        .unwrap_or_else(|err| panic!("installing the test identity providers: {err:#}"))
    })
}

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/it/support")
        .join(name)
}

/// A provider process speaking JSON lines on stdout; killed when dropped.
struct Process {
    child: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
}

impl Process {
    fn spawn(script_name: &str, env: &[(&str, &str)]) -> Self {
        let mut child = Command::new("node")
            .arg(script(script_name))
            .env("OIDC_DIR", install_dir())
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("node starts");
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
        Self {
            child,
            stdin,
            stdout,
        }
    }

    /// The next JSON line the script prints (other lines are warnings).
    async fn next_json(&mut self) -> Value {
        let read = async {
            while let Some(line) = self.stdout.next_line().await.expect("stdout readable") {
                if let Ok(value) = serde_json::from_str(&line) {
                    return value;
                }
            }
            panic!("the provider exited early: {:?}", self.child.try_wait());
        };
        tokio::time::timeout(Duration::from_secs(30), read)
            .await
            .expect("the provider answered within 30 s")
    }
}

/// oidc-provider on a free loopback port. Its login form takes any name with any password;
/// account NAME has the verified e-mail `NAME@example.com` (what `TestServer::add_user` gives).
pub struct OidcProvider {
    /// The issuer URL (`http://127.0.0.1:PORT`).
    pub issuer: String,
    process: Process,
}

impl OidcProvider {
    /// Starts the provider; it serves nothing until [`OidcProvider::allow_redirect`].
    pub async fn start() -> Self {
        let mut process = Process::spawn(
            "oidc-provider.mjs",
            &[
                ("EMAIL_DOMAIN", "example.com"),
                ("CLIENT_ID", CLIENT_ID),
                ("CLIENT_SECRET", CLIENT_SECRET),
            ],
        );
        let started = process.next_json().await;
        let issuer = started["issuer"].as_str().expect("an issuer").to_owned();
        Self { issuer, process }
    }

    /// Registers the client with `redirect_uri` (known only once Packr runs) and starts serving.
    pub async fn allow_redirect(&mut self, redirect_uri: &str) {
        let line = format!("{redirect_uri}\n");
        self.process
            .stdin
            .write_all(line.as_bytes())
            .await
            .expect("writing to the provider");
        let ready = self.process.next_json().await;
        assert_eq!(ready["ready"], true, "{ready}");
    }
}

/// oauth2-mock-server on a free loopback port: `/authorize` redirects back at once.
pub struct MockProvider {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    _process: Process,
}

/// The GitHub user the mock reports.
pub struct GitHubUser<'a> {
    /// `login`.
    pub login: &'a str,
    /// The numeric id.
    pub id: u64,
    /// The primary e-mail address, if any.
    pub email: Option<&'a str>,
    /// Whether that address is verified.
    pub verified: bool,
}

impl MockProvider {
    async fn start(env: &[(&str, &str)]) -> Self {
        let mut process = Process::spawn("oauth2-mock.mjs", env);
        let started = process.next_json().await;
        let url = started["url"].as_str().expect("a URL").to_owned();
        Self {
            url,
            _process: process,
        }
    }

    /// The mock answering GitHub's `/user` and `/user/emails` for `user`.
    pub async fn github(user: &GitHubUser<'_>) -> Self {
        let id = user.id.to_string();
        let verified = user.verified.to_string();
        let mut env = vec![
            ("MODE", "github"),
            ("GITHUB_LOGIN", user.login),
            ("GITHUB_ID", id.as_str()),
            ("GITHUB_EMAIL_VERIFIED", verified.as_str()),
        ];
        if let Some(email) = user.email {
            env.push(("GITHUB_EMAIL", email));
        }
        Self::start(&env).await
    }

    /// The mock as an OpenID provider whose ID tokens (`sub` johndoe, no e-mail) get `claims`
    /// merged in, and whose userinfo endpoint answers `userinfo`.
    pub async fn oidc(claims: &Value, userinfo: &Value) -> Self {
        Self::start(&[
            ("MODE", "oidc"),
            ("ID_TOKEN_CLAIMS", &claims.to_string()),
            ("USERINFO", &userinfo.to_string()),
        ])
        .await
    }
}

/// What the browser saw at the end of a provider sign-in.
#[derive(Debug, Default)]
pub struct BrowserSignIn {
    /// The user `/-/cli/auth` said was signed in.
    pub signed_in_as: String,
    /// The page's result line after the decision.
    pub result: String,
    /// The text of the sign-in failure page, if that is where it ended.
    pub error: String,
    /// The HTTP status of the last page.
    pub status: u16,
}

/// Opens `url` (a `/-/cli/auth` page) in headless Chromium, clicks "Sign in with" `provider`,
/// signs in at oidc-provider as `login` and consents, then approves or denies (`decision`) on
/// `/-/cli/auth` unless the sign-in ended on an error page.
pub async fn sign_in_with_browser(
    url: &str,
    provider: &str,
    login: &str,
    decision: &str,
    screenshot: &Path,
) -> BrowserSignIn {
    let args = [url, provider, login, decision].map(OsStr::new);
    let line = run_script(
        "browser-oauth.mjs",
        &[&args[..], &[screenshot.as_os_str()]].concat(),
    )
    .await;
    let text = |field: &str| line[field].as_str().unwrap_or("").to_owned();
    BrowserSignIn {
        signed_in_as: text("signedInAs"),
        result: text("result"),
        error: text("error"),
        status: line["status"]
            .as_u64()
            .and_then(|s| u16::try_from(s).ok())
            .unwrap_or(0),
    }
}
