-- Schema version 1 → 2: sync calls can be abandoned and pruned.
--
-- The outbox gets the final state 'abandoned' (with its time and reason), never
-- reuses an id (AUTOINCREMENT), and lets delivered and abandoned calls be
-- deleted; the journal accepts the entity 'outbox'. SQLite cannot change a CHECK
-- constraint, so both tables are rebuilt: their indexes and triggers are
-- dropped, the table is renamed, the new one is created with exactly the text
-- of schema.sql, the rows are copied with their ids, and the old one is dropped.
-- It runs in the migration's single transaction: all of it or none of it.

DROP TRIGGER journal_append_only_update;
DROP TRIGGER journal_append_only_delete;
DROP INDEX journal_by_entity;
DROP INDEX journal_by_time;
ALTER TABLE journal RENAME TO journal_v1;

CREATE TABLE journal (
    id          INTEGER PRIMARY KEY,
    entity      TEXT NOT NULL CHECK (entity IN ('stock', 'coupon', 'voucher', 'outbox')),
    entity_id   TEXT NOT NULL,
    event       TEXT NOT NULL,
    from_status INTEGER,
    to_status   INTEGER,
    source      TEXT NOT NULL CHECK (source IN ('platform', 'admin', 'sweeper', 'shop')),
    seq_id      TEXT,
    at_ms       INTEGER NOT NULL,
    detail      TEXT
) STRICT;

INSERT INTO journal (id, entity, entity_id, event, from_status, to_status, source, seq_id, at_ms, detail)
SELECT id, entity, entity_id, event, from_status, to_status, source, seq_id, at_ms, detail FROM journal_v1;
DROP TABLE journal_v1;

CREATE INDEX journal_by_entity ON journal (entity, entity_id, id);
CREATE INDEX journal_by_time ON journal (at_ms);

CREATE TRIGGER journal_append_only_update
BEFORE UPDATE ON journal
BEGIN
    SELECT RAISE(ABORT, 'ledger: the journal is append-only');
END;

CREATE TRIGGER journal_append_only_delete
BEFORE DELETE ON journal
BEGIN
    SELECT RAISE(ABORT, 'ledger: the journal is append-only');
END;

DROP TRIGGER outbox_keep_call;
DROP TRIGGER outbox_no_delete;
DROP INDEX outbox_by_state;
DROP INDEX outbox_open_lane;
DROP INDEX outbox_open_stock;
ALTER TABLE outbox RENAME TO outbox_v1;

CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    seq_id          TEXT NOT NULL UNIQUE,
    path            TEXT NOT NULL CHECK (path IN ('/stock/rsync', '/coupon/rsync',
                                                  '/stock/status/rsync', '/coupon/status/rsync')),
    body            TEXT NOT NULL,
    lane            TEXT NOT NULL,
    stock_id        TEXT NOT NULL,
    coupon_id       TEXT,
    state           TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'dead', 'abandoned')),
    attempts        INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_ms INTEGER NOT NULL,
    created_ms      INTEGER NOT NULL,
    delivered_ms    INTEGER,
    last_error      TEXT,
    abandoned_ms    INTEGER,
    abandon_reason  TEXT,
    CHECK ((state = 'delivered') = (delivered_ms IS NOT NULL)),
    CHECK ((state = 'abandoned') = (abandoned_ms IS NOT NULL)),
    CHECK ((abandoned_ms IS NULL) = (abandon_reason IS NULL))
) STRICT;

INSERT INTO outbox (id, seq_id, path, body, lane, stock_id, coupon_id, state, attempts,
                    next_attempt_ms, created_ms, delivered_ms, last_error)
SELECT id, seq_id, path, body, lane, stock_id, coupon_id, state, attempts,
       next_attempt_ms, created_ms, delivered_ms, last_error FROM outbox_v1;
DROP TABLE outbox_v1;

-- Pending calls in creation order: the dispatcher's scan stops as soon as it has enough.
CREATE INDEX outbox_by_state ON outbox (state, id);
CREATE INDEX outbox_open_lane ON outbox (lane, id) WHERE state IN ('pending', 'dead');
CREATE INDEX outbox_open_stock ON outbox (stock_id, id) WHERE state IN ('pending', 'dead') AND coupon_id IS NULL;
-- Final calls by the time they became final: what retention deletes.
CREATE INDEX outbox_by_closing ON outbox (state, coalesce(delivered_ms, abandoned_ms));

CREATE TRIGGER outbox_keep_call
BEFORE UPDATE OF seq_id, path, body, lane, stock_id, coupon_id, created_ms ON outbox
BEGIN
    SELECT RAISE(ABORT, 'ledger: an outbox call never changes, only its delivery state');
END;

CREATE TRIGGER outbox_final_states
BEFORE UPDATE ON outbox
WHEN OLD.state IN ('delivered', 'abandoned')
BEGIN
    SELECT RAISE(ABORT, 'ledger: a delivered or abandoned outbox call never changes');
END;

CREATE TRIGGER outbox_abandon_only_dead
BEFORE UPDATE OF state ON outbox
WHEN NEW.state = 'abandoned' AND OLD.state IS NOT 'dead'
BEGIN
    SELECT RAISE(ABORT, 'ledger: only a dead outbox call can be abandoned');
END;

CREATE TRIGGER outbox_no_delete
BEFORE DELETE ON outbox
WHEN OLD.state NOT IN ('delivered', 'abandoned')
BEGIN
    SELECT RAISE(ABORT, 'ledger: pending and dead outbox calls are never deleted');
END;
