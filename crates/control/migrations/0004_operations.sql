-- Status-page components and their SLOs.
CREATE TABLE components (
    name        TEXT PRIMARY KEY,
    spec        TEXT NOT NULL,             -- JSON of rampart_api::ComponentSpec
    position    INTEGER NOT NULL,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);

-- Completed minutes of each SLI series (component:NAME, environment:NAME).
CREATE TABLE sli_minutes (
    series  TEXT NOT NULL,
    minute  INTEGER NOT NULL,              -- minutes since the Unix epoch
    total   INTEGER NOT NULL,
    failed  INTEGER NOT NULL,
    PRIMARY KEY (series, minute)
);

CREATE TABLE alerts (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    key          TEXT NOT NULL,
    name         TEXT NOT NULL,
    severity     TEXT NOT NULL,            -- page | ticket
    source       TEXT NOT NULL,            -- slo | event | alertmanager
    summary      TEXT NOT NULL,
    data         TEXT NOT NULL,
    fired_at     TEXT NOT NULL,
    resolved_at  TEXT,
    incident     INTEGER REFERENCES incidents(id)
);
-- Deduplication: one active alert per key.
CREATE UNIQUE INDEX alerts_active_key ON alerts(key) WHERE resolved_at IS NULL;

CREATE TABLE channels (
    name  TEXT PRIMARY KEY,
    spec  TEXT NOT NULL                    -- JSON of rampart_api::ChannelSpec
);

-- Notifications to deliver. Written in the transaction that decides them; delivered in order
-- per channel; the key makes a redelivery after a crash recognisable to the receiver.
CREATE TABLE outbox (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    channel       TEXT NOT NULL,
    key           TEXT NOT NULL,
    notification  TEXT NOT NULL,           -- JSON of notify::Notification
    created_at    TEXT NOT NULL,
    attempts      INTEGER NOT NULL DEFAULT 0,
    next_at_ms    INTEGER NOT NULL DEFAULT 0,
    delivered_at  TEXT,
    failed_at     TEXT,
    last_error    TEXT,
    UNIQUE (channel, key)
);
CREATE INDEX outbox_pending ON outbox(channel, id) WHERE delivered_at IS NULL AND failed_at IS NULL;

CREATE TABLE incidents (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    title         TEXT NOT NULL,
    status        TEXT NOT NULL,
    impact        TEXT NOT NULL,
    environment   TEXT,
    components    TEXT NOT NULL,           -- JSON list
    cause         TEXT NOT NULL,           -- JSON
    opened_at     TEXT NOT NULL,
    started_ms    INTEGER NOT NULL,        -- when its window starts (the release, or the alert)
    resolved_at   TEXT,
    first_event   INTEGER NOT NULL,
    last_event    INTEGER,
    failed        INTEGER NOT NULL DEFAULT 0,
    total         INTEGER NOT NULL DEFAULT 0,
    summary       TEXT NOT NULL DEFAULT '',
    root_cause    TEXT NOT NULL DEFAULT '',
    resolution    TEXT NOT NULL DEFAULT ''
);

CREATE TABLE incident_updates (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    incident  INTEGER NOT NULL REFERENCES incidents(id),
    at        TEXT NOT NULL,
    status    TEXT NOT NULL,
    body      TEXT NOT NULL,
    actor     TEXT NOT NULL
);

CREATE TABLE action_items (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    incident  INTEGER NOT NULL REFERENCES incidents(id),
    title     TEXT NOT NULL,
    owner     TEXT NOT NULL,
    state     TEXT NOT NULL
);
