-- The leader's lease: which replica runs the reconciler, alerting and the outbox, until when
-- (milliseconds, the database's clock), under which epoch. The epoch grows on every takeover,
-- and a leader's writes are fenced on it: a deposed leader's late writes fail.
CREATE TABLE leader_lease (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    holder      TEXT NOT NULL,
    address     TEXT NOT NULL,
    epoch       INTEGER NOT NULL,
    expires_ms  INTEGER NOT NULL
);
INSERT INTO leader_lease (id, holder, address, epoch, expires_ms) VALUES (1, '', '', 0, 0);
