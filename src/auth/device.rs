//! The RFC 8628 device authorization grant, which also serves npm's web login: a terminal gets a
//! device code and a short user code, a person confirms the user code in a browser, and the
//! terminal's next poll receives a token.

use std::time::Duration;

use hmac::{KeyInit, Mac};
use sha2::Sha256;

use super::{
    AuthError, Origin, Role, Tokens, accounts::user_role, tokens::LOGIN_TOKEN_TTL,
    tokens::TokenRequest,
};
use crate::clock;
use crate::orgs;
use crate::store::Store;
use crate::store::accounts::UserRow;
use crate::store::logins::{DeviceRow, NewDevice};

/// User-code alphabet: consonants only, so codes read the same aloud and never spell words
/// (RFC 8628 §6.1), and no 0/O or 1/I confusion.
const USER_CODE_ALPHABET: &[u8] = b"BCDFGHJKLMNPQRSTVWXZ";
/// Characters in a user code (shown as XXXX-XXXX).
const USER_CODE_LENGTH: usize = 8;
/// Seconds added to the interval after a `slow_down` (RFC 8628 §3.5).
const SLOW_DOWN_STEP: i64 = 5;

/// What a client gets when it starts an authorization.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DeviceStart {
    /// The secret the client polls with.
    pub device_code: String,
    /// The short code a person confirms (`BCDF-GHJK`).
    pub user_code: String,
    /// The page where the person enters the code.
    pub verification_uri: String,
    /// The same page with the code filled in.
    pub verification_uri_complete: String,
    /// Seconds until the codes expire.
    pub expires_in: u64,
    /// Minimum seconds between polls.
    pub interval: u64,
}

/// The answer to a poll (RFC 8628 §3.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Poll {
    /// Not decided yet; poll again after this many seconds.
    Pending(u64),
    /// Polled too fast; the interval is now this many seconds.
    SlowDown(u64),
    /// The codes expired (or were already used).
    Expired,
    /// The person denied the request.
    Denied,
    /// Approved: the new token.
    Token(String),
}

/// What a person sees about a pending request before approving it.
#[derive(Debug, Clone)]
pub struct PendingRequest {
    /// Who is asking.
    pub client: String,
    /// The role asked for, if any.
    pub requested_role: Option<String>,
    /// Scope restriction asked for.
    pub scopes: Vec<String>,
    /// The requesting IP.
    pub ip: Option<String>,
    /// When it was asked (ms).
    pub created_at: i64,
    /// When it expires (ms).
    pub expires_at: i64,
}

/// Settings of the device flow.
#[derive(Debug, Clone, Copy)]
pub struct DeviceSettings {
    /// How long codes live.
    pub ttl: Duration,
    /// Minimum seconds between polls.
    pub interval: Duration,
}

/// The device flow service.
#[derive(Clone)]
pub struct DeviceFlow {
    store: Store,
    tokens: Tokens,
    key: Vec<u8>,
    settings: DeviceSettings,
}

/// Upper-cases a typed code and drops separators and spaces.
pub fn normalize_user_code(typed: &str) -> String {
    typed
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

fn random_user_code() -> String {
    let mut bytes = [0u8; USER_CODE_LENGTH];
    rand::fill(&mut bytes[..]);
    // 256 is not a multiple of 20; the slight bias costs well under a bit of the code's 34 bits.
    let code: String = bytes
        .iter()
        .map(|b| USER_CODE_ALPHABET[usize::from(*b) % USER_CODE_ALPHABET.len()] as char)
        .collect();
    format!("{}-{}", &code[..4], &code[4..])
}

fn random_device_code() -> String {
    let mut bytes = [0u8; 32];
    rand::fill(&mut bytes[..]);
    hex::encode(bytes)
}

impl DeviceFlow {
    /// The device flow on a store; `key` makes the stored code hashes useless without it.
    pub fn new(store: Store, tokens: Tokens, key: Vec<u8>, settings: DeviceSettings) -> Self {
        Self {
            store,
            tokens,
            key,
            settings,
        }
    }

    /// Keyed hash of a code. Codes are looked up by this hash, so a lookup never compares the
    /// secret itself, and timing reveals nothing about it.
    fn code_hash(&self, kind: &str, code: &str) -> Result<String, AuthError> {
        let mut mac = <hmac::Hmac<Sha256> as KeyInit>::new_from_slice(&self.key)
            .map_err(|e| AuthError::Internal(format!("device code key: {e}")))?;
        mac.update(kind.as_bytes());
        mac.update(b"\0");
        mac.update(code.as_bytes());
        Ok(hex::encode(mac.finalize().into_bytes()))
    }

    /// Starts an authorization for `client`, asking for `role` (or the user's strongest).
    pub async fn start(
        &self,
        client: &str,
        role: Option<Role>,
        scopes: Vec<String>,
        origin: &Origin,
        base_url: &str,
    ) -> Result<DeviceStart, AuthError> {
        let now = clock::now_ms();
        let device_code = random_device_code();
        let user_code = random_user_code();
        let ttl_ms = i64::try_from(self.settings.ttl.as_millis()).unwrap_or(i64::MAX);
        let interval = self.settings.interval.as_secs().max(1);
        let new = NewDevice {
            device_code_hash: self.code_hash("device", &device_code)?,
            user_code_hash: self.code_hash("user", &normalize_user_code(&user_code))?,
            row: DeviceRow {
                id: 0,
                client: client.chars().take(100).collect(),
                requested_role: role.map(|r| r.as_str().to_owned()),
                scopes,
                ip: origin.ip.clone(),
                created_at: now,
                expires_at: now.saturating_add(ttl_ms),
                interval_secs: i64::try_from(interval).unwrap_or(5),
                last_polled_at: None,
                status: "pending".into(),
                user_id: None,
            },
        };
        self.store.insert_device_authorization(new).await?;
        let verification_uri = format!("{base_url}/-/cli/auth");
        Ok(DeviceStart {
            verification_uri_complete: format!("{verification_uri}?code={user_code}"),
            verification_uri,
            device_code,
            user_code,
            expires_in: self.settings.ttl.as_secs(),
            interval,
        })
    }

    /// Answers a poll with the device code, issuing the token once after approval.
    pub async fn poll(&self, device_code: &str, origin: &Origin) -> Result<Poll, AuthError> {
        let hash = self.code_hash("device", device_code)?;
        let now = clock::now_ms();
        let Some(row) = self.store.find_device_by_device_code(&hash).await? else {
            return Ok(Poll::Expired);
        };
        if row.status == "consumed" || row.expires_at <= now {
            return Ok(Poll::Expired);
        }
        match row.status.as_str() {
            "denied" => return Ok(Poll::Denied),
            "approved" => return self.redeem(row, origin).await,
            _ => {}
        }
        // Polls may come a little early through timer jitter; only clearly fast polls slow down.
        let too_fast = row
            .last_polled_at
            .is_some_and(|last| (now - last) * 10 < row.interval_secs * 1000 * 8);
        let interval = if too_fast {
            row.interval_secs + SLOW_DOWN_STEP
        } else {
            row.interval_secs
        };
        self.store.record_device_poll(row.id, now, interval).await?;
        let seconds = u64::try_from(interval).unwrap_or(5);
        Ok(if too_fast {
            Poll::SlowDown(seconds)
        } else {
            Poll::Pending(seconds)
        })
    }

    async fn redeem(&self, row: DeviceRow, origin: &Origin) -> Result<Poll, AuthError> {
        // An approved row always names its approver; one that does not is not redeemed.
        if row.user_id.is_none() {
            return Err(AuthError::InvalidToken);
        }
        let Some(user) = self.store.consume_device_authorization(row.id).await? else {
            return Ok(Poll::Expired);
        };
        let strongest = user_role(&user).max_token_role();
        let role = row
            .requested_role
            .as_deref()
            .and_then(Role::parse)
            .map_or(strongest, |asked| asked.min(strongest));
        let request = TokenRequest {
            role,
            scopes: row.scopes,
            ttl: Some(LOGIN_TOKEN_TTL),
            name: Some(format!("{} (device login)", row.client)),
        };
        let token = self
            .tokens
            .issue_audited(&user, request, origin, Some("user.login"))
            .await?;
        Ok(Poll::Token(token))
    }

    /// The pending request behind a typed user code, if it is pending and unexpired.
    pub async fn pending(&self, user_code: &str) -> Result<Option<PendingRequest>, AuthError> {
        let hash = self.code_hash("user", &normalize_user_code(user_code))?;
        let row = self.store.find_device_by_user_code(&hash).await?;
        Ok(row
            .filter(|r| r.status == "pending" && r.expires_at > clock::now_ms())
            .map(|r| PendingRequest {
                client: r.client,
                requested_role: r.requested_role,
                scopes: r.scopes,
                ip: r.ip,
                created_at: r.created_at,
                expires_at: r.expires_at,
            }))
    }

    /// Approves or denies the request behind a user code, as `user`; the code is single use.
    /// A request for scopes the user cannot write is refused, naming the scope, and stays
    /// pending: the token would be one the user made for themselves, whose scopes only narrow.
    pub async fn decide(
        &self,
        user_code: &str,
        user: &UserRow,
        approve: bool,
    ) -> Result<bool, AuthError> {
        let hash = self.code_hash("user", &normalize_user_code(user_code))?;
        if approve
            && let Some(row) = self.store.find_device_by_user_code(&hash).await?
            && let Some(refusal) =
                orgs::own_scopes_refusal(self.store.as_ref(), user, &row.scopes).await?
        {
            return Err(AuthError::ScopeNotAllowed(refusal));
        }
        Ok(self
            .store
            .decide_device_authorization(&hash, approve, user.id, clock::now_ms())
            .await?)
    }

    /// Deletes authorizations that expired a day ago or more (run periodically by `serve`).
    pub async fn clean_up(&self) -> Result<usize, AuthError> {
        let before = clock::now_ms() - 86_400_000;
        Ok(self
            .store
            .delete_expired_device_authorizations(before)
            .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_codes_use_the_unambiguous_alphabet_in_two_groups() {
        for _ in 0..100 {
            let code = random_user_code();
            assert_eq!(code.len(), 9);
            assert_eq!(&code[4..5], "-");
            assert!(
                code.bytes()
                    .filter(|b| *b != b'-')
                    .all(|b| USER_CODE_ALPHABET.contains(&b))
            );
        }
    }

    #[test]
    fn typed_codes_are_normalised() {
        assert_eq!(normalize_user_code(" bcdf-ghjk "), "BCDFGHJK");
        assert_eq!(normalize_user_code("BCDFGHJK"), "BCDFGHJK");
    }
}
