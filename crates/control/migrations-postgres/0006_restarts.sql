-- Rolling restarts survive a control-plane restart: each environment's last restart (running,
-- succeeded or failed) and whether its current batch was already told to restart.
CREATE TABLE restarts (
    environment      TEXT PRIMARY KEY,
    status           TEXT NOT NULL,        -- JSON RestartStatus
    batch_issued     BOOLEAN NOT NULL,    -- true: the current batch's generations were bumped
    updated_at       TEXT NOT NULL
);

-- The restart generation handed to each instance: it only grows, so an agent can tell a new
-- restart request from one it already carried out, whatever restarted in between.
CREATE TABLE restart_generations (
    instance         TEXT PRIMARY KEY,
    generation       BIGINT NOT NULL
);
