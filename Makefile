# Two commands for a newcomer: `make run` (the app with a demo catalog) and `make test`.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_PRODUCTS ?= 240
PORT ?= 8000
# make run: random-init weights unless ML_WEIGHTS is set (ImageNet weights may not be downloadable).
ML_WEIGHTS ?= none
export ML_WEIGHTS

.PHONY: venv run test test-fast migrate demo worker beat lint bench clean

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "$(PYTHON) not found: install Python 3.11 or run 'make PYTHON=/path/to/python3.11 ...'"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

migrate: venv
	$(BIN)/python manage.py migrate --noinput

demo: migrate
	$(BIN)/python manage.py make_demo_users
	$(BIN)/python manage.py make_demo_catalog --products $(DEMO_PRODUCTS) --if-empty

run: demo
	PORT=$(PORT) BIN=$(BIN) bash scripts/run.sh

worker: venv
	$(BIN)/celery -A curation worker --loglevel=info --concurrency=1

beat: venv
	$(BIN)/celery -A curation beat --loglevel=info --schedule var/celerybeat-schedule

test: venv
	$(BIN)/python -m pytest

test-fast: venv
	$(BIN)/python -m pytest -m "not browser and not worker"

clean:
	rm -rf var/ .pytest_cache
