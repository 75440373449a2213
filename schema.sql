-- Packr metadata schema (SQLite). Applied at every start; every statement is idempotent.
-- No version stamp here: src/store/sqlite/migrate.rs stamps PRAGMA user_version in the same
-- transaction, and holds the steps that bring older databases up to date.
-- Times are Unix milliseconds (UTC).

CREATE TABLE IF NOT EXISTS users (
    id            INTEGER PRIMARY KEY,
    name          TEXT NOT NULL UNIQUE,
    email         TEXT NOT NULL DEFAULT '',
    password_hash TEXT,
    role          TEXT NOT NULL CHECK (role IN ('admin', 'maintainer', 'reader')),
    created_at    INTEGER NOT NULL,
    -- Added in user_version 6 (see store/sqlite/migrate.rs).
    disabled_at   INTEGER,                      -- set by `packr user disable`: no token or session works
    session_generation INTEGER NOT NULL DEFAULT 0 -- part of every session cookie; bumped to end them all
);
-- Names are also unique regardless of case: the index `users_name_nocase` is
-- created by store/sqlite/migrate.rs, which first checks an existing database for names that
-- differ only in case and refuses to start, naming them, if it has any.

-- One row per issued token. Only a SHA-256 of the token is kept, never the token.
CREATE TABLE IF NOT EXISTS tokens (
    id           TEXT PRIMARY KEY,              -- the JWT's jti
    user_id      INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    token_hash   TEXT NOT NULL UNIQUE,          -- hex SHA-256 of the whole token
    role         TEXT NOT NULL,
    scopes       TEXT NOT NULL DEFAULT '[]',    -- JSON array of "@scope"
    name         TEXT,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER,
    revoked_at   INTEGER,
    -- Added in user_version 5 (databases from before get them in store/sqlite/migrate.rs).
    cidr         TEXT NOT NULL DEFAULT '[]',    -- JSON array of allowed networks; empty: anywhere
    display      TEXT NOT NULL DEFAULT '',      -- a short non-secret piece of the token, for listings
    last_used_at INTEGER,                       -- usage data, flushed from memory every few seconds
    use_count    INTEGER NOT NULL DEFAULT 0,
    -- Added in user_version 6: who issued a service-account token (`operator` for `packr token
    -- create`, else the registry admin's name); NULL for a token its owner made.
    issued_by    TEXT
);
CREATE INDEX IF NOT EXISTS tokens_user ON tokens(user_id);

CREATE TABLE IF NOT EXISTS packages (
    name        TEXT PRIMARY KEY,
    access      TEXT NOT NULL DEFAULT 'restricted' CHECK (access IN ('public', 'restricted')),
    rev         INTEGER NOT NULL DEFAULT 1,     -- bumped by every write; becomes `_rev`
    created_at  INTEGER NOT NULL,
    modified_at INTEGER NOT NULL
);

-- One row per published version: publishing never rewrites other versions.
CREATE TABLE IF NOT EXISTS versions (
    package      TEXT NOT NULL REFERENCES packages(name) ON DELETE CASCADE,
    version      TEXT NOT NULL,
    manifest     TEXT NOT NULL,                 -- the version object as published, server fields applied
    integrity    TEXT NOT NULL,                 -- sha512-<base64>
    shasum       TEXT NOT NULL,                 -- hex sha1
    blob_key     TEXT NOT NULL,                 -- content address of the tarball
    size         INTEGER NOT NULL,
    deprecated   TEXT,
    readme       TEXT,                          -- from the body or the tarball; hoisted from `latest`
    publisher_id INTEGER REFERENCES users(id) ON DELETE SET NULL,
    published_at INTEGER NOT NULL,
    PRIMARY KEY (package, version)
);

-- Sigstore bundles published with a version (`npm publish --provenance`), served at
-- /-/npm/v1/attestations/<name>@<version>; they go with their version.
CREATE TABLE IF NOT EXISTS version_attestations (
    package        TEXT NOT NULL,
    version        TEXT NOT NULL,
    predicate_type TEXT NOT NULL,                 -- the in-toto statement's predicateType
    bundle         TEXT NOT NULL,                 -- the bundle JSON as published
    PRIMARY KEY (package, version, predicate_type),
    FOREIGN KEY (package, version) REFERENCES versions(package, version) ON DELETE CASCADE
);

CREATE TABLE IF NOT EXISTS dist_tags (
    package TEXT NOT NULL REFERENCES packages(name) ON DELETE CASCADE,
    tag     TEXT NOT NULL,
    version TEXT NOT NULL,
    PRIMARY KEY (package, tag),
    FOREIGN KEY (package, version) REFERENCES versions(package, version) ON DELETE CASCADE
);

CREATE TABLE IF NOT EXISTS maintainers (
    package TEXT NOT NULL REFERENCES packages(name) ON DELETE CASCADE,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    PRIMARY KEY (package, user_id)
);

-- A name@version that was ever published can never be published again (npm-protocol.md §17.3).
CREATE TABLE IF NOT EXISTS retired_versions (
    package    TEXT NOT NULL,
    version    TEXT NOT NULL,
    retired_at INTEGER NOT NULL,
    PRIMARY KEY (package, version)
);

-- Added in user_version 6 (store/sqlite/migrate.rs creates them in older databases).
-- A name whose every version was unpublished: only its former maintainers, its org or a
-- registry admin may publish it again, so nobody else can take over its users' installs.
CREATE TABLE IF NOT EXISTS retired_packages (
    name       TEXT PRIMARY KEY,
    retired_at INTEGER NOT NULL,
    last_rev   INTEGER NOT NULL DEFAULT 0  -- a new package of that name carries its rev on
);
CREATE TABLE IF NOT EXISTS retired_package_maintainers (
    package TEXT NOT NULL REFERENCES retired_packages(name) ON DELETE CASCADE,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    PRIMARY KEY (package, user_id)
);
-- Unpublish and refused publishes look up whether any version still uses a blob.
CREATE INDEX IF NOT EXISTS versions_blob_key ON versions(blob_key);


-- Every mutation, with who did it, from where, and what changed.
CREATE TABLE IF NOT EXISTS audit_log (
    id         INTEGER PRIMARY KEY,
    at         INTEGER NOT NULL,
    action     TEXT NOT NULL,                   -- e.g. package.published, token.created
    actor_id   INTEGER,
    actor_name TEXT,
    token_id   TEXT,
    ip         TEXT,
    request_id TEXT,
    package    TEXT,
    org        TEXT,
    details    TEXT NOT NULL DEFAULT '{}'       -- JSON
);
CREATE INDEX IF NOT EXISTS audit_log_action ON audit_log(action, at);
CREATE INDEX IF NOT EXISTS audit_log_package ON audit_log(package, at);
CREATE INDEX IF NOT EXISTS audit_log_at ON audit_log(at);

CREATE TABLE IF NOT EXISTS orgs (
    id           INTEGER PRIMARY KEY,
    slug         TEXT NOT NULL UNIQUE,          -- the npm scope without '@'
    display_name TEXT NOT NULL,
    created_at   INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS org_members (
    org_id  INTEGER NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    role    TEXT NOT NULL CHECK (role IN ('admin', 'maintainer', 'reader')),
    PRIMARY KEY (org_id, user_id)
);

CREATE TABLE IF NOT EXISTS teams (
    id          INTEGER PRIMARY KEY,
    org_id      INTEGER NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    UNIQUE (org_id, name)
);

CREATE TABLE IF NOT EXISTS team_members (
    team_id INTEGER NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    PRIMARY KEY (team_id, user_id)
);

-- Scopes that are not orgs, claimed by their first publisher or reserved by an admin
-- (`packr scope reserve @x --owner NAME`): only the owner creates new packages under them.
CREATE TABLE IF NOT EXISTS scope_owners (
    scope       TEXT PRIMARY KEY,               -- without '@'
    user_id     INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    reserved_by TEXT,                           -- the admin or `operator`; NULL when claimed by publishing
    created_at  INTEGER NOT NULL
);

-- Team grants on packages (npm access grant): 'read' or 'write'.
CREATE TABLE IF NOT EXISTS team_packages (
    team_id    INTEGER NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
    package    TEXT NOT NULL,
    permission TEXT NOT NULL CHECK (permission IN ('read', 'write')),
    PRIMARY KEY (team_id, package)
);


-- RFC 8628 device authorizations, also behind npm's web login. Codes are kept only as keyed hashes;
-- the token is issued when the approved device polls, so no token is ever stored.
CREATE TABLE IF NOT EXISTS device_authorizations (
    id               INTEGER PRIMARY KEY,
    device_code_hash TEXT NOT NULL UNIQUE,
    user_code_hash   TEXT NOT NULL UNIQUE,
    client           TEXT NOT NULL,
    requested_role   TEXT,
    scopes           TEXT NOT NULL DEFAULT '[]',
    ip               TEXT,
    created_at       INTEGER NOT NULL,
    expires_at       INTEGER NOT NULL,
    interval_secs    INTEGER NOT NULL,
    last_polled_at   INTEGER,
    status           TEXT NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'approved', 'denied', 'consumed')),
    user_id          INTEGER REFERENCES users(id) ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS device_authorizations_expiry ON device_authorizations(expires_at);

-- Webhooks (SPEC §7), owned by a user or an org. The secret is kept only encrypted (AES-256-GCM).
CREATE TABLE IF NOT EXISTS webhooks (
    id                INTEGER PRIMARY KEY,
    owner_user_id     INTEGER REFERENCES users(id) ON DELETE CASCADE,
    owner_org_id      INTEGER REFERENCES orgs(id) ON DELETE CASCADE,
    url               TEXT NOT NULL,
    events            TEXT NOT NULL,              -- JSON array of event names
    secret_ciphertext BLOB NOT NULL,
    secret_nonce      BLOB NOT NULL,
    created_at        INTEGER NOT NULL,
    created_by        INTEGER REFERENCES users(id) ON DELETE SET NULL,
    active            INTEGER NOT NULL DEFAULT 1, -- 0 once deleted; rows stay for the delivery log
    CHECK ((owner_user_id IS NULL) <> (owner_org_id IS NULL))
);

-- The outbox: one row per event and hook, written in the transaction of the change itself.
CREATE TABLE IF NOT EXISTS webhook_deliveries (
    id              TEXT PRIMARY KEY,             -- uuid, sent as X-Packr-Delivery
    webhook_id      INTEGER NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
    event_id        INTEGER NOT NULL,             -- audit_log.id, sent as X-Packr-Event-Id
    action          TEXT NOT NULL,
    payload         TEXT NOT NULL,                -- the exact bytes sent and signed
    status          TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    round_start     INTEGER NOT NULL DEFAULT 0,   -- attempts made before the last redelivery
    next_attempt_at INTEGER,                      -- NULL unless pending
    claimed_until   INTEGER,                      -- a worker is sending it until then
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS webhook_deliveries_due ON webhook_deliveries(next_attempt_at)
    WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS webhook_deliveries_hook ON webhook_deliveries(webhook_id, created_at);

-- Every attempt to send a delivery, with its outcome.
CREATE TABLE IF NOT EXISTS webhook_attempts (
    id          INTEGER PRIMARY KEY,
    delivery_id TEXT NOT NULL REFERENCES webhook_deliveries(id) ON DELETE CASCADE,
    attempt     INTEGER NOT NULL,                 -- 1 for the first
    at          INTEGER NOT NULL,
    http_status INTEGER,                          -- NULL when no answer came
    error       TEXT,                             -- NULL on success
    duration_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS webhook_attempts_delivery ON webhook_attempts(delivery_id, attempt);

-- OAuth sign-ins in progress (SPEC §4): created when the browser leaves for the provider, used
-- once when it comes back. The state is kept only as a keyed hash.
CREATE TABLE IF NOT EXISTS oauth_states (
    state_hash    TEXT PRIMARY KEY,
    provider      TEXT NOT NULL,
    pkce_verifier TEXT NOT NULL,
    nonce         TEXT NOT NULL,
    return_code   TEXT NOT NULL,                -- the device user code /-/cli/auth shows afterwards
    redirect_uri  TEXT NOT NULL,                -- sent again with the code exchange
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS oauth_states_expiry ON oauth_states(expires_at);

-- Provider identities linked to users: a (provider, subject) pair signs in as one user.
CREATE TABLE IF NOT EXISTS user_identities (
    provider      TEXT NOT NULL,                -- github, gitlab, google or oidc
    subject       TEXT NOT NULL,                -- the provider's stable user id (`sub`, GitHub's id)
    user_id       INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    email         TEXT NOT NULL DEFAULT '',     -- the verified e-mail at the last sign-in
    created_at    INTEGER NOT NULL,
    last_login_at INTEGER NOT NULL,
    PRIMARY KEY (provider, subject)
);
CREATE INDEX IF NOT EXISTS user_identities_user ON user_identities(user_id);


-- Registry signing keys (npm-protocol.md §12): every instance signs with the active one (no
-- `expires_at`); a rotation adds a key and sets the old one's `expires_at`, never deletes it.
CREATE TABLE IF NOT EXISTS signing_keys (
    keyid          TEXT PRIMARY KEY,              -- SHA256:<base64 sha256 of the DER public key>
    public_key     TEXT NOT NULL,                 -- base64 DER SubjectPublicKeyInfo
    sealed_private BLOB NOT NULL,                 -- AES-256-GCM under PACKR_SECRET_KEY
    nonce          BLOB NOT NULL,
    created_at     INTEGER NOT NULL,
    expires_at     INTEGER
);

-- `dist.signatures` of each version, over `<name>@<version>:<integrity>`; written with the
-- version at publish, or by the start-up backfill for versions older than their key.
CREATE TABLE IF NOT EXISTS version_signatures (
    package TEXT NOT NULL,
    version TEXT NOT NULL,
    keyid   TEXT NOT NULL REFERENCES signing_keys(keyid),
    sig     TEXT NOT NULL,                        -- base64 DER ECDSA P-256 / SHA-256
    PRIMARY KEY (package, version, keyid),
    FOREIGN KEY (package, version) REFERENCES versions(package, version) ON DELETE CASCADE
);
-- Added in user_version 8. Security advisories an admin records against versions of a package;
-- `npm audit`, `pnpm audit` and `yarn npm audit` report them (npm-protocol.md §11).
CREATE TABLE IF NOT EXISTS advisories (
    id                  INTEGER PRIMARY KEY,
    package             TEXT NOT NULL,          -- need not be published (yet)
    vulnerable_versions TEXT NOT NULL,          -- an npm semver range
    patched_versions    TEXT,                   -- an npm semver range; NULL: no fix yet
    severity            TEXT NOT NULL CHECK (severity IN ('low', 'moderate', 'high', 'critical')),
    title               TEXT NOT NULL,
    url                 TEXT,
    cwe                 TEXT NOT NULL DEFAULT '[]', -- JSON array of CWE ids
    cvss                TEXT,                   -- JSON {"score", "vectorString"}
    created_at          INTEGER NOT NULL,
    created_by          TEXT                    -- user name; NULL for the operator's command line
);
CREATE INDEX IF NOT EXISTS advisories_package ON advisories(package);
-- Trusted publishers (npm trust): CI identities that may exchange an OIDC ID token for a
-- short-lived publish token; for one package, or (org set, package NULL) every package of an org.
CREATE TABLE IF NOT EXISTS trusted_publishers (
    id          TEXT PRIMARY KEY,
    package     TEXT,
    org         TEXT,
    kind        TEXT NOT NULL,                 -- github or gitlab
    claims      TEXT NOT NULL,                 -- JSON object as npm sends it
    permissions TEXT NOT NULL,                 -- JSON array: createPackage, createStagedPackage
    created_by  INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at  INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS trusted_publishers_package ON trusted_publishers(package);
CREATE INDEX IF NOT EXISTS trusted_publishers_org ON trusted_publishers(org);

-- ID tokens already exchanged (replay protection), kept until they expire.
CREATE TABLE IF NOT EXISTS oidc_exchanges (
    issuer     TEXT NOT NULL,
    jti        TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    package    TEXT NOT NULL,
    identity   TEXT NOT NULL,                  -- JSON: repository, workflow, ref, run id...
    token_id   TEXT,                           -- the publish token issued for it
    PRIMARY KEY (issuer, jti)
);
CREATE INDEX IF NOT EXISTS oidc_exchanges_token ON oidc_exchanges(token_id);

-- Staged publishes (npm stage publish): versions validated and stored, waiting for an approval.
-- Invisible to installs; each reserves its package's version number until approved or rejected.
CREATE TABLE IF NOT EXISTS stages (
    id           TEXT PRIMARY KEY,              -- a UUID (npm checks the shape)
    package      TEXT NOT NULL,
    version      TEXT NOT NULL,
    tag          TEXT NOT NULL,
    access       TEXT NOT NULL,
    manifest     TEXT NOT NULL,                 -- the version object as it will be published (JSON)
    integrity    TEXT NOT NULL,
    shasum       TEXT NOT NULL,
    blob_key     TEXT NOT NULL,                 -- the tarball, in the blob store
    size         INTEGER NOT NULL,
    readme       TEXT,
    attestations TEXT NOT NULL DEFAULT '[]',    -- JSON [{predicate_type, bundle}]
    details      TEXT NOT NULL DEFAULT '{}',    -- JSON: what the publish event will say (provenance)
    actor_id     INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    actor_name   TEXT NOT NULL,
    actor_type   TEXT NOT NULL,                 -- user or trusted-publisher
    created_at   INTEGER NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS stages_package_version ON stages(package, version);
CREATE INDEX IF NOT EXISTS stages_blob_key ON stages(blob_key);

-- An org's publishing policy (approval, provenance, trusted publishing); no row: nothing required.
CREATE TABLE IF NOT EXISTS org_policies (
    org_id                     INTEGER PRIMARY KEY REFERENCES orgs(id) ON DELETE CASCADE,
    require_approval           INTEGER NOT NULL DEFAULT 0,
    approvers                  TEXT NOT NULL DEFAULT '[]', -- JSON array of user or team names
    require_provenance         INTEGER NOT NULL DEFAULT 0,
    require_trusted_publishing INTEGER NOT NULL DEFAULT 0,
    updated_at                 INTEGER NOT NULL
);

-- Packuments as a cache miss serves them (src/store/renderings.rs): each document made on no
-- base URL, with where the base goes. Made after a change, off its path, and stored only while
-- the package is at `rev`; any change of the rev drops them (the trigger below), so a read needs
-- no other table. A rowid table, not WITHOUT ROWID: searching a b-tree whose cells overflow
-- reads every overflowing cell it compares with, whole.
CREATE TABLE IF NOT EXISTS renderings (
    package       TEXT NOT NULL REFERENCES packages(name) ON DELETE CASCADE,
    form          INTEGER NOT NULL,             -- 0 full, 1 abbreviated
    rev           INTEGER NOT NULL,             -- the package's rev it was made from
    last_modified TEXT NOT NULL,                -- time.modified as an HTTP date
    cuts          BLOB NOT NULL,                -- where the base URL goes: little-endian u32s
    plain         BLOB NOT NULL,                -- the JSON
    digest        BLOB,                         -- what its ETags are made of (version 11)
    PRIMARY KEY (package, form)
);
-- A maintainer's e-mail shows in their packages' documents: changing it drops their renderings.
CREATE TRIGGER IF NOT EXISTS renderings_maintainer_email AFTER UPDATE OF email ON users
WHEN old.email IS NOT new.email
BEGIN
    DELETE FROM renderings
    WHERE package IN (SELECT package FROM maintainers WHERE user_id = new.id);
END;
CREATE TRIGGER IF NOT EXISTS renderings_stale AFTER UPDATE OF rev ON packages
BEGIN
    DELETE FROM renderings WHERE package = new.name;
END;
