"""Concurrent deliveries to one mbox and one Maildir, and mbox locks
held by another program.

lmtpd runs behind systemd-socket-activate with Accept=yes, so each
client gets its own lmtpd process, as under systemd.
"""

import os
import re
import subprocess
import sys
import threading
import time
import unittest

from harness import Dialogue, LmtpdServer
from mailcheck import (Client, Lost, identify, make_body, maildir_files,
                       mbox_tags, transaction)

MAILDIR_USER = "maildir@example.com"
MBOX_USER = "mbox@example.com"
USERS = {MAILDIR_USER: "shared/", MBOX_USER: "shared.mbox"}
DELIVERED = "250 2.0.0"
BUSY = "451 4.2.0"

CLIENTS = 50
MESSAGES_PER_CLIENT = 20

# The --lock-timeout of the lock tests, in seconds.
LOCK_TIMEOUT = 2

# Takes an fcntl() lock on the file argv[1] and holds it until its
# standard input is closed.
FCNTL_HOLDER = """
import fcntl, sys
with open(sys.argv[1], "r+b") as f:
    fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    print("locked", flush=True)
    sys.stdin.read()
"""


def greet(server):
    """Connect to the server and send LHLO; return the client."""
    client = Client(Dialogue(server.connect_raw()))
    client.reply()
    client.command("LHLO client.example\r\n")
    return client


class ConcurrencyTest(unittest.TestCase):

    def test_fifty_clients(self):
        """50 clients deliver 20 messages each, every one to the same
        mbox and Maildir, all at once."""
        server = LmtpdServer("locking-concurrency", USERS)
        bodies, failures = {}, []
        for number in range(CLIENTS):
            for sequence in range(MESSAGES_PER_CLIENT):
                tag = "client%d-message%d" % (number, sequence)
                # One in five is larger than lmtpd's 64 KiB write buffer,
                # so that its append takes several write() calls.
                size = 100000 if sequence % 5 == 0 else 3000 + 97 * sequence
                bodies[tag] = make_body(tag, size, seed=number)
        start = threading.Barrier(CLIENTS)

        def run_client(number):
            try:
                client = greet(server)
                start.wait(30)
                for sequence in range(MESSAGES_PER_CLIENT):
                    tag = "client%d-message%d" % (number, sequence)
                    codes = transaction(client, [MBOX_USER, MAILDIR_USER],
                                        bodies[tag])
                    if codes != {MBOX_USER: DELIVERED,
                                 MAILDIR_USER: DELIVERED}:
                        failures.append("%s: %r" % (tag, codes))
                client.command("QUIT\r\n")
                client.dialogue.sock.close()
            except (Lost, OSError, threading.BrokenBarrierError) as error:
                failures.append("client %d: %r" % (number, error))

        began = time.monotonic()
        try:
            threads = [threading.Thread(target=run_client, args=(n,))
                       for n in range(CLIENTS)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(300)
            self.assertFalse(any(t.is_alive() for t in threads))
        finally:
            server.stop()
        elapsed = time.monotonic() - began

        mbox_found, mbox_problems = mbox_tags(server.path("shared.mbox"),
                                              bodies)
        files = maildir_files(server.path("shared/"))
        maildir_found = [identify(content, bodies)
                         for content in files["new"].values()]
        print("\nconcurrency: %d clients, %d messages each, %.1f s; mbox "
              "%d messages, %d distinct, %d problems; Maildir %d files, "
              "%d distinct messages, %d in tmp/; %d failed replies"
              % (CLIENTS, MESSAGES_PER_CLIENT, elapsed, len(mbox_found),
                 len(set(mbox_found)), len(mbox_problems),
                 len(files["new"]), len(set(maildir_found) - {None}),
                 len(files["tmp"]), len(failures)))
        total = CLIENTS * MESSAGES_PER_CLIENT
        self.assertEqual(failures, [])
        self.assertEqual(mbox_problems, [])
        self.assertEqual(len(mbox_found), total)
        self.assertEqual(set(mbox_found), set(bodies))
        self.assertEqual(len(files["new"]), total)
        self.assertNotIn(None, maildir_found)
        self.assertEqual(set(maildir_found), set(bodies))
        self.assertEqual(files["tmp"], [])
        self.assertFalse(os.path.exists(server.path("shared.mbox.lock")))


class HeldLockTest(unittest.TestCase):
    """Another program holds the mbox's fcntl() lock or its dotlock."""

    @classmethod
    def setUpClass(cls):
        cls.server = LmtpdServer(
            "locking-held", USERS,
            extra_args=["--lock-timeout", str(LOCK_TIMEOUT),
                        "--stale-lock-time", "60"])
        cls.mbox = cls.server.path("shared.mbox")
        cls.dotlock = cls.mbox + ".lock"

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def setUp(self):
        self.server.reset_mail()
        client = greet(self.server)
        tag = "first-%s" % self.id()
        body = make_body(tag, 2000)
        self.bodies = {tag: body}
        self.assertEqual(transaction(client, [MBOX_USER], body),
                         {MBOX_USER: DELIVERED})
        client.command("QUIT\r\n")
        client.dialogue.sock.close()

    def mbox_bytes(self):
        with open(self.mbox, "rb") as f:
            return f.read()

    def deliver(self, tag):
        """Deliver a message named tag to both recipients; return
        (codes, seconds that the transaction took)."""
        self.bodies[tag] = make_body(tag, 2000)
        client = greet(self.server)
        began = time.monotonic()
        codes = transaction(client, [MBOX_USER, MAILDIR_USER],
                            self.bodies[tag])
        elapsed = time.monotonic() - began
        client.command("QUIT\r\n")
        client.dialogue.sock.close()
        return codes, elapsed

    def check_busy_then_released(self, release, holder_name):
        """Check that a delivery while a lock is held gets 451 4.2.0
        after the wait, with the mbox unchanged and the Maildir
        recipient delivered, and that a delivery started while it is
        held gets 250 once release() lets it go."""
        before = self.mbox_bytes()
        codes, elapsed = self.deliver("busy")
        self.assertEqual(codes[MBOX_USER], BUSY)
        self.assertEqual(codes[MAILDIR_USER], DELIVERED)
        self.assertGreaterEqual(elapsed, LOCK_TIMEOUT - 0.1)
        self.assertEqual(self.mbox_bytes(), before)
        log = self.server.log_text()
        self.assertRegex(log, r"to=<%s> client=\S+ mailbox=\S+ size=\d+ "
                         r"reply=451 status=4\.2\.0 delivery_ms=\d+ "
                         r"result=\"mailbox busy\" detail=\"%s"
                         % (re.escape(MBOX_USER), holder_name))

        timer = threading.Timer(0.5, release)
        timer.start()
        codes, _ = self.deliver("after-release")
        timer.join()
        self.assertEqual(codes, {MBOX_USER: DELIVERED,
                                 MAILDIR_USER: DELIVERED})
        tags, problems = mbox_tags(self.mbox, self.bodies)
        self.assertEqual(problems, [])
        self.assertEqual(tags[-1], "after-release")
        self.assertNotIn("busy", tags)
        self.assertFalse(os.path.exists(self.dotlock))

    def test_fcntl_lock_held(self):
        # Another process holds the lock: this one drops its own fcntl()
        # locks on a file whenever it closes any descriptor of it.
        holder = subprocess.Popen(
            [sys.executable, "-c", FCNTL_HOLDER, self.mbox],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        try:
            self.assertEqual(holder.stdout.readline(), b"locked\n")
            self.check_busy_then_released(holder.stdin.close,
                                          r"mbox \S+ locked after 2 s")
        finally:
            holder.stdin.close()
            holder.wait(10)

    def test_dotlock_held(self):
        with open(self.dotlock, "wb") as f:
            f.write(b"%d\n" % os.getpid())
        try:
            self.check_busy_then_released(
                lambda: os.unlink(self.dotlock),
                r"dotlock \S+ exists after 2 s")
        finally:
            if os.path.exists(self.dotlock):
                os.unlink(self.dotlock)

    def test_stale_dotlock_removed(self):
        """A dotlock older than --stale-lock-time is removed and the
        removal logged; a younger one is waited for."""
        with open(self.dotlock, "wb") as f:
            f.write(b"%d\n" % os.getpid())
        now = time.time()
        os.utime(self.dotlock, (now - 30, now - 30))
        codes, _ = self.deliver("young-lock")
        self.assertEqual(codes[MBOX_USER], BUSY)
        self.assertTrue(os.path.exists(self.dotlock))

        os.utime(self.dotlock, (now - 120, now - 120))
        codes, elapsed = self.deliver("stale-lock")
        self.assertEqual(codes, {MBOX_USER: DELIVERED,
                                 MAILDIR_USER: DELIVERED})
        self.assertFalse(os.path.exists(self.dotlock))
        self.assertRegex(self.server.log_text(),
                         r"to=<%s> mailbox=\S+ notice=\"removed stale "
                         r"dotlock %s, 1[2-9][0-9] s old\""
                         % (re.escape(MBOX_USER), re.escape(self.dotlock)))
        tags, problems = mbox_tags(self.mbox, self.bodies)
        self.assertEqual(problems, [])
        self.assertEqual(tags[-1], "stale-lock")


if __name__ == "__main__":
    unittest.main()
