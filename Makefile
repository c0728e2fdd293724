# keeper's commands. `make test` is the one CI runs (.ci/run): it installs what the tests need and runs them all.

VENV := .venv
PYTHON ?= python3
# The venv's tools (moto_server, cfn-lint, cargo-lambda and its zig) come first on PATH for every recipe.
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export SAM_CLI_TELEMETRY := 0

.PHONY: test venv lint-template fmt-check clippy demo serve probe bench-release bench-emulator models

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
# The demo account's key group and desired-state document (events/local-account.json): rotate-key-group changes only
# the key groups it names, and update-distribution-regions takes only its desired-state object as desired state.
KEY_GROUP_IDS ?= 5f1c2d3e-4a5b-6c7d-8e9f-0a1b2c3d4e5f
DESIRED_STATE_S3_URI ?= s3://keeper-desired-state-123456789012-us-east-1/distribution-regions.json
demo:
	KEY_GROUP_IDS=$(KEY_GROUP_IDS) DESIRED_STATE_S3_URI=$(DESIRED_STATE_S3_URI) \
		cargo run -p keeper-local -- invoke $(FUNCTION) $(DEMO_EVENT)

# The emulated AWS alone on port 4566, seeded with the demo account, for `cargo lambda watch` or any AWS client.
serve:
	cargo run -p keeper-local -- serve --port 4566 --seed events/local-account.json

# Runs the trigger probe once on a sample event, in process: what keeper reads from that event source.
EVENT ?= shared/tests/fixtures/aws/s3-eventbridge-object-created.json
probe:
	AWS_EC2_METADATA_DISABLED=true AWS_REGION=$${AWS_REGION:-us-east-1} cargo run --quiet -p shared --example trigger_probe -- $(EVENT)

# Release bootstrap of the trigger probe: its size, cold start (exec → first runtime-API poll) and peak RSS.
bench-release:
	cargo build --release --locked -p shared --example trigger_probe
	$(PYTHON) bench/cold_start.py target/release/examples/trigger_probe --runs 40

# The emulator's throughput with N concurrent clients and L ms of injected latency, against the ideal N/L (a table,
# and target/bench/emulator-throughput.json).
bench-emulator:
	cargo bench --locked -p local --bench throughput

# Regenerates the emulator's constraint data (local/models/*.json) from the venv's botocore service models.
models: venv
	$(VENV)/bin/python local/models/generate.py
