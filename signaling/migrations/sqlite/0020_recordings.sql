-- Recordings of served remote sessions and the audit trail of every access to them.
-- Times are Unix milliseconds.

CREATE TABLE recordings (
    id                 TEXT PRIMARY KEY,     -- random; also the file name stem
    ticket_id          TEXT NOT NULL,
    ticket_number      TEXT NOT NULL,
    centre_id          TEXT NOT NULL,
    window_id          TEXT NOT NULL,
    clerk_id           TEXT NOT NULL,
    device_id          TEXT NOT NULL,
    extension_point_id TEXT,
    state              TEXT NOT NULL CHECK (state IN ('recording', 'complete', 'failed', 'purged')),
    started_ms         INTEGER NOT NULL,
    ended_ms           INTEGER,
    duration_ms        INTEGER,
    size_bytes         INTEGER,              -- of the playable (decrypted) file
    sha256             TEXT,                 -- of the playable (decrypted) file, hex
    file               TEXT,                 -- name inside the recordings directory
    container          TEXT,                 -- 'webm' or 'mkv'
    tracks             TEXT NOT NULL DEFAULT '[]',   -- JSON: slot, codec, frames per track
    encrypted          INTEGER NOT NULL DEFAULT 0,
    torn_tail          INTEGER NOT NULL DEFAULT 0,   -- the relay crashed while recording
    error              TEXT,
    purged_ms          INTEGER
);
CREATE INDEX recordings_centre_started ON recordings(centre_id, started_ms);
CREATE INDEX recordings_state_started ON recordings(state, started_ms);

-- Who looked at, played or deleted which recording, and when. Append-only.
CREATE TABLE recording_access (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms        INTEGER NOT NULL,
    actor        TEXT NOT NULL,              -- clerk id, or 'system:retention'
    action       TEXT NOT NULL CHECK (action IN ('list', 'view', 'play', 'purge', 'denied')),
    recording_id TEXT,
    centre_id    TEXT,
    detail       TEXT NOT NULL DEFAULT ''
);
CREATE INDEX recording_access_recording ON recording_access(recording_id);

CREATE TRIGGER recording_access_no_update BEFORE UPDATE ON recording_access
BEGIN
    SELECT RAISE(ABORT, 'recording_access is append-only');
END;
CREATE TRIGGER recording_access_no_delete BEFORE DELETE ON recording_access
BEGIN
    SELECT RAISE(ABORT, 'recording_access is append-only');
END;
