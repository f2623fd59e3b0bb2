"""Recipients whose map record names a home host (the host= field).

lmtpd runs behind systemd-socket-activate with a map whose records carry
host= fields.  A recipient whose home host is another host gets 450
4.4.0 naming that host at RCPT, and the log says why; the others are
delivered as before.  --map-host sets the name that lmtpd compares.
"""

import os
import subprocess
import unittest

from harness import (HOSTNAME, LMTPD, WORK, Dialogue, LmtpdServer,
                     maildir_messages, strip_header_block)

STORE2 = "store2.example.com"


def users_for(name):
    """Return the user map of a server named `name`, with the mailbox
    paths that LmtpdServer gives it."""
    mail = os.path.join(WORK, name, "mail")
    return {
        "alice@example.com": "alice/",
        "bob@example.com": "mailbox=%s/bob/ host=%s" % (mail, STORE2),
        "home@example.com": "mailbox=%s/home/ host=MX.Test.Example" % mail,
        "@other.example": "mailbox=%s/other/ host=%s" % (mail, STORE2),
        "badhost@example.com": "mailbox=%s/badhost/ host=%s." % (mail,
                                                                  STORE2),
    }


def rcpt(address):
    return b"RCPT TO:<" + address.encode() + b">\r\n"


def elsewhere(address, host=STORE2):
    return "450 4.4.0 <%s> mailbox is on %s" % (address, host)


class HomeHostTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = LmtpdServer("home-host", users_for("home-host"),
                                 extra_args=["--max-errors", "3"])

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def session(self, server, commands):
        """Send LHLO, MAIL and `commands` in one write and return the
        reply lines after MAIL's, up to QUIT's reply."""
        with server.connect_raw() as sock:
            dialogue = Dialogue(sock)
            self.assertRegex(dialogue.line().decode(), r"^220 ")
            dialogue.send(b"LHLO client.example\r\n"
                          b"MAIL FROM:<sender@example.org>\r\n"
                          + b"".join(commands) + b"QUIT\r\n")
            dialogue.reply()
            self.assertEqual(dialogue.line().decode(),
                             "250 2.1.0 <sender@example.org> sender ok")
            lines = []
            while True:
                line = dialogue.line().decode()
                self.assertNotEqual(line, "", "connection closed early")
                if line.startswith("221 "):
                    return lines
                lines.append(line)

    def stored(self, server, box):
        path = server.path(box)
        if not os.path.isdir(path):
            return []
        return [strip_header_block(m)[1]
                for m in maildir_messages(path).values()]

    def test_other_host_deferred_at_rcpt(self):
        recipients = ["alice@example.com", "bob@example.com",
                      "bob+lists@example.com", "home@example.com",
                      "anyone@other.example", "badhost@example.com"]
        lines = self.session(self.server, [rcpt(r) for r in recipients]
                             + [b"DATA\r\n", b"Subject: s\r\n\r\nbody\r\n"
                                b".\r\n"])
        self.assertEqual(lines, [
            "250 2.1.5 <alice@example.com> recipient ok",
            elsewhere("bob@example.com"),
            elsewhere("bob+lists@example.com"),
            "250 2.1.5 <home@example.com> recipient ok",
            elsewhere("anyone@other.example"),
            "451 4.3.0 <badhost@example.com> user map unavailable, try "
            "again later",
            "354 start mail input; end with <CRLF>.<CRLF>",
            "250 2.0.0 <alice@example.com> delivered",
            "250 2.0.0 <home@example.com> delivered",
        ])
        self.assertEqual(self.stored(self.server, "alice/"),
                         [b"Subject: s\n\nbody\n"])
        self.assertEqual(self.stored(self.server, "home/"),
                         [b"Subject: s\n\nbody\n"])
        for box in ("bob", "other", "badhost"):
            self.assertFalse(os.path.exists(self.server.path(box)), box)

    def test_other_host_logged(self):
        self.session(self.server, [rcpt("bob+x@example.com")])
        log = self.server.log_text()
        self.assertIn('to=<bob+x@example.com> reply=450 status=4.4.0 '
                      'detail="map key \\"bob@example.com\\" names host %s, '
                      'not this host %s"' % (STORE2, HOSTNAME), log)

    def test_misrouted_not_command_errors(self):
        """Five deferred recipients stay under --max-errors 3."""
        lines = self.session(self.server, [rcpt("bob@example.com")] * 5
                             + [b"NOOP\r\n"])
        self.assertEqual(lines, [elsewhere("bob@example.com")] * 5
                         + ["250 2.0.0 ok"])

    def test_map_host_option(self):
        name = "home-host-store2"
        server = LmtpdServer(name, users_for(name),
                             extra_args=["--map-host", "Store2.Example.com"])
        try:
            lines = self.session(server, [
                rcpt("alice@example.com"), rcpt("bob@example.com"),
                rcpt("anyone@other.example"), rcpt("home@example.com"),
                b"DATA\r\n", b"x\r\n.\r\n"])
        finally:
            server.stop()
        self.assertEqual(lines, [
            "250 2.1.5 <alice@example.com> recipient ok",
            "250 2.1.5 <bob@example.com> recipient ok",
            "250 2.1.5 <anyone@other.example> recipient ok",
            elsewhere("home@example.com", "MX.Test.Example"),
            "354 start mail input; end with <CRLF>.<CRLF>",
            "250 2.0.0 <alice@example.com> delivered",
            "250 2.0.0 <bob@example.com> delivered",
            "250 2.0.0 <anyone@other.example> delivered",
        ])
        for box in ("alice/", "bob/", "other/"):
            self.assertEqual(self.stored(server, box), [b"x\n"], box)
        self.assertFalse(os.path.exists(server.path("home")))


class MapHostOptionTest(unittest.TestCase):
    def run_lmtpd(self, *args):
        return subprocess.run([LMTPD] + list(args), stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, timeout=20, check=False)

    def test_help_names_option(self):
        result = self.run_lmtpd("--help")
        self.assertEqual(result.returncode, 0)
        self.assertIn("--map-host NAME", result.stdout)

    def test_invalid_names_rejected(self):
        for name in ("", "store_2.example.com", "store2.example.com.",
                     "-store2", "a..b", "[192.0.2.1]"):
            with self.subTest(name=name):
                result = self.run_lmtpd("--map-host", name)
                self.assertEqual(result.returncode, 64)
                self.assertIn('invalid host name "%s" for --map-host' % name,
                              result.stderr)


if __name__ == "__main__":
    unittest.main()
