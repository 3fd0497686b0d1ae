-- Athena DDL for the raw Step Trainer feed (IoT distance sensor), JSON lines.
CREATE EXTERNAL TABLE IF NOT EXISTS `step_trainer_landing` (
  `sensorReadingTime` bigint,
  `serialNumber` string,
  `distanceFromObject` int
)
ROW FORMAT SERDE 'org.openx.data.jsonserde.JsonSerDe'
WITH SERDEPROPERTIES ('case.insensitive' = 'true', 'ignore.malformed.json' = 'true')
STORED AS INPUTFORMAT 'org.apache.hadoop.mapred.TextInputFormat'
OUTPUTFORMAT 'org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat'
LOCATION '${warehouse}/step_trainer/landing/'
TBLPROPERTIES ('classification' = 'json');
