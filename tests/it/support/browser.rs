//! Real headless Chromium (Debian's package) driven by playwright-core, for the `/-/cli/auth` page.
//! Both are installed on first use: Chromium with apt-get when missing, playwright-core with npm
//! into `<target>/test-browser/` (see [`super::install`]).

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::Value;

use super::install::{apt_install, install_once, locked, npm_install};

const CHROMIUM: &str = "/usr/bin/chromium";
const PLAYWRIGHT: &str = "playwright-core@1.64.1";

fn install() -> anyhow::Result<PathBuf> {
    locked("test-chromium", || {
        if Path::new(CHROMIUM).exists() {
            return Ok(());
        }
        apt_install("chromium")
    })?;
    install_once("test-browser", PLAYWRIGHT, |dir| {
        npm_install(dir, &[PLAYWRIGHT])
    })
}

fn browser_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        install().unwrap_or_else(|err| panic!("installing the test browser: {err:#}"))
    })
}

/// What the page said after the decision.
#[derive(Debug)]
pub struct Confirmation {
    /// Text of the page's result line.
    pub result: String,
    /// The user code the page displayed.
    pub code: String,
}

/// Opens `url` in headless Chromium, signs in as `user` if asked, and clicks approve or deny.
pub async fn confirm_login(
    url: &str,
    user: &str,
    password: &str,
    approve: bool,
    screenshot: &Path,
) -> Confirmation {
    let decision = if approve { "approve" } else { "deny" };
    let args = [url, user, password, decision].map(OsStr::new);
    let line = run_script(
        "browser.mjs",
        &[&args[..], &[screenshot.as_os_str()]].concat(),
    )
    .await;
    Confirmation {
        result: line["result"].as_str().unwrap_or("").to_owned(),
        code: line["code"].as_str().unwrap_or("").to_owned(),
    }
}

/// Runs the playwright-core script `tests/it/support/<script>` with `args` against headless
/// Chromium (90 s at most), asserting it succeeds; the JSON on its last stdout line.
pub async fn run_script(script: &str, args: &[&OsStr]) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/it/support")
        .join(script);
    let output = tokio::time::timeout(
        Duration::from_secs(90),
        tokio::process::Command::new("node")
            .arg(&path)
            .args(args)
            .env("PLAYWRIGHT_DIR", browser_dir())
            .env("CHROMIUM", CHROMIUM)
            .stdin(Stdio::null())
            .output(),
    )
    .await
    .expect("the browser finished within 90 s")
    .expect("node runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the browser script failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(stdout.trim().lines().last().unwrap_or("")).expect("one JSON line")
}
