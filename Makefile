# pageshare: `make demo` runs the main job, `make test` runs every test.
# Both depend on `make build`, which installs what is missing (idempotent, fast when present).
SHELL := /bin/bash
NODE := $(shell command -v node)
NATIVE := native/build/Release/pageshare_native.node
TS_SOURCES := $(shell find shim integration bench demo oci-hooks -name '*.ts' 2>/dev/null)

.PHONY: build deps test test-unit test-integration demo bench clean

build: deps node_modules/.installed $(NATIVE) dist/.built bin/containerd-shim-pageshare-v1 bin/pageshare

deps:
	@bash scripts/install-deps.sh

node_modules/.installed: package.json package-lock.json
	npm install --no-audit --no-fund --loglevel=error
	@touch $@

$(NATIVE): native/binding.gyp $(wildcard native/src/*.c native/src/*.h) node_modules/.installed
	npx --no-install node-gyp rebuild --directory native --nodedir=/usr --loglevel=error >/dev/null

dist/.built: $(TS_SOURCES) tsconfig.json node_modules/.installed
	npx --no-install tsc -p tsconfig.json
	@touch $@

bin/containerd-shim-pageshare-v1: shim/bin/containerd-shim-pageshare-v1.sh dist/.built
	@mkdir -p bin
	@sed -e 's#@NODE@#$(NODE)#' -e 's#@MAIN@#$(CURDIR)/dist/shim/main.js#' $< > $@.tmp && chmod +x $@.tmp && mv $@.tmp $@

bin/pageshare: dist/.built
	@mkdir -p bin
	@printf '#!/bin/sh\nexec %s %s "$$@"\n' "$(NODE)" "$(CURDIR)/dist/shim/cli/pageshare.js" > $@
	@chmod +x $@

test: build
	npx --no-install jest --selectProjects unit
	npx --no-install jest --selectProjects integration --runInBand

test-unit: build
	npx --no-install jest --selectProjects unit

test-integration: build
	npx --no-install jest --selectProjects integration --runInBand

demo: build
	$(NODE) dist/demo/demo.js

bench: build
	$(NODE) dist/bench/run.js

clean:
	rm -rf dist bin native/build
