-- Every replica on the database and when it was last seen (milliseconds, the database's
-- clock): who may forward to the leader, and what `GET /v1/replicas` lists.
CREATE TABLE replicas (
    name     TEXT PRIMARY KEY,
    address  TEXT NOT NULL,
    seen_ms  INTEGER NOT NULL
);
