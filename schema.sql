-- coupon-ledger schema, version 6 (PRAGMA user_version). A new database gets this
-- file; an older database gets the migrations from its version on
-- (migrations/0002_outbox_abandon.sql, migrations/0003_journal_operator.sql,
-- migrations/0004_lean_claims.sql, migrations/0005_journal_by_coupon.sql,
-- migrations/0006_nonces_by_time.sql),
-- which end with the same tables, indexes and triggers.
-- The database itself refuses what the ledger's rules forbid: the code checks first to give
-- precise error codes, and these constraints back every rule up.

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT;

-- 批次. `issued` is kept by a trigger on coupons; its CHECK is the hard stop at max_coupons.
-- `used`, `expired` and `deactivated` count the stock's coupons in those states,
-- kept by a trigger on coupons, so a stock's counts cost one row read however
-- many coupons it has (`check` recounts them). They are written the way
-- `ALTER TABLE ... ADD COLUMN` leaves them in a migrated database.
CREATE TABLE stocks (
    stock_id             TEXT PRIMARY KEY CHECK (length(stock_id) BETWEEN 1 AND 30),
    stock_name           TEXT NOT NULL,
    app_channel_id       INTEGER NOT NULL CHECK (app_channel_id >= 0),
    app_id               TEXT NOT NULL,
    instructions         TEXT NOT NULL,
    coupon_name          TEXT NOT NULL,
    coupon_desc          TEXT NOT NULL,
    coupon_type          INTEGER NOT NULL CHECK (coupon_type IN (1, 2, 3)),
    coupon_amount        INTEGER CHECK (coupon_amount > 0),
    transaction_minimum  INTEGER NOT NULL CHECK (transaction_minimum >= 0),
    discount_percent     INTEGER CHECK (discount_percent BETWEEN 1 AND 99),
    discount_amount_max  INTEGER CHECK (discount_amount_max > 0),
    max_coupons          INTEGER NOT NULL CHECK (max_coupons >= 1),
    max_coupons_per_user INTEGER NOT NULL CHECK (max_coupons_per_user >= 1),
    available_begin_ms   INTEGER NOT NULL,
    available_end_ms     INTEGER NOT NULL,
    create_ms            INTEGER NOT NULL,
    stock_status         INTEGER NOT NULL CHECK (stock_status BETWEEN 1 AND 5),
    issued               INTEGER NOT NULL DEFAULT 0 CHECK (issued >= 0 AND issued <= max_coupons), used INTEGER NOT NULL DEFAULT 0, expired INTEGER NOT NULL DEFAULT 0, deactivated INTEGER NOT NULL DEFAULT 0,
    CHECK (available_begin_ms < available_end_ms),
    CHECK ((coupon_type IN (1, 2) AND coupon_amount IS NOT NULL
              AND discount_percent IS NULL AND discount_amount_max IS NULL)
        OR (coupon_type = 3 AND coupon_amount IS NULL
              AND discount_percent IS NOT NULL AND discount_amount_max IS NOT NULL))
) STRICT;

-- Stock transitions: 1→2, 1→3, 2→1, 2→3, 3→5, 5→3, any non-4 → 4.
CREATE TRIGGER stocks_status_transition
BEFORE UPDATE OF stock_status ON stocks
WHEN NEW.stock_status IS NOT OLD.stock_status
 AND NOT ((OLD.stock_status = 1 AND NEW.stock_status IN (2, 3, 4))
       OR (OLD.stock_status = 2 AND NEW.stock_status IN (1, 3, 4))
       OR (OLD.stock_status = 3 AND NEW.stock_status IN (4, 5))
       OR (OLD.stock_status = 5 AND NEW.stock_status IN (3, 4)))
BEGIN
    SELECT RAISE(ABORT, 'ledger: illegal stock status transition');
END;

-- After the first coupon, the type, amounts, channel, app and start are frozen;
-- the per-user limit may only rise.
CREATE TRIGGER stocks_frozen_after_issue
BEFORE UPDATE ON stocks
WHEN OLD.issued > 0
 AND (NEW.coupon_type IS NOT OLD.coupon_type
   OR NEW.coupon_amount IS NOT OLD.coupon_amount
   OR NEW.transaction_minimum IS NOT OLD.transaction_minimum
   OR NEW.discount_percent IS NOT OLD.discount_percent
   OR NEW.discount_amount_max IS NOT OLD.discount_amount_max
   OR NEW.app_channel_id IS NOT OLD.app_channel_id
   OR NEW.app_id IS NOT OLD.app_id
   OR NEW.available_begin_ms IS NOT OLD.available_begin_ms
   OR NEW.max_coupons_per_user < OLD.max_coupons_per_user)
BEGIN
    SELECT RAISE(ABORT, 'ledger: stock terms are frozen after the first coupon');
END;

CREATE TRIGGER stocks_keep_identity
BEFORE UPDATE OF stock_id, create_ms ON stocks
WHEN NEW.stock_id IS NOT OLD.stock_id OR NEW.create_ms IS NOT OLD.create_ms
BEGIN
    SELECT RAISE(ABORT, 'ledger: stock_id and create_time never change');
END;

CREATE TRIGGER stocks_no_delete
BEFORE DELETE ON stocks
BEGIN
    SELECT RAISE(ABORT, 'ledger: stocks are never deleted');
END;

-- One row per coupon. `seq` is the issue order (keyset pagination); `coupon_id` is random.
-- `issuer` scopes the idempotency key: 'admin' or 'partner:<api_key>'.
CREATE TABLE coupons (
    seq                  INTEGER PRIMARY KEY,
    coupon_id            TEXT NOT NULL UNIQUE
                         CHECK (length(coupon_id) BETWEEN 1 AND 20 AND coupon_id NOT GLOB '*[^0-9]*'),
    stock_id             TEXT NOT NULL REFERENCES stocks (stock_id),
    app_channel_id       INTEGER NOT NULL,
    user_code            TEXT NOT NULL CHECK (length(user_code) BETWEEN 1 AND 32),
    mobile_masked        TEXT CHECK (mobile_masked IS NULL OR mobile_masked NOT GLOB '*[0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]*'),
    issuer               TEXT NOT NULL,
    request_id           TEXT NOT NULL,
    app_id               TEXT NOT NULL,
    coupon_type          INTEGER NOT NULL CHECK (coupon_type BETWEEN 1 AND 3),
    coupon_amount        INTEGER,
    transaction_minimum  INTEGER NOT NULL,
    discount_percent     INTEGER,
    discount_amount_max  INTEGER,
    available_begin_ms   INTEGER NOT NULL,
    available_end_ms     INTEGER NOT NULL,
    receive_ms           INTEGER NOT NULL,
    status               INTEGER NOT NULL CHECK (status BETWEEN 1 AND 4),
    status_ms            INTEGER NOT NULL,
    usage_ms             INTEGER,
    UNIQUE (issuer, request_id)
) STRICT;

-- A user's coupons: the per-user limit of a claim, and the operator's lookup by user.
CREATE INDEX coupons_by_holder ON coupons (user_code, stock_id, app_channel_id);
-- Available coupons by the end of their window: what the sweeper expires next.
CREATE INDEX coupons_due ON coupons (available_end_ms) WHERE status = 1;

-- Claim rules, enforced again by the database, with one read of the stock.
CREATE TRIGGER coupons_claim_rules
BEFORE INSERT ON coupons
BEGIN
    SELECT CASE
        WHEN s.stock_status IS NOT 3 THEN RAISE(ABORT, 'ledger: stock not running')
        WHEN s.app_channel_id IS NOT NEW.app_channel_id
            THEN RAISE(ABORT, 'ledger: app_channel_id differs from the stock')
        WHEN (SELECT count(*) FROM coupons
               WHERE user_code = NEW.user_code AND stock_id = NEW.stock_id
                 AND app_channel_id = NEW.app_channel_id) >= s.max_coupons_per_user
            THEN RAISE(ABORT, 'ledger: user limit reached')
        WHEN NEW.status IS NOT 1 THEN RAISE(ABORT, 'ledger: a new coupon starts available')
    END
    FROM (SELECT 1) LEFT JOIN stocks AS s ON s.stock_id = NEW.stock_id;
END;

-- Counting in the same statement makes the CHECK on stocks.issued the sold-out stop.
CREATE TRIGGER coupons_count_issue
AFTER INSERT ON coupons
BEGIN
    UPDATE stocks SET issued = issued + 1 WHERE stock_id = NEW.stock_id;
END;

-- Coupon transitions: 1→2, 1→3, 1→4, 2→1.
CREATE TRIGGER coupons_status_transition
BEFORE UPDATE OF status ON coupons
WHEN NEW.status IS NOT OLD.status
 AND NOT ((OLD.status = 1 AND NEW.status BETWEEN 2 AND 4)
       OR (OLD.status = 2 AND NEW.status = 1))
BEGIN
    SELECT RAISE(ABORT, 'ledger: illegal coupon status transition');
END;

-- The stock's counts of used, expired and deactivated coupons follow each move.
CREATE TRIGGER coupons_count_status
AFTER UPDATE OF status ON coupons
WHEN NEW.status IS NOT OLD.status
BEGIN
    UPDATE stocks
       SET used = used + (NEW.status = 2) - (OLD.status = 2),
           expired = expired + (NEW.status = 3) - (OLD.status = 3),
           deactivated = deactivated + (NEW.status = 4) - (OLD.status = 4)
     WHERE stock_id = NEW.stock_id;
END;

CREATE TRIGGER coupons_keep_terms
BEFORE UPDATE ON coupons
WHEN NEW.coupon_id IS NOT OLD.coupon_id OR NEW.stock_id IS NOT OLD.stock_id
  OR NEW.user_code IS NOT OLD.user_code OR NEW.app_channel_id IS NOT OLD.app_channel_id
  OR NEW.coupon_type IS NOT OLD.coupon_type OR NEW.coupon_amount IS NOT OLD.coupon_amount
  OR NEW.transaction_minimum IS NOT OLD.transaction_minimum
  OR NEW.discount_percent IS NOT OLD.discount_percent
  OR NEW.discount_amount_max IS NOT OLD.discount_amount_max
  OR NEW.issuer IS NOT OLD.issuer OR NEW.request_id IS NOT OLD.request_id
  OR NEW.receive_ms IS NOT OLD.receive_ms
BEGIN
    SELECT RAISE(ABORT, 'ledger: a coupon''s terms never change');
END;

CREATE TRIGGER coupons_no_delete
BEFORE DELETE ON coupons
BEGIN
    SELECT RAISE(ABORT, 'ledger: coupons are never deleted');
END;

-- One row per redemption, keyed by the order. At most one live (not undone) per coupon.
CREATE TABLE redemptions (
    order_id        TEXT PRIMARY KEY CHECK (length(order_id) BETWEEN 1 AND 64),
    coupon_id       TEXT NOT NULL REFERENCES coupons (coupon_id),
    order_amount    INTEGER NOT NULL CHECK (order_amount >= 0),
    discount_amount INTEGER NOT NULL CHECK (discount_amount BETWEEN 0 AND order_amount),
    pay_amount      INTEGER NOT NULL CHECK (pay_amount = order_amount - discount_amount),
    usage_ms        INTEGER NOT NULL,
    undone_ms       INTEGER
) STRICT;

CREATE UNIQUE INDEX redemptions_one_live ON redemptions (coupon_id) WHERE undone_ms IS NULL;

CREATE TRIGGER redemptions_no_delete
BEFORE DELETE ON redemptions
BEGIN
    SELECT RAISE(ABORT, 'ledger: redemptions are never deleted');
END;

-- A CHECK that lists more than two values is written as `=` ... OR ..., or
-- BETWEEN, never IN (...): SQLite builds a temporary table for such an IN list
-- each time the statement runs, which cost every claim three of them.
--
-- Every state change of a stock, coupon or voucher, in the transaction that made it.
-- Operator actions on sync calls are journaled as entity 'outbox' (entity_id: the
-- call's id; from/to_status NULL; the details in `detail`). `operator` is the
-- named operator of an admin API change, NULL for every other change.
-- `coupon_seq` is the `seq` of the coupon a coupon row is about (NULL for the
-- other entities): a coupon's rows are found by it (`journal_by_coupon`), so a
-- new coupon's index entry goes to the end of the index instead of to the page
-- of a random id. Both columns are written the way `ALTER TABLE ... ADD COLUMN`
-- leaves them in a migrated database, so both have the same schema text.
CREATE TABLE journal (
    id          INTEGER PRIMARY KEY,
    entity      TEXT NOT NULL CHECK (entity = 'stock' OR entity = 'coupon' OR entity = 'voucher' OR entity = 'outbox'),
    entity_id   TEXT NOT NULL,
    event       TEXT NOT NULL,
    from_status INTEGER,
    to_status   INTEGER,
    source      TEXT NOT NULL CHECK (source = 'platform' OR source = 'admin' OR source = 'sweeper' OR source = 'shop'),
    seq_id      TEXT,
    at_ms       INTEGER NOT NULL,
    detail      TEXT
    , operator  TEXT, coupon_seq INTEGER) STRICT;

CREATE INDEX journal_by_entity ON journal (entity, entity_id, id) WHERE coupon_seq IS NULL;
CREATE INDEX journal_by_coupon ON journal (coupon_seq, id) WHERE coupon_seq IS NOT NULL;
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

-- Nonces seen per api_key, kept for twice the timestamp window so a replay is
-- refused even across a restart. The writer holds the window's nonces in memory
-- and refuses a reuse there; this table is what it reads back on start. Ordered
-- by time, so a new nonce goes to the last page and the purge cuts the first ones.
CREATE TABLE nonces (
    seen_ms INTEGER NOT NULL,
    api_key TEXT NOT NULL,
    nonce   TEXT NOT NULL,
    PRIMARY KEY (seen_ms, api_key, nonce)
) STRICT, WITHOUT ROWID;

-- The transactional outbox: one row per call to the platform, written in the
-- transaction of the change that causes it. `seq_id` is fixed at creation so the
-- platform can deduplicate retries. `lane` orders calls: one stock's calls, or
-- one coupon's calls, go in id order; a coupon's calls also wait for its stock's.
-- Only pending and dead calls hold a lane; delivered and abandoned are final, and
-- only they may be deleted (retention). AUTOINCREMENT: an id is never reused.
CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    seq_id          TEXT NOT NULL UNIQUE,
    path            TEXT NOT NULL CHECK (path = '/stock/rsync' OR path = '/coupon/rsync'
                                         OR path = '/stock/status/rsync' OR path = '/coupon/status/rsync'),
    body            TEXT NOT NULL,
    lane            TEXT NOT NULL,
    stock_id        TEXT NOT NULL,
    coupon_id       TEXT,
    state           TEXT NOT NULL CHECK (state = 'pending' OR state = 'delivered' OR state = 'dead' OR state = 'abandoned'),
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

-- Third-party group-buy vouchers, imported by the operator.
-- `remaining` is the uses left; its CHECK is the hard stop at zero.
CREATE TABLE vouchers (
    id                INTEGER PRIMARY KEY,
    type              TEXT NOT NULL CHECK (type IN ('meituan', 'dianping', 'mtdz', 'tiktok')),
    coupon_no         TEXT NOT NULL CHECK (length(coupon_no) BETWEEN 1 AND 64),
    coupon_name       TEXT NOT NULL,
    value_fen         INTEGER NOT NULL CHECK (value_fen >= 0),
    price_fen         INTEGER NOT NULL CHECK (price_fen >= 0),
    coupon_type       TEXT NOT NULL,
    total             INTEGER NOT NULL CHECK (total >= 1),
    remaining         INTEGER NOT NULL CHECK (remaining BETWEEN 0 AND total),
    validity_begin_ms INTEGER NOT NULL,
    validity_end_ms   INTEGER NOT NULL,
    templates         TEXT NOT NULL,
    deal              TEXT NOT NULL,
    created_ms        INTEGER NOT NULL,
    UNIQUE (type, coupon_no),
    CHECK (validity_begin_ms < validity_end_ms)
) STRICT;

CREATE TABLE voucher_shops (
    voucher_id INTEGER NOT NULL REFERENCES vouchers (id),
    shop_id    INTEGER NOT NULL,
    PRIMARY KEY (voucher_id, shop_id)
) STRICT, WITHOUT ROWID;

CREATE TRIGGER vouchers_keep_terms
BEFORE UPDATE OF type, coupon_no, total, value_fen, price_fen, validity_begin_ms, validity_end_ms ON vouchers
BEGIN
    SELECT RAISE(ABORT, 'ledger: a voucher''s terms never change');
END;

CREATE TRIGGER vouchers_no_delete
BEFORE DELETE ON vouchers
BEGIN
    SELECT RAISE(ABORT, 'ledger: vouchers are never deleted');
END;

-- One row per verify; `issuer` + `request_id` is its idempotency key.
CREATE TABLE voucher_verifications (
    verify_id      TEXT PRIMARY KEY,
    voucher_id     INTEGER NOT NULL REFERENCES vouchers (id),
    issuer         TEXT NOT NULL,
    request_id     TEXT NOT NULL,
    shop_id        INTEGER NOT NULL,
    count          INTEGER NOT NULL CHECK (count >= 1),
    remaining_after INTEGER NOT NULL CHECK (remaining_after >= 0),
    verified_ms    INTEGER NOT NULL,
    cancelled_ms   INTEGER,
    UNIQUE (issuer, request_id)
) STRICT;

CREATE INDEX voucher_verifications_by_voucher ON voucher_verifications (voucher_id);

CREATE TRIGGER voucher_verifications_no_delete
BEFORE DELETE ON voucher_verifications
BEGIN
    SELECT RAISE(ABORT, 'ledger: verifications are never deleted');
END;
