"""Start lmtpd under real socket activation for the tests.

Each LmtpdServer gets its own folder under tests/work/: a text user map
compiled with the real `cdb -c -m`, mailboxes, a spool folder and the
server's log.  The server listens only on a unix socket in that folder,
or on a loopback TCP port.

Run as root, the tests deliver as the unprivileged system user
lmtpd-test, which the harness creates when it is missing: either every
record names its uid= and gid= and root lmtpd forks a child per
delivery, or --user switches the whole process to it.
"""

import os
import pwd
import re
import shutil
import socket
import subprocess
import time

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# LMTPD names another build, such as the sanitizer build, to test.
LMTPD = os.path.abspath(os.environ.get("LMTPD", os.path.join(TOP, "lmtpd")))
WORK = os.path.join(TOP, "tests", "work")
HOSTNAME = "mx.test.example"
TEST_USER = "lmtpd-test"


def delivery_user():
    """Return (uid, gid) of the user that deliveries run as: lmtpd-test,
    created on first use, when the tests run as root; else None."""
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(TEST_USER)
    except KeyError:
        # Another test run may add the user first, so the result of
        # useradd does not matter, only that the user exists after it.
        subprocess.run(["useradd", "--system", "--user-group",
                        "--no-create-home", "--home-dir", "/nonexistent",
                        "--shell", "/usr/sbin/nologin", TEST_USER],
                       check=False)
        entry = pwd.getpwnam(TEST_USER)
    return entry.pw_uid, entry.pw_gid


def give_to_delivery_user(path):
    """Make path and everything under it owned by the delivery user, so
    that lmtpd can write there after it has dropped root."""
    ids = delivery_user()
    if ids is None:
        return
    os.chown(path, *ids)
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            os.lchown(os.path.join(root, name), *ids)


def read_recipe(name):
    """Return the code block that follows "<!-- recipe: NAME -->" in
    docs/recipes.md, so that a test runs the recipe the docs show."""
    with open(os.path.join(TOP, "docs", "recipes.md"), encoding="utf-8") as f:
        text = f.read()
    match = re.search(r"^<!-- recipe: %s -->\n```[a-z]*\n(.*?)^```$"
                      % re.escape(name), text, re.MULTILINE | re.DOTALL)
    if match is None:
        raise AssertionError("no recipe %r in docs/recipes.md" % name)
    return match.group(1)


def make_folder(name):
    """Return an empty folder tests/work/NAME, removing an old one."""
    path = os.path.join(WORK, name)
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path)
    return path


def build_map(folder, lines):
    """Write users.txt from `key value` lines and compile users.cdb."""
    text = os.path.join(folder, "users.txt")
    cdb = os.path.join(folder, "users.cdb")
    with open(text, "w", encoding="utf-8") as f:
        for line in lines:
            f.write(line + "\n")
    subprocess.run(["cdb", "-c", "-m", cdb, text], check=True)
    return cdb


# Runs "mount --bind SOURCE TARGET" for each pair of arguments before
# "--", then executes the command after it.
_MOUNT_AND_EXEC = """\
while [ "$1" != -- ]; do mount --bind "$1" "$2" || exit 1; shift 2; done
shift
exec "$@"
"""


def in_mount_namespace(mounts, command):
    """Return `command` wrapped to run in a new private mount namespace
    in which each (source, target) path pair is bind-mounted first, so
    that only this command and its children see source at target.  The
    namespace goes away with its last process.  Needs root."""
    wrapped = ["unshare", "--mount", "--propagation", "private",
               "sh", "-c", _MOUNT_AND_EXEC, "sh"]
    for source, target in mounts:
        wrapped += [source, target]
    return wrapped + ["--"] + list(command)


def mount_namespace_problem():
    """Return why in_mount_namespace() cannot work here, or None."""
    if os.geteuid() != 0:
        return "needs root for mount namespaces"
    folder = make_folder("mount-namespace")
    try:
        result = subprocess.run(in_mount_namespace([(folder, folder)],
                                                   ["true"]),
                                stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True,
                                timeout=20, check=False)
    except FileNotFoundError as error:
        return "unshare not found: %s" % error
    if result.returncode != 0:
        return "unshare --mount failed: " + result.stdout.strip()
    return None


class LmtpdServer:
    """lmtpd behind systemd-socket-activate, stopped by stop()."""

    def __init__(self, name, users, mode="accept", extra_args=(), tcp=None,
                 hostname=HOSTNAME, map_path=None, mail_at=None,
                 env=None, socket_path=None, identity="records",
                 command_prefix=None):
        """users maps an address to its mailbox name under the folder:
        a name ending in "/" is a Maildir, any other an mbox file.  A
        value that contains "=" is the record's value, to which only
        identity may add fields.
        mode: "accept" (Accept=yes), "listen" (Accept=no) or "inetd".
        map_path: an existing map to use instead of one built from users.
        mail_at: a folder over which this server's mail folder is
        bind-mounted in a mount namespace that lmtpd alone runs in (see
        in_mount_namespace).
        env: variables that systemd-socket-activate sets for lmtpd.
        socket_path: where the unix socket goes, by default lmtp.sock in
        the folder.
        identity, when the tests run as root: "records" adds the test
        user's uid= and gid= to each record built from users that names
        neither field, "user" passes --user instead, and "none" does
        neither, for records that name their owner or test its absence,
        or for a command_prefix that switches users itself.  A map_path
        map is used as it is.  command_prefix (a list, or LMTPD_PREFIX
        from the environment, split at spaces) runs lmtpd under a tool
        such as valgrind."""
        self.folder = make_folder(name)
        self.mail = os.path.join(self.folder, "mail")
        self.spool = os.path.join(self.folder, "spool")
        os.makedirs(self.mail)
        os.makedirs(self.spool)
        ids = delivery_user()
        owner = ""
        if ids is not None and identity == "records":
            owner = " uid=%d gid=%d" % ids
        records = []
        for address, box in users.items():
            if "=" in box:
                records.append("%s %s" % (address, box))
            else:
                records.append("%s mailbox=%s" % (address, self.path(box)))
        if owner:
            records = [r if re.search(r"\s[ug]id=", r) else r + owner
                       for r in records]
        self.map = map_path or build_map(self.folder, records)
        give_to_delivery_user(self.mail)
        if identity != "records":
            give_to_delivery_user(self.spool)
        self.socket_path = socket_path or os.path.join(self.folder,
                                                       "lmtp.sock")
        self.tcp = tcp
        self.log_path = os.path.join(self.folder, "lmtpd.log")
        listen = self.socket_path if tcp is None else tcp
        command = ["systemd-socket-activate", "-l", listen]
        if mode == "accept":
            command.append("--accept")
        elif mode == "inetd":
            command += ["--accept", "--inetd"]
        for variable, value in (env or {}).items():
            command += ["-E", "%s=%s" % (variable, value)]
        if command_prefix is None:
            command_prefix = os.environ.get("LMTPD_PREFIX", "").split()
        command += list(command_prefix)
        command += [LMTPD, "--map", self.map, "--hostname", hostname,
                    "--spool-dir", self.spool, "--log", "stderr"]
        if ids is not None and identity == "user":
            command += ["--user", TEST_USER]
        command += list(extra_args)
        if mail_at is not None:
            command = in_mount_namespace([(self.mail, mail_at)], command)
        self.log = open(self.log_path, "ab")
        self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL,
                                        stdout=self.log, stderr=self.log)
        self._wait_ready()

    def path(self, box):
        return os.path.join(self.mail, box)

    def reset_mail(self):
        """Empty the mail folder, owned by the delivery user."""
        shutil.rmtree(self.mail)
        os.makedirs(self.mail)
        give_to_delivery_user(self.mail)

    def _wait_ready(self):
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("systemd-socket-activate exited: see "
                                   + self.log_path)
            try:
                with self.connect_raw():
                    return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError("lmtpd socket not ready: " + self.log_path)

    def connect_raw(self):
        """Return a socket connected to the server (the caller closes it)."""
        if self.tcp is None:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(self.socket_path)
        else:
            host, port = self.tcp.rsplit(":", 1)
            s = socket.create_connection((host.strip("[]"), int(port)))
        s.settimeout(20)
        return s

    def log_text(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


class Dialogue:
    """A raw LMTP client that reads every reply line."""

    def __init__(self, sock):
        self.sock = sock
        self.buffer = b""

    def send(self, data):
        self.sock.sendall(data if isinstance(data, bytes) else data.encode())

    def line(self):
        """Return the next reply line without CRLF; b"" at end of stream."""
        while b"\r\n" not in self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                rest, self.buffer = self.buffer, b""
                return rest
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\r\n", 1)
        return line

    def reply(self):
        """Return one whole reply as a list of lines (multi-line aware)."""
        lines = [self.line()]
        while len(lines[-1]) > 3 and lines[-1][3:4] == b"-":
            lines.append(self.line())
        return [l.decode("utf-8", "replace") for l in lines]

    def closed(self):
        """Return True when the server has closed the connection.  A
        reset counts as closed: the server closed it with bytes of ours
        unread, which a command sent just before its 421 leaves."""
        if self.buffer:
            return False
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True
        except TimeoutError:
            return False


def maildir_messages(path):
    """Return the bytes of every message in a Maildir's new/, by name."""
    new = os.path.join(path, "new")
    result = {}
    for name in sorted(os.listdir(new)):
        with open(os.path.join(new, name), "rb") as f:
            result[name] = f.read()
    return result


def strip_header_block(message):
    """Split a stored message into (added header block, original bytes).
    The block is Return-Path, Delivered-To and a three-line Received."""
    lines = message.split(b"\n", 5)
    if not (lines[0].startswith(b"Return-Path: <")
            and lines[1].startswith(b"Delivered-To: ")
            and lines[2].startswith(b"Received: from ")
            and lines[3].startswith(b"\tby ")
            and lines[4].startswith(b"\tfor <")):
        raise AssertionError("no header block at the top: %r" % message[:300])
    return b"\n".join(lines[:5]) + b"\n", lines[5] if len(lines) > 5 else b""
