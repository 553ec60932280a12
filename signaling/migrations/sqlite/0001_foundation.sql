-- Centres, their service categories and windows, clerks, extension points, devices, tickets.
-- Times are Unix milliseconds (INTEGER); service days are days since 1970-01-01 in Shanghai.

CREATE TABLE centres (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,          -- 受理中心
    district    TEXT NOT NULL DEFAULT '',
    street      TEXT NOT NULL DEFAULT '',
    created_ms  INTEGER NOT NULL
);

CREATE TABLE service_categories (       -- 事项类别
    id          TEXT PRIMARY KEY,
    centre_id   TEXT NOT NULL REFERENCES centres(id),
    prefix      TEXT NOT NULL,          -- letter(s) of its ticket numbers
    name        TEXT NOT NULL,
    sort_order  INTEGER NOT NULL DEFAULT 0,
    active      INTEGER NOT NULL DEFAULT 1,
    UNIQUE (centre_id, prefix)
);

CREATE TABLE windows (                  -- 窗口
    id          TEXT PRIMARY KEY,
    centre_id   TEXT NOT NULL REFERENCES centres(id),
    name        TEXT NOT NULL,
    mode        TEXT NOT NULL CHECK (mode IN ('on_site', 'remote', 'combined')),
    sort_order  INTEGER NOT NULL DEFAULT 0,
    active      INTEGER NOT NULL DEFAULT 1,
    -- the clerk signed in to the window, kept across relay restarts
    clerk_id    TEXT REFERENCES clerks(id),
    clerk_name  TEXT
);

CREATE TABLE window_categories (
    window_id   TEXT NOT NULL REFERENCES windows(id),
    category_id TEXT NOT NULL REFERENCES service_categories(id),
    PRIMARY KEY (window_id, category_id)
);

CREATE TABLE clerks (
    id            TEXT PRIMARY KEY,
    centre_id     TEXT NOT NULL REFERENCES centres(id),
    username      TEXT NOT NULL UNIQUE,
    display_name  TEXT NOT NULL,
    password_hash TEXT NOT NULL,        -- argon2id PHC string
    roles         TEXT NOT NULL,        -- comma-separated: clerk,supervisor,registry_operator,technician
    active        INTEGER NOT NULL DEFAULT 1,
    created_ms    INTEGER NOT NULL
);

CREATE TABLE clerk_sessions (
    token_hash  TEXT PRIMARY KEY,       -- sha256 of the bearer token; the token itself is never stored
    clerk_id    TEXT NOT NULL REFERENCES clerks(id),
    created_ms  INTEGER NOT NULL,
    expires_ms  INTEGER NOT NULL
);
CREATE INDEX clerk_sessions_expiry ON clerk_sessions(expires_ms);

CREATE TABLE extension_points (         -- 延伸点
    id            TEXT PRIMARY KEY,
    centre_id     TEXT NOT NULL REFERENCES centres(id),
    name          TEXT NOT NULL,        -- 设备摆放机构名称
    address       TEXT NOT NULL DEFAULT '',
    phone         TEXT NOT NULL DEFAULT '',
    service_hours TEXT NOT NULL DEFAULT '',
    status        TEXT NOT NULL DEFAULT 'active',
    created_ms    INTEGER NOT NULL
);

CREATE TABLE devices (
    id                 TEXT PRIMARY KEY,
    centre_id          TEXT NOT NULL REFERENCES centres(id),
    extension_point_id TEXT REFERENCES extension_points(id),
    kind               TEXT NOT NULL CHECK (kind IN ('kiosk', 'ticket_machine')),
    name               TEXT NOT NULL,
    secret_hash        TEXT NOT NULL,   -- 'sha256:<hex>' of the 256-bit random device secret
    status             TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
    created_ms         INTEGER NOT NULL,
    last_seen_ms       INTEGER
);

CREATE TABLE tickets (
    id                 TEXT PRIMARY KEY,
    centre_id          TEXT NOT NULL REFERENCES centres(id),
    service_day        INTEGER NOT NULL,
    number             TEXT NOT NULL,
    number_seq         INTEGER NOT NULL,
    channel            TEXT NOT NULL CHECK (channel IN ('on_site', 'remote')),
    category_id        TEXT NOT NULL REFERENCES service_categories(id),
    state              TEXT NOT NULL,
    created_ms         INTEGER NOT NULL,
    queue_ms           INTEGER NOT NULL,
    seq                INTEGER NOT NULL,
    appointment_start  INTEGER,
    appointment_end    INTEGER,
    device_id          TEXT,
    extension_point_id TEXT,
    window_id          TEXT,
    target_window_id   TEXT,
    clerk_id           TEXT,
    first_called_ms    INTEGER,
    called_ms          INTEGER,
    serving_ms         INTEGER,
    finished_ms        INTEGER,
    recalls            INTEGER NOT NULL DEFAULT 0,
    end_reason         TEXT,
    UNIQUE (centre_id, service_day, number)
);
CREATE INDEX tickets_live ON tickets(centre_id, state);
CREATE INDEX tickets_day ON tickets(centre_id, service_day);

-- Every change to a ticket, in order: the audit trail and the source of statistics.
CREATE TABLE ticket_events (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    ticket_id  TEXT NOT NULL REFERENCES tickets(id),
    at_ms      INTEGER NOT NULL,
    action     TEXT NOT NULL,
    state      TEXT NOT NULL,
    clerk_id   TEXT,
    window_id  TEXT
);
CREATE INDEX ticket_events_ticket ON ticket_events(ticket_id);
