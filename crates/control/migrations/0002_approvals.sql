-- A deploy of a high-risk change to the last environment waits for a second person.
CREATE TABLE approvals (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    environment   TEXT NOT NULL REFERENCES environments(name),
    version       TEXT NOT NULL REFERENCES versions(id),
    sections      TEXT NOT NULL,            -- JSON list of high-risk sections changed
    requested_by  TEXT NOT NULL,
    requested_at  TEXT NOT NULL,
    approved_by   TEXT,
    approved_at   TEXT
);
