# lmtpd: build, test, install.  GNU make.

VERSION = 0.1
PREFIX ?= /usr/local
SBINDIR ?= $(PREFIX)/sbin
MANDIR ?= $(PREFIX)/share/man
DOCDIR ?= $(PREFIX)/share/doc/lmtpd
SYSTEMDUNITDIR ?= $(shell pkg-config --variable=systemdsystemunitdir systemd 2>/dev/null || echo /lib/systemd/system)

CC ?= cc
CFLAGS ?= -O2 -g
WARNINGS = -Wall -Wextra -Wshadow -Wformat=2 -Wstrict-prototypes \
	-Wmissing-prototypes -Wimplicit-fallthrough -Wvla
CPPFLAGS += -I. -D_GNU_SOURCE -DLMTPD_VERSION='"$(VERSION)"'
ALL_CFLAGS = -std=c11 $(WARNINGS) $(CFLAGS)
LIBS = -lcdb
CHECK_LIBS = $(shell pkg-config --libs check)

SESSION_OBJS = session/command.o session/lineio.o session/log.o \
	session/path.o session/session.o session/spool.o \
	session/transfer.o
STORE_OBJS = store/deliver.o store/draft.o store/folder.o store/maildir.o \
	store/maildirsize.o store/mapcheck.o store/mbox.o store/mboxlock.o \
	store/privilege.o store/quota.o store/reply.o store/users.o
OBJS = $(SESSION_OBJS) $(STORE_OBJS)
HEADERS = $(wildcard session/*.h store/*.h)

MAN_PAGES = man/lmtpd.8 man/lmtpd-transport.8 man/lmtpd.users.5
UNITS = lmtpd.socket lmtpd@.service lmtpd-acceptor.socket \
	lmtpd-acceptor.service lmtpd-backend.socket lmtpd-backend@.service \
	lmtpd-system.socket lmtpd-system@.service
# Installed into DOCDIR: the recipes, the example map, and the lines for
# xinetd and inetd.
EXAMPLES = docs/recipes.md docs/users.txt.example units/lmtpd.xinetd \
	units/inetd.conf

UNIT_TESTS = $(patsubst %.c,%,$(wildcard tests/unit/check_*.c))
BENCH_PROGRAMS = bench/loadgen bench/floor

FUZZ_TARGETS = command path users spool session
FUZZ_SECONDS ?= 20
FUZZ_DIR = build-fuzz
FUZZ_SANITIZERS = -fsanitize=address,undefined -fno-sanitize-recover=all
FUZZ_CFLAGS = -std=c11 $(WARNINGS) -g -O1 $(FUZZ_SANITIZERS)
FUZZ_OBJS = $(addprefix $(FUZZ_DIR)/,$(OBJS) tests/fuzz/feed.o)

SANITIZE_DIR = build-sanitize
SANITIZE_CFLAGS = -std=c11 $(WARNINGS) -g -O1 \
	-fsanitize=address,undefined -fno-sanitize-recover=all \
	-fno-omit-frame-pointer
SANITIZE_UNIT_TESTS = $(addprefix $(SANITIZE_DIR)/,$(UNIT_TESTS))

# The LD_PRELOAD library that makes calls fail in the fault tests.
FAULT_SHIM = tests/lib/fault_shim.so

.PHONY: all check unit-check clean install uninstall deps demo lint-man \
	fuzz fuzz-build fuzz-replay sanitize-check valgrind-check \
	bench bench-smoke bench-deps

all: lmtpd

%.o: %.c $(HEADERS)
	$(CC) $(CPPFLAGS) $(ALL_CFLAGS) -c $< -o $@

liblmtpd.a: $(OBJS)
	rm -f $@
	$(AR) rcs $@ $(OBJS)

lmtpd: lmtpd.o liblmtpd.a
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ lmtpd.o liblmtpd.a $(LIBS)

tests/unit/check_%: tests/unit/check_%.c liblmtpd.a $(HEADERS)
	$(CC) $(CPPFLAGS) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $< liblmtpd.a \
		$(LIBS) $(CHECK_LIBS)

$(FAULT_SHIM): tests/lib/fault_shim.c
	$(CC) $(ALL_CFLAGS) -fPIC -shared $(LDFLAGS) -o $@ $< -ldl

# The unit suites alone, without the dialogue and end-to-end tests.
unit-check: $(UNIT_TESTS)
	@for t in $(UNIT_TESTS); do ./$$t || exit 1; done

# Every test: unit suites, dialogues over socket activation, Postfix,
# and the message corpus when CORPUS names a folder of .eml files.
check: lmtpd $(UNIT_TESTS) $(FAULT_SHIM) $(BENCH_PROGRAMS)
	python3 tests/run.py

# libFuzzer targets, built with clang, AddressSanitizer and
# UndefinedBehaviorSanitizer.  fuzz runs each for FUZZ_SECONDS, starting
# from the seeds in tests/fuzz/corpus/; new inputs go to build-fuzz/.
$(FUZZ_DIR)/%.o: %.c $(HEADERS) tests/fuzz/feed.h
	@mkdir -p $(dir $@)
	clang $(CPPFLAGS) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c $< -o $@

$(FUZZ_DIR)/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_OBJS)
	clang $(CPPFLAGS) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< \
		$(FUZZ_OBJS) $(LIBS)

fuzz-build: $(addprefix $(FUZZ_DIR)/fuzz_,$(FUZZ_TARGETS))

# Keep the sanitizer objects between runs, though only rules make them.
.SECONDARY: $(FUZZ_OBJS) $(addprefix $(SANITIZE_DIR)/,lmtpd.o $(OBJS))

# Runs every seed once: the findings kept in the corpus as regressions.
fuzz-replay: fuzz-build
	@for t in $(FUZZ_TARGETS); do \
		echo "fuzz_$$t: replaying tests/fuzz/corpus/$$t"; \
		$(FUZZ_DIR)/fuzz_$$t -runs=0 tests/fuzz/corpus/$$t || exit 1; \
	done

fuzz: fuzz-build
	@for t in $(FUZZ_TARGETS); do \
		mkdir -p $(FUZZ_DIR)/corpus/$$t $(FUZZ_DIR)/findings; \
		echo "fuzz_$$t: $(FUZZ_SECONDS) s"; \
		$(FUZZ_DIR)/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) \
			-max_len=8192 -timeout=10 -print_final_stats=1 \
			-artifact_prefix=$(FUZZ_DIR)/findings/$$t- \
			$(FUZZ_DIR)/corpus/$$t tests/fuzz/corpus/$$t \
			2> $(FUZZ_DIR)/fuzz_$$t.log || \
			{ tail -60 $(FUZZ_DIR)/fuzz_$$t.log; exit 1; }; \
		grep -E '^stat::number_of_executed_units|^Done' \
			$(FUZZ_DIR)/fuzz_$$t.log; \
	done

# lmtpd and the unit tests with AddressSanitizer and
# UndefinedBehaviorSanitizer, then every test against that build.
$(SANITIZE_DIR)/%.o: %.c $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(SANITIZE_CFLAGS) -c $< -o $@

$(SANITIZE_DIR)/lmtpd: $(addprefix $(SANITIZE_DIR)/,lmtpd.o $(OBJS))
	$(CC) $(SANITIZE_CFLAGS) -o $@ $^ $(LIBS)

$(SANITIZE_DIR)/tests/unit/check_%: tests/unit/check_%.c \
		$(addprefix $(SANITIZE_DIR)/,$(OBJS))
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(SANITIZE_CFLAGS) -o $@ $< \
		$(addprefix $(SANITIZE_DIR)/,$(OBJS)) $(LIBS) $(CHECK_LIBS)

sanitize-check: $(SANITIZE_DIR)/lmtpd $(SANITIZE_UNIT_TESTS) $(FAULT_SHIM)
	LMTPD=$(SANITIZE_DIR)/lmtpd CHECK_DIR=$(SANITIZE_DIR)/tests/unit \
		LMTPD_SANITIZED=1 \
		ASAN_OPTIONS=abort_on_error=1:detect_leaks=1 \
		UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		python3 tests/run.py

# The dialogue tests with lmtpd under valgrind's memcheck.  Each process
# writes its own log, also after it dropped root, so the folder is
# world-writable; any line in a log is an error or a definite leak.
VALGRIND = valgrind -q --vgdb=no --leak-check=full \
	--show-leak-kinds=definite --errors-for-leak-kinds=definite \
	--error-exitcode=99 \
	--log-file=$(CURDIR)/tests/work/valgrind/%p.log

valgrind-check: lmtpd
	rm -rf tests/work/valgrind
	mkdir -p -m 1777 tests/work/valgrind
	LMTPD_PREFIX="$(VALGRIND)" TESTS=dialogue python3 tests/run.py
	@logs=$$(ls tests/work/valgrind | wc -l); \
	echo "valgrind: $$logs process logs"; \
	[ "$$logs" -gt 0 ] || { echo "valgrind: no log written"; exit 1; }; \
	for f in tests/work/valgrind/*.log; do \
		[ ! -s $$f ] || { cat $$f; exit 1; }; \
	done

# Installs the Debian packages that building and testing need.
deps:
	@sh tests/lib/install-deps

# Delivers a message through socket-activated lmtpd into ./demo.
demo: lmtpd
	@sh tests/lib/demo

bench/%: bench/%.c bench/common.c bench/common.h
	$(CC) $(CPPFLAGS) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $< bench/common.c \
		-lpthread

# Measures lmtpd against the fsync floor and a private Dovecot, which
# needs root and the packages of bench-deps; see BENCHMARKS.md.  Options
# of bench/run.py go in BENCH_ARGS, for example "--work DIR".
bench: lmtpd $(BENCH_PROGRAMS)
	python3 bench/run.py $(BENCH_ARGS)

# The same harness with small counts and one run, in seconds.
bench-smoke: lmtpd $(BENCH_PROGRAMS)
	python3 bench/run.py --smoke $(BENCH_ARGS)

# Installs Dovecot's LMTP server, the peer the benchmark compares with.
bench-deps:
	@sh tests/lib/install-deps dovecot-core dovecot-lmtpd

lint-man:
	mandoc -Tlint -Wwarning $(MAN_PAGES)

# The units and examples name the binary as /usr/local/sbin/lmtpd; the
# installed copies name it where SBINDIR puts it.
install: lmtpd
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(MANDIR)/man5 \
		$(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(SYSTEMDUNITDIR) \
		$(DESTDIR)$(DOCDIR)
	install -m 0755 lmtpd $(DESTDIR)$(SBINDIR)/lmtpd
	install -m 0755 tools/lmtpd-transport \
		$(DESTDIR)$(SBINDIR)/lmtpd-transport
	install -m 0644 man/lmtpd.8 $(DESTDIR)$(MANDIR)/man8/lmtpd.8
	install -m 0644 man/lmtpd-transport.8 \
		$(DESTDIR)$(MANDIR)/man8/lmtpd-transport.8
	install -m 0644 man/lmtpd.users.5 $(DESTDIR)$(MANDIR)/man5/lmtpd.users.5
	for unit in $(UNITS); do \
		sed 's|/usr/local/sbin/lmtpd|$(SBINDIR)/lmtpd|g' units/$$unit \
			> $(DESTDIR)$(SYSTEMDUNITDIR)/$$unit || exit 1; \
		chmod 0644 $(DESTDIR)$(SYSTEMDUNITDIR)/$$unit || exit 1; \
	done
	for example in $(EXAMPLES); do \
		target=$(DESTDIR)$(DOCDIR)/$${example##*/}; \
		sed 's|/usr/local/sbin/lmtpd|$(SBINDIR)/lmtpd|g' $$example \
			> $$target || exit 1; \
		chmod 0644 $$target || exit 1; \
	done

uninstall:
	rm -f $(DESTDIR)$(SBINDIR)/lmtpd $(DESTDIR)$(MANDIR)/man8/lmtpd.8 \
		$(DESTDIR)$(SBINDIR)/lmtpd-transport \
		$(DESTDIR)$(MANDIR)/man8/lmtpd-transport.8 \
		$(DESTDIR)$(MANDIR)/man5/lmtpd.users.5
	for unit in $(UNITS); do \
		rm -f $(DESTDIR)$(SYSTEMDUNITDIR)/$$unit; \
	done
	for example in $(EXAMPLES); do \
		rm -f $(DESTDIR)$(DOCDIR)/$${example##*/}; \
	done
	if [ -d $(DESTDIR)$(DOCDIR) ]; then rmdir $(DESTDIR)$(DOCDIR); fi

clean:
	rm -f lmtpd lmtpd.o liblmtpd.a $(OBJS) $(UNIT_TESTS) $(FAULT_SHIM) \
		$(BENCH_PROGRAMS)
	rm -rf tests/work demo $(FUZZ_DIR) $(SANITIZE_DIR) bench/work
