-- Case materials (办件材料) of served remote tickets: the ID card read, the card photo, document
-- pages, identity snapshots and code scans, each encrypted with its own key (wrapped under the
-- relay's master key). Audit rows are append-only.

CREATE TABLE cases (
    ticket_id       TEXT PRIMARY KEY,
    centre_id       TEXT NOT NULL,
    device_id       TEXT NOT NULL,
    clerk_id        TEXT NOT NULL,
    ticket_number   TEXT NOT NULL,
    created_ms      INTEGER NOT NULL,
    -- How the resident's identity was verified: id_card | code_scan | snapshot (NULL: not yet).
    identity_method TEXT,
    identity_ms     INTEGER
);

CREATE INDEX cases_centre ON cases (centre_id, created_ms);

CREATE TABLE case_items (
    id          TEXT PRIMARY KEY,
    ticket_id   TEXT NOT NULL REFERENCES cases (ticket_id),
    kind        TEXT NOT NULL,
    mime        TEXT NOT NULL,
    size_bytes  INTEGER NOT NULL,
    width       INTEGER,
    height      INTEGER,
    sha256      TEXT NOT NULL,
    key_id      TEXT NOT NULL,
    wrapped_key BLOB NOT NULL,
    sealed      BLOB NOT NULL,
    created_ms  INTEGER NOT NULL
);

CREATE INDEX case_items_ticket ON case_items (ticket_id, created_ms);
CREATE INDEX case_items_created ON case_items (created_ms);

CREATE TABLE case_audit (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms      INTEGER NOT NULL,
    ticket_id  TEXT NOT NULL,
    item_id    TEXT,
    actor_kind TEXT NOT NULL,
    actor_id   TEXT NOT NULL,
    action     TEXT NOT NULL
);

CREATE INDEX case_audit_ticket ON case_audit (ticket_id, at_ms);

CREATE TRIGGER case_audit_no_update BEFORE UPDATE ON case_audit
BEGIN
    SELECT RAISE(ABORT, 'case audit rows are append-only');
END;

CREATE TRIGGER case_audit_no_delete BEFORE DELETE ON case_audit
BEGIN
    SELECT RAISE(ABORT, 'case audit rows are append-only');
END;
