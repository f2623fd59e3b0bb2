"""The README's first command: `make demo` delivers through real socket
activation and swaks, also when it runs as root."""

import os
import re
import subprocess
import unittest

from harness import LMTPD, TOP, WORK, maildir_messages


class DemoTest(unittest.TestCase):

    def test_demo_delivers(self):
        demo = os.path.join(WORK, "demo")
        env = dict(os.environ, DEMO_DIR=demo, LMTPD=LMTPD)
        result = subprocess.run(["sh", os.path.join(TOP, "tests", "lib",
                                                    "demo")],
                                cwd=TOP, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, timeout=120,
                                check=False)
        output = result.stdout.decode("utf-8", "replace")
        self.assertEqual(result.returncode, 0, output)
        replies = re.findall(r"^<\*?\*?-? +(\d{3} .*)$", output, re.M)
        self.assertIn("550 5.1.1 <nobody@example.com> no such user", replies)
        self.assertIn("250 2.0.0 <alice@example.com> delivered", replies)
        self.assertIn("250 2.0.0 <bob@example.com> delivered", replies)

        stored = list(maildir_messages(os.path.join(
            demo, "mail", "example.com", "alice")).values())
        self.assertEqual(len(stored), 1)
        self.assertIn(b"\nSubject: lmtpd demo\n", stored[0])
        self.assertTrue(stored[0].startswith(
            b"Return-Path: <sender@example.net>\nDelivered-To: "
            b"alice@example.com\n"))
        with open(os.path.join(demo, "mail", "example.com", "bob.mbox"),
                  "rb") as f:
            mbox = f.read()
        self.assertTrue(mbox.startswith(b"From sender@example.net "))
        self.assertEqual(mbox.count(b"\nFrom "), 0)
        self.assertIn(b"\n\nDelivered by lmtpd.\n", mbox)
        # A blank line ends each message in an mbox.
        self.assertTrue(mbox.endswith(b"\n\n"))


if __name__ == "__main__":
    unittest.main()
