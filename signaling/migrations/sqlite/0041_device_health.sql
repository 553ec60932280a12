-- Kiosk health: the last XFS4IoT status of each device of each kiosk, alerts raised from it,
-- and inspection records (巡检记录) uploaded by the kiosks' self-test. Times are Unix ms.

CREATE TABLE device_status (
    device_id   TEXT NOT NULL,          -- the kiosk (devices.id)
    kind        TEXT NOT NULL,          -- camera, document_camera, microphone, speaker, id_card_reader, qr_scanner, screen
    status      TEXT NOT NULL,          -- online, offline, power_off, no_device, hardware_error, user_error, device_busy, starting
    since_ms    INTEGER NOT NULL,       -- when it entered this status
    updated_ms  INTEGER NOT NULL,
    PRIMARY KEY (device_id, kind)
);

CREATE TABLE health_alerts (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    key         TEXT NOT NULL,          -- kiosk_offline:<device> or device_failed:<device>:<kind>
    kind        TEXT NOT NULL,
    centre_id   TEXT NOT NULL,
    extension_point_id TEXT NOT NULL,
    device_id   TEXT NOT NULL,
    since_ms    INTEGER NOT NULL,
    fired_ms    INTEGER NOT NULL,
    resolved_ms INTEGER,
    alert       TEXT NOT NULL           -- JSON as raised
);
CREATE UNIQUE INDEX health_alerts_open ON health_alerts(key) WHERE resolved_ms IS NULL;
CREATE INDEX health_alerts_centre ON health_alerts(centre_id, fired_ms);

CREATE TABLE inspections (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    device_id          TEXT NOT NULL,
    extension_point_id TEXT NOT NULL,
    centre_id          TEXT NOT NULL,
    technician         TEXT NOT NULL,   -- 巡检人员; empty for the automatic daily run
    automatic          INTEGER NOT NULL,
    started_ms         INTEGER NOT NULL,
    finished_ms        INTEGER NOT NULL,
    received_ms        INTEGER NOT NULL,
    overall            TEXT NOT NULL CHECK (overall IN ('pass', 'warn', 'fail')),
    report             TEXT NOT NULL    -- JSON: protocol::inspection::InspectionReport
);
CREATE INDEX inspections_point ON inspections(extension_point_id, id);
CREATE INDEX inspections_centre ON inspections(centre_id, id);
