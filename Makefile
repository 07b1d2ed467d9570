# Makefile — builds bhatti (host binary) and lohar (static guest agent),
# the tests, the benchmarks and the fuzz targets.
#
#   make            build/bhatti and build/lohar
#   make deps       install missing Debian packages (scripts/deps.sh)
#   make test       deps + build + every unit and integration test
#   make asan       the same under AddressSanitizer/UBSan (build/asan/)
#   make fuzz       the libFuzzer targets, FUZZ_SECONDS (600) each (clang)
#   make bench      benchmarks under bench/ (bench/load only in make soak)
#   make soak       the long proof (~40 min): soak, fault and load tests
#
# Objects go to $(BUILD)/host (glibc) and $(BUILD)/musl (static agent).

VERSION  := 0.1.0
# the HTTP API's version (X-Bhatti-API): bumped when a client could misread it
API_VERSION := 1
BUILD    ?= build
CC       := gcc
AGENT_CC ?= musl-gcc
SAN      ?=

WARN     := -Wall -Wextra -Werror -Wshadow -Wformat=2 -Wno-format-nonliteral
CFLAGS   := -std=c17 -O2 -g $(WARN) -D_GNU_SOURCE -DBHATTI_VERSION='"$(VERSION)"' -DBHATTI_API_VERSION=$(API_VERSION) -MMD -MP

# Include paths by directory: what a layer may see (docs/architecture.md,
# "Layers"). shared/ sees itself only; agent/, daemon/ and client/ see
# shared/ and themselves; cli/ and tui/ see shared/ and client/ (cli/ the
# daemon only through "../daemon/local.h" and the TUI only through
# "../tui/tui.h"). Tests and benchmarks see everything (INC).
# tests/check-layers.sh checks the same rules on the sources.
INC        := -Ishared -Idaemon
INC_shared := -Ishared
INC_agent  := -Ishared -Iagent
INC_daemon := -Ishared -Idaemon
INC_client := -Ishared -Iclient
INC_cli    := -Ishared -Iclient -Icli
INC_tui    := -Ishared -Iclient -Itui
INC_tests  := -Ishared -Idaemon -Iclient
inc_of      = $(or $(INC_$(firstword $(subst /, ,$(1)))),$(INC))
ifneq ($(SAN),)
CFLAGS   += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDSAN    := -fsanitize=address,undefined
AGENT_CC := $(CC)
AGENT_LDFLAGS :=
else
AGENT_LDFLAGS := -static
endif

# The daemon's libraries are linked statically into build/bhatti: every
# CLI command is a fresh process, and mapping a tree of shared libraries
# (libwebsockets pulls OpenSSL, libcap, zlib) is most of its start-up on a
# VM with slow page faults (docs/benchmarks.md). cJSON ships no archive.
# libcurl is for the tests and benchmarks only (the CLI has its own HTTP
# client, client/client.c). `bhatti tui`'s libvterm and ncursesw are
# static too, so the other commands map nothing more.
HOST_LIBS := -lcjson -Wl,-Bstatic -lyaml -lsodium -lsqlite3 -lwebsockets -lssl -lcrypto -lcap -lz \
             -lvterm -lncursesw -ltinfo -Wl,-Bdynamic -lutil -lm -ldl -lpthread
TEST_LIBS := -lcurl -lcmocka

CORE_SRC   := shared/util.c shared/buf.c shared/ring.c shared/err.c shared/log.c shared/loop.c \
              shared/num.c shared/wire.c shared/proto.c shared/valid.c
HSHARE_SRC := $(wildcard shared/json.c shared/config.c shared/opt.c)
AGENT_SRC  := $(sort $(wildcard agent/*.c))
CLIENT_SRC := $(sort $(wildcard client/*.c))
CLI_SRC    := $(sort $(wildcard cli/*.c))
TUI_SRC    := $(sort $(wildcard tui/*.c))
DAEMON_SRC := $(sort $(wildcard daemon/*.c))

hobj = $(patsubst %.c,$(BUILD)/host/%.o,$(1))
mobj = $(patsubst %.c,$(BUILD)/musl/%.o,$(1))

CORE_HOBJ   := $(call hobj,$(CORE_SRC))
HSHARE_HOBJ := $(call hobj,$(HSHARE_SRC))
DAEMON_HOBJ := $(call hobj,$(DAEMON_SRC))
CLIENT_HOBJ := $(call hobj,$(CLIENT_SRC))
CLI_HOBJ    := $(call hobj,$(CLI_SRC))
TUI_HOBJ    := $(call hobj,$(TUI_SRC))
AGENT_MOBJ  := $(call mobj,$(CORE_SRC) $(AGENT_SRC))

# Host-side archives: the binaries, tests and benchmarks link only what
# they use. (Defined before the first rule that names them: prerequisites
# are expanded when make reads the rule.)
LIBCORE   := $(BUILD)/host/libcore.a
LIBHSHARE := $(BUILD)/host/libhshare.a
LIBDAEMON := $(BUILD)/host/libdaemon.a
LIBAGENT  := $(BUILD)/host/libagent.a
LIBCLIENT := $(BUILD)/host/libclient.a
LIBCLI    := $(BUILD)/host/libcli.a
LIBTUI    := $(BUILD)/host/libtui.a
LIBTEST   := $(BUILD)/host/libtest.a
TEST_LIBS_A := $(LIBCLI) $(LIBTUI) $(LIBCLIENT) $(LIBDAEMON) $(LIBAGENT) $(LIBHSHARE) $(LIBCORE)

UNIT_SRC  := $(sort $(wildcard tests/unit/test-*.c))
# tests/integration/long-*.c run only in `make test-long` (slow images)
INTEG_SRC := $(sort $(wildcard tests/integration/test-*.c))
LONG_SRC  := $(sort $(wildcard tests/integration/long-*.c))
LONG_BIN  := $(patsubst tests/integration/%.c,$(BUILD)/tests/%,$(LONG_SRC))
# tests/integration/soak-*.c run only in `make soak` (long: see below)
SOAK_SRC  := $(sort $(wildcard tests/integration/soak-*.c))
SOAK_BIN  := $(patsubst tests/integration/%.c,$(BUILD)/tests/%,$(SOAK_SRC))
UNIT_BIN  := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRC))
INTEG_BIN := $(patsubst tests/integration/%.c,$(BUILD)/tests/%,$(INTEG_SRC))
# tests/helpers.c, the leak audit of the long runs (tests/audit.c) and the
# test double of the engine's backend (tests/fake-backend.c), as an
# archive: a test links what it uses
TEST_HELPER_HOBJ := $(call hobj,tests/helpers.c tests/audit.c tests/fake-backend.c tests/netns.c)
BENCH_SRC := $(sort $(wildcard bench/*.c))
BENCH_BIN := $(patsubst bench/%.c,$(BUILD)/bench/%,$(BENCH_SRC))

.PHONY: all deps test test-unit test-long soak asan fuzz fuzz-smoke bench clean images images-minimal dist FORCE
.DEFAULT_GOAL := all
# keep every object (make would delete tests/helpers.o as "intermediate")
.SECONDARY:

all: $(BUILD)/bhatti $(BUILD)/lohar $(BUILD)/bhatti.1

deps:
	@sh scripts/deps.sh

$(BUILD)/host/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	@$(CC) $(CFLAGS) $(call inc_of,$<) -c $< -o $@

$(BUILD)/musl/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  CC musl $<"
	@$(AGENT_CC) $(CFLAGS) $(call inc_of,$<) -c $< -o $@

$(BUILD)/bhatti: $(CLI_HOBJ) $(LIBTUI) $(LIBCLIENT) $(LIBDAEMON) $(LIBHSHARE) $(LIBCORE)
	@echo "  LD      $@"
	@$(CC) $(LDSAN) -o $@ $^ $(HOST_LIBS)

# the man page, generated from the command table (cli/cmd-completion.c)
$(BUILD)/bhatti.1: $(BUILD)/bhatti
	@echo "  MAN     $@"
	@$(BUILD)/bhatti __man >$@.tmp && mv $@.tmp $@

$(BUILD)/lohar: $(AGENT_MOBJ)
	@echo "  LD      $@"
	@$(AGENT_CC) $(LDSAN) $(AGENT_LDFLAGS) -o $@ $^

# Guest images (images/*.sh). Always from the static musl lohar in build/,
# whatever BUILD is: a sanitizer build cannot run inside the guest. Each
# step is cached: the kernel by package version (kernel.sh checks it), the
# initramfs by lohar and the module list, the rootfs by its script.
IMAGES       := build/images
STATIC_LOHAR := build/lohar
IMAGES_TINY  := $(IMAGES)/vmlinux $(IMAGES)/initramfs.cpio $(IMAGES)/rootfs-tiny.ext4

# TIERS: the Debian tiers to build besides tiny, comma-separated
# (`make images TIERS=minimal,browser`; `all`: every images/tiers/*.sh)
comma        := ,
ALL_TIERS    := $(patsubst images/tiers/%.sh,%,$(sort $(wildcard images/tiers/*.sh)))
TIERS_ASKED   = $(if $(filter all,$(TIERS)),$(ALL_TIERS),$(filter-out tiny,$(subst $(comma), ,$(TIERS))))
# minimal first: the others start from its staged tree, which it leaves
TIER_LIST     = $(filter minimal,$(TIERS_ASKED)) $(filter-out minimal,$(TIERS_ASKED))

images: $(IMAGES_TINY)
	@$(if $(TIER_LIST),$(MAKE) --no-print-directory $(foreach t,$(TIER_LIST),$(IMAGES)/rootfs-$(t).ext4))
images-minimal:
	@$(MAKE) --no-print-directory images TIERS=minimal

$(IMAGES)/kernel.stamp: images/kernel.sh FORCE
	@sh images/kernel.sh $(IMAGES)

$(IMAGES)/vmlinux: $(IMAGES)/kernel.stamp
	@test -f $@

ifneq ($(BUILD),build)
$(STATIC_LOHAR): FORCE
	@$(MAKE) --no-print-directory BUILD=build SAN= build/lohar
endif

$(IMAGES)/initramfs.cpio: images/initramfs.sh $(IMAGES)/kernel.stamp $(STATIC_LOHAR)
	@sh images/initramfs.sh $(IMAGES) $(STATIC_LOHAR)

$(IMAGES)/rootfs-tiny.ext4: images/rootfs-tiny.sh
	@mkdir -p $(IMAGES)
	@sh images/rootfs-tiny.sh $(IMAGES)

# The Debian tiers (images/tiers/<tier>.sh): the script decides whether the
# image is current (the hash of its inputs, rootfs-<tier>.inputs), so make
# always asks it.
$(IMAGES)/rootfs-%.ext4: images/rootfs-debian.sh $(IMAGES)/kernel.stamp FORCE
	@mkdir -p $(IMAGES)
	@sh images/rootfs-debian.sh $* $(IMAGES)

FORCE:

$(LIBCORE): $(CORE_HOBJ)
$(LIBHSHARE): $(HSHARE_HOBJ)
$(LIBCLIENT): $(CLIENT_HOBJ)
$(LIBDAEMON): $(filter-out %/main.o,$(DAEMON_HOBJ))
$(LIBAGENT): $(filter-out %/main.o,$(call hobj,$(AGENT_SRC)))
$(LIBCLI): $(filter-out %/main.o,$(CLI_HOBJ))
$(LIBTUI): $(TUI_HOBJ)
$(LIBTEST): $(TEST_HELPER_HOBJ)
$(BUILD)/host/%.a:
	@mkdir -p $(dir $@)
	@rm -f $@
	@ar rcs $@ $^ $(if $^,,$(BUILD)/host/empty.o)

$(BUILD)/host/empty.o:
	@mkdir -p $(dir $@)
	@echo '' | $(CC) -x c -c - -o $@

$(BUILD)/tests/%: tests/unit/%.c $(LIBTEST) $(TEST_LIBS_A)
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	@$(CC) $(CFLAGS) $(INC) -Iclient -Itests -Iagent -Icli -Itui $(LDSAN) -o $@ $(filter-out %.h,$^) $(HOST_LIBS) $(TEST_LIBS)

$(BUILD)/tests/%: tests/integration/%.c $(LIBTEST) $(TEST_LIBS_A)
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	@$(CC) $(CFLAGS) $(INC) -Iclient -Itests -Iagent -Icli -Itui $(LDSAN) -o $@ $(filter-out %.h,$^) $(HOST_LIBS) $(TEST_LIBS)

# Static helpers the tests upload into guests (tests/guest/*.c): not product code.
$(BUILD)/guest/%: tests/guest/%.c
	@mkdir -p $(dir $@)
	@echo "  CC musl $@"
	@$(AGENT_CC) -static -O2 -Wall -Wextra -Werror -o $@ $<

$(BUILD)/tests/test-proxy $(BUILD)/bench/proxy: | $(BUILD)/guest/pxserve

$(BUILD)/bench/%: bench/%.c $(LIBTEST) $(LIBTUI) $(LIBCLIENT) $(LIBDAEMON) $(LIBHSHARE) $(LIBCORE)
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	@$(CC) $(CFLAGS) $(INC) -Iclient -Itests -Ibench -Itui $(LDSAN) -o $@ $(filter-out %.h,$^) $(HOST_LIBS) -lcurl

# (the fuzz targets' smoke run only once: they are under the sanitizers anyway)
test: deps
	@$(MAKE) --no-print-directory all images $(UNIT_BIN) $(INTEG_BIN) $(if $(SAN),,fuzz-smoke)
	@BUILD=$(BUILD) BHATTI_IMAGES=$(IMAGES) sh tests/run.sh tests/check-layers.sh tests/check-unit.sh $(UNIT_BIN) $(INTEG_BIN) tests/check-install.sh

test-unit: all $(UNIT_BIN)
	@BUILD=$(BUILD) sh tests/run.sh tests/check-layers.sh tests/check-unit.sh $(UNIT_BIN)

# Everything in `make test`, plus the tier tests (tests/integration/long-*.c)
# on the Debian tiers (debootstrap: minutes each the first time; a tier
# test skips when its image is not built, so TIERS=minimal runs fewer).
test-long: deps
	@$(MAKE) --no-print-directory all images TIERS=$(or $(TIERS),all) $(UNIT_BIN) $(INTEG_BIN) $(LONG_BIN)
	@BUILD=$(BUILD) BHATTI_IMAGES=$(IMAGES) sh tests/run.sh tests/check-layers.sh tests/check-unit.sh $(UNIT_BIN) $(INTEG_BIN) $(LONG_BIN)

# The proof of issue 10, long (about 40 minutes here): SOAK_CYCLES sandbox
# life cycles with leak checks, fault injection (kill -9 of the daemon and
# of QEMU, ENOSPC during a stop; SOAK_TRIALS, SOAK_SEED), and bench/load
# (LOAD_SECONDS of 50 clients on 10 sandboxes). Figures in docs/security.md.
soak: deps
	@$(MAKE) --no-print-directory all images $(SOAK_BIN) $(BUILD)/bench/load
	@BUILD=$(BUILD) BHATTI_IMAGES=$(IMAGES) TEST_TIMEOUT=$${TEST_TIMEOUT:-5400} \
		sh tests/run.sh $(SOAK_BIN); rc=$$?; \
		grep -h '^#' $(patsubst $(BUILD)/tests/%,$(BUILD)/test-logs/%.log,$(SOAK_BIN)); \
		[ $$rc -eq 0 ] || exit $$rc
	@echo "== $(BUILD)/bench/load"
	@BUILD=$(BUILD) BHATTI_IMAGES=$(IMAGES) $(BUILD)/bench/load

asan: deps
	@$(MAKE) --no-print-directory BUILD=build/asan SAN=1 test

# libFuzzer targets, tests/fuzz/fuzz-*.c (docs/testing.md lists them).
# What they link is compiled again with clang, coverage and the sanitizers
# (UBSan aborts, so libFuzzer sees it), into $(BUILD)/fuzz/obj. Seeds come
# from the real encoders and the client library's real requests
# (tests/fuzz/gen-seeds.c). `make fuzz` runs every target in turn for
# FUZZ_SECONDS each (default 600; FUZZ_TARGETS picks some), each with its
# corpus in $(BUILD)/fuzz/corpus/<target>; `make fuzz-smoke` (part of
# `make test`) runs each target once over its seeds.
FUZZ_NAMES  := $(patsubst tests/fuzz/%.c,%,$(sort $(wildcard tests/fuzz/fuzz-*.c)))
FUZZ_BIN    := $(addprefix $(BUILD)/fuzz/,$(FUZZ_NAMES))
FUZZ_SAN    := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
FUZZ_CFLAGS := -std=c17 -O1 -g $(WARN) -D_GNU_SOURCE -DBHATTI_VERSION='"$(VERSION)"' -DBHATTI_API_VERSION=$(API_VERSION) -MMD -MP \
               $(FUZZ_SAN) -fsanitize=fuzzer-no-link
FUZZ_LIB    := $(BUILD)/fuzz/libfuzz.a
fobj         = $(patsubst %.c,$(BUILD)/fuzz/obj/%.o,$(1))

$(BUILD)/fuzz/obj/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  CC fuzz $<"
	@clang $(FUZZ_CFLAGS) $(call inc_of,$<) -Iclient -Itests -c $< -o $@

$(FUZZ_LIB): $(call fobj,$(CORE_SRC) $(HSHARE_SRC) $(CLIENT_SRC) $(DAEMON_SRC))
	@rm -f $@
	@ar rcs $@ $^

$(BUILD)/fuzz/fuzz-%: $(BUILD)/fuzz/obj/tests/fuzz/fuzz-%.o $(call fobj,tests/helpers.c) $(FUZZ_LIB)
	@echo "  FUZZ    $@"
	@clang $(FUZZ_SAN) -fsanitize=fuzzer -o $@ $(filter-out %.a,$^) $(FUZZ_LIB) $(HOST_LIBS) $(TEST_LIBS)

FUZZ_DAEMON := $(call fobj,tests/fuzz/daemon.c tests/fake-backend.c)
$(BUILD)/fuzz/fuzz-http $(BUILD)/fuzz/fuzz-json $(BUILD)/fuzz/fuzz-agent: $(FUZZ_DAEMON)

$(BUILD)/fuzz/gen-seeds: tests/fuzz/gen-seeds.c $(LIBTEST) $(LIBCLIENT) $(LIBDAEMON) \
			 $(LIBHSHARE) $(LIBCORE)
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	@$(CC) $(CFLAGS) $(INC) -Iclient -Itests -o $@ $(filter-out %.h,$^) $(HOST_LIBS) $(TEST_LIBS)

fuzz: deps
	@$(MAKE) --no-print-directory -s $(FUZZ_BIN) $(BUILD)/fuzz/gen-seeds
	@sh tests/fuzz/run.sh $(BUILD) $${FUZZ_SECONDS:-600} $(or $(FUZZ_TARGETS),$(FUZZ_NAMES))

fuzz-smoke: $(FUZZ_BIN) $(BUILD)/fuzz/gen-seeds
	@sh tests/fuzz/run.sh $(BUILD) smoke $(FUZZ_NAMES)

bench: all $(BENCH_BIN)
	@for b in $(filter-out %/load,$(BENCH_BIN)); do echo "== $$b"; $$b || exit 1; done

# The release: $(DIST)/bhatti-VERSION.tar.gz (the tracked and new files of
# this tree, not build/), SHA256SUMS, and install.sh (RELEASE_URL, where
# these files will be served, as its default download location) and
# uninstall.sh, for `curl -fsSL RELEASE_URL/install.sh | bash`.
DIST        ?= $(BUILD)/dist
RELEASE_URL ?= https://bhatti.sh/release/latest
dist:
	@rm -rf $(DIST) && mkdir -p $(DIST)
	@{ git ls-files --cached --others --exclude-standard 2>/dev/null || \
	   find . -path ./build -prune -o -type f -print | sed 's|^\./||'; } | \
		while read -r f; do [ -f "$$f" ] && echo "$$f"; done | LC_ALL=C sort | \
		tar -czf $(DIST)/bhatti-$(VERSION).tar.gz --owner=0 --group=0 --mtime=@0 \
			--transform 's|^|bhatti-$(VERSION)/|' -T -
	@sed 's|@RELEASE_URL@|$(RELEASE_URL)|' install.sh > $(DIST)/install.sh
	@cp uninstall.sh $(DIST)/uninstall.sh
	@chmod 755 $(DIST)/install.sh $(DIST)/uninstall.sh
	@cd $(DIST) && sha256sum bhatti-$(VERSION).tar.gz install.sh uninstall.sh > SHA256SUMS
	@echo "dist: $(DIST) ($$(du -k $(DIST)/bhatti-$(VERSION).tar.gz | cut -f1) KiB tarball)"

clean:
	rm -rf build

# (not under images/: a staged guest tree has files named *.d)
-include $(shell find $(BUILD) -path '*/images' -prune -o -name '*.d' -type f -print 2>/dev/null)
