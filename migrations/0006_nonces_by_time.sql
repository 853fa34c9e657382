-- Schema version 5 → 6: the nonces table is ordered by the time a nonce was
-- seen instead of by the nonce.
--
-- The writer now holds the replay window's nonces in memory and refuses a
-- reuse there; the table only has to bring the window back after a restart.
-- Keyed by the nonce, every signed request wrote a page at a random place of
-- the table and another of its index by age at every commit. Keyed by time,
-- a new nonce goes to the table's last page and the index by age is not
-- needed. The rows of the window are carried over.

CREATE TEMP TABLE nonces_v5 AS SELECT seen_ms, api_key, nonce FROM nonces;
DROP TABLE nonces;
CREATE TABLE nonces (
    seen_ms INTEGER NOT NULL,
    api_key TEXT NOT NULL,
    nonce   TEXT NOT NULL,
    PRIMARY KEY (seen_ms, api_key, nonce)
) STRICT, WITHOUT ROWID;
INSERT INTO nonces (seen_ms, api_key, nonce) SELECT seen_ms, api_key, nonce FROM temp.nonces_v5;
DROP TABLE temp.nonces_v5;
