-- Scheduled maintenance: components under maintenance between the two times; their SLO alerts
-- are suppressed meanwhile.
CREATE TABLE maintenances (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    title            TEXT NOT NULL,
    body             TEXT NOT NULL,
    components       TEXT NOT NULL,        -- JSON list of component names
    scheduled_for    TEXT NOT NULL,
    scheduled_until  TEXT NOT NULL,
    created_at       TEXT NOT NULL,
    created_by       TEXT NOT NULL,
    cancelled_at     TEXT
);

-- Status-page subscribers: a webhook or an email address, confirmed before notified.
CREATE TABLE subscribers (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    kind             TEXT NOT NULL,        -- webhook | email
    target           TEXT NOT NULL,        -- URL or address
    secret           TEXT NOT NULL,        -- HMAC key of webhook payloads
    token            TEXT NOT NULL UNIQUE, -- confirms and unsubscribes
    created_at       TEXT NOT NULL,
    confirmed_at     TEXT,
    unsubscribed_at  TEXT
);
CREATE UNIQUE INDEX subscribers_active ON subscribers(kind, target) WHERE unsubscribed_at IS NULL;
