//! `packr login --registry URL [--scope @x]`: the RFC 8628 device-flow client. It prints a URL and
//! a code, polls until the code is confirmed in a browser, and writes the token into the user's
//! `.npmrc` the way `npm login` does.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;
use clap::Args;
use http_body_util::Full;
use hyper::{Method, Request, StatusCode, header};
use serde_json::Value;

use crate::outbound::{self, HttpClient};

#[derive(Debug, Args)]
pub(super) struct LoginArgs {
    /// The registry to log in to, e.g. https://packr.example.com/
    #[arg(long)]
    registry: String,
    /// Also route this scope to the registry (writes `@scope:registry=` like `npm login --scope`).
    #[arg(long)]
    scope: Option<String>,
    /// Ask for a weaker token than your account allows (ci-readonly, ci-publish, maintainer).
    #[arg(long)]
    role: Option<String>,
    /// The npmrc file to write (default: $NPM_CONFIG_USERCONFIG or ~/.npmrc).
    #[arg(long)]
    userconfig: Option<PathBuf>,
}

pub(super) fn run(args: LoginArgs) -> anyhow::Result<()> {
    let registry = args.registry.trim_end_matches('/').to_owned();
    if !(registry.starts_with("http://") || registry.starts_with("https://")) {
        bail!(
            "--registry must be an http:// or https:// URL, got {}",
            args.registry
        );
    }
    if let Some(scope) = &args.scope
        && !scope.starts_with('@')
    {
        bail!("--scope must look like @acme, got {scope}");
    }
    let npmrc = match args.userconfig.clone() {
        Some(path) => path,
        None => default_npmrc()?,
    };
    super::runtime()?.block_on(async move {
        let client = outbound::client()?;
        let token = device_login(&client, &registry, args.role.as_deref()).await?;
        let user = whoami(&client, &registry, &token).await?;
        write_npmrc(&npmrc, &registry, &token, args.scope.as_deref())?;
        println!(
            "Logged in as {user} on {registry}/ (token saved in {}).",
            npmrc.display()
        );
        Ok(())
    })
}

fn default_npmrc() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("NPM_CONFIG_USERCONFIG")
        .or_else(|| std::env::var_os("npm_config_userconfig"))
    {
        return Ok(PathBuf::from(path));
    }
    let home = std::env::var_os("HOME").context("HOME is not set; pass --userconfig")?;
    Ok(PathBuf::from(home).join(".npmrc"))
}

async fn post_form(
    client: &HttpClient,
    url: &str,
    form: &[(&str, &str)],
) -> anyhow::Result<(StatusCode, Value)> {
    let body = serde_urlencoded::to_string(form)?;
    let request = Request::builder()
        .method(Method::POST)
        .uri(url)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::ACCEPT, "application/json")
        .body(Full::new(Bytes::from(body)))?;
    let (status, bytes) = outbound::send(client, request)
        .await
        .with_context(|| format!("could not reach {url}"))?;
    let json = serde_json::from_slice(&bytes)
        .with_context(|| format!("{url} answered {status} with a body that is not JSON"))?;
    Ok((status, json))
}

async fn device_login(
    client: &HttpClient,
    registry: &str,
    role: Option<&str>,
) -> anyhow::Result<String> {
    let (status, start) = post_form(
        client,
        &format!("{registry}/-/v1/device/authorize"),
        &[("client_id", "packr login"), ("scope", role.unwrap_or(""))],
    )
    .await?;
    if !status.is_success() {
        bail!(
            "the registry refused to start a login ({status}): {}",
            start["error"]
        );
    }
    let field = |name: &str| {
        start[name]
            .as_str()
            .map(str::to_owned)
            .with_context(|| format!("the registry's answer has no {name}"))
    };
    let device_code = field("device_code")?;
    println!(
        "Open this page in a browser and confirm the code:\n\n  {}\n\n  code: {}\n",
        field("verification_uri_complete")?,
        field("user_code")?
    );
    println!("Waiting for confirmation...");
    let mut interval = start["interval"].as_u64().unwrap_or(5).max(1);
    loop {
        tokio::time::sleep(Duration::from_secs(interval)).await;
        let (status, answer) = post_form(
            client,
            &format!("{registry}/-/v1/device/token"),
            &[
                ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
                ("device_code", &device_code),
            ],
        )
        .await?;
        if status.is_success() {
            return answer["access_token"]
                .as_str()
                .map(str::to_owned)
                .context("the registry approved the login but sent no access_token");
        }
        match answer["error"].as_str() {
            Some("authorization_pending") => {}
            Some("slow_down") => interval += 5,
            Some("expired_token") => {
                bail!("the code expired before it was confirmed; run packr login again")
            }
            Some("access_denied") => bail!("the login was denied in the browser"),
            _ => bail!("the registry answered {status}: {answer}"),
        }
    }
}

async fn whoami(client: &HttpClient, registry: &str, token: &str) -> anyhow::Result<String> {
    let request = Request::builder()
        .uri(format!("{registry}/-/whoami"))
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Full::new(Bytes::new()))?;
    let (status, body) = outbound::send(client, request).await?;
    let answer: Value = serde_json::from_slice(&body).unwrap_or_default();
    match answer["username"].as_str() {
        Some(user) if status.is_success() => Ok(user.to_owned()),
        _ => bail!("the new token does not work ({status}): {answer}"),
    }
}

/// npm's "nerf dart" for a registry: the URL without its scheme, ending in `/`.
fn nerf_dart(registry: &str) -> String {
    let without_scheme = registry
        .split_once("://")
        .map_or(registry, |(_, rest)| rest);
    format!("//{}/", without_scheme.trim_end_matches('/'))
}

/// Sets `//host/:_authToken=` (and `@scope:registry=`) in the npmrc, keeping every other line.
fn write_npmrc(
    path: &std::path::Path,
    registry: &str,
    token: &str,
    scope: Option<&str>,
) -> anyhow::Result<()> {
    let existing = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(err) => return Err(err).with_context(|| format!("reading {}", path.display())),
    };
    let token_key = format!("{}:_authToken", nerf_dart(registry));
    let scope_key = scope.map(|s| format!("{s}:registry"));
    let mut lines: Vec<String> = existing
        .lines()
        .filter(|line| {
            let key = line.split('=').next().unwrap_or("").trim();
            key != token_key && Some(key) != scope_key.as_deref()
        })
        .map(str::to_owned)
        .collect();
    if let Some(key) = scope_key {
        lines.push(format!("{key}={registry}/"));
    }
    lines.push(format!("{token_key}={token}"));
    let mut text = lines.join("\n");
    text.push('\n');
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    std::io::Write::write_all(&mut options.open(path)?, text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nerf_dart_drops_the_scheme_and_keeps_the_path() {
        assert_eq!(nerf_dart("https://r.example.com"), "//r.example.com/");
        assert_eq!(
            nerf_dart("http://127.0.0.1:4873/npm/"),
            "//127.0.0.1:4873/npm/"
        );
    }

    #[test]
    fn writing_the_npmrc_replaces_the_old_token_and_keeps_other_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".npmrc");
        std::fs::write(&path, "color=false\n//r.example.com/:_authToken=old\n").unwrap();
        write_npmrc(&path, "https://r.example.com", "new", Some("@acme")).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text,
            "color=false\n@acme:registry=https://r.example.com/\n//r.example.com/:_authToken=new\n"
        );
    }
}
