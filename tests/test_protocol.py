"""A table of scripted LMTP sessions and the exact replies to them.

Each case sends its byte strings, one write each, and compares every
reply line with the list it expects.  Then every mailbox it names must
hold exactly the messages it lists, byte by byte (the part after the
header block that lmtpd adds).
"""

import os
import re
import time
import unittest

from harness import (HOSTNAME, Dialogue, LmtpdServer, give_to_delivery_user,
                     maildir_messages, strip_header_block)

USERS = {
    "alice@example.com": "alice/",
    "bob@example.com": "bob.mbox",
    "postmaster": "postmaster/",
    "j\u00f6rg@example.com": "joerg/",
    "@catchall.example": "catchall/",
}

LHLO = b"LHLO client.example\r\n"
LHLO_REPLY = [
    "250-" + HOSTNAME, "250-PIPELINING", "250-ENHANCEDSTATUSCODES",
    "250-8BITMIME", "250-CHUNKING", "250-BINARYMIME", "250-SMTPUTF8",
    "250 SIZE 1000",
]
MAIL = b"MAIL FROM:<sender@example.org>\r\n"
MAIL_OK = "250 2.1.0 <sender@example.org> sender ok"


def rcpt(address):
    return b"RCPT TO:<" + address.encode() + b">\r\n"


def rcpt_ok(address):
    return "250 2.1.5 <%s> recipient ok" % address


def bdat(data, last=False):
    """Return a BDAT command with its chunk, the size counted here."""
    if isinstance(data, str):
        data = data.encode()
    return (b"BDAT %d%s\r\n" % (len(data), b" LAST" if last else b"")
            + data)


def delivered(address):
    return "250 2.0.0 <%s> delivered" % address


START = [LHLO, MAIL, rcpt("alice@example.com")]
START_REPLY = LHLO_REPLY + [MAIL_OK, rcpt_ok("alice@example.com")]

# (name, byte strings sent, reply lines expected, {mailbox: [messages]},
#  connection closed at the end)
CASES = [
    ("data basic", START + [b"DATA\r\n", b"a\r\n..b\r\n.\r\n"],
     START_REPLY + ["354 start mail input; end with <CRLF>.<CRLF>",
                    delivered("alice@example.com")],
     {"alice/": [b"a\n.b\n"]}, False),
    ("data lf dot lf", START + [b"DATA\r\n", b"a\n.\nb\r\n.\r\n"],
     START_REPLY + ["354 start mail input; end with <CRLF>.<CRLF>",
                    delivered("alice@example.com")],
     {"alice/": [b"a\n.\nb\n"]}, False),
    ("data cr dot cr", START + [b"DATA\r\n", b"a\r.\rb\r\n.\r\n"],
     START_REPLY + ["354 start mail input; end with <CRLF>.<CRLF>",
                    delivered("alice@example.com")],
     {"alice/": [b"a\r.\rb\n"]}, False),
    ("data lf dot crlf", START + [b"DATA\r\n", b"a\n.\r\nb\r\n.\r\n"],
     START_REPLY + ["354 start mail input; end with <CRLF>.<CRLF>",
                    delivered("alice@example.com")],
     {"alice/": [b"a\n.\nb\n"]}, False),
    ("data crlf dot lf", START + [b"DATA\r\n", b"a\r\n.\nb\r\n.\r\n"],
     START_REPLY + ["354 start mail input; end with <CRLF>.<CRLF>",
                    delivered("alice@example.com")],
     {"alice/": [b"a\n.\nb\n"]}, False),
    ("data nul bytes stored", START + [b"DATA\r\n", b"a\0b\r\n.\r\n"],
     START_REPLY + ["354 start mail input; end with <CRLF>.<CRLF>",
                    delivered("alice@example.com")],
     {"alice/": [b"a\0b\n"]}, False),
    ("bdat one chunk", START + [bdat(b"Subject: x\r\n", True)],
     START_REPLY + [delivered("alice@example.com")],
     {"alice/": [b"Subject: x\n"]}, False),
    ("bdat crlf split", START + [bdat(b"ab\r"), bdat(b"\ncd\r\n", True)],
     START_REPLY + ["250 2.0.0 3 octets received",
                    delivered("alice@example.com")],
     {"alice/": [b"ab\ncd\n"]}, False),
    ("bdat no unstuffing", START + [bdat(b".\r\n..x\r\n", True)],
     START_REPLY + [delivered("alice@example.com")],
     {"alice/": [b".\n..x\n"]}, False),
    ("bdat one write", [LHLO + MAIL + rcpt("alice@example.com")
                        + bdat(b"hi") + bdat(b"", True) + b"NOOP\r\n"],
     START_REPLY + ["250 2.0.0 2 octets received",
                    delivered("alice@example.com"), "250 2.0.0 ok"],
     {"alice/": [b"hi"]}, False),
    ("bdat final cr kept", START + [bdat(b"ab\r\r", True)],
     START_REPLY + [delivered("alice@example.com")],
     {"alice/": [b"ab\r\r"]}, False),
    ("bdat mbox no newline",
     [LHLO, MAIL, rcpt("bob@example.com"), bdat(b"abc", True),
      MAIL, rcpt("bob@example.com"), bdat(b"From x", True)],
     LHLO_REPLY + [MAIL_OK, rcpt_ok("bob@example.com"),
                   delivered("bob@example.com"), MAIL_OK,
                   rcpt_ok("bob@example.com"), delivered("bob@example.com")],
     {"bob.mbox": [b"abc\n", b">From x\n"]}, False),
    ("bdat without mail", [LHLO, bdat(b"hello"), b"NOOP\r\n"],
     LHLO_REPLY + ["503 5.5.1 need MAIL command", "250 2.0.0 ok"], {},
     False),
    ("bdat last no recipients",
     [LHLO, MAIL, rcpt("nobody@example.com"), bdat(b"hello", True),
      b"NOOP\r\n"],
     LHLO_REPLY + [MAIL_OK, "550 5.1.1 <nobody@example.com> no such user",
                   "250 2.0.0 ok"], {}, False),
    ("bdat chunk no recipients",
     [LHLO, MAIL, rcpt("nobody@example.com"), bdat(b"hello"),
      bdat(b"abc", True), b"RSET\r\n", b"NOOP\r\n"],
     LHLO_REPLY + [MAIL_OK, "550 5.1.1 <nobody@example.com> no such user",
                   "503 5.5.1 no valid recipients",
                   "250 2.0.0 ok", "250 2.0.0 ok"], {}, False),
    ("data after bdat", START + [bdat(b"ab"), b"DATA\r\n",
                                 bdat(b"c", True)],
     START_REPLY + ["250 2.0.0 2 octets received",
                    "503 5.5.1 DATA after BDAT in one transaction",
                    delivered("alice@example.com")],
     {"alice/": [b"abc"]}, False),
    ("rcpt after bdat", START + [bdat(b"ab"), rcpt("bob@example.com"),
                                 bdat(b"", True)],
     START_REPLY + ["250 2.0.0 2 octets received",
                    "503 5.5.1 RCPT after BDAT",
                    delivered("alice@example.com")],
     {"alice/": [b"ab"], "bob.mbox": None}, False),
    ("bdat too big chunk",
     START + [bdat(b"x" * 1500), bdat(b"x"), bdat(b"x", True),
              b"MAIL FROM:<>\r\n", rcpt("alice@example.com"),
              bdat(b"y", True)],
     START_REPLY + ["552 5.3.4 message too big",
                    "503 5.5.1 transaction failed, send RSET",
                    "552 5.3.4 <alice@example.com> message too big",
                    "250 2.1.0 <> sender ok", rcpt_ok("alice@example.com"),
                    delivered("alice@example.com")],
     {"alice/": [b"y"]}, False),
    ("bdat too big last",
     START + [rcpt("bob@example.com"), bdat(b"x" * 1500, True),
              b"NOOP\r\n"],
     START_REPLY + [rcpt_ok("bob@example.com"),
                    "552 5.3.4 <alice@example.com> message too big",
                    "552 5.3.4 <bob@example.com> message too big",
                    "250 2.0.0 ok"],
     {"alice/": [], "bob.mbox": None}, False),
    ("data too big", START + [b"DATA\r\n", b"y" * 998 + b"\r\n" * 5
                              + b".\r\nNOOP\r\n"],
     START_REPLY + ["354 start mail input; end with <CRLF>.<CRLF>",
                    "552 5.3.4 <alice@example.com> message too big",
                    "250 2.0.0 ok"],
     {"alice/": []}, False),
    ("bdat bad size closes", [LHLO, b"BDAT 12x\r\n"],
     LHLO_REPLY + ["501 5.5.4 invalid BDAT arguments, closing connection"],
     {}, True),
    ("binarymime needs bdat",
     [LHLO, b"MAIL FROM:<s@example.org> BODY=BINARYMIME\r\n",
      rcpt("alice@example.com"), b"DATA\r\n", bdat(b"\0\xff\r\n", True)],
     LHLO_REPLY + ["250 2.1.0 <s@example.org> sender ok",
                   rcpt_ok("alice@example.com"),
                   "503 5.5.1 BODY=BINARYMIME requires BDAT",
                   delivered("alice@example.com")],
     {"alice/": [b"\0\xff\n"]}, False),
    ("utf8 needs smtputf8",
     [LHLO, "MAIL FROM:<j\u00f6rg@example.com>\r\n".encode(), MAIL,
      "RCPT TO:<j\u00f6rg@example.com>\r\n".encode()],
     LHLO_REPLY + ["553 5.6.7 non-ASCII address requires SMTPUTF8",
                   MAIL_OK,
                   "553 5.6.7 non-ASCII address requires SMTPUTF8"],
     {}, False),
    ("utf8 delivered",
     [LHLO, "MAIL FROM:<j\u00f6rg@example.com> SMTPUTF8\r\n".encode(),
      "RCPT TO:<j\u00f6rg@example.com>\r\n".encode(),
      bdat("S: \u00e4\u00f6\r\n", True)],
     LHLO_REPLY + ["250 2.1.0 <j\u00f6rg@example.com> sender ok",
                   "250 2.1.5 <j\u00f6rg@example.com> recipient ok",
                   "250 2.0.0 <j\u00f6rg@example.com> delivered"],
     {"joerg/": ["S: \u00e4\u00f6\n".encode()]}, False),
    ("postmaster without domain",
     [LHLO, MAIL, b"RCPT TO:<Postmaster>\r\n", bdat(b"p", True)],
     LHLO_REPLY + [MAIL_OK, rcpt_ok("Postmaster"), delivered("Postmaster")],
     {"postmaster/": [b"p"]}, False),
    ("address forms",
     [LHLO, MAIL, b"RCPT TO:<@relay.example:alice@example.com>\r\n",
      b"RCPT TO:<\"odd name\"@catchall.example>\r\n",
      b"RCPT TO:<bob@[192.0.2.1]>\r\n", b"RCPT TO:<alice@example>\r\n",
      b"RCPT TO:<alice@exa_mple.com>\r\n", b"RCPT TO:alice@example.com\r\n",
      bdat(b"q", True)],
     LHLO_REPLY + [MAIL_OK, rcpt_ok("alice@example.com"),
                   rcpt_ok("\"odd name\"@catchall.example"),
                   "550 5.1.1 <bob@[192.0.2.1]> no such user",
                   "550 5.1.1 <alice@example> no such user",
                   "501 5.1.3 invalid character in path",
                   "501 5.1.3 path must be enclosed in <>",
                   delivered("alice@example.com"),
                   delivered("\"odd name\"@catchall.example")],
     {"alice/": [b"q"], "catchall/": [b"q"]}, False),
    ("parameters",
     [LHLO, b"MAIL FROM:<> SIZE=10 SIZE=10\r\n",
      b"MAIL FROM:<> BODY=8BITMIME BODY=7BIT\r\n",
      b"MAIL FROM:<> BODY=QUOTED\r\n", b"MAIL FROM:<> RET=HDRS\r\n",
      b"MAIL FROM:<> SIZE=1001\r\n", b"MAIL FROM:<> SMTPUTF8=yes\r\n",
      b"MAIL FROM:<> SIZE=1000 BODY=8BITMIME SMTPUTF8\r\n",
      b"RCPT TO:<alice@example.com> NOTIFY=NEVER\r\n",
      b"RCPT TO:<alice@example.com> =\r\n"],
     LHLO_REPLY + ["501 5.5.4 invalid SIZE parameter",
                   "501 5.5.4 invalid BODY parameter",
                   "501 5.5.4 invalid BODY parameter",
                   "555 5.5.4 unsupported MAIL parameter",
                   "552 5.3.4 message size exceeds fixed maximum size",
                   "501 5.5.4 invalid SMTPUTF8 parameter",
                   "250 2.1.0 <> sender ok",
                   "555 5.5.4 unsupported RCPT parameter",
                   "501 5.5.4 invalid RCPT parameter syntax"],
     {}, False),
    ("line length", [LHLO, b"NOOP " + b"x" * 505 + b"\r\n",
                     b"NOOP " + b"x" * 506 + b"\r\n", b"NOOP\r\n"],
     LHLO_REPLY + ["250 2.0.0 ok", "500 5.5.2 line too long",
                   "250 2.0.0 ok"], {}, False),
    ("nul in command", [LHLO, b"NOOP \0\r\n", b"QUIT\r\n"],
     LHLO_REPLY + ["500 5.5.2 NUL byte in command",
                   "221 2.0.0 %s closing connection" % HOSTNAME], {}, True),
    ("error limit", [b"XX\r\n" * 11],
     ["500 5.5.1 command not recognized"] * 10
     + ["421 4.7.0 %s too many errors, closing connection" % HOSTNAME],
     {}, True),
]


class ProtocolTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = LmtpdServer(
            "protocol", USERS,
            extra_args=["--max-size", "1000", "--max-line-length", "510",
                        "--max-errors", "10", "--max-recipients", "100"])

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def stored(self, box):
        path = self.server.path(box)
        if box.endswith("/"):
            if not os.path.isdir(path):
                return []
            return [strip_header_block(m)[1]
                    for m in maildir_messages(path).values()]
        if not os.path.exists(path):
            return None
        with open(path, "rb") as f:
            data = f.read()
        # Messages are separated by the blank line before a From line.
        parts = re.split(rb"(?<=\n)\n(?=From )", data)
        self.assertTrue(parts[-1].endswith(b"\n\n"), parts[-1])
        parts[-1] = parts[-1][:-1]
        return [strip_header_block(p.split(b"\n", 1)[1])[1] for p in parts]

    def run_case(self, case):
        name, sends, expected, mailboxes, closes = case
        self.server.reset_mail()
        with self.server.connect_raw() as sock:
            dialogue = Dialogue(sock)
            self.assertRegex(dialogue.line().decode(), "^220 " + HOSTNAME)
            for data in sends:
                dialogue.send(data)
                time.sleep(0.01)
            got = []
            for _ in expected:
                got.append(dialogue.line().decode("utf-8", "replace"))
            self.assertEqual(got, expected, name)
            if closes:
                self.assertTrue(dialogue.closed(), name)
            else:
                dialogue.send(b"QUIT\r\n")
                self.assertEqual(dialogue.line().decode(),
                                 "221 2.0.0 %s closing connection"
                                 % HOSTNAME)
        for box, messages in mailboxes.items():
            if messages is None:
                self.assertFalse(os.path.exists(self.server.path(box)),
                                 "%s: %s exists" % (name, box))
            else:
                self.assertEqual(sorted(self.stored(box)), sorted(messages),
                                 "%s: %s" % (name, box))

    def test_cases(self):
        for case in CASES:
            with self.subTest(case=case[0]):
                self.run_case(case)

    def test_recipient_limit(self):
        self.server.reset_mail()
        with self.server.connect_raw() as sock:
            dialogue = Dialogue(sock)
            dialogue.line()
            dialogue.send(LHLO + MAIL + rcpt("alice@example.com") * 101
                          + bdat(b"r", True))
            self.assertEqual(dialogue.reply(), LHLO_REPLY)
            self.assertEqual(dialogue.line().decode(), MAIL_OK)
            for _ in range(100):
                self.assertEqual(dialogue.line().decode(),
                                 rcpt_ok("alice@example.com"))
            self.assertEqual(dialogue.line().decode(),
                             "452 4.5.3 <alice@example.com> too many "
                             "recipients")
            for _ in range(100):
                self.assertEqual(dialogue.line().decode(),
                                 delivered("alice@example.com"))
        self.assertEqual(len(self.stored("alice/")), 100)


class DetailFolderTest(unittest.TestCase):
    """alice+NAME goes to alice's Maildir++ folder .NAME when it may."""

    def deliver(self, server, recipients):
        with server.connect_raw() as sock:
            dialogue = Dialogue(sock)
            dialogue.line()
            dialogue.send(LHLO + MAIL + b"".join(rcpt(r) for r in recipients)
                          + bdat(b"d", True))
            self.assertEqual(dialogue.reply(), LHLO_REPLY[:-1]
                             + ["250 SIZE 52428800"])
            self.assertEqual(dialogue.line().decode(), MAIL_OK)
            for r in recipients:
                self.assertEqual(dialogue.line().decode(), rcpt_ok(r))
            for r in recipients:
                self.assertEqual(dialogue.line().decode(), delivered(r))

    def count(self, server, box):
        path = server.path(box)
        return len(maildir_messages(path)) if os.path.isdir(path) else 0

    def test_existing_folder_only(self):
        server = LmtpdServer("protocol-detail", USERS)
        try:
            os.makedirs(server.path("alice/.lists"))
            os.makedirs(server.path("elsewhere"))
            os.symlink(server.path("elsewhere"), server.path("alice/.linked"))
            give_to_delivery_user(server.mail)
            self.deliver(server, ["alice+lists@example.com",
                                  "alice+missing@example.com",
                                  "alice+.lists@example.com",
                                  "alice+a/b@example.com",
                                  "alice+linked@example.com"])
            self.assertEqual(self.count(server, "alice/.lists/"), 1)
            self.assertEqual(self.count(server, "alice/"), 4)
            self.assertFalse(os.path.exists(server.path("alice/.missing")))
            self.assertFalse(os.path.exists(server.path("elsewhere/new")))
        finally:
            server.stop()

    def test_create_folders_option(self):
        server = LmtpdServer("protocol-detail-create", USERS,
                             extra_args=["--create-folders"])
        try:
            self.deliver(server, ["alice+news@example.com",
                                  "alice+a/b@example.com"])
            self.assertEqual(self.count(server, "alice/.news/"), 1)
            self.assertTrue(os.path.isfile(
                server.path("alice/.news/maildirfolder")))
            self.assertEqual(self.count(server, "alice/"), 1)
        finally:
            server.stop()


class SessionLimitTest(unittest.TestCase):
    def test_session_time_limit(self):
        server = LmtpdServer("protocol-session", USERS,
                             extra_args=["--session-timeout", "2"])
        try:
            with server.connect_raw() as sock:
                dialogue = Dialogue(sock)
                dialogue.line()
                replies = []
                for _ in range(40):
                    try:
                        dialogue.send(b"NOOP\r\n")
                    except BrokenPipeError:
                        pass  # the 421 came while the test slept
                    line = dialogue.line().decode()
                    replies.append(line)
                    if not line.startswith("250"):
                        break
                    time.sleep(0.25)
                self.assertEqual(replies[-1], "421 4.4.2 %s session time "
                                 "limit reached, closing connection"
                                 % HOSTNAME)
                self.assertGreater(len(replies), 2)
                self.assertTrue(dialogue.closed())
        finally:
            server.stop()


if __name__ == "__main__":
    unittest.main()
