//! The logins part of the metadata store seam. Logins in progress: device authorizations (RFC
//! 8628) and OAuth states, and the provider identities linked to users.
//!
//! Every code and state is single use on every store: consuming an approved device authorization
//! and taking an OAuth state each succeed for exactly one caller, however many race. Signing an
//! identity in is one transaction with its audit events; which user it signs in as is decided by
//! a pure function of the core ([`DecideLink`]) over the facts the store loads in that
//! transaction ([`IdentityFacts`]).

use super::StoreError;
use super::accounts::UserRow;
use crate::audit::AuditEvent;

/// A stored device authorization.
#[derive(Debug, Clone)]
pub struct DeviceRow {
    /// Database id.
    pub id: i64,
    /// Who is asking (`npm`, `packr login`, a client id).
    pub client: String,
    /// The role the client asked for, if any.
    pub requested_role: Option<String>,
    /// Scope restriction asked for.
    pub scopes: Vec<String>,
    /// The requesting client's IP.
    pub ip: Option<String>,
    /// Creation time (ms).
    pub created_at: i64,
    /// Expiry time (ms).
    pub expires_at: i64,
    /// Minimum seconds between polls.
    pub interval_secs: i64,
    /// Last poll (ms).
    pub last_polled_at: Option<i64>,
    /// `pending`, `approved`, `denied` or `consumed`.
    pub status: String,
    /// The approving (or denying) user.
    pub user_id: Option<i64>,
}

/// A device authorization to store.
#[derive(Debug, Clone)]
pub struct NewDevice {
    /// Keyed hash of the device code.
    pub device_code_hash: String,
    /// Keyed hash of the normalised user code.
    pub user_code_hash: String,
    /// The row's other fields (`id` and `status` are ignored).
    pub row: DeviceRow,
}

/// A sign-in in progress, between the redirect to the provider and its return.
#[derive(Debug, Clone)]
pub struct StateRow {
    /// Keyed hash of the `state` parameter.
    pub state_hash: String,
    /// The provider's id.
    pub provider: String,
    /// The PKCE code verifier.
    pub pkce_verifier: String,
    /// The OIDC nonce sent in the authorization request.
    pub nonce: String,
    /// The device user code to show on `/-/cli/auth` afterwards (may be empty).
    pub return_code: String,
    /// The redirect URI the authorization request named.
    pub redirect_uri: String,
    /// Creation time (ms).
    pub created_at: i64,
    /// Expiry time (ms).
    pub expires_at: i64,
}

/// A provider identity signing in.
#[derive(Debug, Clone)]
pub struct IdentitySignIn {
    /// The provider's id (`github`, `oidc`...).
    pub provider: String,
    /// The provider's stable id of the person.
    pub subject: String,
    /// The verified e-mail address, if the provider gave one.
    pub email: Option<String>,
}

/// A user as a sign-in sees it.
#[derive(Debug, Clone)]
pub struct KnownUser {
    /// The account.
    pub user: UserRow,
    /// False once `packr user disable` stopped it.
    pub enabled: bool,
}

/// What the store knows about an identity when it signs in, read in the sign-in's transaction.
#[derive(Debug, Clone, Default)]
pub struct IdentityFacts {
    /// The user the identity is linked to.
    pub linked: Option<KnownUser>,
    /// When it is linked to nobody: the users whose e-mail is the identity's verified one
    /// (ignoring ASCII case), by id. Empty without an e-mail.
    pub same_email: Vec<KnownUser>,
}

/// Why an identity may not sign in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkRefusal {
    /// No user matches, and accounts are not created on sign-in.
    NoAccount,
    /// Several users have the identity's e-mail.
    SeveralAccounts,
    /// The e-mail is an admin's, who did not link the identity explicitly.
    AdminNeedsLink,
    /// Accounts are created only for other e-mail domains.
    DomainNotAllowed,
    /// The account (named) is disabled.
    Disabled(String),
}

/// A user to create for an identity that matches none, without a local password.
pub struct NewAccount {
    /// Names to try in order; the first one free is taken.
    pub names: Box<dyn Iterator<Item = String> + Send>,
    /// Its e-mail.
    pub email: String,
    /// Its role.
    pub role: String,
}

/// How an identity signs in, decided over its [`IdentityFacts`].
pub enum LinkDecision {
    /// Not at all.
    Refuse(LinkRefusal),
    /// As the user it is linked to.
    SignIn(UserRow),
    /// As this user, linking the identity to it first.
    Link(UserRow),
    /// As a new user, linked to it.
    Create(NewAccount),
}

/// A step of a sign-in, each audited with its own event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkStep {
    /// A user was created for the identity.
    Created,
    /// The identity was linked to the user.
    Linked,
    /// The user signed in.
    SignedIn,
}

/// How a sign-in ended.
#[derive(Debug, Clone)]
pub enum SignInOutcome {
    /// Signed in as this user.
    SignedIn(UserRow),
    /// Refused, nothing written.
    Refused(LinkRefusal),
    /// A user was to be created and every name offered was taken; nothing written.
    NoFreeName,
}

/// Decides how an identity signs in; called once, inside the sign-in's transaction.
pub type DecideLink = Box<dyn FnOnce(&IdentityFacts) -> LinkDecision + Send>;

/// The audit event of a sign-in step for a user.
pub type LinkEvent = Box<dyn Fn(&UserRow, LinkStep) -> AuditEvent + Send + Sync>;

/// Logins in progress operations, implemented by every metadata store.
#[async_trait::async_trait]
pub trait LoginStore: Send + Sync {
    /// Stores a new device authorization (pending).
    async fn insert_device_authorization(&self, new: NewDevice) -> Result<(), StoreError>;

    /// The device authorization with this device code hash.
    async fn find_device_by_device_code(
        &self,
        device_code_hash: &str,
    ) -> Result<Option<DeviceRow>, StoreError>;

    /// The device authorization with this user code hash.
    async fn find_device_by_user_code(
        &self,
        user_code_hash: &str,
    ) -> Result<Option<DeviceRow>, StoreError>;

    /// Records a poll at `now` (ms), with the interval from now on (longer after a `slow_down`).
    async fn record_device_poll(
        &self,
        id: i64,
        now: i64,
        interval_secs: i64,
    ) -> Result<(), StoreError>;

    /// Approves or denies, as `user_id`, the authorization behind a user code if it is pending
    /// and unexpired at `now`; answers whether this call decided it.
    async fn decide_device_authorization(
        &self,
        user_code_hash: &str,
        approve: bool,
        user_id: i64,
        now: i64,
    ) -> Result<bool, StoreError>;

    /// Marks an approved authorization as used and returns the user who approved it; `None`
    /// when it is not approved (pending, denied, or already consumed by another poll) or the user
    /// is gone. Exactly one of concurrent calls gets the user.
    async fn consume_device_authorization(&self, id: i64) -> Result<Option<UserRow>, StoreError>;

    /// Deletes device authorizations that expired before `before` (ms); returns how many.
    async fn delete_expired_device_authorizations(&self, before: i64) -> Result<usize, StoreError>;

    /// Stores a sign-in in progress, dropping those that expired before `now` (ms).
    async fn insert_oauth_state(&self, row: StateRow, now: i64) -> Result<(), StoreError>;

    /// Removes and returns the sign-in with this state hash: each state is taken at most once,
    /// by exactly one of concurrent callers.
    async fn take_oauth_state(&self, state_hash: &str) -> Result<Option<StateRow>, StoreError>;

    /// Signs `identity` in, in one transaction: loads its [`IdentityFacts`], asks `decide`, then
    /// creates the user, links the identity (or records a new sign-in of a linked one) and
    /// records each step's event from `event`. Concurrent first sign-ins of one identity end
    /// with one user and one link.
    async fn sign_in_identity(
        &self,
        identity: IdentitySignIn,
        decide: DecideLink,
        event: LinkEvent,
    ) -> Result<SignInOutcome, StoreError>;
}
