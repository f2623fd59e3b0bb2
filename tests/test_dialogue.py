"""Dialogues with lmtpd over real socket activation.

Every test reads every reply line, and every accepted message is
compared byte by byte with what the mailbox holds.
"""

import mailbox
import os
import re
import smtplib
import socket
import subprocess
import time
import unittest

from harness import (HOSTNAME, LMTPD, Dialogue, LmtpdServer,
                     maildir_messages, strip_header_block)

USERS = {
    "alice@example.com": "alice/",
    "bob@example.com": "bob.mbox",
    "carol@example.com": "carol/",
    "@catchall.example": "catchall/",
    "broken@example.com": "quota=12X mailbox=/nonexistent/",
}

LHLO_REPLY = [
    "250-" + HOSTNAME,
    "250-PIPELINING",
    "250-ENHANCEDSTATUSCODES",
    "250-8BITMIME",
    "250-CHUNKING",
    "250-BINARYMIME",
    "250-SMTPUTF8",
    "250 SIZE 1048576",
]

BODY = (b"From: Sender <sender@example.org>\r\n"
        b"To: alice@example.com\r\n"
        b"Subject: test\r\n"
        b"\r\n"
        b"Hello.\r\n"
        b"..a line that starts with a dot\r\n"
        b"From the start of a line\r\n")
STORED_BODY = BODY.replace(b"\r\n", b"\n").replace(b"\n..", b"\n.")


class DialogueTest(unittest.TestCase):
    mode = "accept"
    identity = "records"

    @classmethod
    def setUpClass(cls):
        cls.server = LmtpdServer("dialogue-" + cls.mode, USERS,
                                 mode=cls.mode, identity=cls.identity,
                                 extra_args=["--max-size", "1M"])

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def setUp(self):
        # Each test starts with empty mailboxes.
        self.server.reset_mail()
        self.sock = self.server.connect_raw()
        self.dialogue = Dialogue(self.sock)
        greeting = self.dialogue.reply()
        self.assertEqual(len(greeting), 1)
        self.assertTrue(greeting[0].startswith("220 " + HOSTNAME + " "),
                        greeting)

    def tearDown(self):
        self.sock.close()

    def expect(self, *expected):
        """Read one reply per pattern; each must match from the start."""
        for pattern in expected:
            reply = self.dialogue.reply()
            self.assertEqual(len(reply), 1, reply)
            self.assertRegex(reply[0], "^" + pattern)

    def lhlo(self):
        self.dialogue.send("LHLO client.example\r\n")
        self.assertEqual(self.dialogue.reply(), LHLO_REPLY)

    def test_lhlo_lists_extensions(self):
        self.lhlo()

    def test_transaction_one_write(self):
        """A whole transaction in one write, a rejected RCPT in between."""
        message = BODY + b".\r\n"
        self.dialogue.send(b"LHLO client.example\r\n"
                           b"MAIL FROM:<sender@example.org>\r\n"
                           b"RCPT TO:<alice@example.com>\r\n"
                           b"RCPT TO:<nobody@example.com>\r\n"
                           b"RCPT TO:<bob@example.com>\r\n"
                           b"DATA\r\n" + message + b"QUIT\r\n")
        self.assertEqual(self.dialogue.reply(), LHLO_REPLY)
        self.expect(r"250 2\.1\.0 ",
                    r"250 2\.1\.5 <alice@example\.com> ",
                    r"550 5\.1\.1 <nobody@example\.com> ",
                    r"250 2\.1\.5 <bob@example\.com> ",
                    r"354 ",
                    r"250 2\.0\.0 <alice@example\.com> delivered$",
                    r"250 2\.0\.0 <bob@example\.com> delivered$",
                    r"221 2\.0\.0 ")
        self.assertTrue(self.dialogue.closed())

        stored = list(maildir_messages(self.server.path("alice/")).values())
        self.assertEqual(len(stored), 1)
        header, body = strip_header_block(stored[-1])
        self.assertEqual(body, STORED_BODY)
        self.assertIn(b"Return-Path: <sender@example.org>\n", header)
        self.assertIn(b"Delivered-To: alice@example.com\n", header)
        self.assertRegex(header, rb"Received: from client\.example\n\tby "
                         + HOSTNAME.encode().replace(b".", rb"\.")
                         + rb" \(lmtpd\) with LMTP id [0-9A-F]{12}\.1\n"
                         rb"\tfor <alice@example\.com>; ")

        with open(self.server.path("bob.mbox"), "rb") as f:
            mbox_bytes = f.read()
        self.assertTrue(mbox_bytes.startswith(b"From sender@example.org "))
        first_line, rest = mbox_bytes.split(b"\n", 1)
        header, body = strip_header_block(rest)
        self.assertIn(b"Delivered-To: bob@example.com\n", header)
        self.assertEqual(body, STORED_BODY.replace(b"\nFrom the",
                                                   b"\n>From the") + b"\n")

    def test_data_without_recipients(self):
        self.lhlo()
        self.dialogue.send("MAIL FROM:<sender@example.org>\r\n"
                           "RCPT TO:<nobody@example.com>\r\n"
                           "DATA\r\n")
        self.expect(r"250 2\.1\.0", r"550 5\.1\.1 <nobody@example\.com>",
                    r"503 5\.5\.1 no valid recipients")
        self.dialogue.send("NOOP\r\n")
        self.expect(r"250 2\.0\.0")

    def test_sequence_errors(self):
        self.dialogue.send("MAIL FROM:<a@example.org>\r\n")
        self.expect(r"503 5\.5\.1 send LHLO first")
        self.lhlo()
        self.dialogue.send("RCPT TO:<alice@example.com>\r\nDATA\r\n")
        self.expect(r"503 5\.5\.1 need MAIL", r"503 5\.5\.1 need MAIL")
        self.dialogue.send("MAIL FROM:<a@example.org>\r\n"
                           "MAIL FROM:<a@example.org>\r\n")
        self.expect(r"250 2\.1\.0", r"503 5\.5\.1 nested MAIL")
        self.dialogue.send("RSET\r\nRCPT TO:<alice@example.com>\r\n")
        self.expect(r"250 2\.0\.0", r"503 5\.5\.1")

    def test_other_commands(self):
        self.dialogue.send("HELO client.example\r\nEHLO client.example\r\n"
                           "LHLO\r\nXYZZY\r\n")
        self.expect(r"500 5\.5\.1 .*LHLO", r"500 5\.5\.1 .*LHLO",
                    r"501 5\.5\.4", r"500 5\.5\.1 command not recognized")
        self.lhlo()
        self.dialogue.send("NOOP\r\nVRFY alice\r\nRSET\r\nHELP\r\nQUIT\r\n")
        self.expect(r"250 2\.0\.0", r"252 2\.0\.0", r"250 2\.0\.0",
                    r"214 2\.0\.0", r"221 2\.0\.0 " + re.escape(HOSTNAME))
        self.assertTrue(self.dialogue.closed())

    def test_address_errors(self):
        self.lhlo()
        self.dialogue.send("MAIL FROM:sender@example.org\r\n"
                           "MAIL FROM:<sender@example.org> FOO=BAR\r\n"
                           "MAIL FROM:<sender@example.org> SIZE=2000000\r\n"
                           "MAIL FROM:<sender@example.org> SIZE=10\r\n"
                           "RCPT TO:<alice@@example.com>\r\n"
                           "RCPT TO:<alice@example.com> NOTIFY=NEVER\r\n")
        self.expect(r"501 5\.1\.7 path must be enclosed",
                    r"555 5\.5\.4", r"552 5\.3\.4", r"250 2\.1\.0",
                    r"501 5\.1\.3 invalid domain", r"555 5\.5\.4")

    def test_map_lookup_forms(self):
        """Domain case, +detail, catch-all, malformed record."""
        self.lhlo()
        self.dialogue.send("MAIL FROM:<>\r\n"
                           "RCPT TO:<alice@EXAMPLE.com>\r\n"
                           "RCPT TO:<Carol+lists@example.com>\r\n"
                           "RCPT TO:<anyone@catchall.example>\r\n"
                           "RCPT TO:<broken@example.com>\r\n")
        self.expect(r"250 2\.1\.0 <>", r"250 2\.1\.5 <alice@EXAMPLE\.com>",
                    r"250 2\.1\.5 <Carol\+lists@example\.com>",
                    r"250 2\.1\.5 <anyone@catchall\.example>",
                    r"451 4\.3\.0 <broken@example\.com>")
        self.dialogue.send(b"DATA\r\n" + BODY + b".\r\n")
        self.expect(r"354", r"250 2\.0\.0 <alice@EXAMPLE\.com>",
                    r"250 2\.0\.0 <Carol\+lists@example\.com>",
                    r"250 2\.0\.0 <anyone@catchall\.example>")
        for box in ("alice/", "carol/", "catchall/"):
            stored = list(maildir_messages(self.server.path(box)).values())
            header, body = strip_header_block(stored[-1])
            self.assertIn(b"Return-Path: <>\n", header)
            self.assertEqual(body, STORED_BODY)
        log = self.server.log_text()
        self.assertRegex(log, r'users\.cdb.*broken@example\.com.*quota')

    def test_repeated_recipient_gets_two_replies(self):
        before = len(maildir_messages(self.server.path("carol/"))
                     if os.path.isdir(self.server.path("carol/new")) else {})
        self.lhlo()
        self.dialogue.send(b"MAIL FROM:<s@example.org>\r\n"
                           b"RCPT TO:<carol@example.com>\r\n"
                           b"RCPT TO:<carol@example.com>\r\n"
                           b"DATA\r\n" + BODY + b".\r\n")
        self.expect(r"250 2\.1\.0", r"250 2\.1\.5", r"250 2\.1\.5", r"354",
                    r"250 2\.0\.0 <carol@example\.com>",
                    r"250 2\.0\.0 <carol@example\.com>")
        after = maildir_messages(self.server.path("carol/"))
        self.assertEqual(len(after), before + 2)

    def test_message_too_big(self):
        self.lhlo()
        big = b"x" * 999 + b"\r\n"
        self.dialogue.send(b"MAIL FROM:<s@example.org>\r\n"
                           b"RCPT TO:<alice@example.com>\r\n"
                           b"RCPT TO:<bob@example.com>\r\nDATA\r\n")
        self.expect(r"250 2\.1\.0", r"250 2\.1\.5", r"250 2\.1\.5", r"354")
        count = len(maildir_messages(self.server.path("alice/"))
                    if os.path.isdir(self.server.path("alice/new")) else {})
        for _ in range(1100):
            self.dialogue.send(big)
        self.dialogue.send(b".\r\nNOOP\r\n")
        self.expect(r"552 5\.3\.4 <alice@example\.com>",
                    r"552 5\.3\.4 <bob@example\.com>", r"250 2\.0\.0")
        self.assertEqual(len(maildir_messages(self.server.path("alice/"))
                             if os.path.isdir(self.server.path("alice/new"))
                             else {}), count)

    def test_long_command_line(self):
        self.lhlo()
        self.dialogue.send(b"NOOP " + b"x" * 5000 + b"\r\nNOOP\r\n")
        self.expect(r"500 5\.5\.2 line too long", r"250 2\.0\.0")

    def test_bare_lf_never_ends_data(self):
        """LF . LF and CR . CR inside DATA are message text."""
        self.lhlo()
        self.dialogue.send(b"MAIL FROM:<s@example.org>\r\n"
                           b"RCPT TO:<carol@example.com>\r\nDATA\r\n")
        self.expect(r"250", r"250", r"354")
        self.dialogue.send(b"Subject: x\r\n\r\nbody\n.\nMAIL FROM:<e@x>\n"
                           b"\r.\rmore\r\n.\r\n")
        self.expect(r"250 2\.0\.0 <carol@example\.com>")
        stored = maildir_messages(self.server.path("carol/"))
        newest = max(stored, key=lambda n: os.stat(os.path.join(
            self.server.path("carol/new"), n)).st_mtime_ns)
        header, body = strip_header_block(stored[newest])
        self.assertEqual(body, b"Subject: x\n\nbody\n.\nMAIL FROM:<e@x>\n"
                               b"\r.\rmore\n")

    def deliver_to_all(self, recipients, body):
        """Deliver body to recipients, which must all be accepted."""
        self.lhlo()
        self.dialogue.send(b"MAIL FROM:<sender@example.org>\r\n" +
                           b"".join(b"RCPT TO:<%s>\r\n" % r.encode()
                                    for r in recipients) +
                           b"DATA\r\n" + body + b".\r\n")
        self.expect(r"250 2\.1\.0", *([r"250 2\.1\.5"] * len(recipients)))
        self.expect(r"354 ")
        for recipient in recipients:
            self.expect(r"250 2\.0\.0 <%s> delivered$" % re.escape(recipient))

    def check_stored(self, stored_body):
        """Compare the message in alice's, carol's and bob's mailboxes."""
        for box in ("alice/", "carol/"):
            stored = list(maildir_messages(self.server.path(box)).values())
            self.assertEqual(len(stored), 1, box)
            self.assertEqual(strip_header_block(stored[0])[1], stored_body,
                             box)
        with open(self.server.path("bob.mbox"), "rb") as f:
            first_line, rest = f.read().split(b"\n", 1)
        self.assertEqual(strip_header_block(rest)[1], stored_body + b"\n")

    def test_mbox_between_maildirs(self):
        """An mbox recipient between two Maildirs, with a small message."""
        body = b"Subject: small\r\n\r\n" + b"line\r\n" * 100
        self.deliver_to_all(["alice@example.com", "bob@example.com",
                               "carol@example.com"], body)
        self.check_stored(body.replace(b"\r\n", b"\n"))

    def test_message_larger_than_memory(self):
        """A message that the spool keeps in a file, not in memory."""
        body = b"Subject: large\r\n\r\n" + b"".join(
            b"%06d %s\r\n" % (i, b"y" * 64) for i in range(3000))
        self.deliver_to_all(["alice@example.com", "bob@example.com",
                               "carol@example.com"], body)
        self.check_stored(body.replace(b"\r\n", b"\n"))

    def test_smtplib_lmtp_client(self):
        client = smtplib.LMTP()
        if self.server.tcp is None:
            client.connect(self.server.socket_path)
        refused = None
        try:
            client.ehlo_or_helo_if_needed()
            self.assertTrue(client.has_extn("pipelining"))
            self.assertTrue(client.has_extn("enhancedstatuscodes"))
            refused = client.sendmail("sender@example.org",
                                      ["carol@example.com"],
                                      BODY.replace(b"\n..", b"\n."))
        finally:
            client.quit()
        self.assertEqual(refused, {})
        stored = maildir_messages(self.server.path("carol/"))
        bodies = [strip_header_block(m)[1] for m in stored.values()]
        self.assertIn(STORED_BODY, bodies)
        for name, message in stored.items():
            self.assertRegex(name, r",S=%d$" % len(message))


class TimeoutTest(unittest.TestCase):
    def test_idle_timeout(self):
        server = LmtpdServer("dialogue-timeout", USERS,
                             extra_args=["--timeout", "1"])
        try:
            with server.connect_raw() as sock:
                dialogue = Dialogue(sock)
                self.assertRegex(dialogue.reply()[0], r"^220 ")
                self.assertRegex(dialogue.reply()[0],
                                 r"^421 4\.4\.2 .*timeout")
                self.assertTrue(dialogue.closed())
        finally:
            server.stop()


class SpoolFolderMissingTest(unittest.TestCase):
    """Without its spool folder, lmtpd delivers what fits in memory."""

    def test_spool_folder_missing(self):
        server = LmtpdServer("dialogue-no-spool", USERS, extra_args=[
            "--spool-dir", "/nonexistent/lmtpd-spool"])
        small = b"Subject: small\r\n\r\nHello.\r\n"
        large = b"Subject: large\r\n\r\n" + (b"z" * 78 + b"\r\n") * 1000
        try:
            with server.connect_raw() as sock:
                dialogue = Dialogue(sock)
                self.assertRegex(dialogue.reply()[0], r"^220 ")
                dialogue.send(b"LHLO c\r\n")
                self.assertEqual(dialogue.reply()[-1], "250 SIZE 52428800")
                for body in (small, large):
                    dialogue.send(b"MAIL FROM:<s@example.org>\r\n"
                                  b"RCPT TO:<alice@example.com>\r\n"
                                  b"RCPT TO:<bob@example.com>\r\n"
                                  b"DATA\r\n" + body + b".\r\n")
                    for pattern in (r"250 2\.1\.0", r"250 2\.1\.5",
                                    r"250 2\.1\.5", r"354 "):
                        self.assertRegex(dialogue.reply()[0], "^" + pattern)
                    # bob's mbox needs the spool file, even for a small
                    # message.
                    alice = dialogue.reply()[0]
                    bob = dialogue.reply()[0]
                    if body is small:
                        self.assertRegex(alice, r"^250 2\.0\.0 <alice@")
                    else:
                        self.assertRegex(alice, r"^451 4\.3\.0 <alice@")
                    self.assertRegex(bob, r"^451 4\.3\.0 <bob@")
            stored = maildir_messages(server.path("alice/"))
            self.assertEqual(len(stored), 1)
            self.assertEqual(strip_header_block(
                list(stored.values())[0])[1], b"Subject: small\n\nHello.\n")
            self.assertRegex(server.log_text(), r"write spool in "
                             r"/nonexistent/lmtpd-spool: No such file")
        finally:
            server.stop()


class ListeningSocketTest(DialogueTest):
    """The same dialogues with systemd Accept=no: lmtpd accepts and forks,
    after --user has made the whole process the delivery user."""
    mode = "listen"
    identity = "user"

    def test_parallel_connections(self):
        socks = [self.server.connect_raw() for _ in range(5)]
        try:
            dialogues = [Dialogue(s) for s in socks]
            for d in dialogues:
                self.assertRegex(d.reply()[0], r"^220 ")
            for d in dialogues:
                d.send(b"LHLO c\r\nMAIL FROM:<s@example.org>\r\n"
                       b"RCPT TO:<carol@example.com>\r\nDATA\r\n")
            for d in dialogues:
                self.assertEqual(d.reply()[0], LHLO_REPLY[0])
                for _ in range(3):
                    d.reply()
                d.send(BODY + b".\r\nQUIT\r\n")
            for d in dialogues:
                self.assertRegex(d.reply()[0], r"^250 2\.0\.0 <carol@")
                self.assertRegex(d.reply()[0], r"^221 ")
        finally:
            for s in socks:
                s.close()


class InetdTest(DialogueTest):
    """The connection on stdin and stdout, as inetd hands it over."""
    mode = "inetd"


class StderrIsSocketTest(unittest.TestCase):
    """xinetd also puts the socket on fd 2: no log line may reach it."""

    def test_no_log_on_socket(self):
        server = LmtpdServer("stderr-socket", USERS, mode="inetd")
        server.stop()
        folder = server.folder
        sock_path = os.path.join(folder, "wrapped.sock")
        log = open(os.path.join(folder, "wrapper.log"), "wb")
        process = subprocess.Popen(
            ["systemd-socket-activate", "-l", sock_path, "--accept",
             "--inetd", "/bin/sh", "-c", 'exec "$@" 2>&1', "sh", LMTPD,
             "--map", server.map, "--log", "stderr", "--spool-dir",
             server.spool],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        try:
            for _ in range(500):
                if os.path.exists(sock_path):
                    break
                time.sleep(0.01)
            with socket.socket(socket.AF_UNIX) as sock:
                sock.settimeout(20)
                sock.connect(sock_path)
                sock.sendall(b"LHLO c\r\nMAIL FROM:<>\r\n"
                             b"RCPT TO:<nobody@example.com>\r\n"
                             b"RCPT TO:<broken@example.com>\r\nQUIT\r\n")
                data = b""
                while True:
                    chunk = sock.recv(4096)
                    if not chunk:
                        break
                    data += chunk
        finally:
            process.terminate()
            process.wait(10)
            log.close()
        lines = data.split(b"\r\n")
        self.assertEqual(lines[-1], b"")
        for line in lines[:-1]:
            self.assertRegex(line, rb"^[2-5][0-9][0-9][ -]", data)
        # 220, eight LHLO lines, MAIL, two RCPT, QUIT.
        self.assertEqual(len(lines) - 1, 1 + 8 + 1 + 2 + 1)


class TerminalTest(unittest.TestCase):
    """stdin as a pipe: bare LF ends lines, for testing by hand."""

    def test_pipe_session(self):
        server = LmtpdServer("terminal", USERS)
        server.stop()
        script = (b"LHLO c\nMAIL FROM:<s@example.org>\n"
                  b"RCPT TO:<alice@example.com>\nDATA\n"
                  b"Subject: t\n\n..hi\n.\nQUIT\n")
        result = subprocess.run(
            [LMTPD, "--map", server.map, "--spool-dir", server.spool,
             "--hostname", HOSTNAME],
            input=script, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            timeout=20, check=False)
        self.assertEqual(result.returncode, 0, result.stderr)
        replies = result.stdout.decode().split("\r\n")
        self.assertRegex(replies[0], r"^220 ")
        self.assertEqual(replies[1:9], LHLO_REPLY[:7] + ["250 SIZE 52428800"])
        self.assertRegex(replies[12], r"^250 2\.0\.0 <alice@example\.com>")
        self.assertRegex(replies[13], r"^221 ")
        stored = list(maildir_messages(server.path("alice/")).values())
        self.assertEqual(strip_header_block(stored[0])[1],
                         b"Subject: t\n\n.hi\n")
        self.assertIn(b"from=<s@example.org> to=<alice@example.com>",
                      result.stderr)


class ListenFdsTest(unittest.TestCase):
    """The LISTEN_PID and LISTEN_FDS variables of sd_listen_fds(3)."""

    SCRIPT = b"LHLO c\nQUIT\n"

    def run_with(self, pid, fds, null_on_fd3=False):
        """Run lmtpd on a pipe session with LISTEN_PID=pid and
        LISTEN_FDS=fds; pid "self" becomes lmtpd's own PID, through
        exec from a shell.  null_on_fd3 opens /dev/null as descriptor 3."""
        server = LmtpdServer("listen-fds", USERS)
        server.stop()
        pid_value = '"$$"' if pid == "self" else "'%s'" % pid
        script = "LISTEN_PID=%s LISTEN_FDS='%s' exec \"$@\"" % (pid_value, fds)
        if null_on_fd3:
            script = "exec 3</dev/null; " + script
        command = ["/bin/sh", "-c", script, "sh", LMTPD, "--map", server.map,
                   "--spool-dir", server.spool, "--log", "stderr"]
        return subprocess.run(command, input=self.SCRIPT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              timeout=20, check=False)

    def test_other_process_ignored(self):
        """Variables meant for another process: serve the pipe."""
        result = self.run_with(1, 1)
        self.assertEqual(result.returncode, 0, result.stderr)
        replies = result.stdout.decode().split("\r\n")
        self.assertRegex(replies[0], r"^220 ")
        self.assertRegex(replies[-2], r"^221 ")

    def test_malformed_count(self):
        result = self.run_with("self", "one")
        self.assertEqual(result.returncode, 71)
        self.assertEqual(result.stdout, b"")
        self.assertIn(b"cannot read the sockets passed by systemd: "
                      b"Invalid argument", result.stderr)

    def test_passed_file_not_socket(self):
        result = self.run_with("self", "1", null_on_fd3=True)
        self.assertEqual(result.returncode, 78)
        self.assertIn(b"is not a stream socket", result.stderr)


class CommandLineTest(unittest.TestCase):
    def run_lmtpd(self, *args):
        return subprocess.run([LMTPD] + list(args), stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, timeout=20, check=False)

    def test_help_and_version(self):
        result = self.run_lmtpd("--help")
        self.assertEqual(result.returncode, 0)
        for option in ("--map", "--hostname", "--max-size",
                       "--recipient-delimiter", "--timeout", "--spool-dir",
                       "--max-children", "--log", "--user", "--version"):
            self.assertIn(option, result.stdout)
        result = self.run_lmtpd("-V")
        self.assertRegex(result.stdout, r"^lmtpd \d+\.\d+")

    def test_bad_values_named(self):
        cases = [
            (["--max-size", "12X"], "12X"),
            (["--timeout", "soon"], "soon"),
            (["--timeout", "-1"], "-1"),
            (["--max-children", "0"], "--max-children"),
            (["--log", "file"], "file"),
            (["--hostname", "a b"], "a b"),
            (["--bogus"], "bogus"),
            (["extra"], "extra"),
        ]
        for args, named in cases:
            with self.subTest(args=args):
                result = self.run_lmtpd(*args)
                self.assertEqual(result.returncode, 64)
                self.assertIn(named, result.stderr)


if __name__ == "__main__":
    unittest.main()
