# stripe-connect — build, test, run, bench, install.
# Every variable here can be overridden on the command line (make CC=clang).

SHELL       := /bin/bash
CC          ?= cc
PKG_CONFIG  ?= pkg-config
LUA         ?= lua5.4
LUAJIT      ?= luajit
PREFIX      ?= /usr/local
BUILD       ?= build

LUA_PC      ?= lua5.4
LUAJIT_PC   ?= luajit
DEPS_PC     ?= openssl libcurl sqlite3 libpq

# Debian 12 packages the build, the tests and `make run` need (chromium: the real-browser page spec;
# nginx, its echo module and wrk: `make bench` and its smoke spec; postgresql: the PostgreSQL store
# specs start a throwaway server; python3: node-gyp, which builds
# the bench peer's better-sqlite3 from source).  The LuaJIT build is against luajit2 (OpenResty's
# branch, what Debian's nginx lua module links): plain luajit/libluajit-5.1-dev conflict with it.
APT_PACKAGES ?= build-essential pkg-config lua5.4 liblua5.4-dev luajit2 libluajit2-5.1-dev \
                libssl-dev libcurl4-openssl-dev libevent-dev lua-cjson lua-unit \
                luarocks sqlite3 libsqlite3-dev valgrind curl lua-socket openssl ca-certificates \
                chromium nginx libnginx-mod-http-echo libnginx-mod-http-lua libnginx-mod-http-ndk \
                lua-resty-core lua-resty-lrucache wrk python3 libpq-dev postgresql clang libclang-rt-14-dev
# Node.js runs the official Stripe SDK in interop specs; any node+npm will do,
# so Debian's are installed only when none is on the PATH.
NODE_PACKAGES ?= nodejs npm

# SANITIZE=1: the host and the core built with AddressSanitizer and
# UndefinedBehaviorSanitizer into build/sanitize (the normal build stays);
# `make test SANITIZE=1` runs the whole suite on it (doc/testing.md: Sanitizers).
NODE_BUILD  ?= $(BUILD)
ifeq ($(SANITIZE),1)
BUILD       := build/sanitize
NODE_BUILD  := build
SAN_FLAGS   := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
CFLAGS      := -O1 -g $(SAN_FLAGS)
LDFLAGS     := $(SAN_FLAGS)
# lua5.4 and luajit are not built with ASan: the sanitized core.so needs the
# runtimes preloaded.  LuaJIT's os.exit does not close its state, so what the
# state still holds at exit is no leak: leak detection is off for that label
# only (the host and lua5.4 labels keep it; make valgrind checks leaks too).
SAN_PRELOAD := LD_PRELOAD="$(shell $(CC) -print-file-name=libasan.so) $(shell $(CC) -print-file-name=libubsan.so)"
SAN_LUA     := $(SAN_PRELOAD)
SAN_LUAJIT  := $(SAN_PRELOAD) ASAN_OPTIONS=detect_leaks=0
# make run's spec starts build/stripe-connect (scripts/dev.lua): the normal build.
SAN_PREREQ  := sanitize-normal-build
endif

WARN    = -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes
CFLAGS  ?= -O2 -g
LDFLAGS ?=
ALL_CFLAGS = -std=c11 -D_GNU_SOURCE -fPIC $(WARN) $(CFLAGS)

PC = $(shell $(PKG_CONFIG) --cflags $(1) 2>/dev/null)
PL = $(shell $(PKG_CONFIG) --libs $(1) 2>/dev/null)

CORE_SRCS  := $(sort $(wildcard host/core/*.c))
HOST_SRCS  := $(sort $(wildcard host/*.c))
HEADERS    := $(wildcard host/*.h host/core/*.h)

CORE54_OBJS  := $(CORE_SRCS:host/core/%.c=$(BUILD)/obj/lua54/%.o)
COREJIT_OBJS := $(CORE_SRCS:host/core/%.c=$(BUILD)/obj/luajit/%.o)
HOST_OBJS    := $(HOST_SRCS:host/%.c=$(BUILD)/obj/host/%.o)

HOST_BIN   := $(BUILD)/stripe-connect
CORE54_SO  := $(BUILD)/lua/stripe_connect/core.so
COREJIT_SO := $(BUILD)/luajit/stripe_connect/core.so

.PHONY: all deps test test-quick run accounts bench soak install uninstall man clean valgrind rock fuzz fuzz-build sanitize-normal-build help

all: $(BUILD)/.deps $(HOST_BIN) $(CORE54_SO) $(COREJIT_SO)

# `make deps` installs whatever of APT_PACKAGES is missing (as root, apt-get).
deps:
	@mkdir -p $(BUILD); missing=$$(for p in $(APT_PACKAGES); do \
	    dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; \
	  done; command -v npm >/dev/null || echo $(NODE_PACKAGES)); \
	if [ -n "$$missing" ]; then \
	  echo "deps: installing" $$missing; \
	  if [ "$$(id -u)" != 0 ]; then echo "deps: run as root (or install: $$missing)" >&2; exit 1; fi; \
	  DEBIAN_FRONTEND=noninteractive apt-get update -qq || exit 1; \
	  if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends --no-remove $$missing \
	       >$(BUILD)/deps-apt.log 2>&1; then \
	    cat $(BUILD)/deps-apt.log >&2; \
	    echo "deps: apt-get could not install: $$missing" >&2; \
	    echo "deps: make deps never removes a package; if apt wants to remove one (luajit and libluajit-5.1-dev" >&2; \
	    echo "deps: conflict with luajit2, which the nginx lua module needs), remove it yourself and run make deps again" >&2; \
	    exit 1; \
	  fi; \
	fi
	@mkdir -p $(BUILD) && touch $(BUILD)/.deps

# Re-checked when the Makefile changes and when the set of installed Debian
# packages changes (dpkg's status file), so a removed package is reinstalled.
$(BUILD)/.deps: Makefile $(wildcard /var/lib/dpkg/status)
	@$(MAKE) --no-print-directory deps

$(BUILD)/obj/lua54/%.o: host/core/%.c $(HEADERS) | $(BUILD)/.deps
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(call PC,$(LUA_PC) $(DEPS_PC)) -c $< -o $@

$(BUILD)/obj/luajit/%.o: host/core/%.c $(HEADERS) | $(BUILD)/.deps
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(call PC,$(LUAJIT_PC) $(DEPS_PC)) -c $< -o $@

# The host finds the repository's lua/ even from a build folder elsewhere.
$(BUILD)/obj/host/host.o: ALL_CFLAGS += -DSC_LUA_SOURCE_DIR='"$(CURDIR)/lua"'

$(BUILD)/obj/host/%.o: host/%.c $(HEADERS) | $(BUILD)/.deps
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(call PC,$(LUA_PC) $(DEPS_PC) libevent libevent_pthreads) -c $< -o $@

$(CORE54_SO): $(CORE54_OBJS)
	@mkdir -p $(dir $@)
	$(CC) -shared $(LDFLAGS) -o $@ $^ $(call PL,$(DEPS_PC)) -lpthread

$(COREJIT_SO): $(COREJIT_OBJS)
	@mkdir -p $(dir $@)
	$(CC) -shared $(LDFLAGS) -o $@ $^ $(call PL,$(DEPS_PC)) -lpthread

$(HOST_BIN): $(HOST_OBJS) $(CORE54_OBJS)
	$(CC) $(LDFLAGS) -o $@ $^ -Wl,-E $(call PL,$(LUA_PC) $(DEPS_PC) libevent libevent_pthreads) -lpthread -lm -ldl

# ---------------------------------------------------------------- tests
# Spec groups: core (C primitives; also under LuaJIT), lua (pure-Lua units),
# integration (real servers over loopback; under the host only), final (the
# secret scan of the servers' logs, after all the others).
SPECS_CORE        := $(sort $(wildcard spec/core/*_spec.lua))
SPECS_LUA         := $(sort $(wildcard spec/lua/*_spec.lua))
SPECS_INTEGRATION := $(sort $(wildcard spec/integration/*_spec.lua))
LUA_PATHS  = LUA_PATH="lua/?.lua;lua/?/init.lua;;"
RESULTS    = $(BUILD)/test-results

# Specs that start the host or node find them through these (BUILD may be elsewhere).
test: export STRIPE_CONNECT_BIN = $(HOST_BIN)
test: export SPEC_SAN_LUA = $(SAN_LUA)
test: export SPEC_SAN_LUAJIT = $(SAN_LUAJIT)
test: export STRIPE_NODE_DIR = $(NODE_BUILD)/node
test: export STRIPE_NODE_MODULES = $(abspath $(NODE_BUILD))/node/node_modules
# Every server a spec starts keeps its output there; the `secrets` run, last,
# greps it for the secrets the specs configured and the codes and tokens issued.
test: export STRIPE_CONNECT_TEST_LOGS = $(abspath $(BUILD))/test-logs
test: all $(SAN_PREREQ)
	@rm -rf $(RESULTS) $(STRIPE_CONNECT_TEST_LOGS) && mkdir -p $(RESULTS) $(STRIPE_CONNECT_TEST_LOGS)
	@set -o pipefail; status=0; \
	run() { label=$$1; shift; \
	  "$$@" 2>&1 | tee $(RESULTS)/$$label.txt || status=1; \
	  grep -Eq "^$$label: [0-9]+ passed, [0-9]+ failed(, [0-9]+ skipped)?$$" $(RESULTS)/$$label.txt || \
	    { echo "$$label: 0 passed, 1 failed (the run ended without its summary line)" | tee -a $(RESULTS)/$$label.txt; status=1; }; }; \
	run host $(HOST_BIN) run spec/run.lua --label host $(SPECS_CORE) $(SPECS_LUA) $(SPECS_INTEGRATION); \
	run lua5.4 env $(SAN_LUA) $(LUA_PATHS) LUA_CPATH="$(BUILD)/lua/?.so;;" $(LUA) spec/run.lua --label lua5.4 $(SPECS_CORE) $(SPECS_LUA); \
	run luajit env $(SAN_LUAJIT) $(LUA_PATHS) LUA_CPATH="$(BUILD)/luajit/?.so;;" $(LUAJIT) spec/run.lua --label luajit $(SPECS_CORE); \
	if $(MAKE) --no-print-directory rock >$(RESULTS)/rock-build.log 2>&1; then \
	  run rock env LUA_PATH="$(BUILD)/rocks/share/lua/5.4/?.lua;$(BUILD)/rocks/share/lua/5.4/?/init.lua;;" \
	    LUA_CPATH="$(BUILD)/rocks/lib/lua/5.4/?.so;;" $(LUA) spec/run.lua --label rock $(SPECS_CORE) $(SPECS_LUA); \
	else \
	  cat $(RESULTS)/rock-build.log; echo "rock: 0 passed, 1 failed (luarocks make failed)" | tee $(RESULTS)/rock.txt; status=1; \
	fi; \
	run secrets $(HOST_BIN) run spec/run.lua --label secrets spec/final/secret_scan_spec.lua; \
	grep -h '^[a-z0-9.]*: FAILED ' $(RESULTS)/*.txt || true; \
	cat $(RESULTS)/*.txt | awk '/^[a-z0-9.]+: [0-9]+ passed, [0-9]+ failed/ { p += $$2; f += $$4; s += $$6 } \
	  END { printf "%d passed, %d failed%s\n", p, f, (s > 0 ? sprintf(", %d skipped", s) : ""); exit (f > 0) }' || status=1; \
	exit $$status

# ---------------------------------------------------------------- fuzzing
# libFuzzer targets (spec/fuzz/fuzz_*.c, doc/testing.md: Fuzzing) built with clang,
# ASan and UBSan into $(FUZZ_BUILD); `make fuzz` runs each for FUZZ_SECONDS,
# FUZZ_JOBS at a time, from the seeds in spec/fuzz/corpus/<target>/ (what
# they find goes to $(FUZZ_BUILD)/corpus/, crashes to $(FUZZ_BUILD)/crashes/).
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 30
FUZZ_JOBS    ?= 2
FUZZ_BUILD   ?= build/fuzz
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
FUZZ_CFLAGS  := -std=c11 -D_GNU_SOURCE -g -O1 $(FUZZ_SAN) -DFUZZ_LUA_DIR='"$(CURDIR)/lua"' \
                -Ihost $(call PC,$(LUA_PC) $(DEPS_PC) libevent)
FUZZ_SRCS    := $(sort $(wildcard spec/fuzz/fuzz_*.c))
FUZZ_TARGETS := $(FUZZ_SRCS:spec/fuzz/%.c=%)
FUZZ_BINS    := $(FUZZ_TARGETS:%=$(FUZZ_BUILD)/%)
FUZZ_OBJS    := $(CORE_SRCS:host/core/%.c=$(FUZZ_BUILD)/obj/%.o) $(FUZZ_BUILD)/obj/request.o

$(FUZZ_BUILD)/obj/%.o: host/core/%.c $(HEADERS) | $(BUILD)/.deps
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c $< -o $@

$(FUZZ_BUILD)/obj/request.o: host/request.c $(HEADERS) | $(BUILD)/.deps
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c $< -o $@

$(FUZZ_BUILD)/fuzz_%: spec/fuzz/fuzz_%.c spec/fuzz/fuzz_lua.h spec/fuzz/fuzz_http.h $(FUZZ_OBJS)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer $< $(FUZZ_OBJS) -o $@ \
	  $(call PL,$(LUA_PC) $(DEPS_PC) libevent) -lpthread -lm -ldl

fuzz-build: $(FUZZ_BINS)

fuzz: fuzz-build
	@spec/fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_SECONDS) $(FUZZ_JOBS) $(FUZZ_TARGETS)

sanitize-normal-build:
	@$(MAKE) --no-print-directory all SANITIZE=0

# Debian keeps curl.h and the libraries under multiarch folders LuaRocks does not search.
MULTIARCH     := $(shell $(CC) -print-multiarch 2>/dev/null)
MULTIARCH_INC ?= $(if $(MULTIARCH),/usr/include/$(MULTIARCH),/usr/include)
MULTIARCH_LIB ?= $(if $(MULTIARCH),/usr/lib/$(MULTIARCH),/usr/lib)

# luarocks make of the rockspec into a tree under build/ (no network needed), from a
# copy of the sources so the builtin backend's objects stay out of the work tree.
rock: all
	@rm -rf $(BUILD)/rocks $(BUILD)/rock-src && mkdir -p $(BUILD)/rock-src
	@cp -r host lua stripe-connect-scm-1.rockspec $(BUILD)/rock-src/
	cd $(BUILD)/rock-src && luarocks --lua-version=5.4 --tree=$(abspath $(BUILD))/rocks make --deps-mode=none stripe-connect-scm-1.rockspec \
	  CURL_INCDIR=$(MULTIARCH_INC) CURL_LIBDIR=$(MULTIARCH_LIB) \
	  SQLITE_INCDIR=/usr/include SQLITE_LIBDIR=$(MULTIARCH_LIB) \
	  PQ_INCDIR=$(shell $(PKG_CONFIG) --variable=includedir libpq) PQ_LIBDIR=$(MULTIARCH_LIB)

# valgrind: a short `serve` run (a few thousand requests, then SIGTERM) under
# valgrind; fails on memory errors or definitely lost bytes.  Not part of `test`.
valgrind: all
	@spec/support/valgrind_serve.sh $(HOST_BIN)

run: all
	@$(HOST_BIN) run scripts/dev.lua

# accounts: scripts/accounts.lua with the settings `make run` wrote (DATA_DIR/run.env).
DATA_DIR ?= data
accounts: all
	@test -f $(DATA_DIR)/run.env || { echo "make accounts: no $(DATA_DIR)/run.env: start make run first" >&2; exit 1; }
	@set -a && . $(DATA_DIR)/run.env && set +a && $(HOST_BIN) run scripts/accounts.lua $(ARGS)

# bench: wrk against nginx's static 302, the platform (SQLite and memory:) and the
# Express peer; a Markdown table on stdout and in $(BUILD)/bench.md.  Not part of `test`.
# Settings: BENCH_DURATION, BENCH_CONNECTIONS, BENCH_THREADS, … (scripts/bench/run.lua).
bench: export BENCH_BIN ?= $(HOST_BIN)
bench: export BENCH_OUT ?= $(BUILD)/bench.md
bench: export BENCH_NODE_DIR ?= $(BUILD)/bench/peer-node
bench: all
	@$(HOST_BIN) run scripts/bench/run.lua

# soak: SOAK_DURATION seconds (default 300) of mixed load (connect, callback, webhooks,
# admin) with wrk; errors must be 0 and the server's RSS growth under 5%.  Not part of
# `test` nor CI.  Settings: scripts/bench/soak.lua.
soak: export SOAK_BIN ?= $(HOST_BIN)
soak: all
	@$(HOST_BIN) run scripts/bench/soak.lua

# install: the binary, the Lua modules (share/lua/5.4; the core for Lua 5.4 and LuaJIT under
# lib/lua/5.4 and lib/lua/5.1), the scripts, the man page and an example systemd unit.
# The binary finds the modules and scripts from its own location (bin/../share/…), so a
# DESTDIR staging tree works too.  uninstall removes exactly what install put.
LUA_FILES    := $(shell find lua/stripe_connect -name '*.lua' | sort)
SCRIPT_FILES := $(shell find scripts -type f | sort)
I_PREFIX     = $(DESTDIR)$(PREFIX)
INSTALLED    = $(I_PREFIX)/bin/stripe-connect $(LUA_FILES:lua/%=$(I_PREFIX)/share/lua/5.4/%) \
               $(I_PREFIX)/lib/lua/5.4/stripe_connect/core.so $(I_PREFIX)/lib/lua/5.1/stripe_connect/core.so \
               $(SCRIPT_FILES:%=$(I_PREFIX)/share/stripe-connect/%) $(I_PREFIX)/share/man/man1/stripe-connect.1 \
               $(I_PREFIX)/share/doc/stripe-connect/stripe-connect.service
install: all
	install -D -m 755 $(HOST_BIN) $(I_PREFIX)/bin/stripe-connect
	@for f in $(LUA_FILES); do install -D -m 644 $$f $(I_PREFIX)/share/lua/5.4/$${f#lua/} || exit 1; done
	install -D -m 644 $(CORE54_SO) $(I_PREFIX)/lib/lua/5.4/stripe_connect/core.so
	install -D -m 644 $(COREJIT_SO) $(I_PREFIX)/lib/lua/5.1/stripe_connect/core.so
	@for f in $(SCRIPT_FILES); do install -D -m $$([ -x $$f ] && echo 755 || echo 644) $$f \
	  $(I_PREFIX)/share/stripe-connect/$$f || exit 1; done
	install -D -m 644 doc/stripe-connect.1 $(I_PREFIX)/share/man/man1/stripe-connect.1
	install -D -m 644 scripts/systemd/stripe-connect.service $(I_PREFIX)/share/doc/stripe-connect/stripe-connect.service

uninstall:
	rm -f $(INSTALLED)
	@for d in share/lua/5.4/stripe_connect/store share/lua/5.4/stripe_connect/fake share/lua/5.4/stripe_connect \
	  lib/lua/5.4/stripe_connect lib/lua/5.1/stripe_connect share/doc/stripe-connect; do rmdir $(I_PREFIX)/$$d 2>/dev/null || true; done
	@rm -rf $(I_PREFIX)/share/stripe-connect

# man: doc/stripe-connect.1 from stripe_connect.settings (the commands and every setting).
man: $(HOST_BIN)
	@$(HOST_BIN) run - > doc/stripe-connect.1 <<< 'io.write(require("stripe_connect.settings").man())'

clean:
	rm -rf $(BUILD)

# test-quick: the core and Lua unit specs under the host (no servers, no browser;
# seconds, for the edit-run loop).  `make test` runs everything.
test-quick: all
	@STRIPE_CONNECT_BIN=$(HOST_BIN) $(HOST_BIN) run spec/run.lua --label quick $(SPECS_CORE) $(SPECS_LUA)

help:
	@printf '%s\n' \
	  'make all          build build/stripe-connect and the Lua 5.4 and LuaJIT core modules' \
	  'make deps         install the Debian packages (APT_PACKAGES) the build and specs need' \
	  'make run          the fake Connect and the platform on loopback (Ctrl-C stops both)' \
	  'make accounts     the accounts in make run'"'"'s store (its DATA_DIR/run.env settings; ARGS=--json)' \
	  'make test         every spec: host, lua5.4, luajit, rock and secrets labels (ends N passed, 0 failed);' \
	  '                  SANITIZE=1: the same on an ASan+UBSan build in build/sanitize' \
	  'make test-quick   the core and Lua unit specs only, under the host' \
	  'make rock         luarocks make into build/rocks' \
	  'make valgrind     a short serve run under valgrind' \
	  'make bench        wrk against ours, nginx and the Express peer (not in test)' \
	  'make soak         SOAK_DURATION s (300) of mixed load: errors 0, RSS growth < 5% (not in test)' \
	  'make fuzz         each libFuzzer target for FUZZ_SECONDS (30), FUZZ_JOBS (2) at a time' \
	  'make fuzz-build   build the fuzz targets into build/fuzz only' \
	  'make sanitize-normal-build   the plain build/ a SANITIZE=1 test run also needs' \
	  'make install      PREFIX=/usr/local DESTDIR=: binary, Lua modules (5.4 and LuaJIT core), scripts, man page, systemd unit' \
	  'make uninstall    PREFIX=/usr/local DESTDIR=: remove what make install put' \
	  'make man          regenerate doc/stripe-connect.1 from stripe_connect.settings' \
	  'make clean        remove build/' \
	  'make help         this list'
