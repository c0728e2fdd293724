# keeper's commands. `make test` is the one CI runs (.ci/run): it installs what the tests need and runs them all.

VENV := .venv
PYTHON ?= python3
# The venv's tools (moto_server, cfn-lint, cargo-lambda and its zig) come first on PATH for every recipe.
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export SAM_CLI_TELEMETRY := 0

.PHONY: test venv lint-template fmt-check clippy demo serve probe bench-release

test: venv lint-template fmt-check clippy
	cargo test --workspace --locked

# Python tools from PyPI, pinned in requirements-dev.txt; reinstalled when that file changes.
venv: $(VENV)/.installed
$(VENV)/.installed: requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

lint-template: venv
	cfn-lint template.yaml

fmt-check:
	cargo fmt --all --check

clippy:
	cargo clippy --workspace --all-targets --locked -- -D warnings

# Runs a function on the embedded emulator (the demo account in events/local-account.json) and shows what it did.
FUNCTION ?= start-idle-image-builders
DEMO_EVENT ?= events/start-idle-image-builders/manual-start.json
demo:
	cargo run --quiet -p keeper-local -- invoke $(FUNCTION) $(DEMO_EVENT)

# The emulated AWS alone on port 4566, seeded with the demo account, for `cargo lambda watch` or any AWS client.
serve:
	cargo run --quiet -p keeper-local -- serve --port 4566 --seed events/local-account.json

# Runs the trigger probe once on a sample event, in process: what keeper reads from that event source.
EVENT ?= shared/tests/fixtures/aws/s3-eventbridge-object-created.json
probe:
	AWS_EC2_METADATA_DISABLED=true AWS_REGION=$${AWS_REGION:-us-east-1} cargo run --quiet -p shared --example trigger_probe -- $(EVENT)

# Release bootstrap of the trigger probe: its size, cold start (exec → first runtime-API poll) and peak RSS.
bench-release:
	cargo build --release --locked -p shared --example trigger_probe
	$(PYTHON) bench/cold_start.py target/release/examples/trigger_probe --runs 40
