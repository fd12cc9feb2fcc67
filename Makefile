# Two commands on a fresh Debian / Raspberry Pi OS machine:
#   make demo   - install what is missing, then watch a simulated home's alarms reach a night-staff console
#   make test   - install what is missing, then run the test suite against a real Mosquitto
VENV   ?= .venv
PYTHON ?= python3
PY     := $(VENV)/bin/python
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: setup system-packages demo test bench clean deb

WEB    := center/web
VENDOR := $(WEB)/static/vendor/.built

setup: system-packages $(VENV)/.installed $(VENDOR)

# The console's browser packages: exactly what package-lock.json pins (npm ci), placed next to
# the page: Preact + htm as shipped (one ES module), HPKE bundled by esbuild (hpke-entry.js).
$(VENDOR): $(WEB)/package.json $(WEB)/package-lock.json $(WEB)/hpke-entry.js
	npm ci --prefix $(WEB) --no-audit --no-fund --silent
	mkdir -p $(dir $@)
	cp $(WEB)/node_modules/htm/preact/standalone.module.js $(WEB)/static/vendor/preact-htm.js
	cd $(WEB) && node_modules/.bin/esbuild hpke-entry.js --bundle --format=esm --minify --log-level=warning \
	    --outfile=static/vendor/hpke.js
	touch $@

# Mosquitto, espeak-ng and aplay (and venv support) come from the OS packages; installed only when missing.
system-packages:
	@if ! command -v mosquitto >/dev/null 2>&1 && [ ! -x /usr/sbin/mosquitto ]; then \
	    echo "installing mosquitto from the OS packages"; \
	    $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq mosquitto mosquitto-clients >/dev/null; \
	fi
	@if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
	    echo "installing postgresql from the OS packages (the center store's tests start a throwaway server)"; \
	    $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq postgresql >/dev/null; \
	fi
	@if ! command -v espeak-ng >/dev/null 2>&1 || ! command -v aplay >/dev/null 2>&1; then \
	    echo "installing espeak-ng and alsa-utils from the OS packages (the help-coming message)"; \
	    $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq espeak-ng alsa-utils >/dev/null; \
	fi
	@if ! command -v chromium >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then \
	    echo "installing chromium and npm from the OS packages (the web console's browser tests and packages)"; \
	    $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium npm >/dev/null; \
	fi
	@if ! $(PYTHON) -m venv --help >/dev/null 2>&1 || ! $(PYTHON) -c 'import ensurepip' >/dev/null 2>&1; then \
	    echo "installing python3-venv from the OS packages"; \
	    $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq python3-venv >/dev/null; \
	fi
	@if ! command -v dpkg-deb >/dev/null 2>&1 || ! command -v reprepro >/dev/null 2>&1 || ! command -v gpg >/dev/null 2>&1 \
	    || ! [ -d /usr/lib/python3/dist-packages/systemd ] || ! /usr/bin/python3 -c 'import ensurepip' >/dev/null 2>&1; then \
	    echo "installing dpkg-dev, reprepro, gnupg, python3-systemd, python3-venv from the OS packages (make deb, its tests)"; \
	    $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq dpkg-dev reprepro gnupg python3-systemd python3-venv >/dev/null; \
	fi
	@if ! command -v systemd-analyze >/dev/null 2>&1; then \
	    echo "installing systemd from the OS packages (systemd-analyze checks the units' hardening)"; \
	    $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq systemd >/dev/null; \
	fi
	@if ! /sbin/ldconfig -p | grep -q 'libpangoft2-1.0.so.0'; then \
	    echo "installing Pango from the OS packages (the reports' PDF, WeasyPrint)"; \
	    $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq libpango-1.0-0 libpangoft2-1.0-0 >/dev/null; \
	fi

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

demo: setup
	$(PY) scripts/demo.py

test: setup
	$(PY) -m pytest -q

bench: setup
	$(PY) bench/run_all.py

# The Debian packages for Debian 12 / Raspberry Pi OS bookworm on this machine's architecture
# (trygg-runtime, trygg, trygg-center; packaging/README.md says why so): into build/deb/.
deb: system-packages $(VENDOR)
	/usr/bin/python3 packaging/build_deb.py --out build/deb

clean:
	rm -rf $(VENV) demo build/deb build/deb-venv .pytest_cache .hypothesis $(WEB)/node_modules $(WEB)/static/vendor
