# STEDI lakehouse. `make run` and `make test` are the two commands a newcomer needs.
WAREHOUSE ?= ./lakehouse
POLICY    ?= strict
CUSTOMERS ?= 1000
STEDI     := cargo run --quiet --bin stedi --

.PHONY: build run seed test lint fmt clean bench

build:
	cargo build --bin stedi

# Seeds synthetic landing data when the warehouse has none, then runs the
# pipeline through the local state-machine runner.
run: build
	@test -d $(WAREHOUSE)/customer/landing || $(STEDI) --warehouse $(WAREHOUSE) seed --customers $(CUSTOMERS)
	$(STEDI) --warehouse $(WAREHOUSE) run --policy $(POLICY)

seed: build
	$(STEDI) --warehouse $(WAREHOUSE) seed --customers $(CUSTOMERS)

test:
	cargo build --workspace --bins
	cargo nextest run --workspace --no-fail-fast

lint:
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings

fmt:
	cargo fmt --all

clean:
	rm -rf $(WAREHOUSE)

# Benchmark against DuckDB, Python Polars and PySpark (up to ~30 minutes);
# writes bench/results.md and bench/results.json.
bench:
	python3 bench/bench.py
