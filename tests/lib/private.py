"""Run a test's servers in a private mount namespace.

Exim, OpenSMTPD and openbsd-inetd are unpacked from their Debian packages
under tests/work/ instead of being installed, but they look for their
users, helper programs and spool folders at fixed paths.  PrivateMounts
builds an `unshare --mount` command that puts the test's own files at
those paths for that one process tree.  It can mount a tmpfs, bind a
file or folder, add users to copies of /etc/passwd and /etc/group, and
make /dev/log the test's own syslog socket.  Nothing outside the
namespace changes.  Needs root.
"""

import os
import shlex
import shutil
import socket
import subprocess
import threading
import time

from harness import TOP

FETCH_DEBS = os.path.join(TOP, "tests", "lib", "fetch-debs")
DEBS = os.path.join(TOP, "tests", "work", "debs")


def missing_namespace_support():
    """Return why private mount namespaces cannot be used, or None."""
    if os.geteuid() != 0:
        return "needs root for a private mount namespace"
    if shutil.which("unshare") is None:
        return "unshare not found in PATH: install util-linux"
    probe = subprocess.run(["unshare", "--mount", "true"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, check=False)
    if probe.returncode != 0:
        return "unshare --mount failed: " + probe.stdout.strip()
    return None


def fetch_packages(*packages):
    """Unpack Debian packages under tests/work/debs/root with
    tests/lib/fetch-debs and return that folder.  Raises RuntimeError
    with apt's output when a package cannot be fetched."""
    result = subprocess.run(["sh", FETCH_DEBS, DEBS] + list(packages),
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True,
                            timeout=300, check=False)
    if result.returncode != 0:
        raise RuntimeError("fetch-debs %s failed:\n%s"
                           % (" ".join(packages), result.stdout))
    return os.path.join(DEBS, "root")


def missing_libraries(program):
    """Return the shared libraries that ldd cannot find for program."""
    result = subprocess.run(["ldd", program], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, check=False)
    return [line.split()[0] for line in result.stdout.splitlines()
            if "not found" in line]


def free_ids(count):
    """Return count numbers below 1000 that no user and no group has."""
    taken = set()
    for path in ("/etc/passwd", "/etc/group"):
        with open(path, encoding="utf-8") as f:
            for line in f:
                fields = line.split(":")
                if len(fields) > 2 and fields[2].isdigit():
                    taken.add(int(fields[2]))
    ids = [n for n in range(999, 100, -1) if n not in taken][:count]
    if len(ids) < count:
        raise RuntimeError("no free user and group ids below 1000")
    return ids


class PrivateMounts:
    """The mounts of one private namespace, turned into a command."""

    def __init__(self, folder):
        self.folder = folder
        self.lines = ["set -e"]

    def tmpfs(self, path, folders=()):
        """Mount an empty tmpfs on path and make folders inside it."""
        self.lines.append("mount -t tmpfs tmpfs %s" % shlex.quote(path))
        for name in folders:
            self.lines.append("mkdir -p %s"
                              % shlex.quote(os.path.join(path, name)))

    def bind(self, source, target):
        """Bind-mount source on target, which must exist by then."""
        self.lines.append("mount --bind %s %s"
                          % (shlex.quote(source), shlex.quote(target)))

    def users(self, passwd_lines, group_lines):
        """Add users and groups to private copies of /etc/passwd and
        /etc/group."""
        for name, lines in (("passwd", passwd_lines),
                            ("group", group_lines)):
            copy = os.path.join(self.folder, name)
            shutil.copyfile("/etc/" + name, copy)
            with open(copy, "a", encoding="utf-8") as f:
                for line in lines:
                    f.write(line + "\n")
            os.chmod(copy, 0o644)
            self.bind(copy, "/etc/" + name)

    def dev_log(self, socket_path):
        """Make /dev/log the socket at socket_path: an overlay on /dev
        keeps every device and takes the new file."""
        upper = os.path.join(self.folder, "dev-upper")
        work = os.path.join(self.folder, "dev-work")
        os.makedirs(upper, exist_ok=True)
        os.makedirs(work, exist_ok=True)
        self.lines.append("mount -t overlay overlay -o lowerdir=/dev,"
                          "upperdir=%s,workdir=%s /dev"
                          % (shlex.quote(upper), shlex.quote(work)))
        self.lines.append("rm -f /dev/log")
        self.lines.append("touch /dev/log")
        self.bind(socket_path, "/dev/log")

    def command(self, argv):
        """Return the command that sets up the mounts and runs argv."""
        script = "\n".join(self.lines + ['exec "$@"'])
        return ["unshare", "--mount", "--propagation", "private",
                "sh", "-c", script, "sh"] + list(argv)


class SyslogReceiver:
    """A unix datagram socket that collects syslog messages, for use as
    /dev/log in a private namespace.  A thread reads it all the time,
    because a sender blocks once a few datagrams are queued
    (net.unix.max_dgram_qlen)."""

    def __init__(self, path):
        self.path = path
        if os.path.exists(path):
            os.unlink(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        os.chmod(path, 0o666)
        self.sock.settimeout(0.2)
        self.received = []
        self.lock = threading.Lock()
        self.running = True
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        while self.running:
            try:
                data = self.sock.recv(65536)
            except (TimeoutError, socket.timeout):
                continue
            except OSError:
                return
            with self.lock:
                self.received.append(data.decode("utf-8", "replace"))

    def messages(self):
        """Return every message received so far, as text."""
        with self.lock:
            return list(self.received)

    def wait_for(self, text, timeout=10):
        """Return the first message that contains text, waiting for it."""
        deadline = time.monotonic() + timeout
        while True:
            for message in self.messages():
                if text in message:
                    return message
            if time.monotonic() > deadline:
                raise AssertionError("no syslog message with %r in %r"
                                     % (text, self.messages()))
            time.sleep(0.05)

    def close(self):
        self.running = False
        self.thread.join(5)
        self.sock.close()
