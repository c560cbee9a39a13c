# The two commands the README gives: `make run` and `make test`.  Both build .venv from
# pyproject.toml on first use, so they work on a fresh machine.
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

# the rig tier (tests/rig, bench/rig_bench.py), the browser test of `mdtui serve` (Debian's
# chromium, driven by Playwright), the completion tests (bash, zsh, fish) and the man page's
# (man -l) need Debian packages: installed here when missing, with sudo unless root; a failure
# fails `make test` (no tier is ever skipped)
RIG_PKGS := umockdev gir1.2-umockdev-1.0 python3-gi v4l-utils alsa-utils dvb-tools gcc openssh-server openssh-client \
            chromium fish zsh man-db groff-base bash-completion
SUDO     := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test lint bench screenshots rig-deps rig-preload bytecode

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -e '.[test]'
	touch $(STAMP)

run: $(STAMP) bytecode
	$(VENV)/bin/mdtui

# the project's own modules compiled as a (non-editable) pip install compiles them: with
# PYTHONDONTWRITEBYTECODE set (as on these machines) every start would compile ~60 modules
# from source (~60 ms; bench/RESULTS.md); only what changed is compiled again
bytecode: $(STAMP)
	$(PY) -m compileall -q allocator mdtui

rig-deps:
	@command -v umockdev-wrapper >/dev/null && command -v media-ctl >/dev/null && command -v cc >/dev/null \
	  && command -v arecord >/dev/null && command -v dvb-fe-tool >/dev/null \
	  && command -v ssh >/dev/null && command -v ssh-keygen >/dev/null && test -x /usr/sbin/sshd \
	  && command -v chromium >/dev/null && command -v fish >/dev/null && command -v zsh >/dev/null \
	  && command -v man >/dev/null && test -f /usr/share/bash-completion/bash_completion \
	  && /usr/bin/python3 -c "import gi; gi.require_version('UMockdev', '1.0')" 2>/dev/null \
	  || { $(SUDO) apt-get update -q && $(SUDO) env DEBIAN_FRONTEND=noninteractive \
	       apt-get install -y -q --no-install-recommends $(RIG_PKGS); }

# umockdev's preload library with a map of emulated files that grows (mdtui/rig/preload.py:
# the installed one aborts a program at its 51st); rebuilt only when umockdev changes
rig-preload: $(STAMP) rig-deps
	$(PY) -m mdtui.rig.preload

test: $(STAMP) rig-preload
	$(VENV)/bin/ruff check .
	$(PY) -m pytest
	$(VENV)/bin/mdtui rig -- $(PY) -m pytest tests/rig
	$(VENV)/bin/mdtui rig --variant fixed -- $(PY) -m pytest tests/rig/test_soak.py

lint: $(STAMP)
	$(VENV)/bin/ruff check .

bench: $(STAMP) rig-preload bytecode
	$(PY) bench/allocator_bench.py
	$(PY) bench/tui_bench.py
	$(PY) bench/live_bench.py
	$(PY) bench/rig_bench.py
	$(PY) bench/remote_bench.py

screenshots: $(STAMP)
	$(PY) -m mdtui.scenarios screenshots

# the man page (man/mdtui.1, installed as share/man/man1/mdtui.1), generated from the argparse
# parser by mdtui/manpage.py; tests/mdtui/test_manpage.py fails when it is stale
.PHONY: man
man: $(STAMP)
	$(PY) -m mdtui.manpage > man/mdtui.1.tmp && mv man/mdtui.1.tmp man/mdtui.1
