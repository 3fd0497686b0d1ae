# STEDI lakehouse. `make run` and `make test` are the two commands a newcomer needs.
WAREHOUSE ?= ./lakehouse
POLICY    ?= strict
CUSTOMERS ?= 1000
STEDI     := cargo run --quiet --bin stedi --

.PHONY: build run seed test lint fmt clean bench bench-retention validate lambdas deploy

build:
	cargo build --bin stedi

# Seeds synthetic landing data when the warehouse has none, then runs the
# pipeline through the local state-machine runner, with two malloc arenas as
# the functions run on Lambda (infra/template.yaml): a 500,000-customer run
# holds 389 MiB instead of 543.
run: build
	@test -d $(WAREHOUSE)/customer/landing || $(STEDI) --warehouse $(WAREHOUSE) seed --customers $(CUSTOMERS)
	MALLOC_ARENA_MAX=$${MALLOC_ARENA_MAX:-2} $(STEDI) --warehouse $(WAREHOUSE) run --policy $(POLICY)

# Refuses a warehouse that has landing data: `make clean seed` starts over.
seed: build
	$(STEDI) --warehouse $(WAREHOUSE) seed --customers $(CUSTOMERS)

# The AWS adapters' tests start `moto_server` from .venv; cfn-lint checks the
# SAM template first.
test: validate
	PATH="$(CURDIR)/.venv/bin:$$PATH" cargo build --workspace --bins
	PATH="$(CURDIR)/.venv/bin:$$PATH" cargo nextest run --workspace --no-fail-fast

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

# 30 simulated days of daily runs with and without the Vacuum state (snapshots
# per table, warehouse bytes, vacuum time); writes bench/retention.md/.json.
bench-retention:
	python3 bench/retention.py

# Python tools, pinned in infra/requirements*.txt, live in .venv. Each stamp
# file is a target, so pip runs once and again only when a pin changes.
.venv/bin/python:
	python3 -m venv .venv

# moto_server, cfn-lint and checkov: what `make test` needs.
.venv/.test-tools: infra/requirements-test.txt | .venv/bin/python
	.venv/bin/pip install --quiet --disable-pip-version-check -r infra/requirements-test.txt
	touch $@

# cargo-lambda, zig and the SAM CLI, resolved together with the test tools so
# the two halves agree on boto3.
.venv/.deploy-tools: infra/requirements.txt infra/requirements-test.txt infra/requirements-deploy.txt | .venv/bin/python
	.venv/bin/pip install --quiet --disable-pip-version-check -r infra/requirements.txt
	touch $@

# Lints the SAM template (Transform included), then checkov's policies over
# it: failed checks only, one line each, non-zero on any. Offline
# (--skip-download). A finding is fixed, or skipped in the resource's
# Metadata with the reason it does not apply.
validate: .venv/.test-tools
	.venv/bin/cfn-lint infra/template.yaml
	.venv/bin/checkov --file infra/template.yaml --framework cloudformation --quiet --compact --skip-download

# The three Lambda functions as arm64 zips, and their sizes. One build per
# feature set: Cargo unifies features within a build, and built together each
# function would link the others' SDKs. The two transitions share theirs; the
# quality gate builds alone, without Polars SQL (deployed, it queries Athena).
# Shared dependencies resolve to fewer features than in the workspace build
# (`make test`), so the first `make lambdas` compiles Polars again for them.
lambdas: .venv/.deploy-tools
	PATH="$(CURDIR)/.venv/bin:$$PATH" cargo lambda build --profile lambda --arm64 --output-format zip \
		-p landing-to-trusted -p trusted-to-curated
	PATH="$(CURDIR)/.venv/bin:$$PATH" cargo lambda build --profile lambda --arm64 --output-format zip \
		-p quality-gate
	@ls -l $${CARGO_TARGET_DIR:-target}/lambda/*/bootstrap.zip

# Builds and deploys the stack (prompts for the parameters; needs AWS
# credentials). sam runs from infra/ so the template, samconfig.toml and the
# build directory infra/.aws-sam agree; deploy takes the built template.
deploy: validate .venv/.deploy-tools
	cd infra && PATH="$(CURDIR)/.venv/bin:$$PATH" sam build --template-file template.yaml --config-file samconfig.toml
	cd infra && PATH="$(CURDIR)/.venv/bin:$$PATH" sam deploy --guided --config-file samconfig.toml
