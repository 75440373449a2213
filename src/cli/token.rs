//! `packr token create|list|revoke`: tokens straight on the data directory, for admins and CI
//! bootstrapping. Listings never show a token or its hash.

use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};

use crate::auth::accounts::user_role;
use crate::auth::cidr::CidrList;
use crate::auth::tokens::{Issuer, TokenInfo, TokenListing, TokenRequest};
use crate::auth::{Origin, Role};
use crate::config::{DataDirArgs, parse_duration};
use crate::server::Services;

#[derive(Debug, Subcommand)]
pub(super) enum TokenCommand {
    /// Create a token; the token alone is printed on the last line of standard output.
    Create(CreateArgs),
    /// List tokens (never the tokens themselves); usage data lags the server by a few seconds.
    List(ListArgs),
    /// Revoke a token by its id (or a unique prefix of at least 6 characters).
    Revoke(RevokeArgs),
}

#[derive(Debug, Args)]
pub(super) struct CreateArgs {
    /// The user the token acts as.
    #[arg(long)]
    user: String,
    /// What the token may do.
    #[arg(long, value_parser = ["ci-readonly", "ci-publish", "maintainer", "admin"])]
    role: String,
    /// Restrict writes to a scope (repeatable), e.g. --scope @acme.
    #[arg(long = "scope")]
    scopes: Vec<String>,
    /// Lifetime, e.g. 30d, 12h (default: never expires).
    #[arg(long, value_parser = parse_duration)]
    expires: Option<Duration>,
    /// A label to recognise the token by.
    #[arg(long)]
    name: Option<String>,
    /// Only accept the token from this network (repeatable), e.g. --cidr 10.0.0.0/8.
    #[arg(long = "cidr")]
    cidr: Vec<String>,
    #[command(flatten)]
    data: DataDirArgs,
}

#[derive(Debug, Args)]
pub(super) struct ListArgs {
    /// Only this user's tokens.
    #[arg(long)]
    user: Option<String>,
    /// Include revoked and expired tokens.
    #[arg(long)]
    all: bool,
    #[command(flatten)]
    data: DataDirArgs,
}

#[derive(Debug, Args)]
pub(super) struct RevokeArgs {
    /// The token's id, as `packr token list` shows it, or a unique prefix of it.
    id: String,
    #[command(flatten)]
    data: DataDirArgs,
}

pub(super) fn run(command: TokenCommand) -> anyhow::Result<()> {
    match command {
        TokenCommand::Create(args) => create(args),
        TokenCommand::List(args) => list(args),
        TokenCommand::Revoke(args) => revoke(args),
    }
}

fn create(args: CreateArgs) -> anyhow::Result<()> {
    let role = Role::parse(&args.role).context("unknown role")?;
    let cidr = CidrList::parse(&args.cidr)?;
    super::runtime()?.block_on(async move {
        let services = Services::open(&args.data.location()).await?;
        let user = services.accounts.find(&args.user).await?.with_context(|| {
            format!(
                "there is no user named {}; create it with packr user add",
                args.user
            )
        })?;
        let allowed = user_role(&user).max_token_role();
        if role > allowed {
            bail!(
                "user {} is a {} and may hold tokens up to {allowed}, not {role}",
                user.name,
                user.role
            );
        }
        let request = TokenRequest {
            role,
            scopes: args.scopes,
            ttl: args.expires,
            name: args.name,
        };
        let issued = services
            .tokens
            .create(&user, request, cidr, Issuer::Operator, &Origin::default())
            .await?;
        println!("{}", issued.token);
        Ok(())
    })
}

fn list(args: ListArgs) -> anyhow::Result<()> {
    super::runtime()?.block_on(async move {
        let services = Services::open(&args.data.location()).await?;
        let user_id = match &args.user {
            Some(name) => Some(
                services
                    .accounts
                    .find(name)
                    .await?
                    .with_context(|| format!("there is no user named {name}"))?
                    .id,
            ),
            None => None,
        };
        let (tokens, _total) = services
            .tokens
            .list(TokenListing {
                user_id,
                live_only: !args.all,
                limit: u32::MAX,
                offset: 0,
            })
            .await?;
        print!("{}", table(&tokens, crate::clock::now_ms()));
        Ok(())
    })
}

fn revoke(args: RevokeArgs) -> anyhow::Result<()> {
    super::runtime()?.block_on(async move {
        let services = Services::open(&args.data.location()).await?;
        let id = services.tokens.find_id(None, &args.id).await?;
        if services
            .tokens
            .revoke_id(&id, None, &Origin::default())
            .await?
        {
            println!("revoked token {id}");
        } else {
            println!("token {id} was already revoked");
        }
        Ok(())
    })
}

/// `2025-03-01 10:00` (UTC), or `-`.
fn when(ms: Option<i64>) -> String {
    ms.map_or_else(
        || "-".to_owned(),
        |ms| {
            let iso = crate::clock::iso(ms);
            iso.get(..16).unwrap_or(&iso).replacen('T', " ", 1)
        },
    )
}

fn status(token: &TokenInfo, now: i64) -> &'static str {
    if token.revoked_at.is_some() {
        "revoked"
    } else if token.expires_at.is_some_and(|at| at <= now) {
        "expired"
    } else {
        "active"
    }
}

fn or_dash(items: &[String]) -> String {
    if items.is_empty() {
        "-".to_owned()
    } else {
        items.join(",")
    }
}

/// The tokens as an aligned text table with a header line.
fn table(tokens: &[TokenInfo], now: i64) -> String {
    let header = [
        "ID",
        "USER",
        "ROLE",
        "NAME",
        "SCOPES",
        "CIDR",
        "CREATED",
        "EXPIRES",
        "LAST USED",
        "USES",
        "ISSUED BY",
        "STATUS",
    ];
    let rows: Vec<[String; 12]> = tokens
        .iter()
        .map(|t| {
            [
                t.id.clone(),
                t.user.clone(),
                t.role.clone(),
                t.name.clone().unwrap_or_else(|| "-".to_owned()),
                or_dash(&t.scopes),
                or_dash(&t.cidr),
                when(Some(t.created_at)),
                when(t.expires_at),
                when(t.last_used_at),
                t.use_count.to_string(),
                t.issued_by.clone().unwrap_or_else(|| "-".to_owned()),
                status(t, now).to_owned(),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let text: Vec<String> = cells
            .zip(widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        out.push_str(text.join("  ").trim_end());
        out.push('\n');
    };
    line(&mut header.iter().copied());
    for row in &rows {
        line(&mut row.iter().map(String::as_str));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_aligns_columns_and_marks_revoked_tokens() {
        let token = TokenInfo {
            id: "0123456789abcdef0123456789abcdef".into(),
            user: "alice".into(),
            role: "ci-publish".into(),
            scopes: vec!["@acme".into()],
            name: Some("ci".into()),
            cidr: vec!["10.0.0.0/8".into()],
            display: "abcdef".into(),
            created_at: 0,
            expires_at: None,
            revoked_at: Some(1),
            last_used_at: None,
            use_count: 3,
            issued_by: Some("operator".into()),
        };
        let text = table(&[token], 2);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(lines[0].starts_with("ID    "), "{text}");
        assert!(lines[1].contains("1970-01-01 00:00"), "{text}");
        assert!(
            lines[1].contains("10.0.0.0/8") && lines[1].ends_with("revoked"),
            "{text}"
        );
        assert_eq!(lines[0].find("USER"), lines[1].find("alice"), "{text}");
        assert_eq!(
            lines[0].find("ISSUED BY"),
            lines[1].find("operator"),
            "{text}"
        );
    }
}
