-- Athena DDL for the raw accelerometer feed (mobile app), JSON lines.
-- Older copies of the data spell `timestamp` as `timeStamp`; the OpenX SerDe
-- matches keys case-insensitively, and so does the pipeline's parser.
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
