-- MariaDB has no DROP PRIMARY KEY IF EXISTS; the primary key is the index named PRIMARY.
ALTER TABLE upsell_signal_staging DROP INDEX IF EXISTS `PRIMARY`;
