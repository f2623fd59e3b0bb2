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


class LmtpdServer:
    """lmtpd behind systemd-socket-activate, stopped by stop()."""

    def __init__(self, name, users, mode="accept", extra_args=(), tcp=None,
                 identity="records", command_prefix=None):
        """users maps an address to its mailbox name under the folder:
        a name ending in "/" is a Maildir, any other an mbox file.  A
        value that contains "=" is used as the record as it is.
        mode: "accept" (Accept=yes), "listen" (Accept=no) or "inetd".
        identity, when the tests run as root: "records" adds the test
        user's uid= and gid= to each generated record, "user" passes
        --user instead, and "none" does neither, for a command_prefix
        that switches users itself.  command_prefix (a list, or
        LMTPD_PREFIX from the environment, split at spaces) runs lmtpd
        under a tool such as valgrind."""
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
                records.append("%s mailbox=%s%s"
                               % (address, self.path(box), owner))
        self.map = build_map(self.folder, records)
        give_to_delivery_user(self.mail)
        if identity != "records":
            give_to_delivery_user(self.spool)
        self.socket_path = os.path.join(self.folder, "lmtp.sock")
        self.tcp = tcp
        self.log_path = os.path.join(self.folder, "lmtpd.log")
        listen = self.socket_path if tcp is None else tcp
        command = ["systemd-socket-activate", "-l", listen]
        if mode == "accept":
            command.append("--accept")
        elif mode == "inetd":
            command += ["--accept", "--inetd"]
        if command_prefix is None:
            command_prefix = os.environ.get("LMTPD_PREFIX", "").split()
        command += list(command_prefix)
        command += [LMTPD, "--map", self.map, "--hostname", HOSTNAME,
                    "--spool-dir", self.spool, "--log", "stderr"]
        if ids is not None and identity == "user":
            command += ["--user", TEST_USER]
        command += list(extra_args)
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
