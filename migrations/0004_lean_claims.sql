-- Schema version 3 → 4: cheaper claims, and stock counts that do not grow with
-- the number of coupons.
--
-- * Stocks count their used, expired and deactivated coupons (a trigger keeps
--   them), so reading a stock's counts no longer counts its coupons.
-- * `coupons_by_user` is dropped: no query used it, and every claim paid for
--   it. `coupons_by_holder` leads with the user, so it serves both the claim's
--   per-user limit and the operator's lookup by user.
-- * The sweeper's index holds available coupons only.
-- * The claim trigger reads the stock once; the transition trigger uses no IN
--   list. (The CHECKs are rewritten without IN lists by the program itself,
--   after this file: see `schema::rewrite_checks`.)

ALTER TABLE stocks ADD COLUMN used INTEGER NOT NULL DEFAULT 0;
ALTER TABLE stocks ADD COLUMN expired INTEGER NOT NULL DEFAULT 0;
ALTER TABLE stocks ADD COLUMN deactivated INTEGER NOT NULL DEFAULT 0;

UPDATE stocks SET
    used = (SELECT count(*) FROM coupons c WHERE c.stock_id = stocks.stock_id AND c.status = 2),
    expired = (SELECT count(*) FROM coupons c WHERE c.stock_id = stocks.stock_id AND c.status = 3),
    deactivated = (SELECT count(*) FROM coupons c WHERE c.stock_id = stocks.stock_id AND c.status = 4);

DROP INDEX coupons_by_user;
DROP INDEX coupons_by_holder;
CREATE INDEX coupons_by_holder ON coupons (user_code, stock_id, app_channel_id);
DROP INDEX coupons_by_expiry;
CREATE INDEX coupons_due ON coupons (available_end_ms) WHERE status = 1;

DROP TRIGGER coupons_claim_rules;
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

DROP TRIGGER coupons_status_transition;
CREATE TRIGGER coupons_status_transition
BEFORE UPDATE OF status ON coupons
WHEN NEW.status IS NOT OLD.status
 AND NOT ((OLD.status = 1 AND NEW.status BETWEEN 2 AND 4)
       OR (OLD.status = 2 AND NEW.status = 1))
BEGIN
    SELECT RAISE(ABORT, 'ledger: illegal coupon status transition');
END;

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
