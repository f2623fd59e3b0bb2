# lmtpd: build, test, install.  GNU make.

VERSION = 0.1
PREFIX ?= /usr/local
SBINDIR ?= $(PREFIX)/sbin
MANDIR ?= $(PREFIX)/share/man
SYSCONFDIR ?= /etc
SYSTEMDUNITDIR ?= $(shell pkg-config --variable=systemdsystemunitdir systemd 2>/dev/null || echo /lib/systemd/system)

CC ?= cc
CFLAGS ?= -O2 -g
WARNINGS = -Wall -Wextra -Wshadow -Wformat=2 -Wstrict-prototypes \
	-Wmissing-prototypes -Wimplicit-fallthrough -Wvla
CPPFLAGS += -I. -D_GNU_SOURCE -DLMTPD_VERSION='"$(VERSION)"'
ALL_CFLAGS = -std=c11 $(WARNINGS) $(CFLAGS)
LIBS = $(shell pkg-config --libs libsystemd) -lcdb
CHECK_LIBS = $(shell pkg-config --libs check)

SESSION_OBJS = session/command.o session/lineio.o session/log.o \
	session/path.o session/session.o session/spool.o
STORE_OBJS = store/deliver.o store/folder.o store/maildir.o store/mbox.o \
	store/privilege.o store/reply.o store/users.o
OBJS = $(SESSION_OBJS) $(STORE_OBJS)
HEADERS = $(wildcard session/*.h store/*.h)

UNIT_TESTS = $(patsubst %.c,%,$(wildcard tests/unit/check_*.c))

.PHONY: all check unit-check clean install uninstall deps demo lint-man

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

# The unit suites alone, without the dialogue and end-to-end tests.
unit-check: $(UNIT_TESTS)
	@for t in $(UNIT_TESTS); do ./$$t || exit 1; done

# Every test: unit suites, dialogues over socket activation, Postfix,
# and the message corpus when CORPUS names a folder of .eml files.
check: lmtpd $(UNIT_TESTS)
	python3 tests/run.py

# Installs the Debian packages that building and testing need.
deps:
	@sh tests/lib/install-deps

# Delivers a message through socket-activated lmtpd into ./demo.
demo: lmtpd
	@sh tests/lib/demo

lint-man:
	mandoc -Tlint -Wwarning man/lmtpd.8

install: lmtpd
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(MANDIR)/man8 \
		$(DESTDIR)$(SYSTEMDUNITDIR)
	install -m 0755 lmtpd $(DESTDIR)$(SBINDIR)/lmtpd
	install -m 0644 man/lmtpd.8 $(DESTDIR)$(MANDIR)/man8/lmtpd.8
	install -m 0644 units/lmtpd.socket units/lmtpd@.service \
		units/lmtpd-acceptor.socket units/lmtpd-acceptor.service \
		units/lmtpd-system.socket units/lmtpd-system@.service \
		$(DESTDIR)$(SYSTEMDUNITDIR)/

uninstall:
	rm -f $(DESTDIR)$(SBINDIR)/lmtpd $(DESTDIR)$(MANDIR)/man8/lmtpd.8 \
		$(DESTDIR)$(SYSTEMDUNITDIR)/lmtpd.socket \
		$(DESTDIR)$(SYSTEMDUNITDIR)/lmtpd@.service \
		$(DESTDIR)$(SYSTEMDUNITDIR)/lmtpd-acceptor.socket \
		$(DESTDIR)$(SYSTEMDUNITDIR)/lmtpd-acceptor.service \
		$(DESTDIR)$(SYSTEMDUNITDIR)/lmtpd-system.socket \
		$(DESTDIR)$(SYSTEMDUNITDIR)/lmtpd-system@.service

clean:
	rm -f lmtpd lmtpd.o liblmtpd.a $(OBJS) $(UNIT_TESTS)
	rm -rf tests/work demo
