# The two commands a newcomer needs: `make up` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
SERVICE ?= app

.PHONY: up down logs test unit chaos images engine chromium screenshots compose wheels mutate bench bench-shortener bench-alerting profile wrk clean

$(VENV)/.installed: requirements-test.txt service/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements-test.txt tox==4.67.15
	touch $@

$(VENV)/.bench: benchmarks/requirements.txt $(VENV)/.installed
	$(PY) -m pip install --quiet -r benchmarks/requirements.txt
	touch $@

engine:  ## a Docker engine that answers (installs and starts one as root if needed)
	bash scripts/docker-engine.sh

images: engine $(VENV)/.installed  ## build or pull every image (cached by a hash of its inputs)
	$(PY) -m harness images

up: images  ## the whole stack on the usual ports, URLs printed, until Ctrl-C or `make down`; TRAFFIC=1 adds background traffic, HA=1 the HA profile
	$(PY) -m harness up $(if $(filter 1,$(TRAFFIC)),--traffic) $(if $(filter 1,$(HA)),--ha)

down:  ## stop the stack that `make up` started
	$(PY) -m harness down

logs:  ## recent logs of one service of the `make up` stack: make logs SERVICE=app
	$(PY) -m harness logs $(SERVICE)

test: images chromium  ## unit tests, chaos suite and coverage report, as CI runs them
	$(VENV)/bin/tox

unit: images chromium
	$(VENV)/bin/tox -e unit

chaos: images chromium
	$(VENV)/bin/tox -e chaos

chromium:  ## Debian's chromium, the headless browser of the drills' screenshots and the report's test (installed as root if missing)
	@command -v chromium >/dev/null || { \
		[ "$$(id -u)" -eq 0 ] || { echo "chromium is missing: apt-get install chromium, as root" >&2; exit 1; }; \
		echo "chromium: installing Debian's chromium"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null; }

screenshots: images chromium  ## one drill on the `make up` stack (or a fresh one), shot into docs/incident-response/screenshots/
	$(PY) -m harness screenshots

mutate: images  ## the mutation score: plausible mistakes in the alerting configuration, each must fail a check (LIVE=1 drills survivors)
	$(PY) -m harness mutate $(if $(filter 1,$(LIVE)),--live)

compose: $(VENV)/.installed  ## regenerate docker-compose.yml from the stack definition
	$(PY) -m harness compose

wheels: $(VENV)/.installed  ## the app's wheels in service/wheels, which `docker-compose up --build` needs
	$(PY) -m pip wheel --quiet -w service/wheels -r service/requirements.txt

wrk:  ## Debian's wrk, the load generator of `make bench` (installed as root if missing)
	@command -v wrk >/dev/null || { \
		[ "$$(id -u)" -eq 0 ] || { echo "wrk is missing: apt-get install wrk, as root" >&2; exit 1; }; \
		echo "wrk: installing Debian's wrk"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wrk >/dev/null; }

bench: bench-shortener bench-alerting  ## both halves (about 30 min) -> benchmarks/results/

bench-shortener: engine wrk $(VENV)/.bench  ## load benchmark vs a bare WSGI floor (about 9 min)
	$(PY) -m benchmarks.shortener

bench-alerting: images  ## every scenario 3 times on both profiles, 4 drills at a time: time-to-email vs floor and bound, HA vs single
	$(PY) -m benchmarks.alerting --repeat 3 --parallel 4 --profile both

profile: engine wrk $(VENV)/.bench  ## py-spy profile of redirects under load -> benchmarks/results/profile-current.md
	$(PY) -m benchmarks.profile

clean:
	rm -rf $(VENV) .tox reports
