"""The five transitions, rubric semantics, in DuckDB SQL: landing JSON in, Parquet out."""
import json
import sys

import duckdb

landing, out = sys.argv[1], sys.argv[2]
con = duckdb.connect()
con.execute("SET threads = 2")
CUSTOMER = ("{'customerName': 'VARCHAR', 'email': 'VARCHAR', 'phone': 'VARCHAR', 'birthDay': 'VARCHAR', "
            "'serialNumber': 'VARCHAR', 'registrationDate': 'BIGINT', 'lastUpdateDate': 'BIGINT', "
            "'shareWithResearchAsOfDate': 'BIGINT', 'shareWithPublicAsOfDate': 'BIGINT', "
            "'shareWithFriendsAsOfDate': 'BIGINT'}")
ACCELEROMETER = "{'user': 'VARCHAR', 'timestamp': 'BIGINT', 'x': 'DOUBLE', 'y': 'DOUBLE', 'z': 'DOUBLE'}"
STEP = "{'sensorReadingTime': 'BIGINT', 'serialNumber': 'VARCHAR', 'distanceFromObject': 'INTEGER'}"


def source(dataset, columns):
    return f"read_json('{landing}/{dataset}/landing/*.json', format = 'newline_delimited', columns = {columns})"


tables = {
    "customer_trusted": f"SELECT * FROM {source('customer', CUSTOMER)} WHERE shareWithResearchAsOfDate IS NOT NULL",
    "accelerometer_trusted": f"SELECT a.* FROM {source('accelerometer', ACCELEROMETER)} a "
                             "SEMI JOIN customer_trusted c ON a.user = c.email",
    "customers_curated": "SELECT DISTINCT c.* FROM customer_trusted c "
                         "SEMI JOIN accelerometer_trusted a ON a.user = c.email",
    "step_trainer_trusted": f"SELECT s.* FROM {source('step_trainer', STEP)} s "
                            "SEMI JOIN customers_curated c ON s.serialNumber = c.serialNumber",
    "machine_learning_curated": "SELECT s.*, a.* FROM step_trainer_trusted s "
                                "JOIN accelerometer_trusted a ON s.sensorReadingTime = a.timestamp",
}
counts = {}
for name, query in tables.items():
    con.execute(f"CREATE TABLE {name} AS {query}")
    con.execute(f"COPY {name} TO '{out}/{name}.parquet' (FORMAT parquet)")
    counts[name] = con.execute(f"SELECT COUNT(*) FROM {name}").fetchone()[0]
print(json.dumps(counts))
