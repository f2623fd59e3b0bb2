"""tools/lmtpd-transport: a Postfix transport table from the user map.

Runs the script on map texts and compares its whole output, its
messages and its exit status.  Then the real postmap builds a hash:
table from the output, and lmtpd and the script must agree on which
host= values are valid.
"""

import os
import shutil
import subprocess
import unittest

from harness import LMTPD, TOP, build_map, make_folder

TOOL = os.path.join(TOP, "tools", "lmtpd-transport")
HEADER = ["# Postfix transport table made by lmtpd-transport; build it",
          "# with postmap.  Edit the lmtpd user map instead of this file."]

MAP = """\
# users of two stores
alice@example.com mailbox=/m/alice/ host=store1.example.com
  carol@example.com\tmailbox=/m/carol/ quota=1G\thost=store2.example.com
bob@example.com mailbox=/m/bob
Dave+Lists@example.com mailbox=/m/dave/ host=Store2.Example.com
@example.org mailbox=/m/org/ host=store2.example.com

\t# indented comment
"""

# (name, input, arguments, output lines after the header or None when
#  nothing may be written, text expected in stderr, exit status)
CASES = [
    ("two stores", MAP, [],
     ["alice@example.com\tlmtp:inet:[store1.example.com]:24",
      "carol@example.com\tlmtp:inet:[store2.example.com]:24",
      "Dave+Lists@example.com\tlmtp:inet:[Store2.Example.com]:24",
      "example.org\tlmtp:inet:[store2.example.com]:24"], "", 0),
    ("port option", "a@x.example mailbox=/m/a host=s1\n", ["-p", "2424"],
     ["a@x.example\tlmtp:inet:[s1]:2424"], "", 0),
    ("no host records", "a@x.example mailbox=/m/a\n# c\n\n", [], [], "", 0),
    ("ipv4 host", "a@x.example mailbox=/m/a host=192.0.2.10\n", [],
     ["a@x.example\tlmtp:inet:[192.0.2.10]:24"], "", 0),
    ("key without domain",
     "postmaster mailbox=/m/p host=s1\na@x.example mailbox=/m/a host=s1\n",
     [], ["a@x.example\tlmtp:inet:[s1]:24"],
     'stdin:1: warning: key "postmaster" has no domain, skipped', 0),
    ("same host twice",
     "a@x.example mailbox=/m/a host=s1\nA@X.example mailbox=/m/a host=S1\n",
     [], ["a@x.example\tlmtp:inet:[s1]:24"], "", 0),
    ("keys differ in case",
     "a@x.example mailbox=/m/a host=s1\nA@x.example mailbox=/m/a host=s2\n",
     [], None, 'stdin:2: key "A@x.example" sends mail to '
     'lmtp:inet:[s2]:24, but stdin:1 sends "a@x.example" to '
     'lmtp:inet:[s1]:24', 1),
    ("invalid host", "a@x.example mailbox=/m/a\nb@x.example mailbox=/m/b "
     "host=store_2\n", [], None,
     'stdin:2: field "host": invalid host name "store_2"', 1),
    ("trailing dot", "a@x.example mailbox=/m/a host=s1.example.\n", [], None,
     'stdin:1: field "host": invalid host name "s1.example."', 1),
    ("duplicate host", "a@x.example mailbox=/m/a host=s1 host=s2\n", [],
     None, 'stdin:1: field "host": duplicate', 1),
    ("empty host", "a@x.example mailbox=/m/a host=\n", [], None,
     'stdin:1: field "host": invalid host name ""', 1),
    ("empty domain", "a@ mailbox=/m/a host=s1\n", [], None,
     'stdin:1: key "a@": invalid, expected user@domain or @domain', 1),
    ("bare at", "@ mailbox=/m/a host=s1\n", [], None,
     'stdin:1: key "@": invalid, expected user@domain or @domain', 1),
    ("port zero", "", ["-p", "0"], None,
     'invalid port "0": expected 1 to 65535', 64),
    ("port too big", "", ["-p", "65536"], None,
     'invalid port "65536": expected 1 to 65535', 64),
    ("port not a number", "", ["-p", "lmtp"], None,
     'invalid port "lmtp": expected 1 to 65535', 64),
    ("unknown option", "", ["-x"], None, "usage: lmtpd-transport", 64),
]


def run_tool(arguments, text=""):
    return subprocess.run([TOOL] + arguments, input=text,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, timeout=20, check=False)


class TransportToolTest(unittest.TestCase):
    def test_cases(self):
        for name, text, arguments, lines, message, status in CASES:
            with self.subTest(case=name):
                result = run_tool(arguments, text)
                self.assertEqual(result.returncode, status, result.stderr)
                if lines is None:
                    self.assertEqual(result.stdout, "")
                else:
                    self.assertEqual(result.stdout.splitlines(),
                                     HEADER + lines)
                if message:
                    self.assertIn(message, result.stderr)
                else:
                    self.assertEqual(result.stderr, "")

    def test_files_named_in_messages(self):
        folder = make_folder("transport-tool-files")
        good = os.path.join(folder, "good.txt")
        bad = os.path.join(folder, "bad.txt")
        with open(good, "w") as f:
            f.write("a@x.example mailbox=/m/a host=s1\n")
        with open(bad, "w") as f:
            f.write("# first line\nb@x.example mailbox=/m/b host=-s2\n")
        result = run_tool([good, bad])
        self.assertEqual(result.returncode, 1)
        self.assertEqual(result.stdout, "")
        self.assertEqual(result.stderr, 'lmtpd-transport: %s:2: field '
                         '"host": invalid host name "-s2"\n' % bad)

        result = run_tool([good, "-"], "c@x.example mailbox=/m/c host=s3\n")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(result.stdout.splitlines(), HEADER + [
            "a@x.example\tlmtp:inet:[s1]:24",
            "c@x.example\tlmtp:inet:[s3]:24"])

    def test_help(self):
        result = run_tool(["-h"])
        self.assertEqual(result.returncode, 0)
        self.assertIn("usage: lmtpd-transport [-p port] [file ...]",
                      result.stdout)
        self.assertIn("postmap hash:FILE", result.stdout)

    @unittest.skipIf(shutil.which("postmap") is None, "postmap not found")
    def test_postmap_reads_output(self):
        """postmap builds a hash: table from the output without warnings,
        and each key finds its next hop.  postmap -c reads a main.cf of
        the test's own, never the system's."""
        folder = make_folder("transport-tool-postmap")
        with open(os.path.join(folder, "main.cf"), "w") as f:
            f.write("compatibility_level = 3.6\n")

        table = os.path.join(folder, "transport")
        with open(table, "w") as f:
            f.write(run_tool([], MAP).stdout)
        result = subprocess.run(["postmap", "-c", folder, "hash:" + table],
                                stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True,
                                timeout=30, check=False)
        self.assertEqual(result.returncode, 0, result.stdout)
        self.assertEqual(result.stdout, "")

        queries = {
            "alice@example.com": "lmtp:inet:[store1.example.com]:24",
            "Carol@Example.COM": "lmtp:inet:[store2.example.com]:24",
            "dave+lists@example.com": "lmtp:inet:[Store2.Example.com]:24",
            "example.org": "lmtp:inet:[store2.example.com]:24",
        }
        for key, nexthop in queries.items():
            with self.subTest(key=key):
                result = subprocess.run(
                    ["postmap", "-c", folder, "-q", key, "hash:" + table],
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                    text=True, timeout=30, check=False)
                self.assertEqual(result.stdout, nexthop + "\n",
                                 result.stderr)

        # A record without host= gets no line.
        result = subprocess.run(
            ["postmap", "-c", folder, "-q", "bob@example.com",
             "hash:" + table], stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, timeout=30, check=False)
        self.assertEqual(result.returncode, 1)
        self.assertEqual(result.stdout, "")


class HostRulesTest(unittest.TestCase):
    """The script and lmtpd accept the same host= values: lmtpd defers a
    recipient with a valid foreign host with 450 4.4.0 and one with an
    invalid host with 451 4.3.0."""

    VALID = ["s1", "store2.example.com", "A-1.b-2", "192.0.2.10",
             "x" * 63 + ".example", ("a" * 63 + ".") * 3 + "a" * 61]
    INVALID = ["", "-s1", "s1-", "s1.", ".s1", "s..1", "s_1", "s1:24",
               "[192.0.2.10]", "x" * 64 + ".example",
               ("a" * 63 + ".") * 3 + "a" * 62, "b\u00fccher.example"]

    def lmtpd_reply(self, cdb):
        """Return lmtpd's reply to RCPT for a@x.example, from a session
        on a pipe."""
        result = subprocess.run(
            [LMTPD, "--map", cdb, "--hostname", "lmtpd.test.example",
             "--log", "stderr"],
            input=b"LHLO t\r\nMAIL FROM:<s@x.example>\r\n"
                  b"RCPT TO:<a@x.example>\r\nQUIT\r\n",
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=20,
            check=False)
        return result.stdout.decode("utf-8", "replace").splitlines()[-2]

    def test_same_hosts_valid(self):
        folder = make_folder("transport-tool-hosts")
        for host in self.VALID + self.INVALID:
            with self.subTest(host=host):
                valid = host in self.VALID
                record = "a@x.example mailbox=/m/a host=" + host
                cdb = build_map(folder, [record])
                result = run_tool([], record + "\n")
                self.assertEqual(result.returncode, 0 if valid else 1,
                                 result.stderr)
                reply = self.lmtpd_reply(cdb)
                if valid:
                    self.assertEqual(reply, "450 4.4.0 <a@x.example> "
                                     "mailbox is on " + host)
                else:
                    self.assertEqual(reply, "451 4.3.0 <a@x.example> user "
                                     "map unavailable, try again later")


if __name__ == "__main__":
    unittest.main()
