-- Staff second factor (TOTP, RFC 6238). The secret is sealed under the privacy master key like
-- a case item (its own AES-256-GCM key, wrapped; the clerk id bound in as associated data).
-- `enabled` = 0 while an enrollment waits for its first code; `last_step` is the last time step
-- whose code was accepted, so a code cannot be used twice.
CREATE TABLE staff_two_factor (
    clerk_id      TEXT PRIMARY KEY REFERENCES clerks(id) ON DELETE CASCADE,
    key_id        TEXT NOT NULL,
    wrapped_key   BLOB NOT NULL,
    sealed_secret BLOB NOT NULL,
    enabled       INTEGER NOT NULL DEFAULT 0,
    last_step     INTEGER NOT NULL DEFAULT 0,
    created_ms    INTEGER NOT NULL,
    enabled_ms    INTEGER
);

-- One-time recovery codes, stored as SHA-256 digests (80 random bits each); a used code keeps
-- its row with the time it was used.
CREATE TABLE staff_recovery_codes (
    clerk_id  TEXT NOT NULL REFERENCES clerks(id) ON DELETE CASCADE,
    code_hash TEXT NOT NULL,
    used_ms   INTEGER,
    PRIMARY KEY (clerk_id, code_hash)
);

-- Where a login stands with the second factor: 0 done (or not needed), 1 the password was
-- right and the code is awaited (a short-lived row that is not a session), 2 the staff member
-- must enroll before doing anything else. Wrong codes against a stage-1 row are counted.
ALTER TABLE clerk_sessions ADD COLUMN second_factor_stage INTEGER NOT NULL DEFAULT 0;
ALTER TABLE clerk_sessions ADD COLUMN code_tries INTEGER NOT NULL DEFAULT 0;
