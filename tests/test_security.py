"""Privileges and planted links, over real socket activation.

Run as root, lmtpd delivers only as the uid and gid that a record names,
or as the --user it switched to.  Links planted at a mailbox, at a
Maildir's tmp/ or new/ or at an mbox's dotlock are rejected with
451 4.3.0, logged, and never followed.
"""

import os
import stat
import subprocess
import unittest

from harness import (HOSTNAME, LMTPD, TEST_USER, WORK, Dialogue, LmtpdServer,
                     delivery_user, give_to_delivery_user, maildir_messages,
                     strip_header_block)

BODY = b"Subject: planted\r\n\r\nbody\r\n"
STORED_BODY = b"Subject: planted\n\nbody\n"
LOCAL_ERROR = "451 4.3.0 <%s> local error"


def send_message(test, server, recipients):
    """Deliver BODY to each recipient, check every reply up to the data,
    and return the replies after it."""
    with server.connect_raw() as sock:
        dialogue = Dialogue(sock)
        test.assertRegex(dialogue.reply()[0], "^220 " + HOSTNAME)
        dialogue.send(b"LHLO client.example\r\nMAIL FROM:<s@example.org>\r\n"
                      + b"".join(b"RCPT TO:<%s>\r\n" % r.encode()
                                 for r in recipients)
                      + b"DATA\r\n")
        test.assertRegex(dialogue.reply()[-1], "^250 SIZE")
        test.assertEqual(dialogue.reply(),
                         ["250 2.1.0 <s@example.org> sender ok"])
        for recipient in recipients:
            test.assertEqual(dialogue.reply(),
                             ["250 2.1.5 <%s> recipient ok" % recipient])
        test.assertRegex(dialogue.reply()[0], "^354 ")
        dialogue.send(BODY + b".\r\nQUIT\r\n")
        replies = [dialogue.reply()[0] for _ in recipients]
        test.assertRegex(dialogue.reply()[0], "^221 ")
        return replies


@unittest.skipUnless(os.geteuid() == 0, "switching users needs root")
class PrivilegeTest(unittest.TestCase):
    """lmtpd started as root, as the variant unit runs it."""

    @classmethod
    def setUpClass(cls):
        cls.uid, cls.gid = delivery_user()
        owner = "uid=%d gid=%d" % (cls.uid, cls.gid)
        cls.users = {
            "owned@example.com": "owned/ " + owner,
            "owned-mbox@example.com": "owned.mbox " + owner,
            "no-ids@example.com": "no-ids/",
            "uid-only@example.com": "uid-only/ uid=%d" % cls.uid,
            "root@example.com": "root/ uid=0 gid=0",
        }

    def start(self, name, identity="none", prefix=None):
        """Start lmtpd with self.users, whose values are a mailbox name
        and the record's other fields, owner included."""
        mail = os.path.join(WORK, name, "mail")
        records = {}
        for address, value in self.users.items():
            box, _, fields = value.partition(" ")
            records[address] = ("mailbox=%s %s"
                                % (os.path.join(mail, box), fields)).strip()
        server = LmtpdServer(name, records, identity=identity,
                             command_prefix=prefix)
        self.addCleanup(server.stop)
        return server

    def test_delivers_as_record_owner(self):
        # umask 000 before lmtpd starts: lmtpd sets its own.
        server = self.start("privilege-records",
                            prefix=["sh", "-c", 'umask 000; exec "$@"', "sh"])
        replies = send_message(self, server, ["owned@example.com",
                                         "owned-mbox@example.com"])
        self.assertEqual(replies, [
            "250 2.0.0 <owned@example.com> delivered",
            "250 2.0.0 <owned-mbox@example.com> delivered"])

        messages = maildir_messages(server.path("owned/"))
        self.assertEqual(len(messages), 1)
        name, message = messages.popitem()
        self.assertEqual(strip_header_block(message)[1], STORED_BODY)
        for path, mode in [(server.path("owned"), 0o700),
                           (server.path("owned/tmp"), 0o700),
                           (server.path("owned/new"), 0o700),
                           (server.path("owned/cur"), 0o700),
                           (server.path("owned/new/" + name), 0o600),
                           (server.path("owned.mbox"), 0o600)]:
            st = os.lstat(path)
            self.assertEqual(st.st_uid, self.uid, path)
            self.assertEqual(st.st_gid, self.gid, path)
            self.assertEqual(stat.S_IMODE(st.st_mode), mode, path)

    def test_rejects_records_without_owner(self):
        server = self.start("privilege-missing")
        replies = send_message(self, server, ["no-ids@example.com",
                                         "uid-only@example.com",
                                         "root@example.com",
                                         "owned@example.com"])
        self.assertEqual(replies, [
            LOCAL_ERROR % "no-ids@example.com",
            LOCAL_ERROR % "uid-only@example.com",
            LOCAL_ERROR % "root@example.com",
            "250 2.0.0 <owned@example.com> delivered"])
        for box in ("no-ids", "uid-only", "root"):
            self.assertFalse(os.path.exists(server.path(box)), box)
        log = server.log_text()
        self.assertRegex(log, r"to=<no-ids@example\.com> .*reply=451 "
                         r"status=4\.3\.0 .*lmtpd runs as root and the record of \S+ lacks "
                         r"uid= or gid=")
        self.assertRegex(log, r"to=<uid-only@example\.com> .*reply=451 "
                         r"status=4\.3\.0 .*lacks uid= or gid=")
        self.assertRegex(log, r"to=<root@example\.com> .*reply=451 "
                         r"status=4\.3\.0 .*names uid 0, and no delivery runs as root")

    def test_user_option_switches_process(self):
        self.users = dict(self.users)
        self.users["no-ids@example.com"] = "no-ids.mbox"
        server = self.start("privilege-user", identity="user")
        replies = send_message(self, server, ["no-ids@example.com",
                                        "root@example.com"])
        self.assertEqual(replies, [
            "250 2.0.0 <no-ids@example.com> delivered",
            LOCAL_ERROR % "root@example.com"])
        st = os.stat(server.path("no-ids.mbox"))
        self.assertEqual(st.st_uid, self.uid)
        self.assertIn("running as user %s (uid %d, gid %d)"
                      % (TEST_USER, self.uid, self.gid), server.log_text())
        self.assertRegex(server.log_text(),
                         r"to=<root@example\.com> .*record of \S+ names uid "
                         r"0 gid 0, but lmtpd runs as uid %d" % self.uid)

    def test_user_option_errors(self):
        as_test_user = ["setpriv", "--reuid=%d" % self.uid,
                        "--regid=%d" % self.gid, "--clear-groups"]
        cases = [
            ([], ["--user", "lmtpd-no-such-user"], 67, "no such user"),
            ([], ["--user", "root"], 67, "uid 0 is not allowed"),
            (as_test_user, ["--user", "root"], 67,
             "only root can switch users"),
            # Already the user: the session runs, on an empty stdin.
            (as_test_user, ["--user", TEST_USER], 0,
             "client closed the connection"),
        ]
        for prefix, args, status, message in cases:
            with self.subTest(prefix=prefix, args=args):
                result = subprocess.run(
                    prefix + [LMTPD, "--log", "stderr"] + args, input=b"",
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                    timeout=20, check=False)
                self.assertEqual(result.returncode, status, result.stderr)
                self.assertIn(message.encode(), result.stderr)
                if status != 0:
                    self.assertEqual(result.stdout, b"")


class PlantedLinkTest(unittest.TestCase):
    """Each planted link gets 451 4.3.0 and a log line; its target stays
    as it was."""

    @classmethod
    def setUpClass(cls):
        users = {"box%d@example.com" % i: name for i, name in enumerate(
            ["maildir/", "mbox", "maildir-tmp/", "maildir-new/",
             "locked.mbox", "linked.mbox", "hard-lock.mbox", "good/"])}
        cls.server = LmtpdServer("planted-links", users)
        cls.addresses = {name: address for address, name in users.items()}

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def setUp(self):
        self.server.reset_mail()
        self.target = self.server.path("target")
        os.makedirs(os.path.join(self.target, "tmp"))
        os.makedirs(os.path.join(self.target, "new"))
        os.makedirs(os.path.join(self.target, "cur"))
        with open(self.server.path("target.mbox"), "wb") as f:
            f.write(b"keep\n")
        give_to_delivery_user(self.server.mail)

    def check_rejected(self, name, detail):
        address = self.addresses[name]
        replies = send_message(self, self.server, [address,
                                             self.addresses["good/"]])
        self.assertEqual(replies, [
            LOCAL_ERROR % address,
            "250 2.0.0 <%s> delivered" % self.addresses["good/"]])
        self.assertRegex(self.server.log_text(),
                         r"to=<%s> client=local mailbox=\S+ size=\d+ "
                         r"reply=451 status=4\.3\.0 .*result=\"local error\" "
                         r"detail=\".*%s" % (address, detail))
        self.assertEqual(os.listdir(os.path.join(self.target, "tmp")), [])
        self.assertEqual(os.listdir(os.path.join(self.target, "new")), [])
        with open(self.server.path("target.mbox"), "rb") as f:
            self.assertEqual(f.read(), b"keep\n")

    def test_symlink_at_maildir(self):
        os.symlink(self.target, self.server.path("maildir"))
        self.check_rejected("maildir/", r"maildir/: symbolic link, not "
                            r"followed")

    def test_symlink_at_maildir_tmp(self):
        os.makedirs(self.server.path("maildir-tmp/new"))
        os.symlink(os.path.join(self.target, "tmp"),
                   self.server.path("maildir-tmp/tmp"))
        give_to_delivery_user(self.server.mail)
        self.check_rejected("maildir-tmp/", r"maildir-tmp/tmp: symbolic "
                            r"link, not followed")

    def test_symlink_at_maildir_new(self):
        os.makedirs(self.server.path("maildir-new/tmp"))
        os.symlink(os.path.join(self.target, "new"),
                   self.server.path("maildir-new/new"))
        give_to_delivery_user(self.server.mail)
        self.check_rejected("maildir-new/", r"maildir-new/new: symbolic "
                            r"link, not followed")
        self.assertEqual(os.listdir(self.server.path("maildir-new/tmp")), [])

    def test_symlink_at_mbox(self):
        os.symlink(self.server.path("target.mbox"), self.server.path("mbox"))
        self.check_rejected("mbox", r"mbox \S+/mbox: symbolic link, not "
                            r"followed")

    def test_hard_link_at_mbox(self):
        os.link(self.server.path("target.mbox"),
                self.server.path("linked.mbox"))
        self.check_rejected("linked.mbox", r"linked\.mbox: 2 hard links, "
                            r"expected 1")

    def test_symlink_at_dotlock(self):
        with open(self.server.path("locked.mbox"), "wb") as f:
            f.write(b"old\n")
        give_to_delivery_user(self.server.mail)
        os.symlink(self.server.path("target.mbox"),
                   self.server.path("locked.mbox.lock"))
        self.check_rejected("locked.mbox", r"locked\.mbox\.lock: symbolic "
                            r"link, not followed")
        with open(self.server.path("locked.mbox"), "rb") as f:
            self.assertEqual(f.read(), b"old\n")

    def test_hard_link_at_dotlock(self):
        with open(self.server.path("hard-lock.mbox"), "wb") as f:
            f.write(b"old\n")
        give_to_delivery_user(self.server.mail)
        os.link(self.server.path("target.mbox"),
                self.server.path("hard-lock.mbox.lock"))
        self.check_rejected("hard-lock.mbox", r"hard-lock\.mbox\.lock: not a "
                            r"regular file with one link \(2 links\)")
        with open(self.server.path("hard-lock.mbox"), "rb") as f:
            self.assertEqual(f.read(), b"old\n")


if __name__ == "__main__":
    unittest.main()
