"""lmtpd --check-map and --check-map-text from the command line: the
exact report lines, the summary and the exit status.

Run: TESTS=mapcheck python3 tests/run.py
"""

import os
import subprocess
import unittest

from harness import LMTPD, build_map, make_folder

GOOD = [
    "# Maildir, mbox and a catch-all.",
    "alice@example.com mailbox={mail}/alice/ quota=1G messages=50000",
    "bob@example.com   mailbox={mail}/bob",
    "",
    "@example.org      mailbox={mail}/catchall/",
]
BAD = [
    "alice@example.com mailbox={mail}/alice/",
    "bob@example.com mailbox={mail}/bob quota=12X",
    "carol@Example.com mailbox={mail}/carol/",
    "dave@example.com mailbox={folder}/missing/dave/",
    "alice@example.com mailbox={mail}/alice2/",
]
# A map shared by two stores, checked on store1.
SHARED = [
    "alice@example.com mailbox={mail}/alice/ host=store1.example.com",
    "bob@example.com mailbox={folder}/store2/bob/ host=store2.example.com",
    "carol@example.com mailbox={folder}/store1/carol/ host=store1.example.com",
]


def run_lmtpd(*args):
    return subprocess.run([LMTPD] + list(args), stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, timeout=20, check=False)


class CheckMapTest(unittest.TestCase):
    def make_map(self, name, lines):
        """Write NAME/users.txt and NAME/users.cdb; return both paths."""
        folder = make_folder("mapcheck-" + name)
        mail = os.path.join(folder, "mail")
        os.makedirs(mail)
        cdb = build_map(folder, [line.format(mail=mail, folder=folder)
                                 for line in lines])
        self.folder = folder
        self.mail = mail
        return os.path.join(folder, "users.txt"), cdb

    def test_good_map(self):
        text, cdb = self.make_map("good", GOOD)
        result = run_lmtpd("--check-map", cdb, "--check-map-text", text)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(result.stdout,
                         "%s: 3 records, all valid\n"
                         "%s: 3 records, all valid\n" % (cdb, text))
        self.assertEqual(result.stderr, "")

    def test_bad_text_map(self):
        text, cdb = self.make_map("bad-text", BAD)
        result = run_lmtpd("--check-map-text", text)
        self.assertEqual(result.returncode, 65, result.stderr)
        key = '%s:%d: key "%s": '
        self.assertEqual(result.stdout.splitlines(), [
            key % (text, 2, "bob@example.com")
            + 'field "quota": invalid size "12X"',
            key % (text, 3, "carol@Example.com")
            + "domain not in lower case, lookups never match it",
            key % (text, 4, "dave@example.com")
            + "mailbox %s/missing/dave/: parent folder %s/missing does not "
            "exist" % (self.folder, self.folder),
            key % (text, 5, "alice@example.com")
            + "duplicate of line 1, lookups use the first record only",
            "%s: 5 records, 4 invalid" % text,
        ])

    def test_bad_cdb_map(self):
        text, cdb = self.make_map("bad-cdb", BAD)
        result = run_lmtpd("--check-map", cdb)
        self.assertEqual(result.returncode, 65, result.stderr)
        key = '%s: key "%s": '
        self.assertEqual(result.stdout.splitlines(), [
            key % (cdb, "bob@example.com")
            + 'field "quota": invalid size "12X"',
            key % (cdb, "carol@Example.com")
            + "domain not in lower case, lookups never match it",
            key % (cdb, "dave@example.com")
            + "mailbox %s/missing/dave/: parent folder %s/missing does not "
            "exist" % (self.folder, self.folder),
            key % (cdb, "alice@example.com")
            + "duplicate of record 1, lookups use the first record only",
            "%s: 5 records, 4 invalid" % cdb,
        ])

    def test_other_hosts_folders_skipped(self):
        """The folder of a mailbox on another host is not looked for.
        --map-host names this host and defaults to --hostname."""
        text, cdb = self.make_map("shared", SHARED)
        carol = ('%s:3: key "carol@example.com": mailbox %s/store1/carol/: '
                 'parent folder %s/store1 does not exist'
                 % (text, self.folder, self.folder))
        for args in (["--map-host", "store1.example.com"],
                     ["--hostname", "Store1.Example.com"]):
            with self.subTest(args=args):
                result = run_lmtpd("--check-map-text", text, *args)
                self.assertEqual(result.returncode, 65, result.stderr)
                self.assertEqual(result.stdout.splitlines(), [
                    carol, "%s: 3 records, 1 invalid" % text])

        result = run_lmtpd("--check-map", cdb, "--map-host",
                           "store2.example.com")
        self.assertEqual(result.returncode, 65, result.stderr)
        bob = ('%s: key "bob@example.com": mailbox %s/store2/bob/: parent '
               'folder %s/store2 does not exist'
               % (cdb, self.folder, self.folder))
        self.assertEqual(result.stdout.splitlines(), [
            bob, "%s: 3 records, 1 invalid" % cdb])

    def test_unreadable_maps(self):
        text, cdb = self.make_map("unreadable", GOOD)
        missing = os.path.join(self.folder, "none.cdb")
        result = run_lmtpd("--check-map", missing)
        self.assertEqual(result.returncode, 66)
        self.assertEqual(result.stdout, "")
        self.assertEqual(result.stderr, "lmtpd: cannot read map %s: No such "
                         "file or directory\n" % missing)

        result = run_lmtpd("--check-map", text)
        self.assertEqual(result.returncode, 66)
        self.assertEqual(result.stderr, "lmtpd: cannot read map %s: not a "
                         "cdb file; check a text map with --check-map-text, "
                         "and build the cdb with \"cdb -c -m MAP.cdb %s\"\n"
                         % (text, text))

        # A bad record in one file and an unreadable other: 66 wins.
        bad_text, _ = self.make_map("unreadable-bad", BAD)
        result = run_lmtpd("--check-map", missing, "--check-map-text",
                           bad_text)
        self.assertEqual(result.returncode, 66)
        self.assertTrue(result.stdout.endswith(
            "%s: 5 records, 4 invalid\n" % bad_text), result.stdout)


if __name__ == "__main__":
    unittest.main()
