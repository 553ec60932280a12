-- 暂停服务: a clerk's pause of their window (reason, since, expected return; Unix ms), kept
-- across relay restarts like the sign-in. All three are set together or all NULL.
-- As migrations/sqlite/0053_window_pause.sql.

ALTER TABLE windows ADD COLUMN pause_reason   TEXT CHECK (pause_reason IN ('away', 'meeting', 'training'));
ALTER TABLE windows ADD COLUMN pause_since_ms BIGINT;
ALTER TABLE windows ADD COLUMN pause_until_ms BIGINT;
