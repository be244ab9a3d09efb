-- API tokens created through the API (only their SHA-256), and revocations of any token,
-- bootstrap ones included (a bootstrap token's row has no digest: its secret is in tokens.json).
CREATE TABLE tokens (
    name          TEXT PRIMARY KEY,
    role          TEXT NOT NULL,
    environments  TEXT NOT NULL,            -- JSON list
    digest        TEXT NOT NULL,            -- hex SHA-256 of the secret; '' for a bootstrap token
    bootstrap     BIGINT NOT NULL DEFAULT 0,
    created_at    TEXT,
    created_by    TEXT,
    revoked_at    TEXT,
    revoked_by    TEXT
);
