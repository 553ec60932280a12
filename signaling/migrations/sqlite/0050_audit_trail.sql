-- The relay's audit trail: one append-only, hash-chained log of security-relevant events
-- (logins, administrative commands, registry steps, reveals, recording access). Each row
-- carries the hash of the row before it; `relay audit verify` recomputes the chain.
-- See signaling/src/audit/mod.rs.
CREATE TABLE audit_log (
    seq        INTEGER PRIMARY KEY,   -- 1, 2, 3 … without gaps
    at_ms      INTEGER NOT NULL,
    kind       TEXT NOT NULL,         -- e.g. login.failed, admin.add_clerk, case.revealed
    actor      TEXT NOT NULL,         -- clerk:<id>, device:<id>, cli:<user>, system:<task>, anonymous
    source     TEXT NOT NULL,         -- source address, or '' when not over the network
    subject    TEXT NOT NULL,         -- what it was done to (ids only, never personal data)
    detail     TEXT NOT NULL,
    prev_hash  TEXT NOT NULL,         -- hex SHA-256 of the previous row (zeros for the first)
    hash       TEXT NOT NULL          -- hex SHA-256 over prev_hash and this row's fields
);

CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;

-- How far the trail has been shipped to syslog (one row).
CREATE TABLE audit_shipping (
    id           INTEGER PRIMARY KEY CHECK (id = 1),
    shipped_seq  INTEGER NOT NULL
);

-- Ticket events are the queue's own record of who did what to a ticket: append-only too.
CREATE TRIGGER ticket_events_no_update BEFORE UPDATE ON ticket_events
BEGIN
    SELECT RAISE(ABORT, 'ticket_events is append-only');
END;
CREATE TRIGGER ticket_events_no_delete BEFORE DELETE ON ticket_events
BEGIN
    SELECT RAISE(ABORT, 'ticket_events is append-only');
END;

-- A closed 差评 follow-up is final: its record cannot be rewritten.
CREATE TRIGGER evaluation_followups_closed_final BEFORE UPDATE ON evaluation_followups
WHEN OLD.state = 'closed'
BEGIN
    SELECT RAISE(ABORT, 'a closed follow-up cannot be changed');
END;

-- Every saved version of a follow-up, in order.
CREATE TABLE evaluation_followup_history (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    evaluation_id  TEXT NOT NULL REFERENCES evaluation_followups (evaluation_id),
    at_ms          INTEGER NOT NULL,
    by_clerk       TEXT NOT NULL,
    state          TEXT NOT NULL,
    visited_ms     INTEGER,
    verification   TEXT NOT NULL,
    rectification  TEXT NOT NULL,
    feedback       TEXT NOT NULL
);
CREATE INDEX evaluation_followup_history_by ON evaluation_followup_history (evaluation_id, id);
CREATE TRIGGER evaluation_followup_history_no_update BEFORE UPDATE ON evaluation_followup_history
BEGIN
    SELECT RAISE(ABORT, 'follow-up history is append-only');
END;
CREATE TRIGGER evaluation_followup_history_no_delete BEFORE DELETE ON evaluation_followup_history
BEGIN
    SELECT RAISE(ABORT, 'follow-up history is append-only');
END;
