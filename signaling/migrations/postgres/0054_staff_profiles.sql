-- What residents are shown about the clerk serving them (岗位、照片、工号): kept with the staff
-- record, set by the clerk or a supervisor of their centre. Times are Unix ms.
-- As migrations/sqlite/0054_staff_profiles.sql.

CREATE TABLE staff_profiles (
    clerk_id      TEXT PRIMARY KEY REFERENCES clerks(id),
    post          TEXT NOT NULL DEFAULT '',          -- 岗位, e.g. 综合窗口受理员
    staff_number  TEXT NOT NULL DEFAULT '',          -- 工号
    photo         BYTEA,
    photo_type    TEXT CHECK (photo_type IN ('image/jpeg', 'image/png')),
    updated_ms    BIGINT NOT NULL,
    updated_by    TEXT NOT NULL                      -- the clerk id who changed it last
);
