-- The registry of remote counters (远程受理柜台维护): one row per remote device at its
-- extension point (one row of the city's forms), and the append-only trail of every
-- application, activation, change and closure with who, when and why.
-- The queue still reads extension_points and devices; the registry writes them on activation,
-- change and closure, in the same transaction as its own rows.
-- Times are Unix milliseconds.

CREATE TABLE registry_counters (
    id            TEXT PRIMARY KEY,       -- the extension point's id
    centre_id     TEXT NOT NULL REFERENCES centres(id),
    state         TEXT NOT NULL CHECK (state IN ('applied', 'active', 'closed')),
    district      TEXT NOT NULL,          -- 区
    street        TEXT NOT NULL,          -- 街镇
    institution   TEXT NOT NULL,          -- 设备摆放机构名称
    address       TEXT NOT NULL,          -- 设备摆放地址
    hours_text    TEXT NOT NULL,          -- 服务时间 (as printed)
    hours_json    TEXT NOT NULL,          -- 服务时间 (protocol::hours::ServiceHours)
    phone         TEXT NOT NULL,          -- 摆放点位联系电话 (canonical)
    device_id     TEXT NOT NULL,          -- 远程设备 ID
    device_url    TEXT NOT NULL,          -- 远程设备 URL
    remarks       TEXT NOT NULL DEFAULT '', -- 备注
    version       INTEGER NOT NULL,
    applied_ms    INTEGER NOT NULL,
    activated_ms  INTEGER,
    closed_ms     INTEGER,
    close_reason  TEXT,
    updated_ms    INTEGER NOT NULL
);
CREATE INDEX registry_counters_centre ON registry_counters(centre_id);
CREATE INDEX registry_counters_district ON registry_counters(district);
-- A remote device stands at one open counter at a time.
CREATE UNIQUE INDEX registry_counters_live_device ON registry_counters(device_id)
    WHERE state <> 'closed';

CREATE TABLE registry_events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    counter_id  TEXT NOT NULL REFERENCES registry_counters(id),
    centre_id   TEXT NOT NULL,
    district    TEXT NOT NULL,
    at_ms       INTEGER NOT NULL,
    actor_id    TEXT NOT NULL,
    actor_name  TEXT NOT NULL,
    action      TEXT NOT NULL CHECK (action IN
                  ('apply', 'amend', 'activate', 'change', 'reissue', 'withdraw', 'close')),
    reason      TEXT NOT NULL DEFAULT '',
    changes     TEXT NOT NULL DEFAULT '[]',  -- JSON: [{field, before, after}]
    snapshot    TEXT NOT NULL                -- JSON: every field after the event
);
CREATE INDEX registry_events_counter ON registry_events(counter_id, id);
CREATE INDEX registry_events_district ON registry_events(district, at_ms);
CREATE INDEX registry_events_centre ON registry_events(centre_id, at_ms);

CREATE TRIGGER registry_events_no_update BEFORE UPDATE ON registry_events
BEGIN
    SELECT RAISE(ABORT, 'registry_events is append-only');
END;
CREATE TRIGGER registry_events_no_delete BEFORE DELETE ON registry_events
BEGIN
    SELECT RAISE(ABORT, 'registry_events is append-only');
END;

-- Staff accounts that act for a whole district (区运管中心) instead of their own centre.
-- Granted explicitly with `relay registry-scope`.
CREATE TABLE registry_district_scopes (
    clerk_id    TEXT PRIMARY KEY REFERENCES clerks(id),
    district    TEXT NOT NULL,
    granted_ms  INTEGER NOT NULL
);
