-- Remote appointments (预约): a resident books a slot of a category at an extension point and
-- checks in there at the kiosk. Name and mobile number are sealed (AES-256-GCM with a key per
-- row, wrapped under the privacy master key, the row id bound in as associated data); the
-- number is found again only through its keyed hash (HMAC-SHA256). The masked forms are what
-- screens show. Purging clears every personal column and keeps the row for statistics.
-- Times are Unix ms; service_day is the Shanghai date as days since 1970-01-01.

CREATE TABLE appointments (
    id                  TEXT PRIMARY KEY,
    code                TEXT NOT NULL UNIQUE,          -- 预约码, 8 characters without 0/O/1/I
    centre_id           TEXT NOT NULL REFERENCES centres(id),
    extension_point_id  TEXT NOT NULL REFERENCES extension_points(id),
    category_id         TEXT NOT NULL,
    service_day         INTEGER NOT NULL,
    slot_start_ms       INTEGER NOT NULL,
    slot_end_ms         INTEGER NOT NULL CHECK (slot_end_ms > slot_start_ms),
    state               TEXT NOT NULL
        CHECK (state IN ('booked', 'cancelled', 'checked_in', 'no_show')),
    mobile_hash         TEXT,                           -- HMAC of the number; NULL once purged
    name_masked         TEXT NOT NULL,                  -- 张*
    mobile_masked       TEXT NOT NULL,                  -- 138****1234
    key_id              TEXT,
    wrapped_key         BLOB,
    sealed              BLOB,                           -- {"name", "mobile"} sealed
    ticket_id           TEXT,                           -- the ticket of the check-in
    late                INTEGER NOT NULL DEFAULT 0,     -- checked in after the slot: ordinary ticket
    created_ms          INTEGER NOT NULL,
    updated_ms          INTEGER NOT NULL,
    purged_ms           INTEGER
);

-- One live booking per number, category and day (a centre's categories are its own).
CREATE UNIQUE INDEX appointments_one_live
    ON appointments (mobile_hash, centre_id, category_id, service_day)
    WHERE state = 'booked';
CREATE INDEX appointments_slot ON appointments (centre_id, category_id, slot_start_ms);
CREATE INDEX appointments_day ON appointments (centre_id, service_day, slot_start_ms);
CREATE INDEX appointments_open ON appointments (state, slot_end_ms);
