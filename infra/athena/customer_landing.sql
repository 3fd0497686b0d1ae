-- Athena DDL for the raw customer feed (fulfilment website), JSON lines.
-- The pipeline reads its landing schema from this file: names, types and
-- which fields are optional (COMMENT 'optional: ...') are defined here only.
-- How a landing folder is read, by Athena and by the pipeline alike:
-- - objects: every object under LOCATION, at any depth and with any
--   extension (delivery streams write `YYYY/MM/DD/HH/<name>` without one),
--   except names or folders starting with `_` or `.` (`_SUCCESS`, `.crc`,
--   `_temporary/`) and empty objects;
-- - compression by extension: `.gz` (gzip) and `.zst` (zstd) are decompressed
--   (Hadoop's TextInputFormat picks the codec by extension); other names are text;
-- - 'case.insensitive' = 'true': keys match whatever their case (`timeStamp`
--   is `timestamp`). The pipeline quarantines an object naming one field twice
--   (`duplicate_key`) rather than keep one of the values;
-- - 'ignore.malformed.json' = 'true': Athena returns a line it cannot parse as
--   a row of NULLs instead of failing the query. The pipeline instead makes the
--   lossless repairs (BOM, CRLF, blank lines, a trailing comma, objects back to
--   back, integral floats, numbers in string columns), counts them by kind in
--   the run report, and quarantines every other bad record with its reason.
CREATE EXTERNAL TABLE IF NOT EXISTS `customer_landing` (
  `customerName` string,
  `email` string,
  `phone` string,
  `birthDay` string,
  `serialNumber` string,
  `registrationDate` bigint,
  `lastUpdateDate` bigint,
  `shareWithResearchAsOfDate` bigint COMMENT 'optional: absent or null without research consent',
  `shareWithPublicAsOfDate` bigint COMMENT 'optional: absent or null when not shared publicly',
  `shareWithFriendsAsOfDate` bigint COMMENT 'optional: absent or null when not shared with friends'
)
ROW FORMAT SERDE 'org.openx.data.jsonserde.JsonSerDe'
WITH SERDEPROPERTIES ('case.insensitive' = 'true', 'ignore.malformed.json' = 'true')
STORED AS INPUTFORMAT 'org.apache.hadoop.mapred.TextInputFormat'
OUTPUTFORMAT 'org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat'
LOCATION '${warehouse}/customer/landing/'
TBLPROPERTIES ('classification' = 'json');
