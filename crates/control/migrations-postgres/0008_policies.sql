-- Rollout policies: every revision of each environment's policy, as written, never changed.
-- The newest revision is the one new releases follow; none means the default.
CREATE TABLE policies (
    environment  TEXT NOT NULL REFERENCES environments(name),
    revision     BIGINT NOT NULL,
    text         TEXT NOT NULL,
    actor        TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    PRIMARY KEY (environment, revision)
);
