-- Packr metadata schema (SQLite). Applied at every start; every statement is idempotent.
-- Times are Unix milliseconds (UTC).

CREATE TABLE IF NOT EXISTS users (
    id            INTEGER PRIMARY KEY,
    name          TEXT NOT NULL UNIQUE,
    email         TEXT NOT NULL DEFAULT '',
    password_hash TEXT,
    role          TEXT NOT NULL CHECK (role IN ('admin', 'maintainer', 'reader')),
    created_at    INTEGER NOT NULL
);

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
    revoked_at   INTEGER
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

PRAGMA user_version = 1;
