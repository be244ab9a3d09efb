-- Versions are immutable: never updated, never deleted.
CREATE TABLE versions (
    id          TEXT PRIMARY KEY,          -- SHA-256 of the canonical document
    document    TEXT NOT NULL,             -- canonical JSON
    parent      TEXT,
    author      TEXT NOT NULL,
    message     TEXT NOT NULL,
    created_at  TEXT NOT NULL
);

CREATE TABLE environments (
    name            TEXT PRIMARY KEY,
    position        INTEGER NOT NULL UNIQUE,
    desired         TEXT REFERENCES versions(id),
    last_known_good TEXT REFERENCES versions(id)
);

-- A version that completed in an environment: every instance applied it.
CREATE TABLE successes (
    environment TEXT NOT NULL REFERENCES environments(name),
    version     TEXT NOT NULL REFERENCES versions(id),
    at          TEXT NOT NULL,
    PRIMARY KEY (environment, version)
);

-- Append-only record of everything that happened.
CREATE TABLE events (
    seq      INTEGER PRIMARY KEY AUTOINCREMENT,
    at       TEXT NOT NULL,
    kind     TEXT NOT NULL,
    subject  TEXT NOT NULL,
    actor    TEXT NOT NULL,
    data     TEXT NOT NULL
);
