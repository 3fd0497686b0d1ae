-- Athena DDL for the raw customer feed (fulfilment website), JSON lines.
-- The pipeline reads its landing schema from this file: names, types and
-- which fields are optional (COMMENT 'optional: ...') are defined here only.
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
