# The two commands: `make run` (set up, load the demo, serve on :8000) and `make test`.
.PHONY: run setup setup-dev check-bind init demo serve test test-pg bench translations

PY := .venv/bin/python
PG_TEST_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/test

run: setup check-bind demo serve

setup:
	scripts/setup.sh

setup-dev:
	scripts/setup.sh dev

check-bind:
	$(PY) tools/check_bind.py

init:
	$(PY) -m app init

demo: init
	$(PY) -m app demo

serve:
	@$(PY) -m app.config  # WEB_CONCURRENCY and GUNICORN_THREADS, named if wrong (gunicorn reads the first before its config)
	@echo "Serving on http://$${BIND:-127.0.0.1:8000}  (scan page: /, API: /api/v1/openapi.json)"
	.venv/bin/gunicorn -c gunicorn.conf.py wsgi:app

test: setup-dev
	$(PY) -m pytest -q -p no:cacheprovider -n 2 tests

test-pg: setup-dev
	TEST_DATABASE_URL=$(PG_TEST_URL) $(PY) -m pytest -q -p no:cacheprovider tests

bench:
	scripts/setup.sh bench
	$(PY) bench/run.py

translations:
	$(PY) tools/compile_translations.py
