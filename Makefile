# The two commands a newcomer needs: `make up` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
SERVICE ?= app

.PHONY: up down logs test unit chaos images engine compose wheels clean

$(VENV)/.installed: requirements-test.txt service/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements-test.txt tox==4.67.15
	touch $@

engine:  ## a Docker engine that answers (installs and starts one as root if needed)
	bash scripts/docker-engine.sh

images: engine $(VENV)/.installed  ## build or pull every image (cached by a hash of its inputs)
	$(PY) -m harness.images

up: images  ## the whole stack on the usual ports, URLs printed, until Ctrl-C or `make down`; TRAFFIC=1 adds background traffic
	$(PY) -m harness up $(if $(filter 1,$(TRAFFIC)),--traffic)

down:  ## stop the stack that `make up` started
	$(PY) -m harness down

logs:  ## recent logs of one service of the `make up` stack: make logs SERVICE=app
	$(PY) -m harness logs $(SERVICE)

test: images  ## unit tests, chaos suite and coverage report, as CI runs them
	$(VENV)/bin/tox

unit: images
	$(VENV)/bin/tox -e unit

chaos: images
	$(VENV)/bin/tox -e chaos

compose: $(VENV)/.installed  ## regenerate docker-compose.yml from the stack definition
	$(PY) -m harness compose

wheels: $(VENV)/.installed  ## the app's wheels in service/wheels, which `docker-compose up --build` needs
	$(PY) -m pip wheel --quiet -w service/wheels -r service/requirements.txt

clean:
	rm -rf $(VENV) .tox reports
