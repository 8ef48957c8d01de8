# carelog: `make run` starts the system on this machine, `make test` proves it.
# Needs Python 3.11+, a JDK 17+ and Maven on PATH (the Kafka broker is resolved from Maven Central).

PYTHON ?= python3
UV_HOME := $(HOME)/.cache/carelog/uv
UV := $(UV_HOME)/bin/uv
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup run test test-unit bench lint clean stop

$(UV):
	$(PYTHON) -m venv $(UV_HOME)
	$(UV_HOME)/bin/pip install --quiet "uv>=0.5,<1"

# Install exactly what uv.lock pins (dev tools included) into .venv.
$(BIN)/carelog: $(UV) pyproject.toml uv.lock
	UV_PROJECT_ENVIRONMENT=$(VENV) $(UV) sync --frozen --python $(PYTHON)
	@touch $@

# Then the hot modules compiled with mypyc (infra/native_build.py): a no-op when they are
# up to date, interpreted on a machine without a C compiler.
setup: $(BIN)/carelog
	@$(BIN)/python -m infra.native_build

run: setup
	$(BIN)/carelog run

stop: setup
	$(BIN)/carelog kafka down

test: setup
	$(BIN)/pytest

# The tests that need no broker and no JVM (under a minute). A test that reaches the broker
# fixture without `pytest.mark.kafka` fails here, named, instead of starting a broker.
test-unit: setup
	CARELOG_TEST_UNIT=1 $(BIN)/pytest -m "not kafka"

# Figures, printed (median of three runs each); kept apart from the tests.
BENCHES := bench_log bench_gateway_http bench_mllp bench_hl7v2_translate bench_hl7v2_map_cpu \
	bench_processors bench_worker_cpu bench_worker_scaleout bench_fhir_store bench_fhirpath bench_fhir_rest \
	bench_lake bench_e2e bench_audit_reads bench_notifier bench_export bench_replay bench_seal bench_key_lookups
bench: setup
	@for b in $(BENCHES); do echo "== $$b"; $(BIN)/python -m tests.bench.$$b || exit 1; done

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

clean:
	-$(BIN)/python -m infra.native_build clean
	rm -rf $(VENV) var/test var/native

