"""The five transitions, rubric semantics, in PySpark local[2] (the engine an AWS Glue job runs)."""
import json
import sys

from pyspark.sql import SparkSession
from pyspark.sql.types import DoubleType, IntegerType, LongType, StringType, StructField, StructType

landing, out = sys.argv[1], sys.argv[2]
spark = (SparkSession.builder.master("local[2]").appName("stedi-peer")
         .config("spark.ui.enabled", "false").config("spark.sql.shuffle.partitions", "4").getOrCreate())
spark.sparkContext.setLogLevel("ERROR")


def schema(fields):
    return StructType([StructField(name, kind, True) for name, kind in fields])


CUSTOMER = schema([("customerName", StringType()), ("email", StringType()), ("phone", StringType()),
                   ("birthDay", StringType()), ("serialNumber", StringType()), ("registrationDate", LongType()),
                   ("lastUpdateDate", LongType()), ("shareWithResearchAsOfDate", LongType()),
                   ("shareWithPublicAsOfDate", LongType()), ("shareWithFriendsAsOfDate", LongType())])
ACCELEROMETER = schema([("user", StringType()), ("timestamp", LongType()), ("x", DoubleType()),
                        ("y", DoubleType()), ("z", DoubleType())])
STEP = schema([("sensorReadingTime", LongType()), ("serialNumber", StringType()),
               ("distanceFromObject", IntegerType())])

customer = spark.read.schema(CUSTOMER).json(f"{landing}/customer/landing/")
accelerometer = spark.read.schema(ACCELEROMETER).json(f"{landing}/accelerometer/landing/")
step = spark.read.schema(STEP).json(f"{landing}/step_trainer/landing/")

tables = {}
tables["customer_trusted"] = customer.where("shareWithResearchAsOfDate IS NOT NULL").cache()
tables["accelerometer_trusted"] = accelerometer.join(
    tables["customer_trusted"], accelerometer.user == tables["customer_trusted"].email, "left_semi").cache()
tables["customers_curated"] = tables["customer_trusted"].join(
    tables["accelerometer_trusted"], tables["customer_trusted"].email == tables["accelerometer_trusted"].user,
    "left_semi").distinct().cache()
tables["step_trainer_trusted"] = step.join(tables["customers_curated"], "serialNumber", "left_semi").cache()
a = tables["accelerometer_trusted"]
s = tables["step_trainer_trusted"]
tables["machine_learning_curated"] = s.join(a, s.sensorReadingTime == a.timestamp, "inner")

counts = {}
for name, frame in tables.items():
    frame.write.mode("overwrite").parquet(f"{out}/{name}")
    counts[name] = spark.read.parquet(f"{out}/{name}").count()
print(json.dumps(counts))
spark.stop()
