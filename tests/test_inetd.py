"""lmtpd started by xinetd and by openbsd-inetd, from the recipes.

Each test takes the recipe as the repository ships it, units/lmtpd.xinetd
or units/inetd.conf, which docs/recipes.md shows.  It changes only the
port, the binary and the map to the test's own, and runs the real
server in the foreground on a loopback port.  The server runs in a
private mount namespace in which the user vmail exists and /dev/log is
the test's syslog socket.  lmtpd logs to syslog there, because stderr
is the client's socket, and the test reads those lines.

xinetd is installed by tests/lib/install-deps.  openbsd-inetd conflicts
with xinetd, so tests/lib/fetch-debs unpacks it under tests/work/debs.
Needs root.  Run: TESTS=inetd python3 tests/run.py
"""

import os
import re
import shutil
import socket
import subprocess
import time
import unittest

from harness import (LMTPD, TOP, build_map, make_folder,
                     maildir_messages, strip_header_block)
from private import (PrivateMounts, SyslogReceiver, fetch_packages,
                     free_ids, missing_libraries, missing_namespace_support)

BODY = (b"From: sender@example.org\r\n"
        b"Subject: inetd\r\n"
        b"\r\n"
        b"Delivered by a process that inetd started.\r\n")
STORED_BODY = BODY.replace(b"\r\n", b"\n")


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def read_recipe(name):
    with open(os.path.join(TOP, "units", name), encoding="utf-8") as f:
        return f.read()


class InetdRecipe:
    """What both tests share: the folder, the vmail user, the map."""

    def setUp(self):
        reason = missing_namespace_support()
        if reason is not None:
            self.skipTest(reason)
        self.folder = make_folder(self.name)
        os.chmod(self.folder, 0o755)
        self.uid, self.gid = free_ids(2)
        self.mail = os.path.join(self.folder, "mail")
        os.makedirs(self.mail)
        os.chown(self.mail, self.uid, self.gid)
        self.map = build_map(self.folder, [
            "alice@example.com mailbox=%s/alice/" % self.mail,
            "bob@example.com mailbox=%s/bob.mbox" % self.mail,
            "broken@example.com mailbox=%s/broken/ quota=12X" % self.mail,
        ])
        os.chmod(self.map, 0o644)
        self.port = free_port()
        self.syslog = SyslogReceiver(os.path.join(self.folder, "dev-log"))
        self.mounts = PrivateMounts(self.folder)
        self.mounts.users(["vmail:x:%d:%d::/nonexistent:/usr/sbin/nologin"
                           % (self.uid, self.gid)],
                          ["vmail:x:%d:" % self.gid])
        self.mounts.dev_log(self.syslog.path)
        self.process = None
        self.output = open(os.path.join(self.folder, "server.log"), "wb")

    def tearDown(self):
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.output.close()
        self.syslog.close()

    def start(self, argv):
        self.process = subprocess.Popen(self.mounts.command(argv),
                                        stdin=subprocess.DEVNULL,
                                        stdout=self.output,
                                        stderr=self.output)
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port),
                                         timeout=5).close()
                return
            except OSError:
                if self.process.poll() is not None or \
                        time.monotonic() > deadline:
                    with open(self.output.name, "rb") as f:
                        log = f.read().decode("utf-8", "replace")
                    self.fail("%s not listening on 127.0.0.1:%d:\n%s"
                              % (argv[0], self.port, log))
                time.sleep(0.05)

    def deliver(self):
        """Run one session, check every reply line, and return the raw
        bytes the client received."""
        with socket.create_connection(("127.0.0.1", self.port),
                                      timeout=20) as sock:
            sock.sendall(b"LHLO client.example\r\n"
                         b"MAIL FROM:<sender@example.org>\r\n"
                         b"RCPT TO:<alice@example.com>\r\n"
                         b"RCPT TO:<nobody@example.com>\r\n"
                         b"RCPT TO:<broken@example.com>\r\n"
                         b"RCPT TO:<bob@example.com>\r\n"
                         b"DATA\r\n" + BODY + b".\r\nQUIT\r\n")
            received = b""
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                received += chunk
        expected = [r"220 ", r"250-", r"250-PIPELINING", r"250-", r"250-",
                    r"250-", r"250-", r"250-SMTPUTF8", r"250 SIZE",
                    r"250 2\.1\.0 ", r"250 2\.1\.5 <alice@example\.com>",
                    r"550 5\.1\.1 <nobody@example\.com>",
                    r"451 4\.3\.0 <broken@example\.com>",
                    r"250 2\.1\.5 <bob@example\.com>", r"354 ",
                    r"250 2\.0\.0 <alice@example\.com> delivered$",
                    r"250 2\.0\.0 <bob@example\.com> delivered$",
                    r"221 2\.0\.0 "]
        lines = received.split(b"\r\n")
        self.assertEqual(lines[-1], b"", received)
        self.assertEqual(len(lines) - 1, len(expected), received)
        for line, pattern in zip(lines, expected):
            self.assertRegex(line.decode("utf-8", "replace"), "^" + pattern)
        return received

    def check_mailboxes(self):
        stored = list(maildir_messages(os.path.join(self.mail,
                                                    "alice/")).values())
        self.assertEqual(len(stored), 1)
        header, body = strip_header_block(stored[0])
        self.assertEqual(body, STORED_BODY)
        self.assertIn(b"Received: from client.example ([127.0.0.1])\n",
                      header)
        with open(os.path.join(self.mail, "bob.mbox"), "rb") as f:
            mbox = f.read()
        self.assertTrue(mbox.startswith(b"From sender@example.org "))
        self.assertEqual(strip_header_block(mbox.split(b"\n", 1)[1])[1],
                         STORED_BODY + b"\n")
        # The user of the recipe, not root, wrote the mailboxes.
        for name in ("alice", "bob.mbox"):
            self.assertEqual(os.stat(os.path.join(self.mail, name)).st_uid,
                             self.uid)

    def check_syslog(self):
        """lmtpd logged to syslog, facility mail, and nothing of it
        reached the client."""
        result = self.syslog.wait_for("to=<alice@example.com>")
        # <22> is facility mail (2) and priority info (6).
        self.assertRegex(result, r"^<22>.* lmtpd\[[0-9]+\]: [0-9A-F]{12}: "
                         r"from=<sender@example\.org> to=<alice@example\.com>"
                         r" client=\[127\.0\.0\.1\] mailbox=\S+/alice/ "
                         r"size=%d reply=250 status=2\.0\.0 delivery_ms=\d+ "
                         r"result=\"delivered\"" % len(STORED_BODY))
        warning = self.syslog.wait_for("to=<broken@example.com>")
        self.assertRegex(warning, r"^<20>.*reply=451 status=4\.3\.0 "
                         r"detail=.*quota")
        self.syslog.wait_for("disconnect from [127.0.0.1]: 1 transactions, "
                             "2 recipients delivered, 0 failed")


class XinetdTest(InetdRecipe, unittest.TestCase):
    name = "xinetd"

    def test_xinetd_recipe(self):
        if shutil.which("xinetd") is None:
            self.skipTest("xinetd not found: run tests/lib/install-deps")
        recipe = read_recipe("lmtpd.xinetd")
        service = recipe.replace("port        = 24",
                                 "port        = %d" % self.port)
        service = service.replace("/usr/local/sbin/lmtpd", LMTPD)
        service = service.replace("/etc/lmtpd/users.cdb", self.map)
        self.assertNotEqual(service, recipe)
        config = os.path.join(self.folder, "xinetd.conf")
        with open(config, "w", encoding="utf-8") as f:
            f.write("defaults\n{\n    log_type = SYSLOG daemon info\n}\n\n"
                    + service)
        self.start(["xinetd", "-dontfork", "-f", config, "-pidfile",
                    os.path.join(self.folder, "xinetd.pid")])
        received = self.deliver()
        self.assertNotIn(b"lmtpd[", received)
        self.check_mailboxes()
        self.check_syslog()


class OpenbsdInetdTest(InetdRecipe, unittest.TestCase):
    name = "openbsd-inetd"

    def test_openbsd_inetd_recipe(self):
        try:
            root = fetch_packages("openbsd-inetd")
        except RuntimeError as error:
            self.skipTest(str(error))
        inetd = os.path.join(root, "usr", "sbin", "inetd")
        missing = missing_libraries(inetd)
        if missing:
            self.skipTest("inetd needs %s: run tests/lib/install-deps"
                          % " ".join(missing))
        recipe = [line for line in read_recipe("inetd.conf").splitlines()
                  if line and not line.startswith("#")]
        self.assertEqual(len(recipe), 1, recipe)
        line = recipe[0].replace("127.0.0.1:24", "127.0.0.1:%d" % self.port)
        line = line.replace("/usr/local/sbin/lmtpd", LMTPD)
        line = line.replace("/etc/lmtpd/users.cdb", self.map)
        self.assertEqual(len(line.split("\t")), 7, line)
        config = os.path.join(self.folder, "inetd.conf")
        with open(config, "w", encoding="utf-8") as f:
            f.write(line + "\n")
        # inetd writes /run/inetd.pid: a private /run keeps it here.
        self.mounts.tmpfs("/run")
        self.start([inetd, "-i", config])
        received = self.deliver()
        self.assertNotIn(b"lmtpd[", received)
        self.check_mailboxes()
        self.check_syslog()


if __name__ == "__main__":
    unittest.main()
