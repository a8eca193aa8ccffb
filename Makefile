# vae-course. `make help` lists the targets; README.md says which to use when.
SHELL := /bin/bash
PYTHON ?= python3
PY := .venv/bin/python
LAB_STAMP := .venv/.lab-stamp
DEV_STAMP := .venv/.dev-stamp
# The offline copy of MNIST beside the checkout (CI and the course machines).
ifneq ($(wildcard ../shared/data/MNIST/raw),)
export VAE_COURSE_DATA ?= $(abspath ../shared/data)
endif
# No NVIDIA GPU: CPU-only torch wheels (set TORCH_CPU_INDEX= to take PyPI's instead).
HAS_GPU := $(shell nvidia-smi -L >/dev/null 2>&1 && echo yes)
TORCH_CPU_INDEX ?= $(if $(HAS_GPU),,https://download.pytorch.org/whl/cpu)
# Jupyter refuses to run as root (containers, Codespaces) unless told to.
JUPYTER_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root,)
JUNIT := _build/junit
NBVAL := --nbval-lax --nbval-current-env --nbval-sanitize-with notebooks/sanitize.cfg
SITE := _build/site

.PHONY: help lab venv-lab venv test unit notebooks notebooks-test book book-test student execute numbers gpu-pass train bench \
        python-check-lab python-check-dev clean

help:
	@echo "make lab        set up the notebooks' environment (first time: a few minutes) and open JupyterLab:"
	@echo "                your copies in lab/exercises/, the solutions (read-only) in lab/solutions/"
	@echo "make train ARGS='--model vae --epochs 10'   run the trainer (python -m vae_course train ARGS)"
	@echo "make book       build the web book into $(SITE)/_build/html (maths offline when npm is there)"
	@echo "make test       set up everything and run every test: unit, notebooks, book, browser"
	@echo "make unit       the unit tests (tests/, without the book tests)"
	@echo "make notebooks  run every notebook in smoke mode and compare the checked outputs (nbval)"
	@echo "make book-test  build the book with offline assets and test it in headless Chromium"
	@echo "make student    write the student version (no solutions) into student/ (commit it: the badges open it)"
	@echo "make execute    re-execute notebooks in full mode on a quiet machine, record it, refill prose numbers"
	@echo "                (NB=notebooks/NN_name.ipynb for one; ARGS=--allow-busy or ARGS=--force pass flags on)"
	@echo "make numbers    refill the measured numbers in README and the book from their sources"
	@echo "make gpu-pass   on a CUDA machine: GPU bench, conv long run + evaluation, notebook 6 (resumable)"
	@echo "make bench      time the usual DataLoader recipe against the package's trainer"
	@echo "Needs Python >= 3.10 for the notebooks, >= 3.11 for the tests (PYTHON=python3.11 to choose one)."

# ------------------------------------------------------------------ set-up
define check_python
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < ($(1), $(2)))' 2>/dev/null || { \
	  echo "make: $(3) needs Python >= $(1).$(2), but '$(PYTHON)' is $$($(PYTHON) -V 2>&1 || echo missing);" \
	       "install a newer Python and run 'make $(MAKECMDGOALS) PYTHON=python3.$(2)' (or delete .venv first)."; exit 1; }
endef

python-check-lab:
	$(call check_python,3,10,the course)
python-check-dev:
	$(call check_python,3,11,the test toolchain (hypothesis's pin))

venv-lab: $(LAB_STAMP)
$(LAB_STAMP): requirements-lab.txt pyproject.toml | python-check-lab
	@scripts/stage "create .venv and install the notebooks' requirements" bash -c '\
	  test -x $(PY) || $(PYTHON) -m venv .venv || exit 1; \
	  $(PY) -m pip install -q --upgrade pip 2>&1 | grep -v "^WARNING: Location"; \
	  scripts/install_torch.sh $(PY) "$(TORCH_CPU_INDEX)" || exit 1; \
	  set -o pipefail; $(PY) -m pip install -q -r requirements-lab.txt 2>&1 | grep -v "^WARNING: Location"; \
	  exit $${PIPESTATUS[0]}'
	@touch $@

venv: $(DEV_STAMP)
$(DEV_STAMP): $(LAB_STAMP) requirements-dev.txt requirements.txt constraints.txt | python-check-dev
	@scripts/stage "install the book and test toolchain" bash -c '\
	  set -o pipefail; $(PY) -m pip install -q -r requirements-dev.txt 2>&1 | grep -v "^WARNING: Location"; \
	  exit $${PIPESTATUS[0]}'
	@touch $@

# ------------------------------------------------------------------ learning
# lab/exercises: your copies of student/ (never overwritten once changed);
# lab/solutions: notebooks/, read-only, refreshed each time (scripts/lab.py).
lab: venv-lab
	@$(PY) scripts/lab.py $(JUPYTER_ROOT)

# A clean stop on a signal (the trainer saved, printed how to resume and exited 128 + n)
# ends make by the same signal, so `make train; echo $$?` shows 130/143/129 and make adds no
# "*** Error 143" line. The recipe's shell passes SIGTERM/SIGHUP sent to make on to the
# trainer, survives them itself and waits for the trainer (Ctrl-C reaches the trainer from the
# terminal). Then it signals make and exits once make's handler runs (make resets the signal
# to its default there: SigCgt in /proc), so make never sees a failed recipe. Any other
# failure is make's usual error.
define until_clean_stop
	@trap '' INT; trap 'kill -TERM $$pid 2>/dev/null' TERM; trap 'kill -HUP $$pid 2>/dev/null' HUP; \
	$(1) & pid=$$!; \
	while wait $$pid; rc=$$?; kill -0 $$pid 2>/dev/null; do :; done; \
	case $$rc in 129|130|143) sig=$$((rc - 128)); trap 'exit 0' TERM; trap '' INT HUP; kill -$$sig $$PPID; \
	  [ -r /proc/$$PPID/status ] || sleep 1; \
	  for i in $$(seq 50); do caught=$$(sed -n 's/^SigCgt:[[:space:]]*//p' /proc/$$PPID/status 2>/dev/null); \
	    [ -n "$$caught" ] && (( (0x$$caught >> (sig - 1)) & 1 )) || break; sleep 0.1; done; exit 0;; esac; \
	exit $$rc
endef

train: venv-lab
	$(call until_clean_stop,$(PY) -m vae_course train $(ARGS))

bench: venv-lab
	$(call until_clean_stop,$(PY) -m vae_course bench $(ARGS))

# The web book. With npm, MathJax and the widget renderer are copied in (the
# same offline assets as book-test), so the maths shows without a network;
# without npm the pages load MathJax from the network, and this says so.
# It builds into $(SITE), never over book-test's _build/html.
book: venv
	@if command -v npm >/dev/null 2>&1 && scripts/stage "browser assets" bash scripts/book_assets.sh; then \
	  scripts/stage "book (strict build, offline assets)" .venv/bin/jupyter-book build . -W -n --keep-going \
	    --config _build/offline_config.yml --path-output $(SITE) || exit 1; \
	  echo "Book: $(abspath $(SITE))/_build/html/index.html (maths and widgets work offline)"; \
	else \
	  scripts/stage "book (strict build)" .venv/bin/jupyter-book build . -W -n --keep-going --path-output $(SITE) || exit 1; \
	  echo "Book: $(abspath $(SITE))/_build/html/index.html"; \
	  echo "note: npm is not installed, so its pages load MathJax from the network (maths needs it)."; \
	fi

student: venv-lab
	@$(PY) scripts/make_student.py notebooks student

execute: venv
	@$(PY) scripts/nbtools.py execute $(ARGS) $(NB)
	@$(PY) scripts/prose_numbers.py fill

numbers: venv
	@$(PY) scripts/prose_numbers.py fill

gpu-pass: venv
	@bash scripts/gpu_pass.sh

# ------------------------------------------------------------------ tests
test:
	@rm -f _build/stage-times.tsv; mkdir -p $(JUNIT); rm -f $(JUNIT)/*.xml
	@$(MAKE) --no-print-directory venv
	@bash scripts/system_deps.sh; rc=$$?; \
	  if [ $$rc = 1 ]; then exit 1; fi; \
	  $(MAKE) --no-print-directory unit notebooks || exit 1; \
	  if [ $$rc = 3 ]; then echo "== browser stage skipped (ALLOW_SKIP_BROWSER=1): the book and its pages were NOT tested"; \
	  else $(MAKE) --no-print-directory book-test || exit 1; fi
	@$(PY) scripts/test_summary.py $(JUNIT) _build/stage-times.tsv

unit: venv
	@mkdir -p $(JUNIT)
	@scripts/stage "unit tests" $(PY) -m pytest tests -q --ignore=tests/book -p no:cacheprovider --junitxml=$(JUNIT)/unit.xml

notebooks: venv
	@mkdir -p $(JUNIT)
	@scripts/stage "notebooks (nbval, smoke mode)" env VAE_COURSE_SMOKE=1 $(PY) -m pytest $(NBVAL) notebooks book/results.ipynb -q -p no:cacheprovider --junitxml=$(JUNIT)/notebooks.xml
notebooks-test: notebooks

book-test: venv
	@mkdir -p $(JUNIT)
	@scripts/stage "browser assets" bash scripts/book_assets.sh
	@scripts/stage "book (strict build, offline assets)" .venv/bin/jupyter-book build . -W -n --keep-going --config _build/offline_config.yml
	@scripts/stage "book: browser and student-version tests" $(PY) -m pytest tests/book -q -p no:cacheprovider --junitxml=$(JUNIT)/book.xml
	@$(PY) scripts/no_skips.py $(JUNIT)/book.xml

clean:
	rm -rf _build
