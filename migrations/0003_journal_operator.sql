-- Schema version 2 → 3: the journal names the operator of an admin API change.
--
-- Named operators (`[[admins]]` in the config, or `admin` for `admin_token`)
-- call the admin API; every change they make is journaled with their name.
-- Rows written before this version, and rows of the platform, the shops, the
-- sweeper and the command line, have NULL here.

ALTER TABLE journal ADD COLUMN operator TEXT;
