"""make install and make uninstall into a DESTDIR under tests/work.

Checks every installed file, its mode and content, the ExecStart paths
of the units against SBINDIR, the man pages with mandoc -Tlint, and
that make uninstall removes every file again.

Run: TESTS=install python3 tests/run.py
"""

import os
import re
import shutil
import stat
import subprocess
import unittest

from harness import TOP, make_folder

PROGRAMS = ["lmtpd", "lmtpd-transport"]
MAN_PAGES = [("man5", "lmtpd.users.5"), ("man8", "lmtpd.8"),
             ("man8", "lmtpd-transport.8")]
UNITS = ["lmtpd.socket", "lmtpd@.service", "lmtpd-acceptor.socket",
         "lmtpd-acceptor.service", "lmtpd-backend.socket",
         "lmtpd-backend@.service", "lmtpd-system.socket",
         "lmtpd-system@.service"]
EXAMPLES = ["recipes.md", "users.txt.example", "lmtpd.xinetd",
            "inetd.conf"]


def makefile_version():
    with open(os.path.join(TOP, "Makefile"), encoding="utf-8") as f:
        return re.search(r"^VERSION = (\S+)$", f.read(), re.MULTILINE).group(1)


def make(*args):
    return subprocess.run(["make", "--no-print-directory", "-C", TOP]
                          + list(args), stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=300, check=False)


def installed_files(root):
    """Return every file and link under root, relative to it."""
    found = []
    for folder, _, names in os.walk(root):
        for name in names:
            found.append(os.path.relpath(os.path.join(folder, name), root))
    return sorted(found)


class InstallTest(unittest.TestCase):
    def install(self, name, *variables):
        destdir = make_folder(name)
        result = make("install", "DESTDIR=" + destdir, *variables)
        self.assertEqual(result.returncode, 0, result.stdout)
        return destdir

    def check_tree(self, destdir, sbindir, mandir, unitdir, docdir):
        programs = [os.path.join(sbindir, name) for name in PROGRAMS]
        pages = [os.path.join(mandir, section, name)
                 for section, name in MAN_PAGES]
        rewritten = [os.path.join(unitdir, unit) for unit in UNITS]
        rewritten += [os.path.join(docdir, name) for name in EXAMPLES]
        expected = programs + pages + rewritten
        self.assertEqual(installed_files(destdir),
                         sorted(path.lstrip("/") for path in expected))

        for path in programs:
            self.assertEqual(stat.S_IMODE(os.stat(destdir + path).st_mode),
                             0o755, path)
        with open(os.path.join(TOP, "tools", "lmtpd-transport"), "rb") as f:
            source = f.read()
        with open(destdir + os.path.join(sbindir, "lmtpd-transport"),
                  "rb") as f:
            self.assertEqual(f.read(), source)

        binary = destdir + os.path.join(sbindir, "lmtpd")
        version = subprocess.run([binary, "--version"],
                                 stdout=subprocess.PIPE, text=True,
                                 timeout=20, check=False)
        self.assertEqual(version.returncode, 0)
        self.assertEqual(version.stdout, "lmtpd %s\n" % makefile_version())

        for path in pages + rewritten:
            self.assertEqual(stat.S_IMODE(os.stat(destdir + path).st_mode),
                             0o644, path)
        for page in pages:
            with open(os.path.join(TOP, "man", os.path.basename(page)),
                      "rb") as f:
                source = f.read()
            with open(destdir + page, "rb") as f:
                self.assertEqual(f.read(), source, page)
            lint = subprocess.run(["mandoc", "-Tlint", "-Wwarning",
                                   destdir + page], stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True,
                                  check=False)
            self.assertEqual(lint.stdout, "", page)
            self.assertEqual(lint.returncode, 0, page)

        # Every unit and example names the installed binary and nothing
        # else of the source tree's default path.
        for path in rewritten:
            with open(destdir + path, encoding="utf-8") as f:
                text = f.read()
            source = os.path.join(TOP, "units", os.path.basename(path))
            if not os.path.exists(source):
                source = os.path.join(TOP, "docs", os.path.basename(path))
            with open(source, encoding="utf-8") as f:
                original = f.read()
            self.assertEqual(text, original.replace(
                "/usr/local/sbin/lmtpd", os.path.join(sbindir, "lmtpd")),
                path)
        for unit in UNITS:
            if not unit.endswith(".service"):
                continue
            with open(destdir + os.path.join(unitdir, unit),
                      encoding="utf-8") as f:
                exec_start = re.findall(r"^ExecStart=(\S+)", f.read(),
                                        re.MULTILINE)
            self.assertEqual(exec_start, [os.path.join(sbindir, "lmtpd")],
                             unit)

    def check_uninstall(self, destdir, *variables):
        result = make("uninstall", "DESTDIR=" + destdir, *variables)
        self.assertEqual(result.returncode, 0, result.stdout)
        self.assertEqual(installed_files(destdir), [])

    def test_default_paths(self):
        unitdir = subprocess.run(
            ["pkg-config", "--variable=systemdsystemunitdir", "systemd"],
            stdout=subprocess.PIPE, text=True, check=False).stdout.strip()
        unitdir = unitdir or "/lib/systemd/system"
        destdir = self.install("install-default")
        self.check_tree(destdir, "/usr/local/sbin", "/usr/local/share/man",
                        unitdir, "/usr/local/share/doc/lmtpd")
        self.check_uninstall(destdir)
        self.assertFalse(os.path.exists(
            destdir + "/usr/local/share/doc/lmtpd"))

    def test_chosen_paths(self):
        variables = ["PREFIX=/usr", "SBINDIR=/usr/libexec/mail",
                     "MANDIR=/usr/man", "SYSTEMDUNITDIR=/etc/systemd/system"]
        destdir = self.install("install-chosen", *variables)
        self.check_tree(destdir, "/usr/libexec/mail", "/usr/man",
                        "/etc/systemd/system", "/usr/share/doc/lmtpd")
        self.check_uninstall(destdir, *variables)

    def test_units_verify(self):
        """systemd-analyze accepts the installed units, whose ExecStart
        it checks for an executable file."""
        if shutil.which("systemd-analyze") is None:
            self.skipTest("systemd-analyze not found: install systemd")
        # SBINDIR is the source tree, where the built lmtpd is.
        destdir = self.install("install-verify", "SBINDIR=" + TOP,
                               "SYSTEMDUNITDIR=/units")
        result = subprocess.run(
            ["systemd-analyze", "verify", "--man=no"]
            + [os.path.join(destdir, "units", unit) for unit in UNITS],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            timeout=60, check=False)
        self.assertEqual(result.stdout, "")
        self.assertEqual(result.returncode, 0)


if __name__ == "__main__":
    unittest.main()
