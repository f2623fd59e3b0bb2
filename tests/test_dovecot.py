"""Maildir++ quotas shared with a real Dovecot.

lmtpd and Dovecot's doveadm (Debian package dovecot-core) work on the
same Maildirs in a temporary folder under /tmp, which Dovecot's user can
reach whatever the permissions above the checkout.  Dovecot runs no
service and
listens nowhere: a private configuration with the quota plugin and the
"maildir" backend is read by each doveadm command, which finds the user
from USER and HOME.  The tests check that doveadm reports the usage
that lmtpd recorded in maildirsize without recalculating it, and that
lmtpd uses a maildirsize that Dovecot wrote, negative lines included.

Dovecot (2.3.19 in Debian 12) refuses mail access as root.  So when the
tests run as root, the Maildirs are given to user nobody before each
doveadm command, and lmtpd, as root, can still write them.  Without
doveadm the suite is skipped.

Run: TESTS=dovecot python3 tests/run.py
"""

import os
import pwd
import re
import shutil
import subprocess
import tempfile
import unittest

from harness import HOSTNAME, Dialogue, LmtpdServer

NAME = "dovecot"
LIMITS_LINE = "10240S,20C\n"
SENDER = "sender@example.org"

DOVECOT_CONF = """\
base_dir = {run}
state_dir = {run}
log_path = /dev/stderr
protocols =
listen =
ssl = no
mail_location = maildir:{mail}/%u
mail_plugins = quota
mail_uid = {uid}
mail_gid = {gid}
first_valid_uid = 0
first_valid_gid = 0
plugin {{
  quota = maildir:User quota
  quota_rule = *:storage=10K:messages=20
}}
"""


def missing_requirement():
    """Return why the suite cannot run here, or None."""
    if shutil.which("doveadm") is None:
        return "doveadm not found in PATH: install dovecot-core"
    return None


def mail_owner():
    """Return the user and group Dovecot accesses the mail as: nobody
    when the tests run as root, which Dovecot refuses, else ourselves."""
    if os.geteuid() == 0:
        entry = pwd.getpwnam("nobody")
    else:
        entry = pwd.getpwuid(os.geteuid())
    return entry.pw_uid, entry.pw_gid


def maildir_usage(path):
    """Return (bytes, messages) from the ",S=" sizes of the message files
    in new/ and cur/ of the Maildir and of each of its folders."""
    folders = [path] + [os.path.join(path, n) for n in os.listdir(path)
                        if n.startswith(".") and n not in (".", "..")
                        and os.path.isdir(os.path.join(path, n))]
    total = count = 0
    for folder in folders:
        for sub in ("new", "cur"):
            directory = os.path.join(folder, sub)
            if not os.path.isdir(directory):
                continue
            for name in os.listdir(directory):
                match = re.search(r",S=([0-9]+)(?:[:,]|$)", name)
                if match is None:
                    raise AssertionError("no size in " + name)
                total += int(match.group(1))
                count += 1
    return total, count


def sum_maildirsize(text):
    """Return (bytes, messages) that the lines of counts add up to."""
    lines = text.splitlines()
    total = count = 0
    for line in lines[1:]:
        size, number = line.split()
        total += int(size)
        count += int(number)
    return total, count


def message(subject, size):
    """Return a message of about size bytes, with LF line ends."""
    text = "Subject: %s\n\n" % subject
    while len(text) < size:
        text += "y" * 60 + "\n"
    return text.encode()


class DovecotTest(unittest.TestCase):
    server = None
    top = None

    @classmethod
    def setUpClass(cls):
        reason = missing_requirement()
        if reason is not None:
            raise unittest.SkipTest(reason)
        cls.top = tempfile.mkdtemp(prefix="lmtpd-dovecot.")
        try:
            cls.start(cls.top)
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def start(cls, top):
        """Start lmtpd and write Dovecot's configuration, both in top."""
        os.chmod(top, 0o755)
        cls.mail = os.path.join(top, "mail")
        cls.uid, cls.gid = mail_owner()
        # Run as root, lmtpd delivers as the user that Dovecot runs as.
        owner = (" uid=%d gid=%d" % (cls.uid, cls.gid)
                 if os.geteuid() == 0 else "")
        users = {
            "alice@example.com": "mailbox=%s/alice/ quota=10K messages=20%s"
                                 % (cls.mail, owner),
            "bob@example.com": "mailbox=%s/bob/ quota=10K messages=20%s"
                               % (cls.mail, owner),
        }
        cls.server = LmtpdServer(NAME, users, extra_args=["--create-folders"])
        run_dir = os.path.join(top, "run")
        os.makedirs(run_dir)
        cls.config = os.path.join(top, "dovecot.conf")
        with open(cls.config, "w", encoding="ascii") as f:
            f.write(DOVECOT_CONF.format(run=run_dir, mail=cls.mail,
                                        uid=cls.uid, gid=cls.gid))

    @classmethod
    def tearDownClass(cls):
        if cls.server is not None:
            cls.server.stop()
            cls.server = None
        if cls.top is not None:
            shutil.rmtree(cls.top)
            cls.top = None

    def setUp(self):
        shutil.rmtree(self.mail, ignore_errors=True)
        os.makedirs(self.mail)
        self.give_to_dovecot()

    def path(self, box):
        return os.path.join(self.mail, box)

    def give_to_dovecot(self):
        """Make the mail folder and everything in it Dovecot's user's."""
        for top, folders, files in os.walk(self.mail):
            os.chown(top, self.uid, self.gid, follow_symlinks=False)
            for name in folders + files:
                os.chown(os.path.join(top, name), self.uid, self.gid,
                         follow_symlinks=False)

    def doveadm(self, user, *args, data=None):
        """Run doveadm for user with the private configuration and
        return its output."""
        self.give_to_dovecot()
        env = dict(os.environ, USER=user, HOME=self.path(user))
        result = subprocess.run(["doveadm", "-c", self.config] + list(args),
                                input=data, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env=env, timeout=60,
                                check=False)
        self.assertEqual(result.returncode, 0,
                         "doveadm %s failed:\n%s" % (" ".join(args),
                                                     result.stderr.decode()))
        return result.stdout.decode()

    def quota_get(self, user):
        """Return {"STORAGE": (value, limit), "MESSAGE": (value, limit)}
        from doveadm quota get; STORAGE is in KiB."""
        output = self.doveadm(user, "-f", "tab", "quota", "get")
        lines = output.splitlines()
        self.assertEqual(lines[0].split("\t")[:4],
                         ["Quota name", "Type", "Value", "Limit"], output)
        values = {}
        for line in lines[1:]:
            fields = line.split("\t")
            values[fields[1]] = (int(fields[2]), int(fields[3]))
        return values

    def deliver(self, recipient, body, size=None):
        """Send one message over LMTP and return the reply after the
        data, or the reply to RCPT when RCPT is rejected."""
        mail = "MAIL FROM:<%s>" % SENDER
        if size is not None:
            mail += " SIZE=%d" % size
        with self.server.connect_raw() as sock:
            dialogue = Dialogue(sock)
            self.assertRegex(dialogue.line().decode(), "^220 " + HOSTNAME)
            dialogue.send(b"LHLO client.example\r\n")
            self.assertEqual(dialogue.reply()[-1], "250 SIZE 52428800")
            dialogue.send(mail + "\r\nRCPT TO:<%s>\r\n" % recipient)
            self.assertEqual(dialogue.line().decode(),
                             "250 2.1.0 <%s> sender ok" % SENDER)
            reply = dialogue.line().decode()
            if not reply.startswith("250 "):
                return reply
            self.assertEqual(reply, "250 2.1.5 <%s> recipient ok" % recipient)
            dialogue.send(b"DATA\r\n" + body.replace(b"\n", b"\r\n")
                          + b".\r\n")
            self.assertEqual(dialogue.line().decode(), "354 start mail "
                             "input; end with <CRLF>.<CRLF>")
            return dialogue.line().decode()

    def maildirsize(self, user):
        path = os.path.join(self.path(user), "maildirsize")
        with open(path, encoding="ascii") as f:
            text = f.read()
        return text, os.stat(path).st_ino

    def assert_doveadm_usage(self, user, usage):
        """Check doveadm quota get against (bytes, messages)."""
        values = self.quota_get(user)
        self.assertEqual(values["STORAGE"], ((usage[0] + 1023) // 1024, 10))
        self.assertEqual(values["MESSAGE"], (usage[1], 20))

    def test_doveadm_reads_lmtpd_usage(self):
        for i, recipient in enumerate(["alice@example.com",
                                       "alice@example.com",
                                       "alice+Sent@example.com",
                                       "alice@example.com"]):
            self.assertEqual(self.deliver(recipient,
                                          message("m%d" % i, 300 * (i + 1))),
                             "250 2.0.0 <%s> delivered" % recipient)
        usage = maildir_usage(self.path("alice/"))
        self.assertEqual(usage[1], 4)
        self.assertGreater(usage[0], 3000)
        text, inode = self.maildirsize("alice/")
        self.assertTrue(text.startswith(LIMITS_LINE), text)
        self.assertEqual(sum_maildirsize(text), usage)

        # Dovecot reports the same usage, from lmtpd's file as it is.
        self.assert_doveadm_usage("alice", usage)
        self.assertEqual(self.maildirsize("alice/"), (text, inode))

        # Dovecot's own recalculation agrees, and writes what lmtpd
        # writes when it rebuilds the file.
        self.doveadm("alice", "quota", "recalc")
        self.assertEqual(self.maildirsize("alice/")[0],
                         LIMITS_LINE + "%d %d\n" % usage)

    def test_lmtpd_uses_dovecot_file(self):
        self.doveadm("alice", "mailbox", "create", "Sent")
        for subject in ("one", "two"):
            self.doveadm("alice", "save", "-m", "INBOX",
                         data=message(subject, 500))
        self.doveadm("alice", "save", "-m", "Sent",
                     data=message("three", 700))
        self.doveadm("alice", "expunge", "mailbox", "INBOX", "uid", "1")
        text, inode = self.maildirsize("alice/")
        self.assertIn("\n-", text, "no line for the expunge:\n" + text)
        usage = maildir_usage(self.path("alice/"))
        self.assertEqual(sum_maildirsize(text), usage)

        # lmtpd adds its line to Dovecot's file, negative line and all.
        self.assertEqual(self.deliver("alice@example.com",
                                      message("four", 400)),
                         "250 2.0.0 <alice@example.com> delivered")
        new_usage = maildir_usage(self.path("alice/"))
        added = new_usage[0] - usage[0]
        self.assertEqual(self.maildirsize("alice/"),
                         (text + "%d 1\n" % added, inode))

        # The same after doveadm quota recalc left one line of counts.
        self.doveadm("alice", "quota", "recalc")
        text, inode = self.maildirsize("alice/")
        self.assertEqual(text, LIMITS_LINE + "%d %d\n" % new_usage)
        self.assertEqual(self.deliver("alice@example.com",
                                      message("five", 400)),
                         "250 2.0.0 <alice@example.com> delivered")
        final_usage = maildir_usage(self.path("alice/"))
        self.assertEqual(self.maildirsize("alice/"),
                         (text + "%d 1\n" % (final_usage[0] - new_usage[0]),
                          inode))
        self.assert_doveadm_usage("alice", final_usage)

    def test_dovecot_full_mailbox_rejected(self):
        self.doveadm("bob", "save", "-m", "INBOX", data=message("big", 9000))
        self.doveadm("bob", "quota", "recalc")
        text, inode = self.maildirsize("bob/")
        used = sum_maildirsize(text)[0]
        self.assertGreater(used, 9000)
        room = 10240 - used

        # SIZE= at RCPT and the real size after the data, both judged by
        # Dovecot's file, which stays as it is.
        self.assertEqual(self.deliver("bob@example.com", b"s\n",
                                      size=room + 1),
                         "552 5.2.2 <bob@example.com> mailbox full")
        self.assertEqual(self.deliver("bob@example.com",
                                      message("over", room + 10)),
                         "552 5.2.2 <bob@example.com> mailbox full")
        self.assertEqual(self.maildirsize("bob/"), (text, inode))

        # Dovecot removes the message and adds a negative line: lmtpd
        # then accepts the same message.
        self.doveadm("bob", "expunge", "mailbox", "INBOX", "all")
        self.assertEqual(self.deliver("bob@example.com",
                                      message("over", room + 10),
                                      size=room + 10),
                         "250 2.0.0 <bob@example.com> delivered")
        usage = maildir_usage(self.path("bob/"))
        self.assertEqual(usage[1], 1)
        self.assertEqual(sum_maildirsize(self.maildirsize("bob/")[0]), usage)
        self.assert_doveadm_usage("bob", usage)


if __name__ == "__main__":
    unittest.main()
