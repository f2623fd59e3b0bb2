"""The systemd units' sandbox: its exposure score and its system calls.

systemd-analyze scores each service unit offline, without a running
systemd.  Then lmtpd serves a real delivery under strace, with the user,
capability bounding set and no_new_privs of its unit set by setpriv, and
every system call it makes must pass the unit's SystemCallFilter=, as
systemd-analyze expands its groups.
"""

import os
import re
import shutil
import socket
import subprocess
import unittest

from harness import (TOP, WORK, Dialogue, LmtpdServer, delivery_user,
                     give_to_delivery_user)

UNITS = os.path.join(TOP, "units")
SERVICES = ["lmtpd@.service", "lmtpd-acceptor.service",
            "lmtpd-backend@.service", "lmtpd-system@.service"]
MAX_EXPOSURE = 2.0


def unit_settings(name):
    """Return {setting: [values in order]} from a unit file."""
    settings = {}
    with open(os.path.join(UNITS, name), encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith(("#", ";", "[")):
                continue
            key, _, value = line.partition("=")
            settings.setdefault(key, []).append(value)
    return settings


def expand_syscalls(names, groups):
    """Return the system calls that names stand for, expanding each
    @group recursively with `systemd-analyze syscall-filter`."""
    result = set()
    for name in names:
        if not name.startswith("@"):
            result.add(name)
            continue
        if name not in groups:
            output = subprocess.run(
                ["systemd-analyze", "syscall-filter", "--no-pager", name],
                stdout=subprocess.PIPE, text=True, check=True).stdout
            members = []
            for line in output.splitlines()[1:]:
                line = line.strip()
                if line and not line.startswith("#"):
                    members.append(line)
            groups[name] = expand_syscalls(members, groups)
        result |= groups[name]
    return result


def allowed_syscalls(settings):
    """Return the allow list that the unit's SystemCallFilter= lines
    give: the first lists what is allowed, and each later line starting
    with "~" removes its calls."""
    groups = {}
    allowed = set()
    for value in settings["SystemCallFilter"]:
        if value.startswith("~"):
            allowed -= expand_syscalls(value[1:].split(), groups)
        else:
            allowed |= expand_syscalls(value.split(), groups)
    return allowed


def traced_syscalls(folder):
    """Return the names of the system calls in the strace -ff output
    files in folder, one file per process."""
    names = set()
    pattern = re.compile(r"^(?:<\.\.\. )?([a-z0-9_]+)[( ]")
    for name in os.listdir(folder):
        with open(os.path.join(folder, name), encoding="utf-8",
                  errors="replace") as f:
            for line in f:
                match = pattern.match(line)
                if match is not None:
                    names.add(match.group(1))
    return names


def setpriv_command(settings):
    """Return a setpriv prefix that applies the unit's User=, Group=,
    CapabilityBoundingSet= and NoNewPrivileges=, with the test user in
    place of the unit's."""
    command = ["setpriv"]
    if "User" in settings:
        uid, gid = delivery_user()
        command += ["--reuid=%d" % uid, "--regid=%d" % gid,
                    "--clear-groups"]
    capabilities = settings["CapabilityBoundingSet"][-1].split()
    bounding = ["-all"] + ["+" + c.lower()[len("cap_"):]
                           for c in capabilities]
    command += ["--bounding-set=" + ",".join(bounding)]
    if settings.get("NoNewPrivileges", ["no"])[-1] == "yes":
        command.append("--no-new-privs")
    return command


class ExposureTest(unittest.TestCase):
    def test_exposure_at_most_two(self):
        for name in SERVICES:
            with self.subTest(unit=name):
                result = subprocess.run(
                    ["systemd-analyze", "security", "--offline=true",
                     "--no-pager", os.path.join(UNITS, name)],
                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                    text=True, timeout=60, check=False)
                match = re.search(r"Overall exposure level for \S+: "
                                  r"(\d+\.\d+)", result.stdout)
                self.assertIsNotNone(match, result.stdout)
                exposure = float(match.group(1))
                print("\n%s: exposure %.1f" % (name, exposure), end=" ")
                self.assertLessEqual(exposure, MAX_EXPOSURE, result.stdout)


@unittest.skipUnless(os.geteuid() == 0, "setpriv needs root to switch users")
@unittest.skipIf(os.environ.get("LMTPD_SANITIZED"),
                 "sanitizer run time makes system calls of its own")
@unittest.skipIf(shutil.which("strace") is None, "strace is not installed")
class SystemCallFilterTest(unittest.TestCase):
    """A Maildir and an mbox delivery, with a rejected recipient, traced."""

    def run_traced(self, unit, mode, identity, tcp=None):
        """Deliver under strace as the unit runs lmtpd, on the unix
        socket, or on tcp ("address:port") as a back-end store is
        reached."""
        settings = unit_settings(unit)
        trace = os.path.join(WORK, "strace-" + unit)
        shutil.rmtree(trace, ignore_errors=True)
        os.makedirs(trace)
        if "User" in settings:
            give_to_delivery_user(trace)
        # -D keeps lmtpd the process that systemd-socket-activate
        # started, so that LISTEN_PID names it.
        prefix = setpriv_command(settings) + [
            "strace", "-D", "-ff", "-qq", "-o", os.path.join(trace, "trace")]
        users = {"maildir@example.com": "maildir/",
                 "mbox@example.com": "user.mbox"}
        server = LmtpdServer("units-" + unit, users, mode=mode, tcp=tcp,
                             identity=identity, command_prefix=prefix)
        try:
            with server.connect_raw() as sock:
                dialogue = Dialogue(sock)
                dialogue.send(b"LHLO c\r\nMAIL FROM:<s@example.org>\r\n"
                              b"RCPT TO:<maildir@example.com>\r\n"
                              b"RCPT TO:<mbox@example.com>\r\n"
                              b"RCPT TO:<nobody@example.com>\r\n"
                              b"DATA\r\nSubject: x\r\n\r\nbody\r\n.\r\n"
                              # Too large for memory, for one Maildir: as
                              # the mailbox owner, lmtpd writes it into
                              # tmp/ as it arrives.
                              b"MAIL FROM:<s@example.org>\r\n"
                              b"RCPT TO:<maildir@example.com>\r\n"
                              b"DATA\r\nSubject: large\r\n\r\n" +
                              (b"x" * 78 + b"\r\n") * 4000 + b".\r\n"
                              b"QUIT\r\n")
                replies = []
                line = dialogue.line()
                while line:
                    replies.append(line.decode())
                    line = dialogue.line()
        finally:
            server.stop()
        self.assertEqual(replies.count("250 2.0.0 <maildir@example.com> "
                                       "delivered"), 2, replies)
        self.assertIn("250 2.0.0 <mbox@example.com> delivered", replies)
        self.assertRegex(replies[-1], r"^221 ")

        used = traced_syscalls(trace)
        self.assertIn("fsync", used)
        denied = sorted(used - allowed_syscalls(settings))
        self.assertEqual(denied, [], "%s denies system calls that lmtpd "
                         "made, see %s" % (unit, trace))

    def test_unprivileged_unit(self):
        self.run_traced("lmtpd@.service", "accept", "none")

    def test_acceptor_unit(self):
        self.run_traced("lmtpd-acceptor.service", "listen", "none")

    def test_backend_unit(self):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        self.run_traced("lmtpd-backend@.service", "accept", "none",
                        tcp="127.0.0.1:%d" % port)

    def test_system_unit(self):
        self.run_traced("lmtpd-system@.service", "accept", "records")


if __name__ == "__main__":
    unittest.main()
