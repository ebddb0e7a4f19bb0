# Zenith: `make run` starts everything on embedded defaults; `make test` installs what the tests
# need and runs the whole suite (embedded defaults, then PostgreSQL + Redis when reachable).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000
export PORT
# The address the portal listens on: this machine only, unless told otherwise (BIND=0.0.0.0).
BIND ?= 127.0.0.1
export BIND
PG_URL ?= postgres://postgres@127.0.0.1:5432/zenith
REDIS_URL ?= redis://127.0.0.1:6379/15
PYTEST_ARGS ?=
# Debian packages: libvirt's headers to build libvirt-python; Chromium for the browser tests;
# redis-server for the fault suite (tests/faults starts and kills a Redis of its own).
APT_PACKAGES_BUILD := libvirt-dev pkg-config
APT_PACKAGES_TEST := chromium redis-server
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test bench install assets apt-install system-deps realhost osc-venv lint check-migrations test-embedded test-services clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	@$(MAKE) --no-print-directory apt-install PACKAGES="$(APT_PACKAGES_BUILD)"
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

install: $(VENV)/.installed assets

# The stock OpenStack clients from PyPI, in their own virtualenv (they pin their own dependencies), for
# tests/openstack (the versions OPENSTACK-COMPAT.md was observed with). A failed install fails the target.
OSC_VENV := .venv-osc
OSC_PACKAGES := python-openstackclient==10.5.0 openstacksdk==4.22.0
# The stamp names the versions: changing OSC_PACKAGES makes a new virtualenv.
OSC_STAMP := $(OSC_VENV)/.installed-$(subst ==,-,$(subst $(eval) ,_,$(OSC_PACKAGES)))
$(OSC_STAMP):
	rm -rf $(OSC_VENV)
	$(PYTHON) -m venv $(OSC_VENV)
	$(OSC_VENV)/bin/pip install -q --upgrade pip
	$(OSC_VENV)/bin/pip install -q $(OSC_PACKAGES)
	touch $@

osc-venv: $(OSC_STAMP)

# Front-end assets come from the npm registry and are copied into static/vendor (not committed).
static/vendor/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	rm -rf static/vendor && mkdir -p static/vendor/bootstrap static/vendor/bootstrap-icons static/vendor/htmx
	cp node_modules/bootstrap/dist/css/bootstrap.min.css node_modules/bootstrap/dist/js/bootstrap.bundle.min.js static/vendor/bootstrap/
	cp -r node_modules/bootstrap-icons/font/bootstrap-icons.min.css node_modules/bootstrap-icons/font/fonts static/vendor/bootstrap-icons/
	cp node_modules/htmx.org/dist/htmx.min.js static/vendor/htmx/
	touch $@

assets: static/vendor/.installed

# Install Debian packages only when missing (root, or sudo).
apt-install:
	@missing=""; for p in $(PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi

system-deps:
	@$(MAKE) --no-print-directory apt-install PACKAGES="$(APT_PACKAGES_BUILD) $(APT_PACKAGES_TEST)"

# A real libvirt/QEMU host and the test guest for tests/realhost; where that is impossible the
# reason is printed and those tests report themselves skipped.
realhost:
	@workers/agent/realhost.sh setup && tests/guest/build.sh >/dev/null || echo "=== no real libvirt/QEMU host (reason above): tests/realhost will be skipped"

# `make run REAL_HOST=1` adds real-1: this machine's libvirtd with QEMU, and the zenith-guest image.
REAL_HOST ?=
PROCESSES := web conductor sim-1 sim-2
ifeq ($(REAL_HOST),1)
PROCESSES += real-1
endif

run: install
	$(BIN)/python manage.py ensure_secret_key
	$(BIN)/python manage.py migrate --noinput -v0
	$(BIN)/python manage.py collectstatic --noinput -v0
	$(BIN)/python manage.py seed_demo
	$(BIN)/python manage.py seed_flavors
	$(BIN)/python manage.py seed_images
	@# The agents started below sign their messages with keys issued here (README: Security).
	$(BIN)/python manage.py enroll_host $(filter-out web conductor,$(PROCESSES))
	@if [ "$(REAL_HOST)" = 1 ]; then \
	  workers/agent/realhost.sh setup && tests/guest/build.sh && $(BIN)/python manage.py register_guest_image; \
	fi
	@echo
	@echo "  Zenith is starting on http://$(BIND):$(PORT)/ (BIND=0.0.0.0 to listen on every interface)"
	@echo "  Log in as admin, demo or viewer with the password printed above (ZENITH_DEMO_PASSWORD)."
	@echo "  API docs: http://127.0.0.1:$(PORT)/api/docs/   Stop with Ctrl-C."
	@echo "  openstack CLI: OS_AUTH_URL=http://127.0.0.1:$(PORT)/identity (README: The openstack CLI)."
	@echo
	@# Each process under workers/respawn.py: one that dies is logged and restarted, not the end of all.
	@mkdir -p var && $(BIN)/python -m workers.respawn procfile Procfile $(BIN)/python > var/Procfile.run
	ZENITH_PORT=$(PORT) $(BIN)/honcho start -f var/Procfile.run -d . $(PROCESSES)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

check-migrations: install
	ZENITH_VAR_DIR=var/check $(BIN)/python manage.py check --fail-level WARNING
	ZENITH_VAR_DIR=var/check $(BIN)/python manage.py makemigrations --check --dry-run

# make installed the OpenStack clients: tests/openstack must run, not skip (ZENITH_REQUIRE_OPENSTACK_CLIENTS).
test-embedded: install system-deps realhost osc-venv
	@echo "=== test suite on embedded defaults (SQLite, filesystem broker)"
	env -u DATABASE_URL -u CELERY_BROKER_URL -u CELERY_RESULT_BACKEND ZENITH_VAR_DIR=var/test-embedded \
	  ZENITH_REQUIRE_OPENSTACK_CLIENTS=1 \
	  $(BIN)/pytest $(PYTEST_ARGS)

# Prints each of PostgreSQL (PG_URL) and Redis (REDIS_URL) that does not accept a connection.
define SERVICES_PROBE
import socket, sys, urllib.parse
for name, url, default_port in (("PostgreSQL", sys.argv[1], 5432), ("Redis", sys.argv[2], 6379)):
    parts = urllib.parse.urlsplit(url)
    where = (parts.hostname or "127.0.0.1", parts.port or default_port)
    try:
        socket.create_connection(where, 2).close()
    except OSError as error:
        print(f"{name} at {where[0]}:{where[1]}: {error}")
endef
export SERVICES_PROBE

# Skipped where PostgreSQL or Redis is not reachable, unless ZENITH_REQUIRE_SERVICES=1 (CI): then it fails.
test-services: install system-deps osc-venv
	@down=$$($(BIN)/python -c "$$SERVICES_PROBE" '$(PG_URL)' '$(REDIS_URL)') || exit 1; \
	if [ -z "$$down" ]; then \
	  echo "=== test suite on PostgreSQL ($(PG_URL)) and Redis ($(REDIS_URL))"; \
	  DATABASE_URL=$(PG_URL) CELERY_BROKER_URL=$(REDIS_URL) ZENITH_VAR_DIR=var/test-services ZENITH_REQUIRE_OPENSTACK_CLIENTS=1 \
	    $(BIN)/pytest $(PYTEST_ARGS); \
	elif [ "$${ZENITH_REQUIRE_SERVICES:-}" = 1 ]; then \
	  echo "=== ZENITH_REQUIRE_SERVICES=1: the PostgreSQL + Redis run is required, and cannot run:" >&2; \
	  echo "$$down" | sed 's/^/  /' >&2; \
	  exit 1; \
	else \
	  echo "=== skipped the PostgreSQL + Redis run (the embedded run above still counts):"; \
	  echo "$$down" | sed 's/^/  /'; \
	fi

# Both suites run even when the first fails (-k: CI reports every failure of a submission at once).
# Whatever the outcome, then tear down the real host: the domains the tests left (both runs) and the
# libvirtd that `make realhost` started (one started otherwise is left alone).
test:
	@status=0; $(MAKE) -k --no-print-directory lint check-migrations test-embedded test-services || status=$$?; \
	for dir in var/test-embedded var/test-services var; do \
	  ZENITH_VAR_DIR=$$dir workers/agent/realhost.sh teardown 2>&1 | sed 's/^/  /'; \
	done; \
	exit $$status

# The benchmarks (bench/run_all.py): the quick set by default, everything with FULL=1; each on the
# embedded defaults and on PostgreSQL + Redis when they answer (databases named *bench* only: they are
# dropped). Rewrites the "Measured" table of README.md and bench/measured.json; raw JSON in var/bench/.
BENCH_PG_URL ?= postgres://postgres@127.0.0.1:5432/zenith_bench
BENCH_REDIS_URL ?= redis://127.0.0.1:6379/12
BENCH_ARGS ?=
bench: install
	$(BIN)/python bench/run_all.py $(if $(FULL),--full) --pg-url '$(BENCH_PG_URL)' --redis-url '$(BENCH_REDIS_URL)' $(BENCH_ARGS)

clean:
	rm -rf var static/vendor node_modules $(VENV) $(OSC_VENV)
