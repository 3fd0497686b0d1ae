"""The five transitions, rubric semantics, with the Python Polars lazy API: landing JSON in, Parquet out."""
import json
import sys

import polars as pl

landing, out = sys.argv[1], sys.argv[2]
CUSTOMER = {"customerName": pl.String, "email": pl.String, "phone": pl.String, "birthDay": pl.String,
            "serialNumber": pl.String, "registrationDate": pl.Int64, "lastUpdateDate": pl.Int64,
            "shareWithResearchAsOfDate": pl.Int64, "shareWithPublicAsOfDate": pl.Int64,
            "shareWithFriendsAsOfDate": pl.Int64}
ACCELEROMETER = {"user": pl.String, "timestamp": pl.Int64, "x": pl.Float64, "y": pl.Float64, "z": pl.Float64}
STEP = {"sensorReadingTime": pl.Int64, "serialNumber": pl.String, "distanceFromObject": pl.Int32}

customer = pl.scan_ndjson(f"{landing}/customer/landing/*.json", schema=CUSTOMER)
accelerometer = pl.scan_ndjson(f"{landing}/accelerometer/landing/*.json", schema=ACCELEROMETER)
step = pl.scan_ndjson(f"{landing}/step_trainer/landing/*.json", schema=STEP)

customer_trusted = customer.filter(pl.col("shareWithResearchAsOfDate").is_not_null()).collect()
accelerometer_trusted = accelerometer.join(
    customer_trusted.lazy(), left_on="user", right_on="email", how="semi").collect()
customers_curated = customer_trusted.lazy().join(
    accelerometer_trusted.lazy(), left_on="email", right_on="user", how="semi").unique(maintain_order=True).collect()
step_trainer_trusted = step.join(customers_curated.lazy(), on="serialNumber", how="semi").collect()
machine_learning_curated = step_trainer_trusted.lazy().join(
    accelerometer_trusted.lazy(), left_on="sensorReadingTime", right_on="timestamp", how="inner").collect()

counts = {}
for name, frame in [("customer_trusted", customer_trusted), ("accelerometer_trusted", accelerometer_trusted),
                    ("customers_curated", customers_curated), ("step_trainer_trusted", step_trainer_trusted),
                    ("machine_learning_curated", machine_learning_curated)]:
    frame.write_parquet(f"{out}/{name}.parquet")
    counts[name] = frame.height
print(json.dumps(counts))
