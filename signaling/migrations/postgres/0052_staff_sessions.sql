-- Staff logins: when each was last used (idle timeout) and where it was opened from, so a
-- staff member can recognise and end their own sessions (as migrations/sqlite/0052).
ALTER TABLE clerk_sessions ADD COLUMN last_seen_ms BIGINT NOT NULL DEFAULT 0;
ALTER TABLE clerk_sessions ADD COLUMN source_address TEXT NOT NULL DEFAULT '';
UPDATE clerk_sessions SET last_seen_ms = created_ms;
CREATE INDEX clerk_sessions_clerk ON clerk_sessions(clerk_id);

-- A password set by someone else (a new account, a reset) must be changed at the next login;
-- until then that login may only change the password.
ALTER TABLE clerks ADD COLUMN must_change_password BIGINT NOT NULL DEFAULT 0;
ALTER TABLE clerk_sessions ADD COLUMN password_change_only BIGINT NOT NULL DEFAULT 0;
