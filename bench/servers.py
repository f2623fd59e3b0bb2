"""The systems that bench/run.py measures side by side.

Each system delivers into Maildirs under its own mail folder: the floor
program, a private Dovecot LMTP instance, and lmtpd behind
systemd-socket-activate in Accept=yes, Accept=no and inetd mode.  Every
server listens only on a unix socket in a private socket folder.
"""

import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import time

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LMTPD = os.path.join(TOP, "lmtpd")
LOADGEN = os.path.join(TOP, "bench", "loadgen")
FLOOR = os.path.join(TOP, "bench", "floor")
DOMAIN = "bench.example"

# Owner of Dovecot's mailboxes: Dovecot rejects UID 0 for mail users.
DOVECOT_MAIL_USER = "mail"

# Limit on one loadgen or floor run, in seconds.
RUN_TIMEOUT = 900


class BenchError(Exception):
    """A server that did not start or a run that did not deliver."""


def parse_summary(text):
    """Return the key=value fields of the summary lines as a dict."""
    fields = {}
    for token in text.split():
        key, sep, value = token.partition("=")
        if sep:
            fields[key] = float(value)
    return fields


def count_messages(root):
    """Count the files in every new/ and cur/ folder under root."""
    total = 0
    for folder, _, files in os.walk(root):
        if os.path.basename(folder) in ("new", "cur"):
            total += len(files)
    return total


def count_leftovers(root):
    """Count the files in every tmp/ folder under root."""
    total = 0
    for folder, _, files in os.walk(root):
        if os.path.basename(folder) == "tmp":
            total += len(files)
    return total


def make_maildir(path, owner=None):
    for sub in ("", "tmp", "new", "cur"):
        os.makedirs(os.path.join(path, sub), exist_ok=True)
        if owner is not None:
            os.chown(os.path.join(path, sub), owner.pw_uid, owner.pw_gid)


def wait_for_socket(path, process, log_path, seconds=15):
    """Wait until a connection to the unix socket path succeeds."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BenchError("server exited with status %d, see %s"
                             % (process.returncode, log_path))
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(5)
                s.connect(path)
                if s.recv(512).startswith(b"220 "):
                    s.sendall(b"QUIT\r\n")
                    s.recv(512)
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise BenchError("no greeting on %s within %d seconds, see %s"
                     % (path, seconds, log_path))


def stop_process(process, seconds=15):
    """Send SIGTERM to a process this module started and wait for it."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(seconds)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def old_mail_folder(work):
    """Return the folder where runs' mail waits until the end."""
    return os.path.join(work, "old-mail")


class System:
    """A way of delivering, with a fresh mail folder for each run.

    The mail of a run is moved aside, not deleted, until the benchmark
    ends: on ext4 without a journal, inode allocation skips inodes
    deleted in the last minutes, so deleting thousands of files would
    slow the runs that follow."""

    key = ""
    label = ""

    def __init__(self, work):
        self.work = os.path.join(work, self.key)
        self.mail = os.path.join(self.work, "mail")
        self.old_mail = old_mail_folder(work)
        self.runs = 0
        os.makedirs(self.work, exist_ok=True)

    def mailbox(self, user):
        return os.path.join(self.mail, "user%d" % user, "Maildir")

    def new_mail_folder(self):
        """Move the last run's mail aside and make an empty folder."""
        if os.path.exists(self.mail):
            os.makedirs(self.old_mail, exist_ok=True)
            self.runs += 1
            os.rename(self.mail, os.path.join(
                self.old_mail, "%s-%d" % (self.key, self.runs)))
        os.makedirs(self.mail)

    def prepare(self, users):
        """Give the run a fresh mail folder with the users' Maildirs."""
        self.new_mail_folder()
        for user in range(users):
            make_maildir(self.mailbox(user))

    def run(self, scenario, timeout):
        """Run the scenario once; return the summary fields."""
        raise NotImplementedError

    def stop(self):
        pass

    def check_delivered(self, expected):
        """Raise BenchError unless expected messages are in the Maildirs."""
        found = count_messages(self.mail)
        if found != expected:
            raise BenchError("%s: %d messages in the Maildirs, expected %d"
                             % (self.label, found, expected))
        left = count_leftovers(self.mail)
        if left != 0:
            raise BenchError("%s: %d files left in tmp/" % (self.label, left))


def run_program(command, label):
    """Run loadgen or floor and return its summary fields."""
    try:
        result = subprocess.run(command, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True,
                                timeout=RUN_TIMEOUT, check=False)
    except subprocess.TimeoutExpired as e:
        raise BenchError("%s: %s timed out after %d seconds"
                         % (label, command[0], RUN_TIMEOUT)) from e
    fields = parse_summary(result.stdout)
    if result.returncode != 0 or fields.get("failed", 1) != 0:
        raise BenchError("%s: %s exited with status %d: %s%s"
                         % (label, " ".join(command), result.returncode,
                            result.stdout, result.stderr))
    return fields


class Floor(System):
    """The floor program: open, write, fsync, rename, fsync new/."""

    key = "floor"
    label = "floor"

    def mailbox(self, user):
        return os.path.join(self.mail, "user%d" % user)

    def run(self, scenario, timeout):
        per_writer = scenario.sequential * scenario.messages
        return run_program([FLOOR, "--writers", str(scenario.connections),
                            "--messages", str(per_writer),
                            "--recipients", str(scenario.recipients),
                            "--size", scenario.size, self.mail], self.label)


class LmtpServer(System):
    """A server reached over LMTP on a unix socket by loadgen."""

    def __init__(self, work, sockets):
        super().__init__(work)
        self.socket_path = os.path.join(sockets, self.key + ".sock")
        self.process = None
        self.log = None

    def run(self, scenario, timeout, server_parent=None):
        command = [LOADGEN, "--unix", self.socket_path,
                   "--connections", str(scenario.connections),
                   "--sequential", str(scenario.sequential),
                   "--messages", str(scenario.messages),
                   "--recipients", str(scenario.recipients),
                   "--size", scenario.size, "--timeout", str(timeout)]
        if server_parent is not None:
            command += ["--server-parent", str(server_parent)]
        if scenario.bdat:
            command.append("--bdat")
        return run_program(command, self.label)

    def stop(self):
        if self.process is not None:
            stop_process(self.process)
            self.process = None
        if self.log is not None:
            self.log.close()
            self.log = None


class Lmtpd(LmtpServer):
    """lmtpd behind the real systemd-socket-activate.

    mode is "accept" (Accept=yes: one lmtpd per connection), "listen"
    (Accept=no: one lmtpd accepts and forks a child per connection) or
    "inetd" (Accept=yes with the connection on stdin and stdout)."""

    MODES = {
        "accept": ("lmtpd-accept", "lmtpd Accept=yes"),
        "listen": ("lmtpd-listen", "lmtpd Accept=no"),
        "inetd": ("lmtpd-inetd", "lmtpd inetd"),
    }

    def __init__(self, work, sockets, mode, users):
        self.key, self.label = self.MODES[mode]
        super().__init__(work, sockets)
        self.mode = mode
        records = ["user%d@%s mailbox=%s/" % (u, DOMAIN, self.mailbox(u))
                   for u in range(users)]
        text = os.path.join(self.work, "users.txt")
        with open(text, "w", encoding="ascii") as f:
            f.write("\n".join(records) + "\n")
        self.map = os.path.join(self.work, "users.cdb")
        subprocess.run(["cdb", "-c", "-m", self.map, text], check=True)
        self.spool = os.path.join(self.work, "spool")
        os.makedirs(self.spool, exist_ok=True)
        # Started as root, lmtpd delivers only as a mailbox owner, so it
        # runs as the same mail user as Dovecot, who owns the Maildirs.
        # systemd-socket-activate runs as that user too, so that each
        # lmtpd starts as it, as with User= in a unit.  With --user,
        # lmtpd would look the user up through NSS, which maps libraries
        # that no unit's lmtpd maps.
        self.owner = None
        if os.geteuid() == 0:
            self.owner = pwd.getpwnam(DOVECOT_MAIL_USER)
            os.chown(self.spool, self.owner.pw_uid, self.owner.pw_gid)
            folder = os.path.join(sockets, self.key)
            os.makedirs(folder, exist_ok=True)
            os.chown(folder, self.owner.pw_uid, self.owner.pw_gid)
            self.socket_path = os.path.join(folder, "lmtp.sock")

    def prepare(self, users):
        """Give the run a fresh mail folder owned by the mail user."""
        self.new_mail_folder()
        if self.owner is not None:
            os.chown(self.mail, self.owner.pw_uid, self.owner.pw_gid)
        for user in range(users):
            home = os.path.dirname(self.mailbox(user))
            os.makedirs(home, exist_ok=True)
            if self.owner is not None:
                os.chown(home, self.owner.pw_uid, self.owner.pw_gid)
            make_maildir(self.mailbox(user), self.owner)

    def start(self):
        command = []
        if self.owner is not None:
            command += ["setpriv", "--reuid", str(self.owner.pw_uid),
                        "--regid", str(self.owner.pw_gid), "--clear-groups"]
        command += ["systemd-socket-activate", "-l", self.socket_path]
        if self.mode == "accept":
            command.append("--accept")
        elif self.mode == "inetd":
            command += ["--accept", "--inetd"]
        command += [LMTPD, "--map", self.map, "--hostname", "mx." + DOMAIN,
                    "--spool-dir", self.spool, "--max-size", "200M",
                    "--log", "stderr"]
        if self.mode == "listen":
            command += ["--max-children", "16"]
        log_path = os.path.join(self.work, "lmtpd.log")
        self.log = open(log_path, "ab")
        self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL,
                                        stdout=self.log, stderr=self.log)
        wait_for_socket(self.socket_path, self.process, log_path)

    def run(self, scenario, timeout, server_parent=None):
        # In every mode the serving lmtpd is a child of this process:
        # systemd-socket-activate forks one per connection, or, with
        # Accept=no, it has become the lmtpd that forks them.
        if scenario.measure_rss:
            server_parent = self.process.pid
        return super().run(scenario, timeout, server_parent)


DOVECOT_CONFIG = """\
# A private Dovecot LMTP instance for lmtpd's benchmark.  Only the
# settings below differ from Dovecot's defaults; mail_fsync stays at
# its default (optimized).
base_dir = {base}
state_dir = {state}
instance_name = {name}
log_path = {log}
protocols = lmtp
# Dovecot rejects an empty listen; no service here has an inet listener.
listen = 127.0.0.1
ssl = no
first_valid_uid = {uid}
mail_location = maildir:~/Maildir
passdb {{
  driver = passwd-file
  args = {users}
}}
userdb {{
  driver = passwd-file
  args = {users}
}}
service lmtp {{
  # The process runs as the mail owner, so no delivery changes UID.
  user = {user}
  unix_listener lmtp {{
    path = {socket}
    mode = 0600
  }}
{service_extra}}}
"""


class Dovecot(LmtpServer):
    """A private Dovecot instance: own config, base_dir and log.

    per_connection=False keeps Dovecot's default lmtp service, whose
    processes serve one connection after another.  per_connection=True
    sets service_count = 1 and process_min_avail = 0, so the master forks
    and executes a new lmtp process for every connection, as
    systemd-socket-activate --accept does for lmtpd."""

    def __init__(self, work, sockets, users, per_connection):
        if per_connection:
            self.key = "dovecot-per-connection"
            self.label = "Dovecot, a process per connection"
        else:
            self.key = "dovecot"
            self.label = "Dovecot"
        super().__init__(work, sockets)
        self.owner = pwd.getpwnam(DOVECOT_MAIL_USER)
        self.base = os.path.join(sockets, self.key)
        state = os.path.join(self.work, "state")
        users_path = os.path.join(self.work, "users")
        os.makedirs(state, exist_ok=True)
        with open(users_path, "w", encoding="ascii") as f:
            for u in range(users):
                f.write("user%d@%s:{PLAIN}unused:%d:%d::%s::\n"
                        % (u, DOMAIN, self.owner.pw_uid, self.owner.pw_gid,
                           os.path.dirname(self.mailbox(u))))
        extra = ("  service_count = 1\n  process_min_avail = 0\n"
                 if per_connection else "")
        self.config = os.path.join(self.work, "dovecot.conf")
        self.log_path = os.path.join(self.work, "dovecot.log")
        with open(self.config, "w", encoding="ascii") as f:
            f.write(DOVECOT_CONFIG.format(
                base=self.base, state=state, name="lmtpd-bench-" + self.key,
                log=self.log_path, uid=self.owner.pw_uid, users=users_path,
                user=DOVECOT_MAIL_USER, socket=self.socket_path,
                service_extra=extra))

    def prepare(self, users):
        self.new_mail_folder()
        os.chown(self.mail, self.owner.pw_uid, self.owner.pw_gid)
        for user in range(users):
            home = os.path.dirname(self.mailbox(user))
            os.makedirs(home)
            os.chown(home, self.owner.pw_uid, self.owner.pw_gid)
            make_maildir(self.mailbox(user), self.owner)

    def start(self):
        self.log = open(os.path.join(self.work, "dovecot.out"), "ab")
        self.process = subprocess.Popen(
            ["dovecot", "-F", "-c", self.config], stdin=subprocess.DEVNULL,
            stdout=self.log, stderr=self.log)
        wait_for_socket(self.socket_path, self.process, self.log_path)


def dovecot_cannot_reach(work):
    """Return why Dovecot's mail user cannot enter every folder above
    work, or None when it can."""
    folder = os.path.dirname(os.path.abspath(work))
    while True:
        if not os.stat(folder).st_mode & stat.S_IXOTH:
            return ("Dovecot delivers as user %s, which cannot enter %s: "
                    "give --work a folder on the same file system that "
                    "every user may enter" % (DOVECOT_MAIL_USER, folder))
        if folder == os.path.dirname(folder):
            return None
        folder = os.path.dirname(folder)


def dovecot_version():
    """Return Dovecot's version string, or None when it is not installed."""
    if shutil.which("dovecot") is None:
        return None
    result = subprocess.run(["dovecot", "--version"], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, check=False)
    return result.stdout.strip() or None


def dovecot_version_line():
    version = dovecot_version()
    return "Dovecot %s" % version if version else "Dovecot not installed"


def lmtp_installed():
    """Return True when Dovecot's LMTP server (dovecot-lmtpd) is there."""
    return os.path.exists("/usr/lib/dovecot/lmtp")
