-- Version 3: the digest a stored rendering's ETags are made of (src/packages/packument.rs), so a
-- miss does not hash the whole document again. Rows stored before it have none: a read works it out.
ALTER TABLE renderings ADD COLUMN IF NOT EXISTS digest BYTEA;
