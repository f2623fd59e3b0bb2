"""Connections dropped in the middle of a message deliver nothing.

The client goes away part way through DATA, part way through a BDAT
chunk, and between two chunks: it closes a unix socket, or resets a TCP
connection on the loopback address.  Afterwards no mailbox has changed,
the Maildir's tmp/ is empty, no dotlock is left, and the spool folder
is empty, also while the message is still arriving.  Each case also
runs with lmtpd made to believe that the file system lacks O_TMPFILE,
so that the spool is a named temporary file removed at once.
"""

import errno
import os
import socket
import struct
import time
import unittest

from harness import WORK, Dialogue, LmtpdServer
from mailcheck import (Client, chunk_bytes, data_bytes, make_body,
                       maildir_files, read_trace, shim_preload, transaction)

MAILDIR_USER = "maildir@example.com"
MBOX_USER = "mbox@example.com"
USERS = {MAILDIR_USER: "box/", MBOX_USER: "box.mbox"}
DELIVERED = "250 2.0.0"

# Larger than the spool's 64 KiB buffer, so that part of the message is
# in the spool file when the connection drops.
BODY_SIZE = 400000


def free_loopback_port():
    """Return a TCP port on 127.0.0.1 that is free at the moment."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class DroppedConnectionTest(unittest.TestCase):
    name = "dropped"
    env = None
    tcp = False

    @classmethod
    def setUpClass(cls):
        tcp = "127.0.0.1:%d" % free_loopback_port() if cls.tcp else None
        cls.server = LmtpdServer(cls.name, USERS, env=cls.env, tcp=tcp)

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def setUp(self):
        self.server.reset_mail()
        client = self.connect()
        codes = transaction(client, [MAILDIR_USER, MBOX_USER],
                            make_body("first", 1000))
        self.assertEqual(codes, {MAILDIR_USER: DELIVERED,
                                 MBOX_USER: DELIVERED})
        client.command("QUIT\r\n")
        client.dialogue.sock.close()
        self.replies = self.wait_for_disconnects().count(" reply=")
        self.before = self.mailboxes()
        self.body = make_body("dropped", BODY_SIZE)

    def connect(self):
        client = Client(Dialogue(self.server.connect_raw()))
        client.reply()
        client.command("LHLO client.example\r\n")
        return client

    def mailboxes(self):
        with open(self.server.path("box.mbox"), "rb") as f:
            return {"maildir": maildir_files(self.server.path("box/")),
                    "mbox": f.read()}

    def wait_for_disconnects(self):
        """Wait until every session so far has ended, as its log shows."""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            log = self.server.log_text()
            if log.count(": disconnect from ") == log.count(": connect from "):
                return log
            time.sleep(0.02)
        self.fail("a session did not end:\n" + self.server.log_text())

    def open_transaction(self):
        client = self.connect()
        client.command("MAIL FROM:<sender@example.org>\r\n")
        for address in (MAILDIR_USER, MBOX_USER):
            self.assertTrue(client.command("RCPT TO:<%s>\r\n" % address)
                            .startswith("250 "))
        return client

    def drop(self, client):
        """Close the connection, over TCP with a reset: SO_LINGER set to
        0 makes close() send RST."""
        sock = client.dialogue.sock
        if self.tcp:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                            struct.pack("ii", 1, 0))
        sock.close()

    def check_nothing_delivered(self, log_text):
        log = self.wait_for_disconnects()
        self.assertIn(log_text, log)
        self.assertEqual(log.count(" reply="), self.replies)
        self.assertEqual(self.mailboxes(), self.before)
        self.assertEqual(os.listdir(self.server.spool), [])
        self.assertFalse(os.path.exists(self.server.path("box.mbox.lock")))

    def spool_while_receiving(self):
        """Return the spool folder's content while a message arrives,
        after a pause that lets lmtpd read what was sent."""
        time.sleep(0.2)
        return os.listdir(self.server.spool)

    def test_mid_data(self):
        client = self.open_transaction()
        self.assertTrue(client.command("DATA\r\n").startswith("354"))
        data = data_bytes(self.body)
        client.send(data[:len(data) // 2])
        self.assertEqual(self.spool_while_receiving(), [])
        self.drop(client)
        self.check_nothing_delivered("connection lost during DATA")

    def test_mid_chunk(self):
        client = self.open_transaction()
        data = chunk_bytes(self.body)
        client.send(b"BDAT %d LAST\r\n" % len(data) + data[:len(data) // 2])
        self.assertEqual(self.spool_while_receiving(), [])
        self.drop(client)
        self.check_nothing_delivered("connection lost during BDAT")

    def test_between_chunks(self):
        client = self.open_transaction()
        data = chunk_bytes(self.body)
        half = len(data) // 2
        self.assertEqual(client.command(b"BDAT %d\r\n" % half + data[:half]),
                         "250 2.0.0 %d octets received" % half)
        self.assertEqual(self.spool_while_receiving(), [])
        self.drop(client)
        self.check_nothing_delivered("client closed the connection")


class DroppedTcpResetTest(DroppedConnectionTest):
    """The same over TCP on 127.0.0.1, with the client resetting the
    connection."""
    name = "dropped-tcp"
    tcp = True


class DroppedWithoutTmpfileTest(DroppedConnectionTest):
    """The same with open(O_TMPFILE) failing as on a file system without
    it, so the spool is a named file that lmtpd removes at once."""
    name = "dropped-no-tmpfile"
    trace = os.path.join(WORK, "dropped-no-tmpfile-trace")
    env = {"LD_PRELOAD": shim_preload(), "LMTPD_FAULT_NO_TMPFILE": "1",
           "LMTPD_FAULT_TRACE": trace}

    @classmethod
    def setUpClass(cls):
        if os.path.exists(cls.trace):
            os.unlink(cls.trace)
        super().setUpClass()

    def test_spool_fallback_used(self):
        """The shim's trace shows that every O_TMPFILE spool failed."""
        calls = [c for c in read_trace(self.trace)
                 if c["function"] == "open"
                 and c["target"] == self.server.spool]
        self.assertTrue(calls)
        for call in calls:
            self.assertEqual(call["outcome"], "error:%d" % errno.EOPNOTSUPP)


if __name__ == "__main__":
    unittest.main()
