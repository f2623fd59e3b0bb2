"""OpenSMTPD delivering through lmtpd, with the recipe of docs/recipes.md.

Debian's opensmtpd conflicts with Postfix, so tests/lib/fetch-debs
unpacks it under tests/work/debs instead of installing it.  smtpd looks
for its helper programs (mail.lmtp), spool, chroot folder, control
socket and users at fixed paths.  So it runs in a private mount
namespace, where tmpfs mounts hide those paths and the test's own files
take their place, and nothing outside changes.  smtpd listens on a
loopback port, swaks sends over SMTP, and the test reads smtpd's log
and the mailboxes.

Needs root.  Run: TESTS=opensmtpd python3 tests/run.py
"""

import mailbox
import os
import re
import socket
import subprocess
import time
import unittest

from harness import LmtpdServer, make_folder, read_recipe
from private import (PrivateMounts, fetch_packages, free_ids,
                     missing_libraries, missing_namespace_support)

SENDER = "sender@example.com"
USERS = {
    SENDER: "sender/",
    "alice@example.com": "alice/",
    "bob@example.com": "bob.mbox",
}
UNKNOWN = "nobody@example.com"
RECIPE_SOCKET = "/run/lmtpd/lmtp.sock"
# Maximum wait in seconds for smtpd to deliver a message.
DELIVERY_TIMEOUT = 60


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class OpensmtpdTest(unittest.TestCase):
    process = None
    lmtpd = None

    @classmethod
    def setUpClass(cls):
        reason = missing_namespace_support()
        if reason is not None:
            raise unittest.SkipTest(reason)
        try:
            cls.root = fetch_packages("opensmtpd")
        except RuntimeError as error:
            raise unittest.SkipTest(str(error))
        cls.smtpd = os.path.join(cls.root, "usr", "sbin", "smtpd")
        missing = missing_libraries(cls.smtpd)
        if missing:
            raise unittest.SkipTest("smtpd needs %s: run tests/lib/"
                                    "install-deps" % " ".join(missing))
        try:
            cls.start()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def start(cls):
        cls.folder = make_folder("opensmtpd")
        os.chmod(cls.folder, 0o755)
        smtpd_id, queue_id, vmail_id = free_ids(3)

        # The socket belongs to vmail with mode 0600, as the socket
        # drop-in of the recipe makes it.
        cls.lmtpd = LmtpdServer("opensmtpd/lmtpd", USERS)
        os.chmod(cls.lmtpd.folder, 0o755)
        os.chown(cls.lmtpd.socket_path, vmail_id, vmail_id)
        os.chmod(cls.lmtpd.socket_path, 0o600)
        home = os.path.join(cls.folder, "vmail")
        os.makedirs(home)

        cls.port = free_port()
        recipe = read_recipe("opensmtpd")
        assert RECIPE_SOCKET in recipe, recipe
        config = os.path.join(cls.folder, "smtpd.conf")
        with open(config, "w", encoding="utf-8") as f:
            f.write("listen on 127.0.0.1 port %d\n" % cls.port)
            f.write(recipe.replace(RECIPE_SOCKET, cls.lmtpd.socket_path))
        os.chmod(config, 0o644)

        mounts = PrivateMounts(cls.folder)
        mounts.users(
            ["opensmtpd:x:%d:%d::/var/lib/opensmtpd/empty:/usr/sbin/nologin"
             % (smtpd_id, smtpd_id),
             "opensmtpq:x:%d:%d::/var/lib/opensmtpd/empty:/usr/sbin/nologin"
             % (queue_id, queue_id),
             "vmail:x:%d:%d::%s:/usr/sbin/nologin"
             % (vmail_id, vmail_id, home)],
            ["opensmtpd:x:%d:" % smtpd_id, "opensmtpq:x:%d:" % queue_id,
             "vmail:x:%d:" % vmail_id])
        libexec = os.path.join(cls.root, "usr", "libexec", "opensmtpd")
        mounts.tmpfs("/usr/libexec", ["opensmtpd"])
        mounts.bind(libexec, "/usr/libexec/opensmtpd")
        mounts.tmpfs("/var/spool")
        mounts.tmpfs("/var/lib", ["opensmtpd/empty"])
        mounts.tmpfs("/run")
        cls.log_path = os.path.join(cls.folder, "smtpd.log")
        cls.output = open(cls.log_path, "wb")
        cls.process = subprocess.Popen(
            mounts.command([cls.smtpd, "-d", "-f", config]),
            stdin=subprocess.DEVNULL, stdout=cls.output,
            stderr=cls.output)
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", cls.port),
                                         timeout=5).close()
                return
            except OSError:
                if cls.process.poll() is not None or \
                        time.monotonic() > deadline:
                    raise RuntimeError("smtpd not listening on 127.0.0.1:%d:"
                                       "\n%s" % (cls.port, cls.read_log()))
                time.sleep(0.05)

    @classmethod
    def tearDownClass(cls):
        if cls.process is not None:
            cls.process.terminate()
            try:
                cls.process.wait(10)
            except subprocess.TimeoutExpired:
                cls.process.kill()
                cls.process.wait()
            cls.process = None
            cls.output.close()
        if cls.lmtpd is not None:
            cls.lmtpd.stop()
            cls.lmtpd = None

    @classmethod
    def read_log(cls):
        with open(cls.log_path, encoding="utf-8", errors="replace") as f:
            return f.read()

    def swaks(self, recipients, body):
        result = subprocess.run(
            ["swaks", "--server", "127.0.0.1", "--port", str(self.port),
             "--helo", "client.test.example", "--timeout", "30",
             "--from", SENDER, "--to", ",".join(recipients),
             "--header", "Subject: opensmtpd", "--body", body],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, timeout=60, check=False)
        self.assertEqual(result.returncode, 0, result.stdout)
        match = re.search(r"<-  250 2\.0\.0 ([0-9a-f]+) Message accepted",
                          result.stdout)
        self.assertIsNotNone(match, result.stdout)
        return match.group(1)

    def wait_for_log(self, pattern):
        deadline = time.monotonic() + DELIVERY_TIMEOUT
        while True:
            match = re.search(pattern, self.read_log(), re.MULTILINE)
            if match is not None:
                return match
            self.assertLess(time.monotonic(), deadline,
                            "no %r in smtpd's log:\n%s"
                            % (pattern, self.read_log()))
            time.sleep(0.1)

    def test_delivery_and_bounce(self):
        body = "Delivered by OpenSMTPD through lmtpd."
        message_id = self.swaks(["alice@example.com", "bob@example.com",
                                 UNKNOWN], body)
        for recipient in ("alice@example.com", "bob@example.com"):
            self.wait_for_log(r"mda delivery evpid=%s[0-9a-f]+ "
                              r"from=<%s> to=<%s> rcpt=<%s> user=vmail "
                              r".*result=Ok stat=Delivered$"
                              % (message_id, re.escape(SENDER),
                                 re.escape(recipient), re.escape(recipient)))
        # OpenSMTPD 6.8's mail.lmtp reports every LMTP error as a
        # temporary failure, so the 550 makes smtpd retry, not bounce.
        self.wait_for_log(r"mda delivery evpid=%s[0-9a-f]+ from=<%s> "
                          r"to=<%s> .*result=TempFail stat=Error \(temporary "
                          r"failure: \"mail\.lmtp: LMTP server error: 550 "
                          r"5\.1\.1 <%s> no such user\"\)$"
                          % (message_id, re.escape(SENDER),
                             re.escape(UNKNOWN), re.escape(UNKNOWN)))

        alice = mailbox.Maildir(self.lmtpd.path("alice/"), factory=None,
                                create=False).values()
        self.assertEqual(len(alice), 1)
        self.assertEqual(alice[0]["Delivered-To"], "alice@example.com")
        self.assertEqual(alice[0]["Return-Path"], "<%s>" % SENDER)
        self.assertTrue(alice[0].get_payload().startswith(body + "\n"),
                        alice[0].get_payload())
        bob = mailbox.mbox(self.lmtpd.path("bob.mbox"), create=False).values()
        self.assertEqual(len(bob), 1)
        self.assertEqual(bob[0].get_payload(), alice[0].get_payload())

        self.assertNotIn("PermFail", self.read_log())
        self.assertFalse(os.path.exists(self.lmtpd.path("sender/")))


if __name__ == "__main__":
    unittest.main()
