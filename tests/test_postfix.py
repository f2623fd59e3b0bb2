"""A private Postfix instance delivering through lmtpd.

swaks sends mail over SMTP to a Postfix instance with its own
configuration, queue and log under tests/work/postfix/.  Postfix hands
every message for example.com to lmtpd over LMTP on a unix socket, and
the tests read Postfix's log and the mailboxes.  Nothing can leave the
host: the default, relay and local transports are the error transport,
and master.cf has no smtp client service.

Needs root (Postfix's master and lmtpd writing the mailboxes), Postfix
and swaks.  Without them the suite is skipped.

Run: TESTS=postfix python3 tests/run.py
"""

import functools
import mailbox
import os
import pwd
import re
import shutil
import socket
import subprocess
import time
import unittest

from harness import LmtpdServer, make_folder

INSTANCE = "postfix"
POSTFIX_HOSTNAME = "postfix.test.example"
# Maximum wait in seconds for all deliveries of one test.
DELIVERY_TIMEOUT = 60

SENDER = "sender@example.com"
UNKNOWN_RECIPIENT = "nobody@example.com"
USERS = {
    SENDER: "sender/",
    "solo@example.com": "solo/",
    "multi@example.com": "multi/",
    "multi-mbox@example.com": "multi.mbox",
    "null@example.com": "null/",
    "null-mbox@example.com": "null.mbox",
    "dots@example.com": "dots/",
    "dots-mbox@example.com": "dots.mbox",
}

MAIN_CF = """\
compatibility_level = 3.6
queue_directory = {queue}
data_directory = {data}
maillog_file = {log}
maillog_file_prefixes = {folder}
myhostname = {hostname}
mydomain = test.example
myorigin = $myhostname
mydestination =
inet_interfaces = loopback-only
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
relayhost =
relay_domains =
virtual_mailbox_domains = example.com
virtual_transport = lmtp:unix:{socket}
default_transport = error:no outside mail in tests
relay_transport = error:no outside mail in tests
local_transport = error:no local mail in tests
alias_maps =
alias_database =
local_recipient_maps =
notify_classes =
biff = no
smtpd_peername_lookup = no
smtp_host_lookup = native
smtp_dns_support_level = disabled
lmtp_host_lookup = native
lmtp_dns_support_level = disabled
# lmtpd's map is the only recipient check, so that a recipient it does
# not know reaches it and gets its 550 5.1.1.
smtpd_reject_unlisted_recipient = no
"""

# Column 5 (chroot) is "n" everywhere, so the lmtp client reaches the
# socket by its full path.  There is no smtp service on purpose.
MASTER_CF = """\
127.0.0.1:{port} inet n - n - - smtpd
pickup    unix n - n 60 1 pickup
cleanup   unix n - n - 0 cleanup
qmgr      unix n - n 300 1 qmgr
rewrite   unix - - n - - trivial-rewrite
bounce    unix - - n - 0 bounce
defer     unix - - n - 0 bounce
trace     unix - - n - 0 bounce
verify    unix - - n - 1 verify
flush     unix n - n 1000? 0 flush
proxymap  unix - - n - - proxymap
showq     unix n - n - - showq
error     unix - - n - - error
retry     unix - - n - - error
discard   unix - - n - - discard
lmtp      unix - - n - - lmtp
anvil     unix - - n - 1 anvil
scache    unix - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
"""


def free_port():
    """Return a loopback TCP port that nothing listens on right now.
    NOTE: another process may take it before Postfix binds it, and then
    postfix start fails with the port named in the log."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def missing_requirement():
    """Return why the suite cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root to run a private Postfix instance"
    for program in ("postfix", "postconf", "postqueue", "swaks"):
        if shutil.which(program) is None:
            return "%s not found in PATH: install postfix and swaks" % program
    try:
        pwd.getpwnam("postfix")
    except KeyError:
        return "user postfix not found: install the postfix package"
    return None


def print_log_on_failure(test):
    """Print the Postfix log lines of the test's queue ids if it fails."""
    @functools.wraps(test)
    def wrapper(self):
        try:
            test(self)
        except unittest.SkipTest:
            raise
        except Exception:
            print("\nPostfix log for queue ids %s:\n%s"
                  % (" ".join(self.queue_ids),
                     "\n".join(self.log_lines(self.queue_ids))))
            raise
    return wrapper


def sent_body(transcript):
    """Return the message body that a swaks transcript shows after DATA,
    with dot-stuffing undone and LF line ends."""
    lines = transcript.splitlines()
    start = [i for i, line in enumerate(lines)
             if line.startswith("<-  354 ")][0] + 1
    end = lines.index(" -> .", start)
    data = [line[len(" -> "):] for line in lines[start:end]]
    body = [line[1:] if line.startswith(".") else line
            for line in data[data.index("") + 1:]]
    return "\n".join(body) + "\n"


def unquote_mboxrd(text):
    """Remove one ">" from every line that matches ^>+From ."""
    return re.sub(r"(?m)^>(>*From )", r"\1", text)


def fresh_instance_folder():
    """Stop a Postfix instance left running by an interrupted run, then
    return the emptied folder tests/work/postfix."""
    folder = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                          "work", INSTANCE)
    config = os.path.join(folder, "etc")
    if os.path.exists(os.path.join(config, "main.cf")):
        stop_instance(config)
    return make_folder(INSTANCE)


def stop_instance(config):
    """Stop the instance with `postfix -c config stop` and wait for its
    master process to exit."""
    queue = subprocess.run(["postconf", "-c", config, "-h",
                            "queue_directory"],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                           text=True, check=False).stdout.strip()
    pid = None
    try:
        with open(os.path.join(queue, "pid", "master.pid")) as f:
            pid = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        pass
    subprocess.run(["postfix", "-c", config, "stop"],
                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, timeout=60, check=False)
    deadline = time.monotonic() + 20
    while pid is not None and time.monotonic() < deadline:
        try:
            with open("/proc/%d/comm" % pid) as f:
                if f.read().strip() != "master":
                    return
        except FileNotFoundError:
            return
        time.sleep(0.1)


def wait_for_port(port):
    deadline = time.monotonic() + 20
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError("Postfix smtpd not listening on "
                                   "127.0.0.1:%d" % port)
            time.sleep(0.1)


def read_log_tail(path, count=40):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return "\n".join(f.read().splitlines()[-count:])
    except FileNotFoundError:
        return "(no log file %s)" % path


class PostfixTest(unittest.TestCase):
    postfix = None
    lmtpd = None

    @classmethod
    def setUpClass(cls):
        reason = missing_requirement()
        if reason is not None:
            raise unittest.SkipTest(reason)
        try:
            cls.start_instance()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def start_instance(cls):
        cls.config = os.path.join(fresh_instance_folder(), "etc")
        cls.folder = os.path.dirname(cls.config)
        os.makedirs(cls.config)
        os.chmod(cls.folder, 0o755)
        cls.queue = os.path.join(cls.folder, "queue")
        cls.maillog = os.path.join(cls.folder, "maillog")
        # postfix check creates the queue's subfolders, not the queue.
        os.makedirs(cls.queue, mode=0o755)

        # lmtpd runs as root and writes the mailboxes.  Postfix's lmtp
        # client runs as user postfix, so it needs the socket and its
        # folder opened up.
        cls.lmtpd = LmtpdServer(INSTANCE + "/lmtpd", USERS)
        os.chmod(cls.lmtpd.folder, 0o755)
        os.chmod(cls.lmtpd.socket_path, 0o666)

        cls.port = free_port()
        with open(os.path.join(cls.config, "main.cf"), "w") as f:
            f.write(MAIN_CF.format(queue=cls.queue,
                                   data=os.path.join(cls.folder, "data"),
                                   log=cls.maillog, folder=cls.folder,
                                   hostname=POSTFIX_HOSTNAME,
                                   socket=cls.lmtpd.socket_path))
        with open(os.path.join(cls.config, "master.cf"), "w") as f:
            f.write(MASTER_CF.format(port=cls.port))

        check = cls.postfix_command("check")
        if check.returncode != 0:
            raise RuntimeError("postfix -c %s check failed (exit %d):\n%s\n"
                               "log:\n%s" % (cls.config, check.returncode,
                                             check.stdout,
                                             read_log_tail(cls.maillog)))
        cls.postfix = cls.config
        start = cls.postfix_command("start")
        if start.returncode != 0:
            raise RuntimeError("postfix -c %s start failed (exit %d):\n%s\n"
                               "log:\n%s" % (cls.config, start.returncode,
                                             start.stdout, read_log_tail(
                                                 cls.maillog)))
        wait_for_port(cls.port)

    @classmethod
    def postfix_command(cls, action):
        return subprocess.run(["postfix", "-c", cls.config, action],
                              stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True,
                              timeout=60, check=False)

    @classmethod
    def tearDownClass(cls):
        if cls.postfix is not None:
            stop_instance(cls.postfix)
            cls.postfix = None
        if cls.lmtpd is not None:
            cls.lmtpd.stop()
            cls.lmtpd = None

    def setUp(self):
        self.queue_ids = []
        self.deadline = time.monotonic() + DELIVERY_TIMEOUT

    # Helpers: sending, the log, the mailboxes.

    def swaks(self, sender, recipients, body, subject):
        """Send one message with swaks.  Return its Postfix queue id and
        the message body as swaks sent it, with LF line ends."""
        result = subprocess.run(
            ["swaks", "--server", "127.0.0.1", "--port", str(self.port),
             "--helo", "client.test.example", "--timeout", "30",
             "--from", sender, "--to", ",".join(recipients),
             "--header", "Subject: " + subject, "--body", body],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, timeout=60, check=False)
        self.assertEqual(result.returncode, 0,
                         "swaks failed:\n" + result.stdout)
        match = re.search(r"<[-~]  250 .*queued as ([0-9A-Za-z]+)",
                          result.stdout)
        self.assertIsNotNone(match, "no queue id in swaks output:\n"
                             + result.stdout)
        self.queue_ids.append(match.group(1))
        sent = sent_body(result.stdout)
        # swaks 20201014 puts two empty lines after the --body text.
        self.assertTrue(sent.startswith(body + "\n"), sent)
        return match.group(1), sent

    def log_lines(self, queue_ids):
        """Return the maillog lines that name one of the queue ids."""
        try:
            with open(self.maillog, encoding="utf-8",
                      errors="replace") as f:
                lines = f.read().splitlines()
        except FileNotFoundError:
            return []
        marks = tuple(" %s: " % queue_id for queue_id in queue_ids)
        return [line for line in lines if any(m in line for m in marks)]

    def wait_until_removed(self, queue_id):
        """Wait until Postfix has removed the queue file, and return its
        log lines.  Fail at once on a deferral, because every lmtpd reply
        in these tests is final (2xx or 5xx)."""
        flushed = False
        while True:
            lines = self.log_lines([queue_id])
            if any(" %s: removed" % queue_id in line for line in lines):
                return lines
            deferred = [l for l in lines if "status=deferred" in l]
            if deferred:
                self.fail("queue id %s deferred:\n%s"
                          % (queue_id, "\n".join(lines)))
            now = time.monotonic()
            if now > self.deadline:
                self.fail("queue id %s not removed within %d s of the test "
                          "start; log tail:\n%s"
                          % (queue_id, DELIVERY_TIMEOUT,
                             read_log_tail(self.maillog)))
            # A message still in the queue 10 s after the test start gets
            # one queue flush.
            if not flushed and now > self.deadline - DELIVERY_TIMEOUT + 10:
                subprocess.run(["postqueue", "-c", self.config, "-f"],
                               stdin=subprocess.DEVNULL, check=False,
                               timeout=30)
                flushed = True
            time.sleep(0.1)

    def delivery_statuses(self, lines):
        """Return {recipient: (status, relay, reply text)} from the lmtp
        client's log lines."""
        statuses = {}
        for line in lines:
            match = re.search(r" postfix/lmtp\[[0-9]+\]: [0-9A-Za-z]+: "
                              r"to=<([^>]*)>, relay=([^,]*), .*"
                              r"status=([a-z]+) \((.*)\)$", line)
            if match is not None:
                statuses[match.group(1)] = match.group(3, 2, 4)
        return statuses

    def assert_sent(self, statuses, recipient):
        self.assertIn(recipient, statuses)
        status, relay, text = statuses[recipient]
        self.assertEqual(status, "sent", text)
        self.assertIn(self.lmtpd.socket_path, relay)
        self.assertRegex(text, r"^250 2\.0\.0 <%s> delivered$"
                         % re.escape(recipient))

    def maildir(self, box):
        return mailbox.Maildir(self.lmtpd.path(box), factory=None,
                               create=False)

    def mbox(self, box):
        return mailbox.mbox(self.lmtpd.path(box), create=False)

    def assert_lmtpd_headers(self, message, sender, recipient):
        """Check lmtpd's Return-Path, Delivered-To and Received fields."""
        self.assertEqual(message.get_all("Return-Path"), ["<%s>" % sender])
        self.assertEqual(message.get_all("Delivered-To"), [recipient])
        received = message.get_all("Received")
        self.assertRegex(received[0],
                         r"^from %s\s.*\(lmtpd\) with LMTP id "
                         % re.escape(POSTFIX_HOSTNAME))
        self.assertIn("for <%s>;" % recipient, received[0])
        # Postfix's own Received field comes next.
        self.assertIn("by %s (Postfix)" % POSTFIX_HOSTNAME, received[1])

    # The tests.

    @print_log_on_failure
    def test_one_recipient_maildir(self):
        body = "Hello from the Postfix test."
        queue_id, sent = self.swaks(SENDER, ["solo@example.com"], body,
                                    "one recipient")
        statuses = self.delivery_statuses(self.wait_until_removed(queue_id))
        self.assertEqual(list(statuses), ["solo@example.com"])
        self.assert_sent(statuses, "solo@example.com")

        messages = self.maildir("solo/").values()
        self.assertEqual(len(messages), 1)
        message = messages[0]
        self.assertEqual(message["Subject"], "one recipient")
        self.assertEqual(message.get_payload(), sent)
        self.assert_lmtpd_headers(message, SENDER, "solo@example.com")
        raw = message.as_bytes()
        self.assertTrue(raw.startswith(b"Return-Path: <%s>\nDelivered-To: "
                                       b"solo@example.com\n"
                                       % SENDER.encode()), raw[:200])

    @print_log_on_failure
    def test_unknown_recipient_bounces(self):
        """Two deliveries and one 550 5.1.1, whose bounce comes back
        through lmtpd into the sender's Maildir."""
        body = "One message for three recipients."
        recipients = ["multi@example.com", "multi-mbox@example.com",
                      UNKNOWN_RECIPIENT]
        queue_id, sent = self.swaks(SENDER, recipients, body,
                                    "three recipients")
        lines = self.wait_until_removed(queue_id)
        statuses = self.delivery_statuses(lines)
        self.assertEqual(sorted(statuses), sorted(recipients))
        self.assert_sent(statuses, "multi@example.com")
        self.assert_sent(statuses, "multi-mbox@example.com")
        status, relay, text = statuses[UNKNOWN_RECIPIENT]
        self.assertEqual(status, "bounced", text)
        self.assertIn(self.lmtpd.socket_path, relay)
        self.assertIn("550 5.1.1 <%s>" % UNKNOWN_RECIPIENT, text)
        self.assertIn("in reply to RCPT TO command", text)

        maildir_messages = self.maildir("multi/").values()
        self.assertEqual(len(maildir_messages), 1)
        self.assertEqual(maildir_messages[0]["Subject"], "three recipients")
        self.assertEqual(maildir_messages[0].get_payload(), sent)
        self.assert_lmtpd_headers(maildir_messages[0], SENDER,
                                  "multi@example.com")

        mbox_messages = self.mbox("multi.mbox").values()
        self.assertEqual(len(mbox_messages), 1)
        self.assertTrue(mbox_messages[0].get_from().startswith(SENDER + " "),
                        mbox_messages[0].get_from())
        self.assertEqual(mbox_messages[0]["Subject"], "three recipients")
        self.assertEqual(mbox_messages[0].get_payload(), sent)
        self.assert_lmtpd_headers(mbox_messages[0], SENDER,
                                  "multi-mbox@example.com")

        # The non-delivery notification is a new message with the null
        # sender, which Postfix delivers through lmtpd to the sender.
        notices = []
        for line in lines:
            match = re.search(r"sender non-delivery notification: "
                              r"([0-9A-Za-z]+)$", line)
            if match is not None:
                notices.append(match.group(1))
        self.assertEqual(len(notices), 1, "\n".join(lines))
        self.queue_ids.append(notices[0])
        statuses = self.delivery_statuses(
            self.wait_until_removed(notices[0]))
        self.assert_sent(statuses, SENDER)

        bounces = self.maildir("sender/").values()
        self.assertEqual(len(bounces), 1)
        bounce = bounces[0]
        self.assert_lmtpd_headers(bounce, "", SENDER)
        self.assertEqual(bounce.get_content_type(), "multipart/report")
        self.assertRegex(bounce["From"], r"MAILER-DAEMON@")
        content = bounce.as_string()
        unknown = re.escape(UNKNOWN_RECIPIENT)
        self.assertRegex(content, r"<%s>: host\s+%s\[%s\]\s+said:\s+"
                         r"550 5\.1\.1 <%s> "
                         % (unknown, re.escape(POSTFIX_HOSTNAME),
                            re.escape(self.lmtpd.socket_path), unknown))
        self.assertRegex(content, r"Diagnostic-Code: smtp; 550 5\.1\.1 <%s> "
                         % unknown)
        self.assertIn("Final-Recipient: rfc822; " + UNKNOWN_RECIPIENT,
                      content)
        self.assertIn("Status: 5.1.1", content)
        self.assertNotIn("multi@example.com", content.split(
            "Content-Description: Undelivered Message")[0])

    @print_log_on_failure
    def test_null_sender(self):
        body = "A message with the null reverse-path."
        recipients = ["null@example.com", "null-mbox@example.com"]
        queue_id, sent = self.swaks("<>", recipients, body, "null sender")
        statuses = self.delivery_statuses(self.wait_until_removed(queue_id))
        self.assertEqual(sorted(statuses), sorted(recipients))
        self.assert_sent(statuses, "null@example.com")
        self.assert_sent(statuses, "null-mbox@example.com")

        messages = self.maildir("null/").values()
        self.assertEqual(len(messages), 1)
        self.assert_lmtpd_headers(messages[0], "", "null@example.com")
        self.assertEqual(messages[0].get_payload(), sent)

        messages = self.mbox("null.mbox").values()
        self.assertEqual(len(messages), 1)
        self.assertTrue(messages[0].get_from().startswith("MAILER-DAEMON "),
                        messages[0].get_from())
        self.assert_lmtpd_headers(messages[0], "", "null-mbox@example.com")
        self.assertEqual(messages[0].get_payload(), sent)
        with open(self.lmtpd.path("null.mbox"), "rb") as f:
            self.assertTrue(f.read().startswith(b"From MAILER-DAEMON "))

    @print_log_on_failure
    def test_dot_and_from_lines(self):
        """Dot-stuffing undone at both hops, and mboxrd quoting in the
        mbox."""
        body = ("First line.\n"
                ".A line that starts with a dot\n"
                "..Two dots\n"
                ".\n"
                "From the start of a line\n"
                ">From a line quoted already\n"
                "Last line.")
        recipients = ["dots@example.com", "dots-mbox@example.com"]
        queue_id, sent = self.swaks(SENDER, recipients, body,
                                    "dots and From")
        statuses = self.delivery_statuses(self.wait_until_removed(queue_id))
        self.assert_sent(statuses, "dots@example.com")
        self.assert_sent(statuses, "dots-mbox@example.com")

        messages = self.maildir("dots/").values()
        self.assertEqual(len(messages), 1)
        self.assertEqual(messages[0].get_payload(), sent)

        # Python's mailbox.mbox splits at every "From " line and leaves
        # the ">" quoting in place, so one message read back means the
        # "From " line was quoted, and removing one ">" gives the body.
        messages = self.mbox("dots.mbox").values()
        self.assertEqual(len(messages), 1)
        payload = messages[0].get_payload()
        self.assertIn("\n>From the start of a line\n", payload)
        self.assertIn("\n>>From a line quoted already\n", payload)
        self.assertEqual(unquote_mboxrd(payload), sent)
        with open(self.lmtpd.path("dots.mbox"), "rb") as f:
            raw = f.read()
        self.assertIn(b"\n.A line that starts with a dot\n..Two dots\n.\n"
                      b">From the start of a line\n", raw)
        self.assertTrue(raw.endswith(b"\nLast line.\n\n\n\n"), raw[-40:])


if __name__ == "__main__":
    unittest.main()
