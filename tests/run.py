"""Run every lmtpd test and print one summary line at the end.

The Check unit suites in tests/unit/ run first, then the Python suites
tests/test_*.py (dialogues, Postfix end to end, the message corpus).
Set TESTS=name,name to run only the Python suites with those names,
CHECK_DIR to run the Check suites of another build, and LMTPD to test
another lmtpd binary.
"""

import glob
import os
import re
import subprocess
import sys
import unittest

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(TOP, "tests", "lib"))


def run_check_suites():
    passed = failed = 0
    folder = os.environ.get("CHECK_DIR", os.path.join(TOP, "tests", "unit"))
    for binary in sorted(glob.glob(os.path.join(folder, "check_*"))):
        if binary.endswith(".c") or not os.access(binary, os.X_OK):
            continue
        result = subprocess.run([binary], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True,
                                cwd=TOP, check=False)
        sys.stdout.write(result.stdout)
        match = re.search(r"Checks: (\d+), Failures: (\d+), Errors: (\d+)",
                          result.stdout)
        if match is None:
            print("%s: no Check summary, exit status %d"
                  % (os.path.basename(binary), result.returncode))
            failed += 1
            continue
        checks, failures, errors = (int(g) for g in match.groups())
        passed += checks - failures - errors
        failed += failures + errors
        if result.returncode != 0 and failures + errors == 0:
            failed += 1
    return passed, failed


def run_python_suites():
    loader = unittest.TestLoader()
    suite = unittest.TestSuite()
    wanted = [n for n in os.environ.get("TESTS", "").split(",") if n]
    for path in sorted(glob.glob(os.path.join(TOP, "tests", "test_*.py"))):
        name = os.path.basename(path)[:-3]
        if wanted and name not in wanted and name[5:] not in wanted:
            continue
        suite.addTests(loader.discover(os.path.join(TOP, "tests"),
                                       pattern=name + ".py",
                                       top_level_dir=os.path.join(TOP,
                                                                  "tests")))
    result = unittest.TextTestRunner(verbosity=2, stream=sys.stdout).run(suite)
    failed = len(result.failures) + len(result.errors)
    skipped = len(result.skipped)
    passed = result.testsRun - failed - skipped
    return passed, failed, skipped


def main():
    unit_passed, unit_failed = run_check_suites()
    passed, failed, skipped = run_python_suites()
    passed += unit_passed
    failed += unit_failed
    print("%d passed, %d failed, %d skipped" % (passed, failed, skipped))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
