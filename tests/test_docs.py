"""The docs say what the code and the tests do.

The recipes of docs/recipes.md, the files under units/ that it shows,
lmtpd(8), the README and --help must agree: each check here reads two
of them and compares.  The recipe tests themselves run the blocks of
docs/recipes.md.

Run: TESTS=docs python3 tests/run.py
"""

import os
import re
import subprocess
import unittest

from harness import LMTPD, TOP, read_recipe


def read(*path):
    with open(os.path.join(TOP, *path), encoding="utf-8") as f:
        return f.read()


def rendered(page):
    """Return a man page as mandoc renders it, without formatting."""
    result = subprocess.run(["mandoc", "-Tascii", "-Owidth=200",
                             os.path.join(TOP, "man", page)],
                            stdout=subprocess.PIPE, text=True, timeout=30,
                            check=True)
    return re.sub(r".\x08", "", result.stdout)


def long_options():
    """Return the long options that lmtpd --help lists."""
    result = subprocess.run([LMTPD, "--help"], stdout=subprocess.PIPE,
                            text=True, timeout=20, check=True)
    return sorted(set(re.findall(r"(--[a-z][a-z-]+)", result.stdout)))


class DocsTest(unittest.TestCase):
    def test_recipes_in_man_page(self):
        page = [line.strip() for line in rendered("lmtpd.8").splitlines()]
        for name in ("postfix", "exim-router", "exim-transport",
                     "opensmtpd"):
            for line in read_recipe(name).splitlines():
                if line and not line.startswith("#"):
                    with self.subTest(recipe=name, line=line):
                        self.assertIn(line.strip(), page)

    def test_units_in_recipes(self):
        recipes = read("docs", "recipes.md")
        xinetd = read("units", "lmtpd.xinetd")
        service = xinetd[xinetd.index("service lmtp"):]
        self.assertIn("```\n" + service + "```\n", recipes)
        inetd = [line for line in read("units", "inetd.conf").splitlines()
                 if not line.startswith("#")]
        self.assertEqual(len(inetd), 1)
        self.assertIn("```\n" + inetd[0] + "\n```\n", recipes)

    def test_postfix_recipe_in_readme(self):
        self.assertIn("```\n" + read_recipe("postfix") + "```\n",
                      read("README.md"))

    def test_options_documented(self):
        options = long_options()
        self.assertIn("--check-map", options)
        self.assertIn("--verbose", options)
        page = rendered("lmtpd.8")
        readme = read("README.md")
        for option in options:
            with self.subTest(option=option):
                self.assertRegex(page, r"(?m)^ *(-[a-zA-Z], )?%s\b"
                                 % re.escape(option))
                if option not in ("--help", "--version"):
                    self.assertIn(option + " ", readme)

    def test_reply_codes_in_diagnostics(self):
        """Every reply code and enhanced code that the code sends has a
        line in DIAGNOSTICS."""
        sources = ""
        for folder in ("session", "store"):
            for name in os.listdir(os.path.join(TOP, folder)):
                if name.endswith(".c"):
                    sources += read(folder, name)
        codes = set(re.findall(r'\b([2-5][0-9][0-9]), "([245]\.[0-9]+\.'
                               r'[0-9]+)"', sources))
        self.assertGreater(len(codes), 15)
        page = rendered("lmtpd.8")
        diagnostics = page[page.index("\nDIAGNOSTICS\n"):
                           page.index("\nSEE ALSO\n")]
        for code, status in sorted(codes):
            with self.subTest(code=code, status=status):
                self.assertRegex(diagnostics, r"(?m)^ *(\S+ \S+, )?%s %s\b"
                                 % (code, re.escape(status)))


if __name__ == "__main__":
    unittest.main()
