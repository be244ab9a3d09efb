-- Registered instances and the digest of the credential each registration got: a replica that
-- takes over knows every agent at once (no fleet-wide re-registration), and checks the same
-- credentials.
CREATE TABLE instances (
    instance       TEXT PRIMARY KEY,
    environment    TEXT NOT NULL,
    zone           TEXT NOT NULL,
    build          TEXT NOT NULL,
    credential     TEXT NOT NULL,
    registered_ms  INTEGER NOT NULL
);
