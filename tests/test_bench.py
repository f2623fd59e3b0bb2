"""The benchmark's own programs: bench/loadgen and bench/floor.

A benchmark that counted a rejected recipient or a failed delivery as a
delivery would be worthless.  These tests run the load generator against
lmtpd behind systemd-socket-activate, and check that it counts exactly
what the mailboxes hold and reports every failure.
"""

import os
import re
import socket
import subprocess
import threading
import unittest

from harness import (TOP, LmtpdServer, maildir_messages, make_folder,
                     strip_header_block)

LOADGEN = os.path.join(TOP, "bench", "loadgen")
FLOOR = os.path.join(TOP, "bench", "floor")


def summary(stdout):
    """Return the key=value fields of a summary line as numbers."""
    return {key: float(value)
            for key, value in re.findall(r"(\w+)=([-0-9.]+)", stdout)}


@unittest.skipUnless(os.access(LOADGEN, os.X_OK) and
                     os.access(FLOOR, os.X_OK),
                     "bench/loadgen and bench/floor are not built")
class LoadgenTest(unittest.TestCase):
    def run_loadgen(self, server, *args):
        return subprocess.run([LOADGEN, "--unix", server.socket_path,
                               "--timeout", "20"] + list(args),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, timeout=60, check=False)

    def test_counts_what_mailboxes_hold(self):
        server = LmtpdServer("bench-loadgen", {
            "user0@bench.example": "user0/",
            "user1@bench.example": "user1/",
        })
        try:
            result = self.run_loadgen(server, "--messages", "3",
                                      "--recipients", "2", "--size", "2K")
        finally:
            server.stop()
        self.assertEqual(result.returncode, 0, result.stderr)
        fields = summary(result.stdout)
        self.assertEqual(fields["delivered"], 6)
        self.assertEqual(fields["failed"], 0)
        for box in ("user0/", "user1/"):
            stored = maildir_messages(server.path(box))
            self.assertEqual(len(stored), 3, box)
            for name, message in stored.items():
                self.assertRegex(name, r",S=%d$" % len(message))
                self.assertIn(b"\nSubject: lmtpd benchmark message\n",
                              message)
                self.assertNotIn(b"\r", message)

    def test_rejected_recipient_is_failure(self):
        server = LmtpdServer("bench-loadgen-550", {
            "user0@bench.example": "user0/",
        })
        try:
            result = self.run_loadgen(server, "--messages", "2",
                                      "--recipients", "2")
        finally:
            server.stop()
        self.assertEqual(result.returncode, 1)
        fields = summary(result.stdout)
        self.assertEqual(fields["delivered"], 0)
        self.assertEqual(fields["failed"], 4)
        self.assertIn("after RCPT, expected 250, got \"550 5.1.1 "
                      "<user1@bench.example>", result.stderr)

    def test_failed_delivery_is_failure(self):
        server = LmtpdServer("bench-loadgen-451", {
            "user0@bench.example": "mailbox=/nonexistent/lmtpd/user0/",
        })
        try:
            result = self.run_loadgen(server, "--messages", "2")
        finally:
            server.stop()
        self.assertEqual(result.returncode, 1)
        fields = summary(result.stdout)
        self.assertEqual(fields["delivered"], 0)
        self.assertEqual(fields["failed"], 2)
        self.assertIn("after the final dot, expected 250, got \"451 4.3.0 ",
                      result.stderr)

    def test_peak_rss_of_serving_process(self):
        server = LmtpdServer("bench-loadgen-rss", {
            "user0@bench.example": "user0/",
        })
        try:
            result = self.run_loadgen(server, "--server-parent",
                                      str(server.process.pid))
        finally:
            server.stop()
        self.assertEqual(result.returncode, 0, result.stderr)
        fields = summary(result.stdout)
        self.assertEqual(fields["delivered"], 1)
        # Any lmtpd maps libc, so its peak RSS is far above 100 KiB.
        self.assertGreater(fields["server_peak_rss_kib"], 100)

    def test_bdat_counts_what_mailboxes_hold(self):
        server = LmtpdServer("bench-loadgen-bdat", {
            "user0@bench.example": "user0/",
            "user1@bench.example": "user1/",
        })
        try:
            result = self.run_loadgen(server, "--bdat", "--messages", "3",
                                      "--recipients", "2", "--size", "2K")
            # One more message to user0 with DATA, to compare with.
            with_data = self.run_loadgen(server, "--size", "2K")
        finally:
            server.stop()
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertNotIn("CHUNKING", result.stderr)
        fields = summary(result.stdout)
        self.assertEqual(fields["delivered"], 6)
        self.assertEqual(fields["failed"], 0)
        self.assertEqual(fields["sent_with_bdat"], 3)
        self.assertEqual(fields["sent_with_data"], 0)
        self.assertEqual(with_data.returncode, 0, with_data.stderr)
        self.assertEqual(summary(with_data.stdout)["sent_with_data"], 1)

        stored = maildir_messages(server.path("user0/"))
        self.assertEqual(len(stored), 4)
        self.assertEqual(len(maildir_messages(server.path("user1/"))), 3)
        # BDAT carries the message as it is, so lmtpd stores the same
        # text as after DATA, with its line that starts with one dot.
        texts = {strip_header_block(m)[1] for m in stored.values()}
        self.assertEqual(len(texts), 1)
        text = texts.pop()
        self.assertIn(b"\n.", text)
        self.assertNotIn(b"\n..", text)
        self.assertNotIn(b"\r", text)

    def test_bdat_counts_only_accepted_recipients(self):
        server = LmtpdServer("bench-loadgen-bdat-550", {
            "user0@bench.example": "user0/",
        })
        try:
            # Connection 0 sends to user0, connection 1 to user1, whom
            # lmtpd rejects.
            result = self.run_loadgen(server, "--bdat", "--connections",
                                      "2", "--messages", "3")
        finally:
            server.stop()
        self.assertEqual(result.returncode, 1)
        fields = summary(result.stdout)
        self.assertEqual(fields["delivered"], 3)
        self.assertEqual(fields["failed"], 3)
        self.assertEqual(len(maildir_messages(server.path("user0/"))), 3)
        self.assertIn("after RCPT, expected 250, got \"550 5.1.1 "
                      "<user1@bench.example>", result.stderr)

    def test_bdat_failed_delivery_is_failure(self):
        server = LmtpdServer("bench-loadgen-bdat-451", {
            "user0@bench.example": "user0/",
            "user1@bench.example": "mailbox=/nonexistent/lmtpd/user1/",
        })
        try:
            result = self.run_loadgen(server, "--bdat", "--messages", "2",
                                      "--recipients", "2")
        finally:
            server.stop()
        self.assertEqual(result.returncode, 1)
        fields = summary(result.stdout)
        # The first message reaches user0 and fails for user1, which ends
        # the connection before the second message.
        self.assertEqual(fields["delivered"], 1)
        self.assertEqual(fields["failed"], 3)
        self.assertEqual(len(maildir_messages(server.path("user0/"))), 1)
        self.assertIn("after BDAT LAST, expected 250, got \"451 4.3.0 ",
                      result.stderr)

    def test_bdat_without_chunking_uses_data(self):
        folder = make_folder("bench-loadgen-no-chunking")
        path = os.path.join(folder, "lmtp.sock")
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(path)
        listener.listen(4)
        server = threading.Thread(target=serve_without_chunking,
                                  args=(listener, 2), daemon=True)
        server.start()
        try:
            result = subprocess.run([LOADGEN, "--unix", path, "--timeout",
                                     "20", "--bdat", "--sequential", "2",
                                     "--messages", "2"],
                                    stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True,
                                    timeout=60, check=False)
            server.join(30)
        finally:
            listener.close()
        self.assertEqual(result.returncode, 0, result.stderr)
        fields = summary(result.stdout)
        self.assertEqual(fields["delivered"], 4)
        self.assertEqual(fields["sent_with_data"], 4)
        self.assertEqual(fields["sent_with_bdat"], 0)
        # Printed once, not once per connection.
        self.assertEqual(result.stderr.count("does not announce CHUNKING"),
                         1, result.stderr)


def serve_without_chunking(listener, connections):
    """Serve connections one after another as an LMTP server that does
    not announce CHUNKING and rejects BDAT."""
    for _ in range(connections):
        conn, _ = listener.accept()
        with conn, conn.makefile("rb") as reader:
            conn.sendall(b"220 mock LMTP\r\n")
            for line in reader:
                verb = line[:4].upper()
                if verb == b"LHLO":
                    conn.sendall(b"250-mock\r\n250-PIPELINING\r\n"
                                 b"250 ENHANCEDSTATUSCODES\r\n")
                elif verb in (b"MAIL", b"RCPT"):
                    conn.sendall(b"250 2.0.0 ok\r\n")
                elif verb == b"DATA":
                    conn.sendall(b"354 go on\r\n")
                    for text in reader:
                        if text == b".\r\n":
                            break
                    conn.sendall(b"250 2.0.0 delivered\r\n")
                elif verb == b"QUIT":
                    conn.sendall(b"221 2.0.0 bye\r\n")
                    break
                else:
                    conn.sendall(b"500 5.5.1 not here\r\n")


@unittest.skipUnless(os.access(FLOOR, os.X_OK), "bench/floor is not built")
class FloorTest(unittest.TestCase):
    def test_writes_each_message_once(self):
        folder = make_folder("bench-floor")
        result = subprocess.run([FLOOR, "--writers", "2", "--messages", "3",
                                 "--size", "4K", os.path.join(folder, "m")],
                                stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True,
                                timeout=60, check=False)
        self.assertEqual(result.returncode, 0, result.stderr)
        fields = summary(result.stdout)
        self.assertEqual(fields["delivered"], 6)
        self.assertEqual(fields["failed"], 0)
        for writer in range(2):
            maildir = os.path.join(folder, "m", "user%d" % writer)
            self.assertEqual(os.listdir(os.path.join(maildir, "tmp")), [])
            stored = maildir_messages(maildir)
            self.assertEqual(len(stored), 3)
            for name, message in stored.items():
                self.assertRegex(name, r"^\d+\.M\d{6}P\d+Q\d+\..+,S=%d$"
                                 % len(message))
                self.assertTrue(message.startswith(b"Return-Path: <"))
                self.assertNotIn(b"\r", message)

    def test_recipients_each_own_maildir(self):
        """With --recipients 3, writer W writes each message into
        userW*3/ to userW*3+2/, as loadgen's connection W addresses them."""
        folder = make_folder("bench-floor-recipients")
        result = subprocess.run([FLOOR, "--writers", "2", "--messages", "2",
                                 "--recipients", "3",
                                 os.path.join(folder, "m")],
                                stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True,
                                timeout=60, check=False)
        self.assertEqual(result.returncode, 0, result.stderr)
        fields = summary(result.stdout)
        self.assertEqual(fields["delivered"], 12)
        self.assertEqual(fields["failed"], 0)
        self.assertEqual(sorted(os.listdir(os.path.join(folder, "m"))),
                         ["user%d" % i for i in range(6)])
        for user in range(6):
            maildir = os.path.join(folder, "m", "user%d" % user)
            self.assertEqual(len(maildir_messages(maildir)), 2, maildir)
            self.assertEqual(os.listdir(os.path.join(maildir, "tmp")), [])

    def test_new_not_a_folder_is_failure(self):
        folder = make_folder("bench-floor-no-new")
        maildir = os.path.join(folder, "m", "user0")
        os.makedirs(os.path.join(maildir, "tmp"))
        # A regular file where the floor needs its new/ folder.
        with open(os.path.join(maildir, "new"), "w", encoding="ascii"):
            pass
        result = subprocess.run([FLOOR, "--messages", "2",
                                 os.path.join(folder, "m")],
                                stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True,
                                timeout=60, check=False)
        self.assertEqual(result.returncode, 1)
        fields = summary(result.stdout)
        self.assertEqual(fields["delivered"], 0)
        self.assertEqual(fields["failed"], 2)
        self.assertIn("open new/", result.stderr)

if __name__ == "__main__":
    unittest.main()
