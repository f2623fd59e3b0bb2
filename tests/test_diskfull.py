"""A file system that is really full: small tmpfs mounts.

The mailboxes, and in a second case the spool folder, live on a tmpfs
of a few hundred KiB mounted for the test.  A message that does not fit
gets the reply 452 4.3.1 and leaves nothing behind: no file in tmp/ or
new/, the mbox's old bytes, an empty spool folder.  Mounting needs
root outside a container that forbids it.  Where the mount fails, the
test skips with mount's error message.  Each mount is removed when its
test ends, also when the test fails.
"""

import os
import subprocess
import time
import unittest

from harness import Dialogue, LmtpdServer, give_to_delivery_user
from mailcheck import (Client, chunk_bytes, code_of, make_body,
                       maildir_files, mbox_tags, transaction)

MAILDIR_USER = "maildir@example.com"
MBOX_USER = "mbox@example.com"
USERS = {MAILDIR_USER: "box/", MBOX_USER: "box.mbox"}
DELIVERED = "250 2.0.0"
NO_SPACE = "452 4.3.1"


def mount_tmpfs(test, path, size):
    """Mount a tmpfs of size at path for the rest of test, or skip."""
    result = subprocess.run(["mount", "-t", "tmpfs", "-o",
                             "size=%s,mode=0700" % size, "tmpfs", path],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, check=False)
    if result.returncode != 0:
        test.skipTest("cannot mount a tmpfs here (%s): %s"
                      % (result.returncode, result.stdout.strip()))
    test.addCleanup(unmount, path)
    # Run as root, lmtpd writes the mailboxes as the test user.
    give_to_delivery_user(path)


def unmount(path):
    """Unmount path, waiting up to 5 s for lmtpd to close its files
    there, then detaching it anyway."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if subprocess.run(["umount", path], stderr=subprocess.DEVNULL,
                          check=False).returncode == 0:
            return
        time.sleep(0.1)
    subprocess.run(["umount", "-l", path], check=False)


class DiskFullTest(unittest.TestCase):

    def setUp(self):
        self.server = LmtpdServer("diskfull", USERS)
        self.addCleanup(self.server.stop)
        self.bodies = {}

    def connect(self):
        client = Client(Dialogue(self.server.connect_raw()))
        client.reply()
        client.command("LHLO client.example\r\n")
        self.addCleanup(client.dialogue.sock.close)
        return client

    def deliver(self, client, tag, size, recipients):
        self.bodies[tag] = make_body(tag, size)
        return transaction(client, recipients, self.bodies[tag])

    def state(self):
        mbox = self.server.path("box.mbox")
        with open(mbox, "rb") as f:
            return {"maildir": maildir_files(self.server.path("box/")),
                    "mbox": f.read()}

    def test_mailboxes_full(self):
        mount_tmpfs(self, self.server.mail, "1m")
        client = self.connect()
        both = [MAILDIR_USER, MBOX_USER]
        self.assertEqual(self.deliver(client, "small", 20000, both),
                         {MAILDIR_USER: DELIVERED, MBOX_USER: DELIVERED})

        # Fits once, into the Maildir, but not a second time.
        before = self.state()
        codes = self.deliver(client, "half", 600000, both)
        self.assertEqual(codes, {MAILDIR_USER: DELIVERED,
                                 MBOX_USER: NO_SPACE})
        after = self.state()
        self.assertEqual(after["mbox"], before["mbox"])
        self.assertEqual(after["maildir"]["tmp"], [])
        self.assertEqual(len(after["maildir"]["new"]), 2)
        self.assertFalse(os.path.exists(self.server.path("box.mbox.lock")))

        # Fits nowhere.
        before = after
        codes = self.deliver(client, "too-big", 1500000, both)
        self.assertEqual(codes, {MAILDIR_USER: NO_SPACE,
                                 MBOX_USER: NO_SPACE})
        self.assertEqual(self.state(), before)
        log = self.server.log_text()
        self.assertIn("No space left on device", log)

        # With space freed, the mbox takes the message that did not fit.
        for name, content in before["maildir"]["new"].items():
            if b"Subject: message half" in content:
                os.unlink(os.path.join(self.server.path("box/new"), name))
        self.assertEqual(self.deliver(client, "half-again", 600000,
                                      [MBOX_USER]),
                         {MBOX_USER: DELIVERED})
        tags, problems = mbox_tags(self.server.path("box.mbox"), self.bodies)
        self.assertEqual(problems, [])
        self.assertEqual(tags, ["small", "half-again"])
        client.command("QUIT\r\n")
        print("\ndisk full: 1 MiB tmpfs; 452 4.3.1 for the mbox, then for "
              "both, nothing partial")

    def test_spool_full(self):
        mount_tmpfs(self, self.server.spool, "256k")
        client = self.connect()
        both = [MAILDIR_USER, MBOX_USER]
        self.assertEqual(self.deliver(client, "small", 20000, both),
                         {MAILDIR_USER: DELIVERED, MBOX_USER: DELIVERED})
        before = self.state()

        codes = self.deliver(client, "large", 600000, both)
        self.assertEqual(codes, {MAILDIR_USER: NO_SPACE,
                                 MBOX_USER: NO_SPACE})
        self.assertEqual(self.state(), before)
        self.assertEqual(os.listdir(self.server.spool), [])

        # With BDAT the chunk that fills the spool gets the reply 452,
        # and so does each recipient at BDAT LAST.
        self.bodies["chunked"] = make_body("chunked", 600000)
        data = chunk_bytes(self.bodies["chunked"])
        client.command("MAIL FROM:<sender@example.org>\r\n")
        for address in both:
            client.command("RCPT TO:<%s>\r\n" % address)
        # Beyond the spool's size by more than its 64 KiB buffer.
        first = len(data) * 3 // 4
        self.assertEqual(code_of(client.command(b"BDAT %d\r\n" % first
                                                + data[:first])), NO_SPACE)
        client.send(b"BDAT %d LAST\r\n" % (len(data) - first)
                    + data[first:])
        self.assertEqual([code_of(client.reply()) for _ in both],
                         [NO_SPACE, NO_SPACE])
        self.assertEqual(self.state(), before)
        self.assertEqual(os.listdir(self.server.spool), [])
        client.command("QUIT\r\n")
        print("\ndisk full: 256 KiB spool tmpfs; 452 4.3.1 for DATA and "
              "BDAT, nothing stored")


if __name__ == "__main__":
    unittest.main()
