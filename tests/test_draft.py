"""A large message for one Maildir recipient, written into its tmp/.

When lmtpd runs as the mailbox owner and a transaction has one Maildir
recipient, a message too large for memory goes straight into that
Maildir's tmp/ while it arrives, not into the spool folder.  These
tests give lmtpd a spool folder that does not exist, so every delivery
that needs the spool fails and the ones that pass show the direct path.
Each stored message is compared byte by byte, and every failure must
leave tmp/ and new/ empty.
"""

import os
import re
import time
import unittest

from harness import (WORK, Dialogue, LmtpdServer, delivery_user,
                     give_to_delivery_user, maildir_messages,
                     strip_header_block)

USERS = {
    "alice@example.com": "alice/",
    "bob@example.com": "bob.mbox",
    "carol@example.com": "carol/",
    # A record of its own, with a quota: LmtpdServer's mail folder.
    "small@example.com": "quota=100000 mailbox=%s/small/"
                         % os.path.join(WORK, "draft", "mail"),
}

MAX_SIZE = 2 * 1024 * 1024


def large_body(lines, tag=b"large"):
    """A message of 72-character lines with CRLF ends, one of which starts
    with a dot, as it is sent: dot-stuffed for DATA."""
    head = b"Subject: " + tag + b"\r\n\r\n"
    text = b"".join(b"%06d %s\r\n" % (i, b"m" * 64) for i in range(lines))
    return head + b"..dot line\r\n" + text


def stored_form(body):
    """What lmtpd stores of a DATA body: LF line ends, dots unstuffed."""
    return body.replace(b"\r\n", b"\n").replace(b"\n..", b"\n.")


def files_in(maildir, sub):
    path = os.path.join(maildir, sub)
    return sorted(os.listdir(path)) if os.path.isdir(path) else []


@unittest.skipUnless(os.geteuid() == 0 and delivery_user() is not None,
                     "lmtpd runs as the test user through --user")
class DraftTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.server = LmtpdServer("draft", USERS, identity="user",
                                 extra_args=["--max-size", str(MAX_SIZE),
                                             "--spool-dir",
                                             "/nonexistent/lmtpd-spool"])

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def setUp(self):
        self.server.reset_mail()
        self.sock = self.server.connect_raw()
        self.dialogue = Dialogue(self.sock)
        self.assertRegex(self.dialogue.reply()[0], r"^220 ")
        self.dialogue.send(b"LHLO client.example\r\n")
        self.assertRegex(self.dialogue.reply()[-1], r"^250 SIZE %d$"
                         % MAX_SIZE)

    def tearDown(self):
        self.sock.close()

    def expect(self, *patterns):
        for pattern in patterns:
            line = self.dialogue.reply()[0]
            self.assertRegex(line, "^" + pattern, line)

    def send_data(self, recipients, body):
        self.dialogue.send(b"MAIL FROM:<sender@example.org>\r\n" +
                           b"".join(b"RCPT TO:<%s>\r\n" % r.encode()
                                    for r in recipients) +
                           b"DATA\r\n")
        self.expect(r"250 2\.1\.0", *([r"250 2\.1\.5"] * len(recipients)))
        self.expect(r"354 ")
        self.dialogue.send(body + b".\r\n")

    def assert_only_message(self, box, stored_body):
        maildir = self.server.path(box)
        messages = list(maildir_messages(maildir).values())
        self.assertEqual(len(messages), 1)
        header, body = strip_header_block(messages[0])
        self.assertIn(b"Delivered-To: ", header)
        self.assertEqual(body, stored_body)
        self.assertEqual(files_in(maildir, "tmp"), [])
        name = files_in(maildir, "new")[0]
        self.assertTrue(name.endswith(",S=%d" % len(messages[0])), name)

    def assert_nothing_stored(self, box):
        maildir = self.server.path(box)
        self.assertEqual(files_in(maildir, "new"), [])
        self.assertEqual(files_in(maildir, "tmp"), [])

    def test_data_without_spool_folder(self):
        body = large_body(15000)
        self.assertGreater(len(body), 1000000)
        self.send_data(["alice@example.com"], body)
        self.expect(r"250 2\.0\.0 <alice@example\.com> delivered$")
        self.assert_only_message("alice/", stored_form(body))

    def test_bdat_chunks_without_spool_folder(self):
        """Three chunks, the first ending between a CR and its LF."""
        raw = large_body(3000, b"chunks").replace(b"\n..", b"\n.")
        cut = raw.index(b"\r\n", 70000) + 1
        chunks = [raw[:cut], raw[cut:cut + 90000], raw[cut + 90000:]]
        self.dialogue.send(b"MAIL FROM:<sender@example.org>\r\n"
                           b"RCPT TO:<carol@example.com>\r\n")
        for number, chunk in enumerate(chunks):
            last = b" LAST" if number == len(chunks) - 1 else b""
            self.dialogue.send(b"BDAT %d%s\r\n" % (len(chunk), last) + chunk)
        self.expect(r"250 2\.1\.0", r"250 2\.1\.5",
                    r"250 2\.0\.0 %d octets" % len(chunks[0]),
                    r"250 2\.0\.0 %d octets" % len(chunks[1]),
                    r"250 2\.0\.0 <carol@example\.com> delivered$")
        self.assert_only_message("carol/", raw.replace(b"\r\n", b"\n"))

    def test_small_message_stays_in_memory(self):
        body = b"Subject: small\r\n\r\nHello.\r\n"
        self.send_data(["alice@example.com"], body)
        self.expect(r"250 2\.0\.0 <alice@example\.com> delivered$")
        self.assert_only_message("alice/", stored_form(body))

    def test_two_recipients_need_the_spool(self):
        """With two Maildir recipients the message is spooled once for
        both, and here the spool folder is missing."""
        self.send_data(["alice@example.com", "carol@example.com"],
                       large_body(2000))
        self.expect(r"451 4\.3\.0 <alice@example\.com> ",
                    r"451 4\.3\.0 <carol@example\.com> ")
        self.assert_nothing_stored("alice/")
        self.assert_nothing_stored("carol/")
        self.assertRegex(self.server.log_text(),
                         r"write spool in /nonexistent/lmtpd-spool")

    def test_mbox_needs_the_spool(self):
        self.send_data(["bob@example.com"], large_body(2000))
        self.expect(r"451 4\.3\.0 <bob@example\.com> ")
        self.assertFalse(os.path.exists(self.server.path("bob.mbox")))

    def test_too_big(self):
        body = large_body(MAX_SIZE // 72 + 100)
        self.send_data(["alice@example.com"], body)
        self.expect(r"552 5\.3\.4 <alice@example\.com> ")
        self.assert_nothing_stored("alice/")

    def test_over_quota(self):
        """The quota is checked when the whole message has come."""
        self.send_data(["small@example.com"], large_body(3000))
        self.expect(r"552 5\.2\.2 <small@example\.com> ")
        self.assert_nothing_stored("small/")
        self.send_data(["small@example.com"], large_body(1000))
        self.expect(r"250 2\.0\.0 <small@example\.com> delivered$")
        self.assert_only_message("small/", stored_form(large_body(1000)))

    def test_rset_after_rejected_chunk_then_delivery(self):
        """A too large chunk stream is dropped at RSET, and the next
        transaction delivers."""
        chunk = large_body(MAX_SIZE // 72 + 100).replace(b"\n..", b"\n.")
        self.dialogue.send(b"MAIL FROM:<sender@example.org>\r\n"
                           b"RCPT TO:<alice@example.com>\r\n"
                           b"BDAT %d\r\n" % len(chunk) + chunk +
                           b"RSET\r\n")
        self.expect(r"250 2\.1\.0", r"250 2\.1\.5", r"552 5\.3\.4 ",
                    r"250 ")
        self.assert_nothing_stored("alice/")
        body = large_body(2000)
        self.send_data(["alice@example.com"], body)
        self.expect(r"250 2\.0\.0 <alice@example\.com> delivered$")
        self.assert_only_message("alice/", stored_form(body))

    def test_detail_folder(self):
        folder = self.server.path("alice/.work")
        for sub in ("cur", "new", "tmp"):
            os.makedirs(os.path.join(folder, sub))
        give_to_delivery_user(self.server.path("alice"))
        body = large_body(2000)
        self.send_data(["alice+work@example.com"], body)
        self.expect(r"250 2\.0\.0 <alice\+work@example\.com> delivered$")
        self.assert_only_message("alice/.work/", stored_form(body))
        self.assertEqual(files_in(self.server.path("alice/"), "new"), [])

    def test_connection_lost_mid_data(self):
        self.dialogue.send(b"MAIL FROM:<sender@example.org>\r\n"
                           b"RCPT TO:<alice@example.com>\r\nDATA\r\n")
        self.expect(r"250 2\.1\.0", r"250 2\.1\.5", r"354 ")
        self.dialogue.send(large_body(3000))
        maildir = self.server.path("alice/")
        deadline = time.monotonic() + 10
        while not files_in(maildir, "tmp") and time.monotonic() < deadline:
            time.sleep(0.01)
        self.assertEqual(len(files_in(maildir, "tmp")), 1,
                         "the message is being written into tmp/")
        self.sock.close()
        while files_in(maildir, "tmp") and time.monotonic() < deadline:
            time.sleep(0.01)
        self.assert_nothing_stored("alice/")
        self.assertTrue(re.search(r"connection lost during DATA",
                                  self.server.log_text()))


if __name__ == "__main__":
    unittest.main()
