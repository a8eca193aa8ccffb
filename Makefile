# vae-course: `make test` sets everything up from nothing and runs every check.
SHELL := /bin/bash
PY := .venv/bin/python
STAMP := .venv/.installed-stamp
# The offline copy of MNIST beside the checkout (CI and the course machines).
ifneq ($(wildcard ../shared/data/MNIST/raw),)
export VAE_COURSE_DATA ?= $(abspath ../shared/data)
endif
JUNIT := _build/junit
NBVAL := --nbval-lax --nbval-current-env --nbval-sanitize-with notebooks/sanitize.cfg

.PHONY: help venv test unit notebooks-test book book-test student execute lab bench clean

help:
	@echo "make lab       open the notebooks in JupyterLab (sets everything up first)"
	@echo "make book      build the web book into _build/html"
	@echo "make test      set up from nothing and run every test (unit, notebooks, book, browser)"
	@echo "make execute   re-execute the notebooks in full mode and record their freshness hash"
	@echo "make student   write the student version (no solutions) into student/"
	@echo "make bench     time the usual DataLoader recipe against the package's trainer"

venv: $(STAMP)
$(STAMP): requirements.txt constraints.txt pyproject.toml
	@scripts/stage "create .venv and install" bash -c '\
	  test -x $(PY) || python3 -m venv .venv; \
	  $(PY) -m pip install -q --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true; \
	  set -o pipefail; $(PY) -m pip install -q -r requirements.txt 2>&1 | grep -v "^WARNING: Location"; \
	  exit $${PIPESTATUS[0]}'
	@touch $@

test:
	@rm -f _build/stage-times.tsv; mkdir -p $(JUNIT); rm -f $(JUNIT)/*.xml
	@$(MAKE) --no-print-directory venv
	@scripts/stage "unit tests" $(PY) -m pytest tests -q --ignore=tests/book -p no:cacheprovider --junitxml=$(JUNIT)/unit.xml
	@scripts/stage "notebooks (nbval, smoke mode)" env VAE_COURSE_SMOKE=1 $(PY) -m pytest $(NBVAL) notebooks book/results.ipynb -q -p no:cacheprovider --junitxml=$(JUNIT)/notebooks.xml
	@$(MAKE) --no-print-directory book-test
	@$(PY) scripts/test_summary.py $(JUNIT) _build/stage-times.tsv

book: venv
	@scripts/stage "book (strict build)" .venv/bin/jupyter-book build . -W -n --keep-going
	@echo "Book: $(abspath _build/html/index.html)"

book-test: venv
	@scripts/stage "browser assets" bash scripts/book_assets.sh
	@scripts/stage "book (strict build, offline assets)" .venv/bin/jupyter-book build . -W -n --keep-going --config _build/offline_config.yml
	@scripts/stage "book: browser and student-version tests" $(PY) -m pytest tests/book -q -p no:cacheprovider --junitxml=$(JUNIT)/book.xml

student: venv
	@$(PY) scripts/make_student.py notebooks student

execute: venv
	@$(PY) scripts/nbtools.py execute $(NB)

lab: venv
	@$(PY) -m jupyter lab notebooks

bench: venv
	@$(PY) -m vae_course bench

clean:
	rm -rf _build student
