-- Staff second factor (TOTP, RFC 6238), as migrations/sqlite/0057: the sealed secret, the last
-- accepted time step (no replay), hashed one-time recovery codes, and the login's stage.
CREATE TABLE staff_two_factor (
    clerk_id      TEXT PRIMARY KEY REFERENCES clerks(id) ON DELETE CASCADE,
    key_id        TEXT NOT NULL,
    wrapped_key   BYTEA NOT NULL,
    sealed_secret BYTEA NOT NULL,
    enabled       BIGINT NOT NULL DEFAULT 0,
    last_step     BIGINT NOT NULL DEFAULT 0,
    created_ms    BIGINT NOT NULL,
    enabled_ms    BIGINT
);

CREATE TABLE staff_recovery_codes (
    clerk_id  TEXT NOT NULL REFERENCES clerks(id) ON DELETE CASCADE,
    code_hash TEXT NOT NULL,
    used_ms   BIGINT,
    PRIMARY KEY (clerk_id, code_hash)
);

ALTER TABLE clerk_sessions ADD COLUMN second_factor_stage BIGINT NOT NULL DEFAULT 0;
ALTER TABLE clerk_sessions ADD COLUMN code_tries BIGINT NOT NULL DEFAULT 0;
