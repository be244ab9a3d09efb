-- A version going to an environment in waves (the rollout planner's intent).
CREATE TABLE releases (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    environment      TEXT NOT NULL REFERENCES environments(name),
    version          TEXT NOT NULL REFERENCES versions(id),
    previous         TEXT NOT NULL REFERENCES versions(id),
    intent           TEXT NOT NULL,   -- JSON of rampart_rollout::Intent
    cohort           TEXT NOT NULL,   -- JSON list of instances told to run `version`
    gate             TEXT,            -- the latest gate verdict, as text
    reason           TEXT,            -- why it holds, or why it ended
    created_by       TEXT NOT NULL,
    created_at       TEXT NOT NULL
);
