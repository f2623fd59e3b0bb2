"""lmtpd's log: result lines, the protocol trace, errors at start, and
the structured journal entries.

The journal test starts a private systemd-journald in a private mount
namespace, with its own /run and its journal files under tests/work.
It runs lmtpd there with JOURNAL_STREAM set, as systemd would.  The
syslog tests give lmtpd a private /dev/log.  Both need root and skip
without it.

Run: TESTS=logging python3 tests/run.py
"""

import json
import os
import re
import signal
import socket
import subprocess
import time
import unittest

from harness import (HOSTNAME, LMTPD, Dialogue, LmtpdServer, build_map,
                     delivery_user, give_to_delivery_user, make_folder)
from private import PrivateMounts, SyslogReceiver, missing_namespace_support

JOURNALD = "/lib/systemd/systemd-journald"
USERS = {
    "alice@example.com": "alice/",
    "bob@example.com": "bob.mbox",
}
# Text that only the message content holds, to find it in a log.
CONTENT_MARK = "content-never-logged-7f3a"
BODY = ("From: sender@example.org\r\nSubject: %s\r\n\r\n%s\r\n"
        % (CONTENT_MARK, CONTENT_MARK)).encode()
RESULT_LINE = (r"lmtpd\[[0-9]+\]: ([0-9A-F]{12}): from=<sender@example\.org> "
               r"to=<alice@example\.com> client=local mailbox=\S+/alice/ "
               r"size=%d reply=250 status=2\.0\.0 delivery_ms=[0-9]+ "
               r"result=\"delivered\" detail=\"\S+/alice/new/[^\"]+\"$"
               % len(BODY.replace(b"\r\n", b"\n")))


def run_session(server, commands):
    """Send commands on a new connection and return every reply line."""
    with server.connect_raw() as sock:
        sock.sendall(commands)
        data = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    return data.decode("utf-8", "replace").split("\r\n")[:-1]


def wait_for_log(server, pattern, timeout=10):
    """Return the match of pattern in the server's log, waiting for the
    process that writes it to finish the line."""
    deadline = time.monotonic() + timeout
    while True:
        match = re.search(pattern, server.log_text(), re.MULTILINE)
        if match is not None or time.monotonic() > deadline:
            return match
        time.sleep(0.05)


class ResultLineTest(unittest.TestCase):
    def setUp(self):
        self.server = LmtpdServer("logging-result", USERS)

    def tearDown(self):
        self.server.stop()

    def test_result_line_facts(self):
        replies = run_session(self.server,
                              b"LHLO c\r\nMAIL FROM:<sender@example.org>\r\n"
                              b"RCPT TO:<alice@example.com>\r\nDATA\r\n"
                              + BODY + b".\r\nQUIT\r\n")
        self.assertRegex(replies[-2], r"^250 2\.0\.0 <alice@example\.com> ")
        match = wait_for_log(self.server, RESULT_LINE)
        self.assertIsNotNone(match, self.server.log_text())
        session = match.group(1)
        log = self.server.log_text()
        self.assertRegex(log, r"lmtpd\[[0-9]+\]: starting lmtpd [0-9.]+ "
                         r"\(systemd Accept=yes\), map \S+users\.cdb, "
                         r"spool folder \S+/spool\n")
        self.assertIn("%s: connect from local\n" % session, log)
        self.assertIsNotNone(wait_for_log(
            self.server, r"%s: disconnect from local: 1 transactions, 1 "
            r"recipients delivered, 0 failed, [0-9]+ ms$" % session))
        self.assertNotIn(CONTENT_MARK, self.server.log_text())

    def test_failed_result_line(self):
        os.chmod(self.server.mail, 0o500)
        os.makedirs(self.server.path("alice/"))
        # Root ignores permissions: a file in place of new/ fails for all.
        with open(os.path.join(self.server.path("alice/"), "new"), "w"):
            pass
        replies = run_session(self.server,
                              b"LHLO c\r\nMAIL FROM:<sender@example.org>\r\n"
                              b"RCPT TO:<alice@example.com>\r\nDATA\r\n"
                              + BODY + b".\r\nQUIT\r\n")
        self.assertRegex(replies[-2], r"^451 4\.3\.0 <alice@example\.com> ")
        match = wait_for_log(self.server, r"to=<alice@example\.com> .* "
                             r"reply=451 status=4\.3\.0 delivery_ms=[0-9]+ "
                             r"result=\"local error\" detail=\"[^\"]+\"$")
        self.assertIsNotNone(match, self.server.log_text())
        self.assertIsNotNone(wait_for_log(
            self.server, r"disconnect from local: 1 transactions, 0 "
            r"recipients delivered, 1 failed"), self.server.log_text())


class VerboseTest(unittest.TestCase):
    def setUp(self):
        self.server = LmtpdServer("logging-verbose", USERS,
                                  extra_args=["--verbose"])

    def tearDown(self):
        self.server.stop()

    def test_trace_without_content(self):
        chunk = b"Subject: chunk\r\n\r\n" + CONTENT_MARK.encode() + b"\r\n"
        replies = run_session(
            self.server,
            b"LHLO c\r\nMAIL FROM:<sender@example.org>\r\n"
            b"RCPT TO:<alice@example.com>\r\nDATA\r\n" + BODY + b".\r\n"
            b"MAIL FROM:<sender@example.org>\r\n"
            b"RCPT TO:<bob@example.com>\r\n"
            b"BDAT %d LAST\r\n" % len(chunk) + chunk + b"QUIT\r\n")
        self.assertEqual(len(replies), 1 + 8 + 4 + 3 + 1, replies)
        self.assertIsNotNone(wait_for_log(self.server, r"disconnect from"))
        log = self.server.log_text()
        # The harness's readiness probe was a session of its own.
        session = re.search(r"([0-9A-F]{12}): < LHLO c$", log,
                            re.MULTILINE).group(1)
        trace = [line.split(": ", 2)[2] for line in log.splitlines()
                 if re.match(r"lmtpd\[[0-9]+\]: %s: [<>] " % session, line)]
        expected = ["> " + replies[0], "< LHLO c"]
        expected += ["> " + line for line in replies[1:9]]
        expected += ["< MAIL FROM:<sender@example.org>", "> " + replies[9],
                     "< RCPT TO:<alice@example.com>", "> " + replies[10],
                     "< DATA", "> " + replies[11], "> " + replies[12],
                     "< MAIL FROM:<sender@example.org>", "> " + replies[13],
                     "< RCPT TO:<bob@example.com>", "> " + replies[14],
                     "< BDAT %d LAST" % len(chunk), "> " + replies[15],
                     "< QUIT", "> " + replies[16]]
        self.assertEqual(trace, expected)
        self.assertNotIn(CONTENT_MARK, log)

    def test_no_trace_by_default(self):
        server = LmtpdServer("logging-quiet", USERS)
        try:
            run_session(server, b"LHLO c\r\nQUIT\r\n")
            self.assertIsNotNone(wait_for_log(server, r"disconnect from"))
            self.assertNotRegex(server.log_text(), r"[0-9A-F]{12}: [<>] ")
        finally:
            server.stop()


class StartupErrorTest(unittest.TestCase):
    """A missing map or spool folder is reported at start, and the
    session still runs, replying 451 4.3.0."""

    def test_missing_map_and_spool(self):
        folder = make_folder("logging-startup")
        missing_map = os.path.join(folder, "none.cdb")
        missing_spool = os.path.join(folder, "no-spool")
        result = subprocess.run(
            [LMTPD, "--map", missing_map, "--spool-dir", missing_spool,
             "--hostname", HOSTNAME],
            input=b"LHLO c\nMAIL FROM:<s@example.org>\n"
                  b"RCPT TO:<alice@example.com>\nQUIT\n",
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=20,
            check=False)
        self.assertEqual(result.returncode, 0, result.stderr)
        replies = result.stdout.decode().split("\r\n")
        self.assertRegex(replies[10], r"^451 4\.3\.0 <alice@example\.com> ")
        errors = [line.split(": ", 1)[1] for line in
                  result.stderr.decode().splitlines()
                  if "cannot" in line]
        self.assertEqual(errors, [
            "cannot use user map %s: No such file or directory; build it "
            "with \"cdb -c -m %s FILE.txt\" or give another with --map; "
            "until then every recipient gets 451 4.3.0"
            % (missing_map, missing_map),
            "cannot create a spool file in %s: No such file or directory; "
            "create the folder or give a writable one with --spool-dir or "
            "TMPDIR; until then every message that needs a spool file "
            "(see lmtpd(8) on --spool-dir) gets 451 4.3.0" % missing_spool])

    def test_map_not_cdb(self):
        folder = make_folder("logging-not-cdb")
        text = os.path.join(folder, "users.txt")
        with open(text, "w", encoding="utf-8") as f:
            f.write("alice@example.com mailbox=/tmp/alice/\n")
        result = subprocess.run([LMTPD, "--map", text], input=b"QUIT\n",
                                stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, timeout=20,
                                check=False)
        self.assertIn("cannot use user map %s: not a cdb file;" % text,
                      result.stderr.decode())


class SyslogStartupTest(unittest.TestCase):
    """Under inetd the client's socket is stderr too: errors at start go
    to syslog only."""

    def setUp(self):
        reason = missing_namespace_support()
        if reason is not None:
            self.skipTest(reason)
        self.folder = make_folder("logging-syslog")
        self.syslog = SyslogReceiver(os.path.join(self.folder, "dev-log"))
        self.process = None

    def tearDown(self):
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
        self.syslog.close()

    def serve_inetd(self, lmtpd_args):
        """Start lmtpd behind systemd-socket-activate --inetd with stderr
        on the socket, as xinetd does, and return the socket path."""
        listen = os.path.join(self.folder, "lmtp.sock")
        mounts = PrivateMounts(self.folder)
        mounts.dev_log(self.syslog.path)
        command = mounts.command(
            ["systemd-socket-activate", "-l", listen, "--accept", "--inetd",
             "/bin/sh", "-c", 'exec "$@" 2>&1', "sh", LMTPD] + lmtpd_args)
        self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not os.path.exists(listen):
            self.assertLess(time.monotonic(), deadline, "no socket")
            time.sleep(0.02)
        return listen

    def talk(self, listen, commands):
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(20)
            sock.connect(listen)
            sock.sendall(commands)
            data = b""
            while True:
                chunk = sock.recv(4096)
                if not chunk:
                    return data
                data += chunk

    def test_missing_map_in_syslog(self):
        missing = os.path.join(self.folder, "none.cdb")
        listen = self.serve_inetd(["--map", missing])
        data = self.talk(listen, b"LHLO c\r\nMAIL FROM:<>\r\n"
                                 b"RCPT TO:<alice@example.com>\r\nQUIT\r\n")
        lines = data.split(b"\r\n")
        self.assertEqual(lines[-1], b"")
        self.assertEqual(len(lines) - 1, 1 + 8 + 1 + 1 + 1, data)
        for line in lines[:-1]:
            self.assertRegex(line, rb"^[2-5][0-9][0-9][ -]", data)
        self.assertRegex(lines[10], rb"^451 4\.3\.0 ")
        # <19> is facility mail (2) and priority err (3).
        message = self.syslog.wait_for("cannot use user map")
        self.assertRegex(message, r"^<19>.* lmtpd\[[0-9]+\]: cannot use "
                         r"user map %s: No such file or directory; "
                         % re.escape(missing))

    def test_bad_option_in_syslog(self):
        listen = self.serve_inetd(["--timeout", "soon"])
        # lmtpd exits before the greeting: the client reads nothing.
        self.assertEqual(self.talk(listen, b""), b"")
        message = self.syslog.wait_for("--timeout")
        self.assertRegex(message, r"^<19>.* lmtpd\[[0-9]+\]: invalid value "
                         r"\"soon\" for --timeout: expected a whole number "
                         r"from 0 to 86400; see lmtpd --help$")


class JournalTest(unittest.TestCase):
    """One journal entry per recipient result, with a field per fact,
    written by lmtpd to a private systemd-journald."""

    def setUp(self):
        reason = missing_namespace_support()
        if reason is None and not os.access(JOURNALD, os.X_OK):
            reason = JOURNALD + " not found: install systemd"
        if reason is not None:
            self.skipTest(reason)
        self.folder = make_folder("logging-journal")
        self.journal = os.path.join(self.folder, "journal")
        os.makedirs(self.journal)
        self.mail = os.path.join(self.folder, "mail")
        os.makedirs(self.mail)
        # Run as root, lmtpd delivers as the test user that records name.
        give_to_delivery_user(self.mail)
        ids = delivery_user()
        owner = " uid=%d gid=%d" % ids if ids is not None else ""
        self.map = build_map(self.folder, [
            "alice@example.com mailbox=%s/alice/%s" % (self.mail, owner),
            "bob@example.com mailbox=%s/bob.mbox%s" % (self.mail, owner)])
        self.journald_pid = os.path.join(self.folder, "journald.pid")
        self.listen = os.path.join(self.folder, "lmtp.sock")
        self.process = None

    def tearDown(self):
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
        try:
            with open(self.journald_pid, encoding="utf-8") as f:
                os.kill(int(f.read()), signal.SIGTERM)
        except (OSError, ValueError):
            pass

    def start(self):
        """Start journald and lmtpd (Accept=yes) in one namespace."""
        mounts = PrivateMounts(self.folder)
        mounts.tmpfs("/run", ["log/journal", "systemd/journal"])
        mounts.bind(self.journal, "/run/log/journal")
        mounts.lines += [
            "%s >%s/journald.out 2>&1 &" % (JOURNALD, self.folder),
            "echo $! >%s" % self.journald_pid,
            "i=0",
            "while [ ! -S /run/systemd/journal/socket ]; do",
            "    i=$((i + 1)); [ $i -lt 200 ] || exit 69; sleep 0.05",
            "done"]
        # systemd sets JOURNAL_STREAM for a service whose stderr is the
        # journal; lmtpd only checks that it is set.
        self.process = subprocess.Popen(mounts.command(
            ["systemd-socket-activate", "-l", self.listen, "--accept",
             "--setenv=JOURNAL_STREAM=0:0", LMTPD, "--map", self.map,
             "--hostname", HOSTNAME]),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 15
        while not os.path.exists(self.listen):
            if self.process.poll() == 69:
                self.skipTest("systemd-journald did not start: "
                              + self.read("journald.out"))
            self.assertIsNone(self.process.poll(), self.read("journald.out"))
            self.assertLess(time.monotonic(), deadline, "no socket")
            time.sleep(0.05)

    def read(self, name):
        try:
            with open(os.path.join(self.folder, name), encoding="utf-8",
                      errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return "(no %s)" % name

    def entries(self, field, value, count, timeout=10):
        """Return the journal entries whose field has value, waiting
        until there are count of them."""
        deadline = time.monotonic() + timeout
        while True:
            result = subprocess.run(
                ["journalctl", "--directory",
                 os.path.join(self.journal, os.listdir(self.journal)[0]),
                 "--output", "json", "--no-pager", "%s=%s" % (field, value)],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                timeout=30, check=False) if os.listdir(self.journal) else None
            found = [] if result is None else \
                [json.loads(line) for line in result.stdout.splitlines()]
            if len(found) >= count or time.monotonic() > deadline:
                return found
            time.sleep(0.1)

    def test_result_entries(self):
        self.start()
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(20)
            sock.connect(self.listen)
            dialogue = Dialogue(sock)
            sock.sendall(b"LHLO c\r\nMAIL FROM:<sender@example.org>\r\n"
                         b"RCPT TO:<alice@example.com>\r\n"
                         b"RCPT TO:<bob@example.com>\r\nDATA\r\n"
                         + BODY + b".\r\nQUIT\r\n")
            replies = [dialogue.reply() for _ in range(9)]
        self.assertRegex(replies[6][0], r"^250 2\.0\.0 <alice@example\.com>")
        self.assertRegex(replies[7][0], r"^250 2\.0\.0 <bob@example\.com>")

        size = str(len(BODY.replace(b"\r\n", b"\n")))
        alice = self.entries("LMTPD_RECIPIENT", "alice@example.com", 1)
        self.assertEqual(len(alice), 1, alice)
        entry = alice[0]
        self.assertRegex(entry["LMTPD_SESSION"], r"^[0-9A-F]{12}$")
        self.assertEqual(entry["LMTPD_CLIENT"], "local")
        self.assertEqual(entry["LMTPD_SENDER"], "sender@example.org")
        self.assertEqual(entry["LMTPD_MAILBOX"], self.mail + "/alice/")
        self.assertEqual(entry["LMTPD_SIZE"], size)
        self.assertEqual(entry["LMTPD_REPLY_CODE"], "250")
        self.assertEqual(entry["LMTPD_STATUS"], "2.0.0")
        self.assertRegex(entry["LMTPD_DELIVERY_MS"], r"^[0-9]+$")
        self.assertEqual(entry["LMTPD_RESULT"], "delivered")
        self.assertRegex(entry["LMTPD_DETAIL"],
                         r"^%s/alice/new/" % re.escape(self.mail))
        self.assertEqual(entry["PRIORITY"], "6")
        self.assertEqual(entry["SYSLOG_FACILITY"], "2")
        self.assertEqual(entry["SYSLOG_IDENTIFIER"], "lmtpd")
        self.assertTrue(entry["MESSAGE"].startswith(
            entry["LMTPD_SESSION"] + ": from=<sender@example.org> "
            "to=<alice@example.com> client=local "), entry["MESSAGE"])

        bob = self.entries("LMTPD_RECIPIENT", "bob@example.com", 1)
        self.assertEqual(len(bob), 1, bob)
        self.assertEqual(bob[0]["LMTPD_SESSION"], entry["LMTPD_SESSION"])
        self.assertEqual(bob[0]["LMTPD_MAILBOX"], self.mail + "/bob.mbox")

        # Every other line of the session carries its id too.
        session = self.entries("LMTPD_SESSION", entry["LMTPD_SESSION"], 4)
        messages = [e["MESSAGE"].split(": ", 1)[1] for e in session]
        self.assertIn("connect from local", messages)
        self.assertTrue(any(m.startswith("disconnect from local: 1 "
                                         "transactions, 2 recipients "
                                         "delivered, 0 failed")
                            for m in messages), messages)


if __name__ == "__main__":
    unittest.main()
