"""A private Postfix instance for the end-to-end tests.

Each instance has its own configuration, queue and log under
tests/work/NAME/ and accepts SMTP only on a loopback port.  No daemon
runs chrooted.  Nothing can leave the host: the default, relay and local
transports are the error transport, and master.cf has no smtp client
service.  A test class derives from PostfixTestCase, writes its
instance's configuration with configure_postfix(), starts it with
start_postfix() and sends with swaks() or smtplib.

Needs root (Postfix's master), Postfix and swaks.
"""

import functools
import os
import pwd
import re
import shutil
import socket
import subprocess
import time
import unittest

from harness import in_mount_namespace, make_folder

POSTFIX_HOSTNAME = "postfix.test.example"
# Maximum wait in seconds for all deliveries of one test.
DELIVERY_TIMEOUT = 60

# Each instance adds its transports in {settings}.
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
{settings}"""

# Column 5 (chroot) is "n" everywhere, so the lmtp client reaches a
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


def free_port(address="127.0.0.1"):
    """Return a TCP port that nothing listens on at `address` right now.
    NOTE: another process may take it before the server binds it, and
    then the server fails to start with the port named in its log."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((address, 0))
        return s.getsockname()[1]


def missing_requirement():
    """Return why a Postfix suite cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root to run a private Postfix instance"
    for program in ("postfix", "postconf", "postqueue", "postmap", "swaks"):
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


def fresh_instance_folder(name):
    """Stop a Postfix instance left running in tests/work/NAME by an
    interrupted run, then return that folder emptied."""
    folder = os.path.join(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))), "work", name)
    config = os.path.join(folder, "etc")
    if os.path.exists(os.path.join(config, "main.cf")):
        stop_instance(config)
    return make_folder(name)


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


class PostfixTestCase(unittest.TestCase):
    """A test class with one Postfix instance, which the subclass's
    setUpClass configures with configure_postfix() and starts with
    start_postfix(), and its tearDownClass stops with stop_postfix()."""

    postfix = None

    @classmethod
    def configure_postfix(cls, name, settings, services=""):
        """Write the configuration of an instance in tests/work/NAME
        whose main.cf ends with the `settings` lines and whose master.cf
        ends with the `services` lines.  A setting replaces the line of
        MAIN_CF that sets the same parameter, so each parameter is set
        once."""
        cls.folder = fresh_instance_folder(name)
        cls.config = os.path.join(cls.folder, "etc")
        os.makedirs(cls.config)
        os.chmod(cls.folder, 0o755)
        cls.queue = os.path.join(cls.folder, "queue")
        cls.maillog = os.path.join(cls.folder, "maillog")
        # postfix check creates the queue's subfolders, not the queue.
        os.makedirs(cls.queue, mode=0o755)

        cls.port = free_port()
        replaced = {line.split("=")[0].strip()
                    for line in settings.splitlines()
                    if "=" in line and not line.startswith("#")}
        main_cf = "".join(line for line in MAIN_CF.splitlines(True)
                          if line.split("=")[0].strip() not in replaced)
        with open(os.path.join(cls.config, "main.cf"), "w") as f:
            f.write(main_cf.format(queue=cls.queue,
                                   data=os.path.join(cls.folder, "data"),
                                   log=cls.maillog, folder=cls.folder,
                                   hostname=POSTFIX_HOSTNAME,
                                   settings=settings))
        with open(os.path.join(cls.config, "master.cf"), "w") as f:
            f.write(MASTER_CF.format(port=cls.port) + services)

    @classmethod
    def start_postfix(cls, hosts_file=None):
        """Check and start the configured instance.  With hosts_file, it
        runs in a mount namespace of its own with that file bind-mounted
        over /etc/hosts, so that its lmtp client resolves test names."""
        cls.run_postfix_command(["postfix", "-c", cls.config, "check"])
        cls.postfix = cls.config
        start = ["postfix", "-c", cls.config, "start"]
        if hosts_file is not None:
            start = in_mount_namespace([(hosts_file, "/etc/hosts")], start)
        cls.run_postfix_command(start)
        wait_for_port(cls.port)

    @classmethod
    def run_postfix_command(cls, command):
        """Run a Postfix command, raising RuntimeError with its output
        and the log's tail when it fails."""
        result = subprocess.run(command, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True,
                                timeout=60, check=False)
        if result.returncode != 0:
            raise RuntimeError("%s failed (exit %d):\n%s\nlog:\n%s"
                               % (" ".join(command), result.returncode,
                                  result.stdout,
                                  read_log_tail(cls.maillog)))

    @classmethod
    def stop_postfix(cls):
        if cls.postfix is not None:
            stop_instance(cls.postfix)
            cls.postfix = None

    def setUp(self):
        self.queue_ids = []
        self.deadline = time.monotonic() + DELIVERY_TIMEOUT

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

    def flush_queue(self):
        """Ask Postfix to retry every deferred message now."""
        subprocess.run(["postqueue", "-c", self.config, "-f"],
                       stdin=subprocess.DEVNULL, check=False, timeout=30)

    def wait_until_removed(self, queue_id, deferrals=0):
        """Wait until Postfix has removed the queue file, and return its
        log lines.  Fail at once when the message has been deferred more
        than `deferrals` times, because the test expects only final
        replies (2xx or 5xx) from then on."""
        flushed = False
        while True:
            lines = self.log_lines([queue_id])
            if any(" %s: removed" % queue_id in line for line in lines):
                return lines
            deferred = [l for l in lines if "status=deferred" in l]
            if len(deferred) > deferrals:
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
                self.flush_queue()
                flushed = True
            time.sleep(0.1)

    def wait_until_deferred(self, queue_id):
        """Wait until Postfix has deferred the message once, and return
        its log lines."""
        while True:
            lines = self.log_lines([queue_id])
            if any("status=deferred" in line for line in lines):
                return lines
            if any(" %s: removed" % queue_id in line for line in lines):
                self.fail("queue id %s removed, expected a deferral:\n%s"
                          % (queue_id, "\n".join(lines)))
            if time.monotonic() > self.deadline:
                self.fail("queue id %s not deferred within %d s of the "
                          "test start; log tail:\n%s"
                          % (queue_id, DELIVERY_TIMEOUT,
                             read_log_tail(self.maillog)))
            time.sleep(0.1)

    def delivery_statuses(self, lines):
        """Return {recipient: (status, relay, reply text)} from the lmtp
        client's log lines, the last line of each recipient winning."""
        statuses = {}
        for line in lines:
            match = re.search(r" postfix/lmtp\[[0-9]+\]: [0-9A-Za-z]+: "
                              r"to=<([^>]*)>, (?:orig_to=<[^>]*>, )?"
                              r"relay=([^,]*), .*"
                              r"status=([a-z]+) \((.*)\)$", line)
            if match is not None:
                statuses[match.group(1)] = match.group(3, 2, 4)
        return statuses
