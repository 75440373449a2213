//! Test tools installed once into `<target>/<dir>/` and reused by later runs: the npm clients,
//! the identity providers, playwright-core and s3s-fs.
//!
//! A file lock `<target>/<dir>.lock` plus a marker file `<dir>/.installed` holding what was
//! installed make concurrent test processes install each tool only once; a changed marker text
//! installs afresh into an emptied folder.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, bail};

/// Cargo's target folder: `target/debug/packr` → `target/`. It honours CARGO_TARGET_DIR because
/// cargo built the binary there.
fn target_dir() -> anyhow::Result<&'static Path> {
    Path::new(super::server::packr_binary())
        .ancestors()
        .nth(2)
        .context("the packr binary has no target directory")
}

/// Runs `work` while holding the file lock `<target>/<name>.lock`, so that concurrent test
/// processes take turns.
pub fn locked<T>(name: &str, work: impl FnOnce() -> anyhow::Result<T>) -> anyhow::Result<T> {
    let path = target_dir()?.join(format!("{name}.lock"));
    let lock = File::create(&path).with_context(|| format!("creating {}", path.display()))?;
    lock.lock()
        .with_context(|| format!("locking {}", path.display()))?;
    work()
}

/// `<target>/<dir_name>/`, filled by `install(dir)` unless its marker already holds `marker`.
pub fn install_once(
    dir_name: &str,
    marker: &str,
    install: impl FnOnce(&Path) -> anyhow::Result<()>,
) -> anyhow::Result<PathBuf> {
    let dir = target_dir()?.join(dir_name);
    let marker_file = dir.join(".installed");
    let installed = || fs::read_to_string(&marker_file).is_ok_and(|found| found == marker);
    if installed() {
        return Ok(dir);
    }
    locked(dir_name, || {
        if installed() {
            return Ok(());
        }
        if dir.exists() {
            fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
        }
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        install(&dir)?;
        fs::write(&marker_file, marker)?;
        Ok(())
    })?;
    Ok(dir)
}

/// Runs a command to its end, failing with its output when it fails.
pub fn run(command: &mut Command) -> anyhow::Result<()> {
    let output = command.stdin(Stdio::null()).output()?;
    if !output.status.success() {
        bail!(
            "{command:?} failed ({}):
{}
{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

/// Installs a Debian package (the tests run as root on CI), updating the package lists only
/// when the first try fails.
pub fn apt_install(package: &str) -> anyhow::Result<()> {
    let install = || {
        run(Command::new("apt-get")
            .args(["install", "-y", "-qq", package])
            .env("DEBIAN_FRONTEND", "noninteractive"))
    };
    install()
        .or_else(|_| {
            run(Command::new("apt-get").args(["update", "-qq"]))?;
            install()
        })
        .with_context(|| format!("installing Debian's {package} (the tests run as root on CI)"))
}

/// `npm install packages` into `dir` with the machine's npm, without running install scripts.
pub fn npm_install(dir: &Path, packages: &[&str]) -> anyhow::Result<()> {
    let output = Command::new("npm")
        .arg("install")
        .arg("--prefix")
        .arg(dir)
        .args(["--no-audit", "--no-fund", "--ignore-scripts"])
        .args(packages)
        .env("npm_config_update_notifier", "false")
        .stdin(Stdio::null())
        .output()
        .context("running the machine's npm (is Node.js installed?)")?;
    if !output.status.success() {
        bail!(
            "`npm install {}` failed ({}):\n{}\n{}",
            packages.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}
