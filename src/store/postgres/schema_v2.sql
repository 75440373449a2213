-- Version 2: stored packument renderings (src/store/renderings.rs): each package's documents
-- made on no base URL, with where the base goes. Made after a change, off its path; served only
-- while the package is at `rev`.
CREATE TABLE renderings (
    package       TEXT COLLATE "C" NOT NULL REFERENCES packages(name) ON DELETE CASCADE,
    form          BIGINT NOT NULL,              -- 0 full, 1 abbreviated
    rev           BIGINT NOT NULL,              -- the package's rev it was made from
    last_modified TEXT NOT NULL,                -- time.modified as an HTTP date
    cuts          BYTEA NOT NULL,               -- where the base URL goes: little-endian u32s
    plain         BYTEA NOT NULL,               -- the JSON
    PRIMARY KEY (package, form)
);

-- A maintainer's e-mail shows in their packages' documents: changing it drops their renderings.
CREATE FUNCTION renderings_maintainer_email() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM renderings
    WHERE package IN (SELECT package FROM maintainers WHERE user_id = NEW.id);
    RETURN NULL;
END
$$;
CREATE TRIGGER renderings_maintainer_email AFTER UPDATE OF email ON users
    FOR EACH ROW WHEN (OLD.email IS DISTINCT FROM NEW.email)
    EXECUTE FUNCTION renderings_maintainer_email();

-- Compressed with lz4 where the server has it, as manifests are (schema.sql).
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_settings
               WHERE name = 'default_toast_compression' AND 'lz4' = ANY (enumvals)) THEN
        ALTER TABLE renderings ALTER COLUMN plain SET COMPRESSION lz4;
    END IF;
END
$$;
