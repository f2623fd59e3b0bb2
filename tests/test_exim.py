"""Exim delivering through lmtpd, with the recipe of docs/recipes.md.

Debian's exim4-daemon-light conflicts with Postfix, so tests/lib/
fetch-debs unpacks it under tests/work/debs instead of installing it.
Exim runs as a daemon in the foreground on a loopback port, with a
private configuration: the recipe's blocks, a spool and log folder of
the test's own, and an RCPT ACL.  Given a configuration with -C, Exim
gives up root and runs as its user Debian-exim, which exists only in
the test's private mount namespace.  swaks sends over SMTP, and the
test reads Exim's log and the mailboxes.

Needs root.  Run: TESTS=exim python3 tests/run.py
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
# Maximum wait in seconds for Exim to finish a message.
DELIVERY_TIMEOUT = 60

CONFIG = """\
exim_path = {exim}
spool_directory = {folder}/spool
log_file_path = {folder}/log/%slog
pid_file_path = {folder}/exim.pid
primary_hostname = exim.test.example
local_interfaces = <; 127.0.0.1
daemon_smtp_ports = {port}
host_lookup =
rfc1413_hosts =
keep_environment =
acl_smtp_rcpt = acl_check_rcpt
{main}
begin acl

acl_check_rcpt:
  accept domains = +local_domains
  deny message = relay not permitted

begin routers

{router}
begin transports

{transport}"""


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class EximTest(unittest.TestCase):
    process = None
    lmtpd = None

    @classmethod
    def setUpClass(cls):
        reason = missing_namespace_support()
        if reason is not None:
            raise unittest.SkipTest(reason)
        try:
            root = fetch_packages("exim4-daemon-light")
        except RuntimeError as error:
            raise unittest.SkipTest(str(error))
        cls.exim = os.path.join(root, "usr", "sbin", "exim4")
        missing = missing_libraries(cls.exim)
        if missing:
            raise unittest.SkipTest("exim4 needs %s: run tests/lib/"
                                    "install-deps" % " ".join(missing))
        try:
            cls.start()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def start(cls):
        cls.folder = make_folder("exim")
        os.chmod(cls.folder, 0o755)
        uid, gid = free_ids(2)
        for name in ("spool", "log"):
            os.makedirs(os.path.join(cls.folder, name))
            os.chown(os.path.join(cls.folder, name), uid, gid)

        # The socket belongs to Debian-exim with mode 0600, as the
        # socket drop-in of the recipe makes it.
        cls.lmtpd = LmtpdServer("exim/lmtpd", USERS)
        os.chmod(cls.lmtpd.folder, 0o755)
        os.chown(cls.lmtpd.socket_path, uid, gid)
        os.chmod(cls.lmtpd.socket_path, 0o600)

        cls.port = free_port()
        transport = read_recipe("exim-transport")
        assert RECIPE_SOCKET in transport, transport
        cls.config = os.path.join(cls.folder, "exim.conf")
        with open(cls.config, "w", encoding="utf-8") as f:
            f.write(CONFIG.format(
                exim=cls.exim, folder=cls.folder, port=cls.port,
                main=read_recipe("exim-main"),
                router=read_recipe("exim-router"),
                transport=transport.replace(RECIPE_SOCKET,
                                            cls.lmtpd.socket_path)))

        mounts = PrivateMounts(cls.folder)
        mounts.users(["Debian-exim:x:%d:%d::/nonexistent:/usr/sbin/nologin"
                      % (uid, gid)], ["Debian-exim:x:%d:" % gid])
        cls.output = open(os.path.join(cls.folder, "exim.out"), "wb")
        cls.process = subprocess.Popen(
            mounts.command([cls.exim, "-C", cls.config, "-bdf"]),
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
                    raise RuntimeError("exim not listening on 127.0.0.1:%d:"
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
    def read_log(cls, name="mainlog"):
        try:
            with open(os.path.join(cls.folder, "log", name),
                      encoding="utf-8", errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return "(no %s)" % name

    def swaks(self, recipients, body):
        result = subprocess.run(
            ["swaks", "--server", "127.0.0.1", "--port", str(self.port),
             "--helo", "client.test.example", "--timeout", "30",
             "--from", SENDER, "--to", ",".join(recipients),
             "--header", "Subject: exim", "--body", body],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, timeout=60, check=False)
        self.assertEqual(result.returncode, 0, result.stdout)
        match = re.search(r"<-  250 OK id=(\S+)", result.stdout)
        self.assertIsNotNone(match, result.stdout)
        return match.group(1)

    def wait_completed(self, message_id):
        """Return Exim's log lines of message_id once it is completed."""
        deadline = time.monotonic() + DELIVERY_TIMEOUT
        while True:
            lines = [line for line in self.read_log().splitlines()
                     if " %s " % message_id in line]
            if any(line.endswith(" Completed") for line in lines):
                return lines
            self.assertLess(time.monotonic(), deadline,
                            "message %s not completed:\n%s\n%s"
                            % (message_id, self.read_log(),
                               self.read_log("paniclog")))
            time.sleep(0.1)

    def test_delivery_and_bounce(self):
        body = "Delivered by Exim through lmtpd."
        message_id = self.swaks(["alice@example.com", "bob@example.com",
                                 UNKNOWN], body)
        lines = "\n".join(self.wait_completed(message_id))
        # Exim logs the first address of a batch with "=>", the others
        # with "->".
        for recipient in ("alice@example.com", "bob@example.com"):
            self.assertRegex(lines, r"[=-]> \S+ <%s> R=lmtpd T=lmtpd "
                             r"C=\"250 2\.0\.0 <%s> delivered\""
                             % (re.escape(recipient), re.escape(recipient)))
        self.assertRegex(lines, r"\*\* %s R=lmtpd T=lmtpd: LMTP error after "
                         r"RCPT TO:<%s>: 550 5\.1\.1 <%s> no such user"
                         % ((re.escape(UNKNOWN),) * 3))

        # batch_max: one LMTP transaction carried all three recipients.
        log = self.lmtpd.log_text()
        self.assertRegex(log, r"disconnect from local: 1 transactions, 2 "
                         r"recipients delivered, 0 failed")

        alice = mailbox.Maildir(self.lmtpd.path("alice/"), factory=None,
                                create=False).values()
        self.assertEqual(len(alice), 1)
        self.assertEqual(alice[0]["Delivered-To"], "alice@example.com")
        self.assertEqual(alice[0]["Return-Path"], "<%s>" % SENDER)
        self.assertTrue(alice[0].get_payload().startswith(body + "\n"),
                        alice[0].get_payload())
        self.assertIn("by exim.test.example", alice[0].get_all("Received")[1])
        bob = mailbox.mbox(self.lmtpd.path("bob.mbox"), create=False).values()
        self.assertEqual(len(bob), 1)
        self.assertEqual(bob[0].get_payload(), alice[0].get_payload())

        # Exim's bounce for the unknown recipient reaches the sender
        # through lmtpd as well.
        bounce_id = re.search(r"<= <> R=%s " % re.escape(message_id),
                              self.read_log())
        self.assertIsNotNone(bounce_id, self.read_log())
        deadline = time.monotonic() + DELIVERY_TIMEOUT
        while not os.path.isdir(self.lmtpd.path("sender/new")) or \
                not os.listdir(self.lmtpd.path("sender/new")):
            self.assertLess(time.monotonic(), deadline, self.read_log())
            time.sleep(0.1)
        bounces = mailbox.Maildir(self.lmtpd.path("sender/"), factory=None,
                                  create=False).values()
        self.assertEqual(len(bounces), 1)
        self.assertEqual(bounces[0]["Return-Path"], "<>")
        self.assertIn("550 5.1.1 <%s> no such user" % UNKNOWN,
                      bounces[0].as_string())


if __name__ == "__main__":
    unittest.main()
