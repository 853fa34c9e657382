-- Schema version 4 → 5: a coupon's journal rows are found by the coupon's
-- place in issue order (`coupons.seq`) instead of by its random id.
--
-- Every claim used to add a `journal_by_entity` entry keyed by the new
-- coupon's random id: a page of that index of its own, written at every
-- commit. Keyed by `seq`, which grows with every claim, new entries go to the
-- last page of `journal_by_coupon`, and `check` walks the coupons and their
-- journals in the order they sit in the file instead of in random order.
-- Rows of stocks, vouchers and outbox calls keep `journal_by_entity`.
--
-- The upgrade fills `coupon_seq` for every coupon row already in the journal,
-- which takes minutes on a ledger of millions of coupons, once. The journal is
-- append-only, so its update trigger is set aside while that runs.

ALTER TABLE journal ADD COLUMN coupon_seq INTEGER;

DROP TRIGGER journal_append_only_update;
UPDATE journal
   SET coupon_seq = (SELECT c.seq FROM coupons c WHERE c.coupon_id = journal.entity_id)
 WHERE entity = 'coupon';
CREATE TRIGGER journal_append_only_update
BEFORE UPDATE ON journal
BEGIN
    SELECT RAISE(ABORT, 'ledger: the journal is append-only');
END;

DROP INDEX journal_by_entity;
CREATE INDEX journal_by_entity ON journal (entity, entity_id, id) WHERE coupon_seq IS NULL;
CREATE INDEX journal_by_coupon ON journal (coupon_seq, id) WHERE coupon_seq IS NOT NULL;
