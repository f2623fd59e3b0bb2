"""Fault injection: every failure point of a delivery, one at a time.

lmtpd runs under tests/lib/fault_shim.so, which makes the Nth wrapped
call (open, openat, write, writev, pwrite, copy_file_range, fsync,
fdatasync, rename, renameat2, link, linkat, ftruncate or close) fail
with EIO, ENOSPC or EDQUOT, or kills the process there.  Run as root,
the tests start lmtpd as the mailbox owner, so that one process makes
every call.  A session delivers one message to a Maildir recipient
and an mbox recipient, in both orders, with DATA and with BDAT, a
small message that lmtpd keeps in memory with DATA, and a message to a
lone Maildir recipient, which lmtpd writes into its tmp/ as it arrives.  A first run
without faults counts the calls; then every call is made to fail in
turn.  For each run:

- the recipient whose mailbox the failed call wrote gets the reply for
  its errno (ENOSPC 452 4.3.1, EDQUOT 552 5.2.2, EIO 451 4.3.0), and
  the other recipient gets 250;
- a failed spool call gives every recipient not yet delivered 452
  4.3.1 (ENOSPC and EDQUOT, the spool being lmtpd's own file) or 451
  4.3.0 (EIO), and a failed read of the user map 451 4.3.0 to that
  RCPT;
- a failed close() of a descriptor that was only read, of the spool or
  of the dotlock changes nothing: both recipients get 250;
- a failed call that starts a lone Maildir recipient's message in its
  tmp/ makes lmtpd spool the message instead, and the delivery after
  the data may then succeed: 250 or the reply for the errno;
- a failed call of the start checks, which open the user map and
  create a spool file before the greeting, is only logged: both
  recipients get 250;
- every mailbox contains exactly the messages that got 250.  A Maildir
  has nothing new in new/ or cur/ and nothing in tmp/ for a failed
  message, an mbox has the same bytes as before, no dotlock is left,
  and the spool folder is empty.

When the process is killed at a call instead, every 250 already sent
is kept, nothing partial is visible in new/, and after one more
delivery the mbox parses into whole messages only.
"""

import errno
import os
import shutil
import unittest

from harness import (build_map, delivery_user, give_to_delivery_user,
                     make_folder)
from mailcheck import (Client, fault_env, maildir_files, mbox_tags,
                       identify, make_body, read_trace, send_message,
                       start_lmtpd)

MAILDIR_USER = "maildir@example.com"
MBOX_USER = "mbox@example.com"
ERRNOS = ("EIO", "ENOSPC", "EDQUOT")
MAILBOX_REPLY = {"EIO": "451 4.3.0", "ENOSPC": "452 4.3.1",
                 "EDQUOT": "552 5.2.2"}
SPOOL_REPLY = {"EIO": "451 4.3.0", "ENOSPC": "452 4.3.1",
               "EDQUOT": "452 4.3.1"}
MAP_REPLY = "451 4.3.0"
DELIVERED = "250 2.0.0"

# Large enough for several spool and mbox buffer flushes of 64 KiB.
BODY_SIZE = 150000

# Small enough to stay in the spool's 64 KiB buffer.
SMALL_BODY_SIZE = 3000

# Upper bound on the failure points of one session, against a runaway.
MAX_FAILURE_POINTS = 400


class FaultWorld:
    """A user map, a spool folder and a template of two mailboxes that
    each run starts from: a Maildir and an mbox with one message each.
    With as_root, lmtpd runs as root and the records name the test user's
    uid= and gid=, so that a child process delivers each message."""

    def __init__(self, name="faults", as_root=False):
        self.as_root = as_root
        self.folder = make_folder(name)
        owner = ""
        if as_root:
            owner = " uid=%d gid=%d" % delivery_user()
        # With quotas, so that the maildirsize file is read and written.
        self.map = build_map(self.folder, [
            "%s mailbox=%s/mail/maildir/ quota=1G%s" % (MAILDIR_USER,
                                                       self.folder, owner),
            "%s mailbox=%s/mail/mbox quota=1G%s" % (MBOX_USER, self.folder,
                                                   owner),
        ])
        self.mail = os.path.join(self.folder, "mail")
        self.maildir = os.path.join(self.mail, "maildir")
        self.mbox = os.path.join(self.mail, "mbox")
        self.spool = os.path.join(self.folder, "spool")
        self.template = os.path.join(self.folder, "template")
        self.trace = os.path.join(self.folder, "trace")
        self.log = os.path.join(self.folder, "lmtpd.log")
        os.makedirs(self.spool)
        self.bodies = {}
        os.makedirs(self.mail)
        # Run as root, lmtpd switches to the test user, which writes the
        # mailboxes, the spool and the shim's trace in this folder.
        give_to_delivery_user(self.folder)
        outcome = self.deliver("base", None)
        if outcome["results"] != {MAILDIR_USER: DELIVERED,
                                  MBOX_USER: DELIVERED}:
            raise AssertionError("template delivery failed: %r" % outcome)
        # Move the first message to cur/, as a reader would.
        new = os.path.join(self.maildir, "new")
        for name in os.listdir(new):
            os.rename(os.path.join(new, name),
                      os.path.join(self.maildir, "cur", name + ":2,S"))
        shutil.copytree(self.mail, self.template)

    def reset(self):
        shutil.rmtree(self.mail)
        shutil.copytree(self.template, self.mail)
        give_to_delivery_user(self.mail)
        if os.path.exists(self.trace):
            os.unlink(self.trace)

    def snapshot(self):
        with open(self.mbox, "rb") as f:
            return {"maildir": maildir_files(self.maildir), "mbox": f.read()}

    def deliver(self, tag, env, recipients=(MAILDIR_USER, MBOX_USER),
                mode="data", size=2000):
        """Deliver a new message named tag; return send_message()'s
        outcome with the lmtpd exit status added."""
        self.bodies[tag] = make_body(tag, size)
        with open(self.log, "ab") as log:
            process, dialogue = start_lmtpd(
                ["--map", self.map, "--spool-dir", self.spool,
                 "--hostname", "mx.test.example", "--lock-timeout", "2"],
                env=env, log=log, as_owner=not self.as_root)
            outcome = send_message(Client(dialogue), recipients,
                                   self.bodies[tag], mode,
                                   first_chunk=70000 if size > 70000
                                   else None)
            dialogue.sock.close()
            outcome["exit"] = process.wait(30)
        return outcome

    def mailbox_of(self, address):
        return self.maildir if address == MAILDIR_USER else self.mbox


def opens_delivery_folder(world, fault, calls):
    """Return True for maildir_deliver() opening the Maildir or its new/:
    it opens the Maildir with openat() on the path without its final
    "/", then tmp/ and new/ through that descriptor.  The quota scan opens
    the Maildir with open() on the path with the "/"."""
    if fault["function"] != "openat":
        return False
    if fault["target"] == world.maildir:
        return True
    if fault["target"] != world.maildir + "/new":
        return False
    before = [c for c in calls if c["number"] == fault["number"] - 2]
    return (len(before) == 1 and before[0]["function"] == "openat"
            and before[0]["target"] == world.maildir)


def is_quota_call(world, fault, calls):
    """Return True for a call that reads or writes the Maildir's usage:
    the maildirsize file, or a read of the Maildir's folders to count
    it, as opposed to the opens of the Maildir and new/ that deliver the
    message and make its link durable."""
    target = fault["target"]
    if "maildirsize" in target:
        return True
    if fault["mode"] != "r" or fault["function"] not in ("open", "openat"):
        return False
    if opens_delivery_folder(world, fault, calls):
        return False
    return target.rstrip("/") in (world.maildir, world.maildir + "/new",
                                  world.maildir + "/cur")


def first_socket_call(calls):
    """Return the number of the first call on the client's socket, which
    writes the greeting, or None."""
    numbers = [c["number"] for c in calls if c["target"].startswith("socket:")]
    return min(numbers) if numbers else None


def classify(world, fault, calls):
    """Return (kind, detail) for the faulted call.  A call of the start
    checks before the greeting is ("startup", None).  The others are
    ("mailbox", address), ("quota", address), ("spool", None), ("map",
    index of the RCPT), ("socket", None), ("harmless", None) for a
    close() whose failure cannot matter, or ("other", None)."""
    target = fault["target"]
    greeting = first_socket_call(calls)
    if greeting is not None and fault["number"] < greeting:
        return "startup", None

    if is_quota_call(world, fault, calls):
        return "quota", MAILDIR_USER
    if fault["function"] == "close" and (
            fault["mode"] == "r" or target.startswith(world.spool)
            or target.startswith(world.mbox + ".lock")
            or target.startswith(world.mail + "/#")):
        return "harmless", None
    if target.startswith("socket:"):
        return "socket", None
    if target.startswith(world.spool + "/") or target == world.spool:
        return "spool", None
    if target == world.map:
        opens = [c for c in calls if c["target"] == world.map
                 and c["function"] == "open"
                 and greeting < c["number"] <= fault["number"]]
        return "map", len(opens) - 1
    if target == world.maildir or target.startswith(world.maildir + "/"):
        return "mailbox", MAILDIR_USER
    # The mbox's dotlock is made in its folder without a name first.
    if (target == world.mbox or target.startswith(world.mbox + ".lock")
            or target == world.mail or target.startswith(world.mail + "/#")):
        return "mailbox", MBOX_USER
    return "other", None


def final_code(outcome, address):
    """Return the code that ended address's part of the transaction, or
    None when the connection ended first."""
    rcpt = outcome["rcpt"].get(address)
    if rcpt is None:
        return None
    if not rcpt.startswith("250"):
        return rcpt
    if address in outcome["results"]:
        return outcome["results"][address]
    return outcome["data"]


def delivered_before(world, fault, calls, address):
    """Return True when address's message was in its mailbox before the
    faulted call: moved into new/, or fsynced in the mbox."""
    for call in calls:
        if call["number"] >= fault["number"] or call["outcome"] != "ok":
            continue
        if address == MAILDIR_USER and call["function"] in (
                "rename", "renameat2", "link", "linkat") and \
                call["target"].startswith(world.maildir + "/new/"):
            return True
        if address == MBOX_USER and call["function"] == "fsync" and \
                call["target"] == world.mbox:
            return True
    return False


def draft_fell_back(world, fault, calls, recipients):
    """Return True when the faulted call was lmtpd's attempt to write a
    lone Maildir recipient's message into its tmp/ while it arrived, and
    lmtpd then spooled the message instead.  The delivery after the data
    opens the Maildir again and may well succeed."""
    return len(recipients) == 1 and any(
        c["number"] > fault["number"] and
        (c["target"] == world.spool or c["target"].startswith(world.spool +
                                                              "/"))
        for c in calls)


def expected_codes(world, fault, calls, errno_name, recipients):
    """Return ({address: the final codes allowed}, kind of the call).
    None allows any code or no reply, for a fault on the client's socket
    or an unknown call.  A failed update of the Maildir's usage may defer
    the message or not, because maildirsize only caches the usage."""
    kind, detail = classify(world, fault, calls)
    expected = {address: (DELIVERED,) for address in recipients}
    if kind in ("socket", "other"):
        return {address: None for address in recipients}, kind
    if kind == "spool":
        # A small message reaches the spool file only for an mbox, after
        # a Maildir recipient before it may have been delivered.
        return {a: (DELIVERED,) if delivered_before(world, fault, calls, a)
                else (SPOOL_REPLY[errno_name],) for a in recipients}, kind
    if kind == "map":
        expected[recipients[detail]] = (MAP_REPLY,)
    elif kind == "mailbox" and draft_fell_back(world, fault, calls,
                                               recipients):
        expected[detail] = (DELIVERED, MAILBOX_REPLY[errno_name])
    elif kind == "mailbox":
        expected[detail] = (MAILBOX_REPLY[errno_name],)
    elif kind == "quota":
        expected[detail] = (DELIVERED, MAILBOX_REPLY[errno_name])
    return expected, kind


def added_messages(world, before, address, tag, killed=False):
    """Return (number of whole messages named tag that address's mailbox
    gained, violations).  After a kill, files in tmp/, a dotlock and a
    partial message at the end of the mbox are not violations yet: the
    next delivery cuts the partial message off."""
    violations = []
    if address == MAILDIR_USER:
        after = maildir_files(world.maildir)
        if after["tmp"] and not killed:
            violations.append("tmp/ holds %s" % after["tmp"])
        if after["cur"] != before["maildir"]["cur"]:
            violations.append("cur/ changed")
        added = 0
        for name, content in after["new"].items():
            if name in before["maildir"]["new"]:
                if content != before["maildir"]["new"][name]:
                    violations.append("new/%s changed" % name)
            elif identify(content, {tag: world.bodies[tag]}) == tag:
                added += 1
            else:
                violations.append("new/%s is partial or unknown" % name)
        return added, violations

    with open(world.mbox, "rb") as f:
        raw = f.read()
    if os.path.exists(world.mbox + ".lock") and not killed:
        violations.append("dotlock left behind")
    if not raw.startswith(before["mbox"]):
        violations.append("old mbox content changed")
        return 0, violations
    if raw == before["mbox"]:
        return 0, violations
    tags, problems = mbox_tags(world.mbox, world.bodies)
    if not killed:
        violations += problems
    return (1 if tags[-1:] == [tag] and not problems else 0), violations


def check_run(world, before, outcome, tag, expected, recipients):
    """Return the violations of one run with a failed call."""
    violations = []
    for address in recipients:
        code = final_code(outcome, address)
        added, problems = added_messages(world, before, address, tag)
        violations += ["%s: %s" % (address, p) for p in problems]
        allowed = expected[address]
        if code is None and allowed is not None:
            violations.append("%s: no reply, expected %s"
                              % (address, " or ".join(allowed)))
        elif code is not None and allowed is not None and code not in allowed:
            violations.append("%s: reply %s, expected %s"
                              % (address, code, " or ".join(allowed)))
        if code == DELIVERED and added != 1:
            violations.append("%s: 250 but %d messages added"
                              % (address, added))
        if code not in (None, DELIVERED) and added != 0:
            violations.append("%s: %s but the message was stored"
                              % (address, code))
    if os.listdir(world.spool):
        violations.append("spool folder holds %s" % os.listdir(world.spool))
    if outcome["exit"] not in (0, 74):
        violations.append("lmtpd exit status %s" % outcome["exit"])
    return violations


def check_after_kill(world, before, outcome, tag, recipients):
    """Return (violations, files left in tmp/) after lmtpd was killed
    and one more delivery, named "recovery-" + tag, went through."""
    violations = []
    for address in recipients:
        added, problems = added_messages(world, before, address, tag,
                                         killed=True)
        violations += ["%s: %s" % (address, p) for p in problems]
        if outcome["results"].get(address) == DELIVERED and added != 1:
            violations.append("%s: 250 but the message is not there"
                              % address)
    left_in_tmp = len(maildir_files(world.maildir)["tmp"])

    recovery = world.deliver("recovery-" + tag, None)
    if recovery["results"] != {MAILDIR_USER: DELIVERED,
                               MBOX_USER: DELIVERED}:
        violations.append("next delivery: %r" % recovery)
    tags, problems = mbox_tags(world.mbox, world.bodies)
    violations += ["mbox after the next delivery: %s" % p for p in problems]
    allowed = [["base", "recovery-" + tag],
               ["base", tag, "recovery-" + tag]]
    if outcome["results"].get(MBOX_USER) == DELIVERED:
        allowed = allowed[1:]
    if tags not in allowed:
        violations.append("mbox holds %s" % tags)
    if os.path.exists(world.mbox + ".lock"):
        violations.append("dotlock left after the next delivery")
    if os.listdir(world.spool):
        violations.append("spool folder holds %s" % os.listdir(world.spool))
    return violations, left_in_tmp


class FaultInjectionTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.world = FaultWorld()

    def count_calls(self, recipients, mode, size=BODY_SIZE, **settings):
        """Run the session without faults; return its number of calls."""
        world = self.world
        world.reset()
        outcome = world.deliver("count", fault_env(trace=world.trace,
                                                   **settings),
                                recipients, mode, size)
        self.assertEqual(outcome["results"],
                         {a: DELIVERED for a in recipients})
        calls = read_trace(world.trace)
        self.assertGreater(len(calls), 20)
        return len(calls)

    def sweep(self, recipients, mode, errno_name, size=BODY_SIZE,
              **settings):
        """Fail each call in turn; return (failure points, violations).
        Other keyword arguments are shim settings, as fault_env() takes
        them."""
        world = self.world
        points, violations, kinds = 0, [], {}
        for number in range(1, MAX_FAILURE_POINTS + 1):
            world.reset()
            before = world.snapshot()
            tag = "%s-%s-%s-%d" % (mode, recipients[0][:2], errno_name,
                                   number)
            env = fault_env(at=number, errno=errno_name, trace=world.trace,
                            **settings)
            outcome = world.deliver(tag, env, recipients, mode, size)
            calls = read_trace(world.trace)
            faults = [c for c in calls if c["outcome"] == "fault"]
            if not faults:
                break
            points += 1
            expected, kind = expected_codes(world, faults[0], calls,
                                            errno_name, recipients)
            kinds[kind] = kinds.get(kind, 0) + 1
            if kind == "other":
                violations.append("call %d: unknown target %s %s"
                                  % (number, faults[0]["function"],
                                     faults[0]["target"]))
            violations += ["call %d (%s %s): %s"
                           % (number, faults[0]["function"],
                              faults[0]["target"], v)
                           for v in check_run(world, before, outcome, tag,
                                              expected, recipients)]
        print("\nfaults %s, %s first, %s%s: %d failure points %s, "
              "%d violations" % (mode.upper(), recipients[0], errno_name,
                                 " without O_TMPFILE" if settings else "",
                                 points, sorted(kinds.items()),
                                 len(violations)))
        return points, violations

    def run_sweeps(self, mode):
        total_points, total_violations = 0, []
        for recipients in ((MAILDIR_USER, MBOX_USER),
                           (MBOX_USER, MAILDIR_USER)):
            calls = self.count_calls(recipients, mode)
            for errno_name in ERRNOS:
                points, violations = self.sweep(recipients, mode,
                                                errno_name)
                self.assertEqual(points, calls,
                                 "every call of the session was failed")
                total_points += points
                total_violations += violations
        print("faults %s: %d failure points tried, %d violations"
              % (mode.upper(), total_points, len(total_violations)))
        self.assertEqual(total_violations, [])

    def kill_sweep(self, recipients, mode):
        """Kill lmtpd at each call in turn; return (points, violations)."""
        world = self.world
        points, violations, left_in_tmp = 0, [], 0
        for number in range(1, MAX_FAILURE_POINTS + 1):
            world.reset()
            before = world.snapshot()
            tag = "kill-%s-%s-%d" % (mode, recipients[0][:2], number)
            env = fault_env(at=number, action="kill", trace=world.trace)
            outcome = world.deliver(tag, env, recipients, mode, BODY_SIZE)
            calls = read_trace(world.trace)
            killed = [c for c in calls if c["outcome"] == "kill"]
            if not killed:
                break
            points += 1
            found, left = check_after_kill(world, before, outcome, tag,
                                           recipients)
            left_in_tmp += left
            violations += ["kill at call %d (%s %s): %s"
                           % (number, killed[0]["function"],
                              killed[0]["target"], v) for v in found]
        print("\nkills %s, %s first: %d points, %d files left in tmp/, "
              "%d violations" % (mode.upper(), recipients[0], points,
                                 left_in_tmp, len(violations)))
        return points, violations

    def test_kill_at_each_call(self):
        total_points, total_violations = 0, []
        for mode in ("data", "bdat"):
            for recipients in ((MAILDIR_USER, MBOX_USER),
                               (MBOX_USER, MAILDIR_USER)):
                calls = self.count_calls(recipients, mode)
                points, violations = self.kill_sweep(recipients, mode)
                self.assertEqual(points, calls)
                total_points += points
                total_violations += violations
        print("kills: %d points tried, %d violations"
              % (total_points, len(total_violations)))
        self.assertEqual(total_violations, [])

    def test_failed_roll_back(self):
        """A write, fsync or close of the mbox fails, then so does the
        ftruncate() that would cut the message off.  The recipient gets
        451 4.3.0, the dotlock stays with its record, and the next
        delivery cuts the partial message off."""
        world = self.world
        recipients = (MBOX_USER,)
        self.count_calls(recipients, "data")
        points = [c["number"] for c in read_trace(world.trace)
                  if c["target"] == world.mbox and c["mode"] == "rw"
                  and c["function"] in ("write", "fsync", "close")]
        self.assertGreaterEqual(len(points), 3)
        violations = []
        for number in points:
            world.reset()
            log_start = os.path.getsize(world.log)
            tag = "roll-back-%d" % number
            outcome = world.deliver(tag, fault_env(at="%d,ftruncate:1"
                                                   % number),
                                    recipients, "data", BODY_SIZE)
            with open(world.log, encoding="utf-8") as f:
                log = f.read()[log_start:]
            if outcome["results"] != {MBOX_USER: MAILBOX_REPLY["EIO"]}:
                violations.append("call %d: %r" % (number, outcome))
            if "back to" not in log or "failed" not in log:
                violations.append("call %d: failed cut not logged" % number)
            if not os.path.exists(world.mbox + ".lock"):
                violations.append("call %d: no dotlock kept" % number)

            found, _ = check_after_kill(world, world.snapshot(), outcome,
                                        tag, recipients)
            violations += ["call %d: %s" % (number, v) for v in found]
            with open(world.log, encoding="utf-8") as f:
                log = f.read()[log_start:]
            if "of an interrupted delivery" not in log and \
                    "that an interrupted delivery left" not in log:
                violations.append("call %d: take-over not logged" % number)
        print("\nfailed roll-backs: %d points tried, %d violations"
              % (len(points), len(violations)))
        self.assertEqual(violations, [])

    def test_maildir_name_taken(self):
        """A name that exists in tmp/ or new/ (EEXIST) is tried again
        under a new unique name, up to five times for new/."""
        world = self.world
        recipients = (MAILDIR_USER,)
        self.count_calls(recipients, "data")
        calls = read_trace(world.trace)
        tmp_open = [c["number"] for c in calls
                    if c["function"] in ("open", "openat")
                    and "/maildir/tmp/" in c["target"]
                    and not is_quota_call(world, c, calls)]
        self.assertEqual(len(tmp_open), 1)
        # The Maildir writer moves tmp/ into new/ with renameat2().
        cases = (("renameat2:1", DELIVERED, 2),
                 (str(tmp_open[0]), DELIVERED, 1),
                 ("renameat2:1,renameat2:2,renameat2:3,renameat2:4,"
                  "renameat2:5", MAILBOX_REPLY["EIO"], 5))
        for at, code, links in cases:
            world.reset()
            before = world.snapshot()
            tag = "taken-%s" % at.replace(",", "-").replace(":", "")
            outcome = world.deliver(tag, fault_env(at=at, errno=errno.EEXIST,
                                                   trace=world.trace),
                                    recipients, "data", BODY_SIZE)
            self.assertEqual(outcome["results"], {MAILDIR_USER: code}, at)
            self.assertEqual(check_run(world, before, outcome, tag,
                                       {MAILDIR_USER: (code,)}, recipients),
                             [])
            link_targets = [c["target"] for c in read_trace(world.trace)
                            if c["function"] == "renameat2"]
            self.assertEqual(len(link_targets), links, at)
            self.assertEqual(len(set(link_targets)), links, at)

    def test_reply_write_fails(self):
        """When the first recipient's reply cannot be sent, the client
        has gone and will send the message again, so the second
        recipient is not delivered."""
        world = self.world
        recipients = (MAILDIR_USER, MBOX_USER)
        self.count_calls(recipients, "data")
        replies = [c["number"] for c in read_trace(world.trace)
                   if c["function"] == "write"
                   and c["target"].startswith("socket:")]
        # Greeting, LHLO, MAIL, two RCPT, DATA, then the first result.
        self.assertEqual(len(replies), 9)
        world.reset()
        before = world.snapshot()
        log_start = os.path.getsize(world.log)
        outcome = world.deliver("reply-lost", fault_env(at=replies[6]),
                                recipients, "data", BODY_SIZE)
        self.assertTrue(outcome["lost"])
        self.assertEqual(outcome["results"], {})
        added, problems = added_messages(world, before, MAILDIR_USER,
                                         "reply-lost")
        self.assertEqual((added, problems), (1, []))
        added, problems = added_messages(world, before, MBOX_USER,
                                         "reply-lost")
        self.assertEqual((added, problems), (0, []))
        with open(world.log, encoding="utf-8") as f:
            self.assertIn("the remaining recipients were not delivered: 1",
                          f.read()[log_start:])

    def test_faults_without_tmpfile(self):
        """The spool and the dotlock fall back to named files that are
        removed, where the file system lacks O_TMPFILE."""
        recipients = (MAILDIR_USER, MBOX_USER)
        calls = self.count_calls(recipients, "data", no_tmpfile=1)
        total_violations = []
        for errno_name in ("EIO", "ENOSPC"):
            points, violations = self.sweep(recipients, "data", errno_name,
                                            no_tmpfile=1)
            self.assertEqual(points, calls)
            total_violations += violations
        self.assertEqual(total_violations, [])

    def test_faults_with_data(self):
        self.run_sweeps("data")

    def test_faults_with_small_message(self):
        """A message that lmtpd keeps in memory goes into the Maildir
        with one writev(), and into the spool file only for the mbox."""
        total_violations = []
        for recipients in ((MAILDIR_USER, MBOX_USER),
                           (MBOX_USER, MAILDIR_USER)):
            calls = self.count_calls(recipients, "data",
                                     size=SMALL_BODY_SIZE)
            for errno_name in ("EIO", "ENOSPC"):
                points, violations = self.sweep(recipients, "data",
                                                errno_name,
                                                size=SMALL_BODY_SIZE)
                self.assertEqual(points, calls)
                total_violations += violations
        self.assertEqual(total_violations, [])

    def test_faults_with_bdat(self):
        self.run_sweeps("bdat")

    def test_faults_with_one_maildir_recipient(self):
        """A large message for a lone Maildir recipient goes into its
        tmp/ while it arrives, with DATA and with BDAT."""
        total_violations = []
        recipients = (MAILDIR_USER,)
        for mode in ("data", "bdat"):
            calls = self.count_calls(recipients, mode)
            for errno_name in ERRNOS:
                points, violations = self.sweep(recipients, mode,
                                                errno_name)
                self.assertEqual(points, calls)
                total_violations += violations
        self.assertEqual(total_violations, [])

    def test_kill_with_one_maildir_recipient(self):
        total_points, total_violations = 0, []
        for mode in ("data", "bdat"):
            calls = self.count_calls((MAILDIR_USER,), mode)
            points, violations = self.kill_sweep((MAILDIR_USER,), mode)
            self.assertEqual(points, calls)
            total_points += points
            total_violations += violations
        self.assertEqual(total_violations, [])


@unittest.skipUnless(os.geteuid() == 0, "delivery children need root")
class DeliveryChildKillTest(unittest.TestCase):
    """lmtpd runs as root and forks a child per recipient, which is killed
    at each of its calls in turn.  The session goes on: the recipient of
    a killed child gets 451 4.3.0 and the other one its own reply, a 250
    means the message is stored whole, and the next delivery, which cuts
    off what a killed mbox append left, makes both mailboxes whole."""

    def test_kill_child_at_each_call(self):
        world = FaultWorld("faults-child", as_root=True)
        recipients = (MAILDIR_USER, MBOX_USER)
        world.reset()
        outcome = world.deliver("count", fault_env(trace=world.trace,
                                                   scope="children"),
                                recipients, "data", BODY_SIZE)
        self.assertEqual(outcome["results"],
                         {a: DELIVERED for a in recipients})
        calls = max(c["number"] for c in read_trace(world.trace))
        self.assertGreater(calls, 10)

        violations, repairs, log_start = [], 0, os.path.getsize(world.log)
        for number in range(1, calls + 1):
            world.reset()
            before = world.snapshot()
            tag = "child-kill-%d" % number
            outcome = world.deliver(tag, fault_env(at=number, action="kill",
                                                   scope="children",
                                                   trace=world.trace),
                                    recipients, "data", BODY_SIZE)
            killed = {c["target"] for c in read_trace(world.trace)
                      if c["outcome"] == "kill"}
            found = ["%s: %s" % (a, p) for a in recipients
                     for p in self.check_replies(world, before, outcome,
                                                 a, tag)]
            if not killed:
                found.append("no child was killed")
            if outcome["exit"] != 0:
                found.append("lmtpd exit status %s" % outcome["exit"])
            more, _ = check_after_kill(world, before, outcome, tag,
                                       recipients)
            violations += ["kill at child call %d (%s): %s"
                           % (number, sorted(killed), v)
                           for v in found + more]
        with open(world.log, encoding="utf-8") as f:
            log = f.read()[log_start:]
        repairs = log.count("partial message")
        print("\nkills of delivery children: %d points, %d partial mbox "
              "messages cut, %d violations" % (calls, repairs,
                                                len(violations)))
        self.assertEqual(violations, [], "\n".join(violations))
        self.assertIn("delivery process killed by signal 9", log)
        # A notice of the child that cut the partial message reached the
        # session's log through the pipe.
        self.assertGreater(repairs, 0)

    @staticmethod
    def check_replies(world, before, outcome, address, tag):
        """Return the violations of one recipient's final reply: 250 with
        the message stored once, or 451 4.3.0, to RCPT when the child of
        the quota check was killed, with it stored at most once, because
        a child killed after the link into new/ or the final fsync of
        the mbox has stored it without replying."""
        code = final_code(outcome, address)
        added, _ = added_messages(world, before, address, tag, killed=True)
        if code == DELIVERED:
            return [] if added == 1 else ["250 but %d messages added" % added]
        if code == MAILBOX_REPLY["EIO"]:
            return [] if added <= 1 else ["451 but %d messages added" % added]
        return ["reply %s" % code]


if __name__ == "__main__":
    unittest.main()
