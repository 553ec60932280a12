-- 暂停服务: a clerk's pause of their window (reason, since, expected return; Unix ms), kept
-- across relay restarts like the sign-in. All three are set together or all NULL.

ALTER TABLE windows ADD COLUMN pause_reason   TEXT CHECK (pause_reason IN ('away', 'meeting', 'training'));
ALTER TABLE windows ADD COLUMN pause_since_ms INTEGER;
ALTER TABLE windows ADD COLUMN pause_until_ms INTEGER;
