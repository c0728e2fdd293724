# keeper's commands. `make test` is the one CI runs (.ci/run): it installs what the tests need and runs them all.

VENV := .venv
SAM_VENV := .venv-sam
PYTHON ?= python3
# The venv's tools (moto_server, cfn-lint, cargo-lambda and its zig) come first on PATH for every recipe.
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export SAM_CLI_TELEMETRY := 0

.PHONY: test simulate venv venv-sam venv-checkov lint-template fmt-check clippy demo serve probe bench bench-release bench-emulator bench-scale models build-lambda

# The function suites run a second time behind the DynamoDB guard (moto), the one production uses. --workspace, as
# above: selecting one package would build the SDK again with other features; the filters match keeper-tests' modules.
E2E := start_idle_image_builders rotate_key_group update_distribution_regions update_image_lifecycle
test: venv lint-template fmt-check clippy
	cargo test --workspace --locked
	KEEPER_TEST_GUARD=dynamodb cargo test --workspace --locked --test suite -- $(addsuffix ::,$(E2E))

# The timeline simulation alone, for long runs: SEEDS histories per function (make test runs 200, 1600 for lifecycle), from SEED. Prints
# histories per second per function, and a failing history shrunk, as a test to paste into tests/tests/suite/simulation.rs.
SEEDS ?= 2000
SEED ?= 1801807216
simulate:
	SIM_CASES=$(SEEDS) SIM_SEED=$(SEED) cargo test --workspace --locked --test suite simulation::given_generated -- --nocapture --test-threads 1

# Python tools from PyPI, pinned in requirements-dev.txt; reinstalled when that file changes.
venv: $(VENV)/.installed
$(VENV)/.installed: requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

# The SAM CLI, in its own venv (see requirements-sam.txt).
venv-sam: $(SAM_VENV)/.installed
$(SAM_VENV)/.installed: requirements-sam.txt
	$(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-sam.txt
	touch $@

# checkov in a venv of its own inside .venv (ignored with it, and gone with it): its pins would downgrade .venv's
# botocore (see requirements-checkov.txt).
CHECKOV_VENV := $(VENV)/checkov
venv-checkov: $(CHECKOV_VENV)/.installed
$(CHECKOV_VENV)/.installed: requirements-checkov.txt
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-checkov.txt
	touch $@

# Every check a template gets before a deploy: cfn-lint with the serverless rules on template.yaml; cfn-lint on the
# template CloudFormation makes of it (the roles, schedules, permissions and subscriptions SAM generates); cargo
# lambda's deploy settings ([package.metadata.lambda.deploy]) against the template's; and SAM's own validation.
# Findings that do not fit are silenced in the template, each with its reason. W2001 is off for the transformed
# template only: SAM writes some parameters' values in (EventInvokeConfig's MaximumEventAgeInSeconds), so they look
# unused there; the first run checks W2001 on the template itself.
# Then who can make keeper act (tests/iam/resource_policies.py, SECURITY.md): every event source locked, its resource
# policies evaluated as IAM does for a Publisher, an admin, another account, an anonymous request and one without
# TLS, with Publishers given and empty; and the same check on the template broken four ways, each of which it must
# catch. Last, checkov on both templates, offline (--skip-download, no update check): clean, or each finding skipped
# in the template with its reason (tests/lint/checkov_skips.py fails a skip without one).
CHECKOV := CKV_SKIP_PACKAGE_UPDATE_CHECK=true BC_SKIP_MAPPING=TRUE $(CHECKOV_VENV)/bin/checkov --framework cloudformation \
	--skip-download --quiet --compact
lint-template: venv venv-sam venv-checkov
	cfn-lint template.yaml --append-rules cfn_lint_serverless.rules
	$(VENV)/bin/python tests/lint/sam_transform.py template.yaml target/lint/template.json
	cfn-lint target/lint/template.json --ignore-checks W2001
	$(VENV)/bin/python tests/lint/lambda_metadata.py target/lint/template.json
	$(SAM_VENV)/bin/sam validate --lint --region us-east-1 --template template.yaml
	$(VENV)/bin/python tests/lint/template_rules.py template.yaml
	$(VENV)/bin/python tests/iam/resource_policies.py check template.yaml > target/lint/resource-policies.txt || \
		{ grep -v '^ok' target/lint/resource-policies.txt; exit 1; }
	@grep -c '^ok' target/lint/resource-policies.txt | xargs printf '%s resource-policy cases hold (target/lint/resource-policies.txt)\n'
	$(VENV)/bin/python tests/iam/resource_policies.py control template.yaml
	$(VENV)/bin/python tests/lint/checkov_skips.py template.yaml > target/lint/checkov-skips.txt || \
		{ cat target/lint/checkov-skips.txt; exit 1; }
	@tail -n 1 target/lint/checkov-skips.txt
	$(CHECKOV) --file template.yaml
	$(CHECKOV) --file target/lint/template.json

fmt-check:
	cargo fmt --all --check

clippy:
	cargo clippy --workspace --all-targets --locked -- -D warnings

# Release bootstraps both ways users build them, and their sizes: `cargo lambda build` (target/lambda/<fn>/bootstrap)
# and `sam build` (.aws-sam/build/<Function>/bootstrap), for x86_64. arm64 needs rustup's aarch64 standard library,
# which only a machine with internet access can add (`rustup target add aarch64-unknown-linux-gnu`); then
# `cargo lambda build --release --arm64` and `sam build` with the default Architecture.
LAMBDAS := start-idle-image-builders rotate-key-group update-distribution-regions update-image-lifecycle
build-lambda: venv venv-sam
	cargo lambda build --release --locked --x86-64 $(addprefix --package ,$(LAMBDAS))
	$(SAM_VENV)/bin/sam build --parameter-overrides Architecture=x86_64
	@stat -c '%s %n' target/lambda/*/bootstrap .aws-sam/build/*/bootstrap | \
		awk '{ printf "%-60s %6.2f MB (%d bytes)\n", $$2, $$1 / 1048576, $$1 }'

# Runs a function on the embedded emulator (the demo account in events/local-account.json) and shows what it did.
FUNCTION ?= start-idle-image-builders
DEMO_EVENT ?= events/start-idle-image-builders/manual-start.json
# The demo account's key group and desired-state document (events/local-account.json): rotate-key-group changes only
# the key groups it names, and update-distribution-regions takes only its desired-state object as desired state.
KEY_GROUP_IDS ?= 5f1c2d3e-4a5b-6c7d-8e9f-0a1b2c3d4e5f
DESIRED_STATE_S3_URI ?= s3://keeper-desired-state-123456789012-us-east-1/distribution-regions.json
# The demo account's builders are in two regions, and its one distribution configuration is the one the function
# may change: requests may only narrow these settings.
REGIONS ?= us-east-1,eu-west-1
DISTRIBUTION_CONFIGURATION_ARNS ?= arn:aws:imagebuilder:us-east-1:123456789012:distribution-configuration/web-golden
demo:
	KEY_GROUP_IDS=$(KEY_GROUP_IDS) DESIRED_STATE_S3_URI=$(DESIRED_STATE_S3_URI) REGIONS=$(REGIONS) \
		DISTRIBUTION_CONFIGURATION_ARNS=$(DISTRIBUTION_CONFIGURATION_ARNS) \
		cargo run -p keeper-local -- invoke $(FUNCTION) $(DEMO_EVENT)

# The emulated AWS alone on port 4566, seeded with the demo account, for `cargo lambda watch` or any AWS client.
serve:
	cargo run -p keeper-local -- serve --port 4566 --seed events/local-account.json

# Runs the trigger probe once on a sample event, in process: what keeper reads from that event source.
EVENT ?= shared/tests/fixtures/aws/s3-eventbridge-object-created.json
probe:
	AWS_EC2_METADATA_DISABLED=true AWS_REGION=$${AWS_REGION:-us-east-1} cargo run --quiet -p shared --example trigger_probe -- $(EVENT)

# Each function's release bootstrap (x86_64): size, cold start (exec → first runtime-API poll; median and p90 of 30
# runs) and peak RSS. Figures only: no assertion, nothing fails on a slow machine.
bench: venv
	cargo lambda build --release --locked --x86-64 $(addprefix --package ,$(LAMBDAS))
	$(PYTHON) bench/cold_start.py $(foreach f,$(LAMBDAS),target/lambda/$(f)/bootstrap) --runs 30

# Release bootstrap of the trigger probe: its size, cold start (exec → first runtime-API poll) and peak RSS.
bench-release:
	cargo build --release --locked -p shared --example trigger_probe
	$(PYTHON) bench/cold_start.py target/release/examples/trigger_probe --runs 40

# The emulator's throughput with N concurrent clients and L ms of injected latency, against the ideal N/L (a table,
# and target/bench/emulator-throughput.json).
bench-emulator:
	cargo bench --locked -p local --bench throughput

# Each function at scale against the emulator with 20 ms per call (1,000 builders at MAX_CONCURRENCY 1/8/32, a
# rotation, 30 regions, a 2,000-build sweep) against the floor that latency sets (a table, and target/bench/scale.json).
bench-scale:
	cargo bench --locked -p keeper-tests --bench scale

# Regenerates the emulator's constraint data (local/models/*.json) from the venv's botocore service models.
models: venv
	$(VENV)/bin/python local/models/generate.py
