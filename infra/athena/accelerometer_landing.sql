-- Athena DDL for the raw accelerometer feed (mobile app), JSON lines.
-- Older copies of the data spell `timestamp` as `timeStamp`; the OpenX SerDe
-- matches keys case-insensitively, and so does the pipeline's parser.
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
CREATE EXTERNAL TABLE IF NOT EXISTS `accelerometer_landing` (
  `user` string,
  `timestamp` bigint,
  `x` double,
  `y` double,
  `z` double
)
ROW FORMAT SERDE 'org.openx.data.jsonserde.JsonSerDe'
WITH SERDEPROPERTIES ('case.insensitive' = 'true', 'ignore.malformed.json' = 'true')
STORED AS INPUTFORMAT 'org.apache.hadoop.mapred.TextInputFormat'
OUTPUTFORMAT 'org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat'
LOCATION '${warehouse}/accelerometer/landing/'
TBLPROPERTIES ('classification' = 'json');
