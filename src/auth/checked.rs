//! Recently checked tokens, kept in memory for a few seconds so that the hot read path (installs)
//! does no database call per request.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::Caller;
use super::cidr::CidrList;
use crate::clock;

/// How long a checked token is trusted without asking the database again. Revocations on this
/// instance take effect at once; this bounds how long another instance's revocation takes.
const CHECKED_TOKEN_TTL: Duration = Duration::from_secs(10);
/// Checked tokens remembered at most; the memory is dropped wholesale past it.
const CHECKED_TOKEN_CAPACITY: usize = 10_000;

/// A token found valid in the database: who it acts for, and where it may be used from.
#[derive(Clone)]
pub(super) struct CheckedToken {
    pub(super) caller: Caller,
    pub(super) cidr: Arc<CidrList>,
    pub(super) checked: Instant,
    pub(super) expires_at: Option<i64>,
}

/// Recently checked tokens by hash: the hot read path then does no database call.
#[derive(Default)]
pub(super) struct CheckedTokens {
    inner: Mutex<CheckedInner>,
}

#[derive(Default)]
struct CheckedInner {
    entries: HashMap<String, Arc<CheckedToken>>,
    /// Bumped by [`CheckedTokens::clear`], so that a check which read an account before it
    /// changed cannot put the old answer back afterwards.
    epoch: u64,
    /// Hashes revoked by this instance, so that a check which read the row just before the
    /// revocation committed cannot put the token back afterwards.
    revoked: HashSet<String>,
}

impl CheckedTokens {
    fn lock(&self) -> MutexGuard<'_, CheckedInner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn get(&self, hash: &str) -> Option<Arc<CheckedToken>> {
        let inner = self.lock();
        let entry = inner.entries.get(hash)?;
        let fresh = entry.checked.elapsed() < CHECKED_TOKEN_TTL
            && entry.expires_at.is_none_or(|at| at > clock::now_ms());
        fresh.then(|| Arc::clone(entry))
    }

    /// The current epoch; read it before the database, and hand it to [`CheckedTokens::put`].
    pub(super) fn epoch(&self) -> u64 {
        self.lock().epoch
    }

    pub(super) fn put(&self, hash: String, entry: Arc<CheckedToken>, epoch: u64) {
        let mut inner = self.lock();
        if inner.revoked.contains(&hash) || inner.epoch != epoch {
            return;
        }
        if inner.entries.len() >= CHECKED_TOKEN_CAPACITY {
            inner.entries.clear();
        }
        inner.entries.insert(hash, entry);
    }

    /// Forgets every checked token: some account changed (role, disabled, password), and the
    /// next use of each token asks the database again.
    pub(super) fn clear(&self) {
        let mut inner = self.lock();
        inner.entries.clear();
        inner.epoch += 1;
    }

    pub(super) fn forget(&self, hash: &str) {
        let mut inner = self.lock();
        inner.entries.remove(hash);
        if inner.revoked.len() >= CHECKED_TOKEN_CAPACITY {
            inner.revoked.clear();
        }
        inner.revoked.insert(hash.to_owned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{Origin, Role};

    fn checked(expires_at: Option<i64>) -> CheckedToken {
        CheckedToken {
            caller: Caller {
                user_id: 1,
                name: "alice".into(),
                email: String::new(),
                token_id: "t".into(),
                role: Role::CiReadonly,
                scopes: Vec::new(),
                user_role: crate::auth::UserRole::Reader,
                service_token: false,
                origin: Origin::default(),
            },
            cidr: Arc::default(),
            checked: Instant::now(),
            expires_at,
        }
    }

    #[test]
    fn a_revoked_token_is_never_remembered_again() {
        let tokens = CheckedTokens::default();
        tokens.put("h".into(), Arc::new(checked(None)), tokens.epoch());
        assert!(tokens.get("h").is_some());
        tokens.forget("h");
        assert!(tokens.get("h").is_none());
        // A check that read the row just before the revocation committed comes back late.
        tokens.put("h".into(), Arc::new(checked(None)), tokens.epoch());
        assert!(tokens.get("h").is_none());
    }

    #[test]
    fn a_check_that_read_an_account_before_it_changed_is_not_remembered() {
        let tokens = CheckedTokens::default();
        tokens.put("a".into(), Arc::new(checked(None)), tokens.epoch());
        let before = tokens.epoch();
        tokens.clear();
        assert!(tokens.get("a").is_none());
        tokens.put("b".into(), Arc::new(checked(None)), before);
        assert!(tokens.get("b").is_none());
        tokens.put("b".into(), Arc::new(checked(None)), tokens.epoch());
        assert!(tokens.get("b").is_some());
    }

    #[test]
    fn an_expired_token_is_not_served_from_memory() {
        let tokens = CheckedTokens::default();
        tokens.put(
            "h".into(),
            Arc::new(checked(Some(clock::now_ms() - 1))),
            tokens.epoch(),
        );
        assert!(tokens.get("h").is_none());
    }
}
