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
	session/path.o session/session.o session/spool.o
STORE_OBJS = store/deliver.o store/folder.o store/maildir.o store/mapcheck.o \
	store/mbox.o store/mboxlock.o store/quota.o store/reply.o store/users.o
OBJS = $(SESSION_OBJS) $(STORE_OBJS)
HEADERS = $(wildcard session/*.h store/*.h)

MAN_PAGES = man/lmtpd.8 man/lmtpd-transport.8 man/lmtpd.users.5
UNITS = lmtpd.socket lmtpd@.service lmtpd-acceptor.socket \
	lmtpd-acceptor.service lmtpd-backend.socket lmtpd-backend@.service
# Installed into DOCDIR: the recipes, the example map, and the lines for
# xinetd and inetd.
EXAMPLES = docs/recipes.md docs/users.txt.example units/lmtpd.xinetd \
	units/inetd.conf

UNIT_TESTS = $(patsubst %.c,%,$(wildcard tests/unit/check_*.c))

# The LD_PRELOAD library that makes calls fail in the fault tests.
FAULT_SHIM = tests/lib/fault_shim.so

.PHONY: all check unit-check clean install uninstall deps demo lint-man \
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

# Installs the Debian packages that building and testing need.
deps:
	@sh tests/lib/install-deps

# Delivers a message through socket-activated lmtpd into ./demo.
demo: lmtpd
	@sh tests/lib/demo

BENCH_PROGRAMS = bench/loadgen bench/floor

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
	rm -rf tests/work demo bench/work
