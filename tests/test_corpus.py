"""Delivery of a corpus of real messages, compared byte by byte.

The corpus is a folder tree of messages, one per file, named *.eml or
with no extension, given by the CORPUS environment variable.  Without
it the suite is skipped.  Every message goes to one Maildir and one mbox
recipient, twice: once with its own line ends as they are in the file,
once with every line end turned into CRLF as an MTA sends it.

Run: CORPUS=/path/to/corpus TESTS=corpus python3 tests/run.py
"""

import mailbox
import os
import re
import unittest

from harness import HOSTNAME, Dialogue, LmtpdServer

CORPUS_VARIABLE = "CORPUS"
SENDER = "corpus-sender@example.org"
MAILDIR_RECIPIENT = "maildir@corpus.example"
MBOX_RECIPIENT = "mbox@corpus.example"
USERS = {
    MAILDIR_RECIPIENT: "inbox/",
    MBOX_RECIPIENT: "inbox.mbox",
}
LHLO_NAME = "corpus-client.example"

# The block that lmtpd puts above each message, for one recipient.  The
# Received field may name the client in brackets after the LHLO name.
HEADER_BLOCK = (
    rb"Return-Path: <%(sender)s>\n"
    rb"Delivered-To: %(recipient)s\n"
    rb"Received: from %(lhlo)s(?: \([^\n]*\))?\n"
    rb"\tby %(host)s \(lmtpd\) with LMTP id [0-9A-F]{12}\.[0-9]+\n"
    rb"\tfor <%(recipient)s>; "
    rb"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), [0-9]{2} [A-Z][a-z]{2} [0-9]{4} "
    rb"[0-9]{2}:[0-9]{2}:[0-9]{2} [+-][0-9]{4}\n"
)

# The mbox "From " line: sender, then an asctime() date.
MBOX_FROM_LINE = (rb"From %(sender)s (?:Mon|Tue|Wed|Thu|Fri|Sat|Sun) "
                  rb"[A-Z][a-z]{2} [ 0-9][0-9] [0-9]{2}:[0-9]{2}:[0-9]{2} "
                  rb"[0-9]{4}\n")


def header_block_pattern(recipient):
    values = {
        b"sender": re.escape(SENDER.encode()),
        b"recipient": re.escape(recipient.encode()),
        b"lhlo": re.escape(LHLO_NAME.encode()),
        b"host": re.escape(HOSTNAME.encode()),
    }
    return re.compile(HEADER_BLOCK % values)


def corpus_messages(top):
    """Return the sorted paths of the message files under top: names
    ending in .eml or without an extension, except LICENSE and README*."""
    paths = []
    for folder, subfolders, names in os.walk(top):
        subfolders.sort()
        for name in names:
            if name == "LICENSE" or name.startswith("README"):
                continue
            if name.endswith(".eml") or os.path.splitext(name)[1] == "":
                paths.append(os.path.join(folder, name))
    return sorted(paths)


def dot_stuff(message):
    """Double the "." that starts a line.  lmtpd removes one leading dot
    after a CRLF and after a bare LF alike, so both count as line ends."""
    return re.sub(rb"(?m)^\.", b"..", message)


def data_bytes(message):
    """Return what follows the 354 reply: the stuffed message and the end
    of data."""
    if message == b"":
        return b".\r\n"
    stuffed = dot_stuff(message)
    if stuffed.endswith(b"\r\n"):
        pass
    elif stuffed.endswith(b"\n"):
        # Only CRLF "." CRLF ends the data, so the last bare LF goes as
        # CRLF.  lmtpd stores both as LF, so the stored bytes are alike.
        stuffed = stuffed[:-1] + b"\r\n"
    else:
        # DATA cannot carry a message without a final line end, so lmtpd
        # stores this one with "\n" added.
        stuffed += b"\r\n"
    return stuffed + b".\r\n"


def expected_message(message):
    """Return the message as lmtpd stores it below the header block."""
    stored = message.replace(b"\r\n", b"\n")
    if stored and not stored.endswith(b"\n"):
        stored += b"\n"
    return stored


def mboxrd_quote(stored):
    """Add one ">" to every line that matches ^>*From ."""
    return re.sub(rb"(?m)^(>*From )", rb">\1", stored)


def all_crlf(message):
    """Turn every line end into CRLF, as an MTA sends a message."""
    return re.sub(rb"(?<!\r)\n", b"\r\n", message)


def first_difference(expected, actual):
    """Return a text naming the first differing offset, with excerpts."""
    offset = 0
    limit = min(len(expected), len(actual))
    while offset < limit and expected[offset] == actual[offset]:
        offset += 1
    return ("first difference at offset %d (expected %d bytes, stored %d): "
            "expected %r, stored %r"
            % (offset, len(expected), len(actual),
               expected[offset:offset + 40], actual[offset:offset + 40]))


class CorpusTest(unittest.TestCase):
    checked = 0

    @classmethod
    def setUpClass(cls):
        top = os.environ.get(CORPUS_VARIABLE, "")
        if not top:
            raise unittest.SkipTest(
                "CORPUS is not set: set it to a folder of .eml messages "
                "to run the corpus suite")
        if not os.path.isdir(top):
            raise unittest.SkipTest(
                "CORPUS=%s is not a folder: set it to a folder of .eml "
                "messages to run the corpus suite" % top)
        cls.paths = corpus_messages(top)
        cls.top = top
        cls.server = LmtpdServer("corpus", USERS, extra_args=["--max-size",
                                                              "0"])
        cls.maildir_new = os.path.join(cls.server.path("inbox/"), "new")
        cls.mbox_path = cls.server.path("inbox.mbox")

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()
        print("corpus: %d messages checked, %d deliveries compared"
              % (len(cls.paths), cls.checked))

    def maildir_names(self):
        if not os.path.isdir(self.maildir_new):
            return set()
        return set(os.listdir(self.maildir_new))

    def mbox_size(self):
        try:
            return os.path.getsize(self.mbox_path)
        except FileNotFoundError:
            return 0

    def deliver(self, message):
        """Send one message in its own session to both recipients.
        Return a list of problems, empty when both replies were 250."""
        with self.server.connect_raw() as sock:
            dialogue = Dialogue(sock)
            dialogue.reply()
            dialogue.send("LHLO %s\r\n"
                          "MAIL FROM:<%s> BODY=8BITMIME\r\n"
                          "RCPT TO:<%s>\r\n"
                          "RCPT TO:<%s>\r\n"
                          "DATA\r\n"
                          % (LHLO_NAME, SENDER, MAILDIR_RECIPIENT,
                             MBOX_RECIPIENT))
            replies = [dialogue.reply() for _ in range(5)]
            codes = [reply[-1][:3] for reply in replies]
            if codes != ["250", "250", "250", "250", "354"]:
                return ["replies before the data: %r" % replies]
            dialogue.send(data_bytes(message))
            problems = []
            for recipient in (MAILDIR_RECIPIENT, MBOX_RECIPIENT):
                reply = dialogue.reply()
                if not reply[0].startswith("250 2.0.0 <%s>" % recipient):
                    problems.append("reply for %s: %r" % (recipient, reply))
            dialogue.send("QUIT\r\n")
            dialogue.reply()
        return problems

    def check_maildir(self, before, body):
        """Compare the one new Maildir file with the expected bytes and
    return the differences found."""
        added = sorted(self.maildir_names() - before)
        if len(added) != 1:
            return ["Maildir: %d new files, expected 1" % len(added)]
        path = os.path.join(self.maildir_new, added[0])
        with open(path, "rb") as f:
            stored = f.read()
        problems = []
        size = re.search(r",S=([0-9]+)", added[0])
        if size is None or int(size.group(1)) != len(stored):
            problems.append("Maildir: name %s does not carry S=%d"
                            % (added[0], len(stored)))
        match = header_block_pattern(MAILDIR_RECIPIENT).match(stored)
        if match is None:
            problems.append("Maildir: no header block at the top: %r"
                            % stored[:400])
            return problems
        expected = stored[:match.end()] + body
        if stored != expected:
            problems.append("Maildir: " + first_difference(expected, stored))
        return problems

    def check_mbox(self, before, body):
        """Compare the bytes appended to the mbox with the expected ones and
    return the differences found."""
        with open(self.mbox_path, "rb") as f:
            f.seek(before)
            stored = f.read()
        from_line = re.compile(MBOX_FROM_LINE
                               % {b"sender": re.escape(SENDER.encode())})
        match = from_line.match(stored)
        if match is None:
            return ["mbox: no From line at offset %d: %r"
                    % (before, stored[:100])]
        block = header_block_pattern(MBOX_RECIPIENT).match(stored,
                                                           match.end())
        if block is None:
            return ["mbox: no header block after the From line: %r"
                    % stored[:400]]
        expected = stored[:block.end()] + mboxrd_quote(body) + b"\n"
        if stored != expected:
            return ["mbox: " + first_difference(expected, stored)]
        return []

    def run_pass(self, transform):
        """Deliver every corpus message after transform and compare."""
        if not self.paths:
            self.fail("no message files (*.eml or no extension) under "
                      "CORPUS=%s" % self.top)
        failures = []
        failed_messages = 0
        for path in self.paths:
            with open(path, "rb") as f:
                original = f.read()
            body = expected_message(original)
            maildir_before = self.maildir_names()
            mbox_before = self.mbox_size()

            problems = self.deliver(transform(original))
            if not problems:
                problems = (self.check_maildir(maildir_before, body)
                            + self.check_mbox(mbox_before, body))
            name = os.path.relpath(path, self.top)
            failures += ["%s: %s" % (name, p) for p in problems]
            failed_messages += 1 if problems else 0
            type(self).checked += 1
        if failures:
            self.fail("%d of %d messages failed:\n%s"
                      % (failed_messages, len(self.paths),
                         "\n".join(failures)))

        # A "From " line left unquoted would split a message in two.
        self.assertEqual(len(mailbox.mbox(self.mbox_path, create=False)),
                         type(self).checked,
                         "messages read by mailbox.mbox != deliveries")

    def test_line_ends_as_in_file(self):
        self.run_pass(lambda message: message)

    def test_line_ends_as_crlf(self):
        self.run_pass(all_crlf)


if __name__ == "__main__":
    unittest.main()
