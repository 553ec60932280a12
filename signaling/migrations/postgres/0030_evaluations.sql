-- 好差评: evaluations from the kiosks, their forwarding to the 好差评 system, and the
-- follow-up (回访/整改) of every bad review. See signaling/src/store/evaluations.rs.

-- Remote sessions that ended, so an evaluation that arrives late (the kiosk's outbox may
-- deliver it hours later, after a relay restart) is still bound to the session that served it.
CREATE TABLE evaluation_sessions (
    ticket_id           TEXT PRIMARY KEY,
    ticket_number       TEXT NOT NULL,
    centre_id           TEXT NOT NULL,
    device_id           TEXT NOT NULL,
    extension_point_id  TEXT,
    window_id           TEXT NOT NULL,
    clerk_id            TEXT NOT NULL,
    category_id         TEXT NOT NULL,
    started_ms          BIGINT NOT NULL,
    ended_ms            BIGINT NOT NULL
);
CREATE INDEX evaluation_sessions_ended ON evaluation_sessions (ended_ms);

-- One evaluation per ticket (一次一评). Names are copied as they were when the evaluation was
-- stored, so statistics and the forwarded record do not change when a window is renamed.
CREATE TABLE evaluations (
    id                    TEXT PRIMARY KEY,         -- the kiosk's idempotency key
    ticket_id             TEXT NOT NULL UNIQUE,     -- 办件编号
    ticket_number         TEXT NOT NULL,
    centre_id             TEXT NOT NULL,
    centre_name           TEXT NOT NULL,
    category_id           TEXT NOT NULL,
    category_name         TEXT NOT NULL,
    window_id             TEXT NOT NULL,
    window_name           TEXT NOT NULL,
    clerk_id              TEXT NOT NULL,
    clerk_name            TEXT NOT NULL,
    extension_point_id    TEXT NOT NULL,
    extension_point_name  TEXT NOT NULL,
    device_id             TEXT NOT NULL,
    level                 BIGINT CHECK (level IS NULL OR level BETWEEN 1 AND 5), -- NULL: unrated
    reasons               TEXT NOT NULL DEFAULT '',  -- comma-separated reason ids
    service_started_ms    BIGINT NOT NULL,
    service_ended_ms      BIGINT NOT NULL,
    evaluated_ms          BIGINT NOT NULL,
    received_ms           BIGINT NOT NULL,
    -- forwarding to the 好差评 system
    forward_state         TEXT NOT NULL DEFAULT 'pending'
                          CHECK (forward_state IN ('pending', 'delivered', 'dead')),
    forward_attempts      BIGINT NOT NULL DEFAULT 0,
    forward_next_ms       BIGINT NOT NULL,
    forward_error         TEXT,
    forwarded_ms          BIGINT
);
CREATE INDEX evaluations_centre_time ON evaluations (centre_id, evaluated_ms);
CREATE INDEX evaluations_forward ON evaluations (forward_state, forward_next_ms);

-- 差评回访: one item per bad review, due at the end of its last working day.
CREATE TABLE evaluation_followups (
    evaluation_id   TEXT PRIMARY KEY REFERENCES evaluations (id),
    centre_id       TEXT NOT NULL,
    opened_ms       BIGINT NOT NULL,
    due_date        TEXT NOT NULL,      -- YYYY-MM-DD, Shanghai
    due_ms          BIGINT NOT NULL,   -- the end of due_date
    state           TEXT NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'closed')),
    visited_ms      BIGINT,            -- 回访时间
    verification    TEXT NOT NULL DEFAULT '',  -- 核实结果
    rectification   TEXT NOT NULL DEFAULT '',  -- 整改措施
    feedback        TEXT NOT NULL DEFAULT '',  -- 反馈
    closed_ms       BIGINT,
    updated_by      TEXT,
    updated_ms      BIGINT
);
CREATE INDEX evaluation_followups_open ON evaluation_followups (centre_id, state, due_ms);
