"""Quotas over LMTP: a table of scripted sessions against mailboxes that
start partly filled.

Each case fills the mailboxes it names, sends its byte strings and
compares every reply line.  Then each mailbox must hold exactly the
messages the case lists (after the header block that lmtpd adds), and a
Maildir's maildirsize file, where the case gives one, must match byte by
byte.
"""

import os
import re
import time
import unittest

from harness import (HOSTNAME, WORK, Dialogue, LmtpdServer,
                     give_to_delivery_user, maildir_messages,
                     strip_header_block)

SENDER = "sender@example.org"
LHLO = b"LHLO client.example\r\n"
MAIL = b"MAIL FROM:<" + SENDER.encode() + b">\r\n"
MAIL_OK = "250 2.1.0 <%s> sender ok" % SENDER
DATA_OK = "354 start mail input; end with <CRLF>.<CRLF>"
LHLO_REPLY = [
    "250-" + HOSTNAME, "250-PIPELINING", "250-ENHANCEDSTATUSCODES",
    "250-8BITMIME", "250-CHUNKING", "250-BINARYMIME", "250-SMTPUTF8",
    "250 SIZE 52428800",
]
DEFAULT_QUOTA = 1500


def mail_size(size):
    return b"MAIL FROM:<%s> SIZE=%d\r\n" % (SENDER.encode(), size)


def rcpt(address):
    return b"RCPT TO:<" + address.encode() + b">\r\n"


def rcpt_ok(address):
    return "250 2.1.5 <%s> recipient ok" % address


def delivered(address):
    return "250 2.0.0 <%s> delivered" % address


def full(address, code="552 5.2.2"):
    return "%s <%s> mailbox full" % (code, address)


def users(name):
    """Return the map records of the server in tests/work/NAME."""
    mail = os.path.join(WORK, name, "mail")
    return {
        "small@example.com": "mailbox=%s/small/ quota=2000" % mail,
        "roomy@example.com": "mailbox=%s/roomy/ quota=1M" % mail,
        # Without a quota field, --default-quota sets its byte limit.
        "count@example.com": "mailbox=%s/count/ messages=2" % mail,
        "plain@example.com": "mailbox=%s/plain/" % mail,
        "zero@example.com": "mailbox=%s/zero/ quota=0" % mail,
        "box@example.com": "mailbox=%s/box.mbox quota=1500" % mail,
    }


def header_length(recipient, transaction=1):
    """Return the length of the header block lmtpd adds for recipient:
    a 12-digit session id and a date of fixed width."""
    block = ("Return-Path: <%s>\nDelivered-To: %s\n"
             "Received: from client.example\n"
             "\tby %s (lmtpd) with LMTP id %s.%d\n"
             "\tfor <%s>; %s\n"
             % (SENDER, recipient, HOSTNAME, "0" * 12, transaction,
                recipient, "Fri, 04 Dec 2026 16:36:09 +0000"))
    return len(block.encode())


def body(size):
    """Return a message of exactly size bytes as stored, LF line ends."""
    lines = []
    left = size
    while left > 0:
        line = min(left, 72)
        lines.append(b"x" * (line - 1) + b"\n")
        left -= line
    return b"".join(lines)


def data(stored):
    """Return DATA and the message as sent, CRLF and the final dot."""
    return [b"DATA\r\n", stored.replace(b"\n", b"\r\n") + b".\r\n"]


# Room left in small@ (quota 2000) after 1000 bytes of other messages,
# for a message to small@ and to small+Sent@.
ROOM = 1000 - header_length("small@example.com")
SENT_ROOM = 1000 - header_length("small+Sent@example.com")

# (name, {mailbox: [sizes of messages already there]}, byte strings sent,
#  reply lines expected, {mailbox: [messages lmtpd stored]},
#  {Maildir: maildirsize text after the session})
CASES = [
    ("size at rcpt over quota", {"small/": [1000]},
     [mail_size(1001), rcpt("small@example.com"), rcpt("roomy@example.com")]
     + data(b"hi\n"),
     [MAIL_OK, full("small@example.com"), rcpt_ok("roomy@example.com"),
      DATA_OK, delivered("roomy@example.com")],
     {"small/": [], "roomy/": [b"hi\n"]},
     {"small/": "2000S\n1000 1\n"}),
    ("size at rcpt fits, data does not", {"small/": [1000]},
     [mail_size(500), rcpt("small@example.com")] + data(body(1000)),
     [MAIL_OK, rcpt_ok("small@example.com"), DATA_OK,
      full("small@example.com")],
     {"small/": []},
     {"small/": "2000S\n1000 1\n"}),
    ("size at rcpt exactly at limit", {"small/": [1000]},
     [mail_size(1000), rcpt("small@example.com"), b"RSET\r\n",
      mail_size(1001), rcpt("small@example.com")],
     [MAIL_OK, rcpt_ok("small@example.com"), "250 2.0.0 ok", MAIL_OK,
      full("small@example.com")],
     {"small/": []},
     {"small/": "2000S\n1000 1\n"}),
    ("data exactly at limit", {"small/": [1000]},
     [MAIL, rcpt("small@example.com")] + data(body(ROOM)),
     [MAIL_OK, rcpt_ok("small@example.com"), DATA_OK,
      delivered("small@example.com")],
     {"small/": [body(ROOM)]},
     {"small/": "2000S\n1000 1\n1000 1\n"}),
    ("data one byte over", {"small/": [1000]},
     [MAIL, rcpt("small@example.com")] + data(body(ROOM + 1)),
     [MAIL_OK, rcpt_ok("small@example.com"), DATA_OK,
      full("small@example.com")],
     {"small/": []},
     {"small/": "2000S\n1000 1\n"}),
    ("recipients with different quotas",
     {"small/": [1000], "count/": [10, 10]},
     [MAIL, rcpt("small@example.com"), rcpt("count@example.com"),
      rcpt("roomy@example.com"), rcpt("box@example.com")] + data(body(900)),
     [MAIL_OK, rcpt_ok("small@example.com"), full("count@example.com"),
      rcpt_ok("roomy@example.com"), rcpt_ok("box@example.com"), DATA_OK,
      full("small@example.com"), delivered("roomy@example.com"),
      delivered("box@example.com")],
     {"small/": [], "count/": [], "roomy/": [body(900)],
      "box.mbox": [body(900)]},
     {"small/": "2000S\n1000 1\n", "count/": "%dS,2C\n20 2\n" % DEFAULT_QUOTA}),
    ("message limit", {"count/": [10]},
     [MAIL, rcpt("count@example.com")] + data(b"one\n")
     + [MAIL, rcpt("count@example.com")],
     [MAIL_OK, rcpt_ok("count@example.com"), DATA_OK,
      delivered("count@example.com"), MAIL_OK, full("count@example.com")],
     {"count/": [b"one\n"]},
     # Two lines of counts that reach the limit are recalculated.
     {"count/": "%dS,2C\n%d 2\n"
      % (DEFAULT_QUOTA, 10 + header_length("count@example.com") + 4)}),
    ("default quota and quota zero",
     {"plain/": [DEFAULT_QUOTA], "zero/": [DEFAULT_QUOTA]},
     [MAIL, rcpt("plain@example.com"), rcpt("zero@example.com")]
     + data(b"z\n"),
     [MAIL_OK, full("plain@example.com"), rcpt_ok("zero@example.com"),
      DATA_OK, delivered("zero@example.com")],
     {"plain/": [], "zero/": [b"z\n"]},
     {"plain/": "%dS\n%d 1\n" % (DEFAULT_QUOTA, DEFAULT_QUOTA),
      "zero/": None}),
    ("mbox full at rcpt", {"box.mbox": [1500]},
     [MAIL, rcpt("box@example.com"), rcpt("roomy@example.com")]
     + data(b"m\n"),
     [MAIL_OK, full("box@example.com"), rcpt_ok("roomy@example.com"),
      DATA_OK, delivered("roomy@example.com")],
     {"box.mbox": [], "roomy/": [b"m\n"]}, {}),
    ("maildir folders count", {"small/": [600], "small/.Sent/": [400]},
     [mail_size(1001), rcpt("small@example.com"), b"RSET\r\n",
      MAIL, rcpt("small+Sent@example.com")] + data(body(SENT_ROOM)),
     [MAIL_OK, full("small@example.com"), "250 2.0.0 ok", MAIL_OK,
      rcpt_ok("small+Sent@example.com"), DATA_OK,
      delivered("small+Sent@example.com")],
     {"small/": [], "small/.Sent/": [body(SENT_ROOM)]},
     {"small/": "2000S\n1000 2\n1000 1\n", "small/.Sent/": None}),
]

# The same situations under --quota-tempfail.
TEMPFAIL_CASES = [
    ("tempfail at rcpt and after data", {"small/": [1000]},
     [mail_size(1001), rcpt("small@example.com"), b"RSET\r\n",
      mail_size(10), rcpt("small@example.com")] + data(body(1000)),
     [MAIL_OK, full("small@example.com", "452 4.2.2"), "250 2.0.0 ok",
      MAIL_OK, rcpt_ok("small@example.com"), DATA_OK,
      full("small@example.com", "452 4.2.2")],
     {"small/": []},
     {"small/": "2000S\n1000 1\n"}),
]


def fill_maildir(path, sizes):
    """Make a Maildir with one message file per size in new/."""
    for sub in ("tmp", "new", "cur"):
        os.makedirs(os.path.join(path, sub), exist_ok=True)
    for i, size in enumerate(sizes):
        name = "prefill%d.host,S=%d" % (i, size)
        with open(os.path.join(path, "new", name), "wb") as f:
            f.write(b"p" * size)


def fill_mbox(path, size):
    """Write an mbox of one message, exactly size bytes long."""
    start = b"From prefill@example.org Thu Jan  1 00:00:00 1970\n\n"
    with open(path, "wb") as f:
        f.write(start + b"p" * (size - len(start) - 2) + b"\n\n")


class QuotaTest(unittest.TestCase):
    name = "quota"
    extra_args = ["--default-quota", str(DEFAULT_QUOTA)]
    cases = CASES
    full_code = "552 5.2.2"

    @classmethod
    def setUpClass(cls):
        cls.server = LmtpdServer(cls.name, users(cls.name),
                                 extra_args=cls.extra_args)

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def fill(self, prefill):
        for box, sizes in prefill.items():
            path = self.server.path(box)
            if box.endswith("/"):
                fill_maildir(path, sizes)
            else:
                fill_mbox(path, sizes[0])
        give_to_delivery_user(self.server.mail)

    def stored(self, box, prefill):
        """Return the messages lmtpd stored in box, without the header
        block, and check that what the case put there is unchanged."""
        path = self.server.path(box)
        if box.endswith("/"):
            messages = maildir_messages(path) if os.path.isdir(path) else {}
            prefilled = [n for n in messages if n.startswith("prefill")]
            self.assertEqual(len(prefilled), len(prefill.get(box, [])), box)
            return [strip_header_block(m)[1] for n, m in messages.items()
                    if not n.startswith("prefill")]
        with open(path, "rb") as f:
            text = f.read()
        if box in prefill:
            self.assertTrue(text.startswith(b"From prefill@"), text[:80])
            text = text[prefill[box][0]:]
        parts = re.split(rb"(?<=\n)\n(?=From )", text) if text else []
        if parts:
            self.assertTrue(parts[-1].endswith(b"\n\n"), parts[-1])
            parts[-1] = parts[-1][:-1]
        return [strip_header_block(p.split(b"\n", 1)[1])[1] for p in parts]

    def maildirsize(self, box):
        path = os.path.join(self.server.path(box), "maildirsize")
        if not os.path.exists(path):
            return None
        with open(path, encoding="ascii") as f:
            return f.read()

    def run_case(self, case):
        name, prefill, sends, expected, stored, sizes = case
        self.server.reset_mail()
        self.fill(prefill)
        with self.server.connect_raw() as sock:
            dialogue = Dialogue(sock)
            self.assertRegex(dialogue.line().decode(), "^220 " + HOSTNAME)
            dialogue.send(LHLO)
            self.assertEqual(dialogue.reply(), LHLO_REPLY)
            for data_sent in sends:
                dialogue.send(data_sent)
                time.sleep(0.01)
            got = [dialogue.line().decode() for _ in expected]
            self.assertEqual(got, expected, name)
        for box, messages in stored.items():
            self.assertEqual(sorted(self.stored(box, prefill)),
                             sorted(messages), "%s: %s" % (name, box))
        for box, text in sizes.items():
            self.assertEqual(self.maildirsize(box), text,
                             "%s: %smaildirsize" % (name, box))

    def test_cases(self):
        for case in self.cases:
            with self.subTest(case=case[0]):
                self.run_case(case)

    def test_header_length_formula(self):
        """The boundary cases depend on header_length(): check it against
        a stored message."""
        self.server.reset_mail()
        with self.server.connect_raw() as sock:
            dialogue = Dialogue(sock)
            dialogue.line()
            dialogue.send(LHLO + MAIL + rcpt("roomy@example.com")
                          + b"".join(data(b"h\n")))
            self.assertEqual(dialogue.reply(), LHLO_REPLY)
            self.assertEqual([dialogue.line().decode() for _ in range(4)],
                             [MAIL_OK, rcpt_ok("roomy@example.com"), DATA_OK,
                              delivered("roomy@example.com")])
        messages = list(maildir_messages(self.server.path("roomy/")).items())
        self.assertEqual(len(messages), 1)
        name, message = messages[0]
        header = strip_header_block(message)[0]
        self.assertEqual(len(header), header_length("roomy@example.com"))
        self.assertTrue(name.endswith(",S=%d" % (len(header) + 2)), name)

    def test_rejection_logged(self):
        """The reply and the log line for a full mailbox."""
        self.server.reset_mail()
        fill_maildir(self.server.path("small/"), [1990])
        give_to_delivery_user(self.server.mail)
        with self.server.connect_raw() as sock:
            dialogue = Dialogue(sock)
            dialogue.line()
            dialogue.send(LHLO + mail_size(20) + rcpt("small@example.com")
                          + b"QUIT\r\n")
            self.assertEqual(dialogue.reply(), LHLO_REPLY)
            self.assertEqual(dialogue.line().decode(), MAIL_OK)
            self.assertEqual(dialogue.line().decode(),
                             full("small@example.com", self.full_code))
            self.assertEqual(dialogue.line().decode(),
                             "221 2.0.0 %s closing connection" % HOSTNAME)
        path = self.server.path("small/")
        code, status = self.full_code.split()
        self.assertIn('to=<small@example.com> mailbox=%s reply=%s status=%s '
                      'detail="%s: 1990 bytes used and 20 more exceed the '
                      'quota of 2000 bytes"' % (path, code, status, path),
                      self.server.log_text())


class QuotaTempfailTest(QuotaTest):
    name = "quota-tempfail"
    extra_args = ["--quota-tempfail"]
    cases = TEMPFAIL_CASES
    full_code = "452 4.2.2"


if __name__ == "__main__":
    unittest.main()
