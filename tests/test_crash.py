"""Crashes: lmtpd is killed with SIGKILL at random moments.

Each round delivers one message to a Maildir and an mbox recipient and
kills the lmtpd process either while the client is still sending the
message (DATA) or at a random moment after the final dot (delivery).
After every round:

- each file in the Maildir's new/ is a whole message that was sent;
- the mbox, up to where a killed append started (the offset that the
  dotlock of an interrupted delivery records), parses into whole
  messages that were sent, and nothing before that point changed;
- the spool folder is empty.

At the end one more delivery cuts off any partial message, and then
every message that got a 250 is present and whole in its mailbox, and
the whole mbox parses into whole messages with Python's mailbox module.

The random choices come from a seed, which the test prints at the
start.  Set LMTPD_CRASH_SEED to repeat a run, and LMTPD_CRASH_ROUNDS to
change the number of rounds (600 by default).
"""

import os
import random
import re
import time
import unittest

from harness import build_map, give_to_delivery_user, make_folder
from mailcheck import (Client, Lost, code_of, data_bytes, identify,
                       make_body, mbox_tags, start_lmtpd)

MAILDIR_USER = "maildir@example.com"
MBOX_USER = "mbox@example.com"
DELIVERED = "250 2.0.0"
ROUNDS = int(os.environ.get("LMTPD_CRASH_ROUNDS", "600"))
MIN_ROUNDS = 500

# Safety bound on the whole test in seconds.  A round takes tens of
# milliseconds.
TIME_LIMIT = 240

# Rounds without a kill per message size, to learn how long a delivery
# takes here.
CALIBRATION_ROUNDS = 5

# Message sizes in bytes: mostly small, and some large enough that a
# kill often lands while the mbox is being written.
SMALL_SIZES = (1000, 48000)
LARGE_SIZES = (256000, 1000000)
LARGE_SHARE = 0.3


def split_mbox(segment):
    """Split mbox bytes into entries without their From line and the
    blank line after them; return (entries, problems)."""
    problems = []
    if segment == b"":
        return [], problems
    if not segment.startswith(b"From ") or not segment.endswith(b"\n\n"):
        return [], ["segment is not whole entries: %r ... %r"
                    % (segment[:40], segment[-40:])]
    entries = []
    for part in re.split(rb"\n\n(?=From )", segment[:-2]):
        entries.append(part.split(b"\n", 1)[1] + b"\n")
    return entries, problems


def record_offset(lock_path):
    """Return the offset that an interrupted append recorded in its
    dotlock, or None when there is no dotlock or no record in it."""
    try:
        with open(lock_path, "rb") as f:
            text = f.read(200)
    except FileNotFoundError:
        return None
    match = re.match(rb"[0-9]+\nlmtpd-append [0-9]+ [0-9]+ ([0-9]+) ", text)
    return int(match.group(1)) if match else None


class CrashWorld:
    """The map, mailboxes and spool of the crash test, and what it has
    learnt so far: the messages sent, the 250s received, the mbox's
    known clean end and the Maildir files already checked."""

    def __init__(self):
        self.folder = make_folder("crash")
        self.maildir = os.path.join(self.folder, "mail", "maildir")
        self.mbox = os.path.join(self.folder, "mail", "mbox")
        self.spool = os.path.join(self.folder, "spool")
        self.log = os.path.join(self.folder, "lmtpd.log")
        self.map = build_map(self.folder, [
            "%s mailbox=%s/" % (MAILDIR_USER, self.maildir),
            "%s mailbox=%s" % (MBOX_USER, self.mbox),
        ])
        os.makedirs(os.path.join(self.folder, "mail"))
        os.makedirs(self.spool)
        # Run as root, lmtpd runs as the test user (see start_lmtpd).
        give_to_delivery_user(self.folder)
        self.bodies = {}
        self.delivered = {MAILDIR_USER: set(), MBOX_USER: set()}
        self.clean_end = 0
        self.seen_files = set()
        self.mbox_tags = []
        self.maildir_tags = []

    def start(self, tag, size):
        self.bodies[tag] = make_body(tag, size)
        with open(self.log, "ab") as log:
            return start_lmtpd(["--map", self.map, "--spool-dir", self.spool,
                                "--hostname", "mx.test.example"], log=log)

    def check_maildir(self):
        """Check the files that appeared in new/ since the last call."""
        problems = []
        new = os.path.join(self.maildir, "new")
        if not os.path.isdir(new):
            return problems
        for name in sorted(os.listdir(new)):
            if name in self.seen_files:
                continue
            self.seen_files.add(name)
            with open(os.path.join(new, name), "rb") as f:
                tag = identify(f.read(), self.bodies)
            if tag is None:
                problems.append("new/%s is not a whole message" % name)
            else:
                self.maildir_tags.append(tag)
        return problems

    def check_mbox(self):
        """Check the mbox from its known clean end to where the next
        delivery will cut it, or to its end."""
        if not os.path.exists(self.mbox):
            return []
        with open(self.mbox, "rb") as f:
            f.seek(self.clean_end)
            tail = f.read()
            size = f.tell()
        end = record_offset(self.mbox + ".lock")
        if end is None:
            end = size
        if end < self.clean_end or size < self.clean_end:
            return ["mbox shrank below %d bytes" % self.clean_end]
        entries, problems = split_mbox(tail[:end - self.clean_end])
        for entry in entries:
            tag = identify(entry, self.bodies, quoted=True)
            if tag is None:
                problems.append("mbox entry at or after byte %d is not a "
                                "whole message" % self.clean_end)
            else:
                self.mbox_tags.append(tag)
        self.clean_end = end
        return problems


def read_results(client, accepted, results):
    """Read per-recipient replies until the connection ends."""
    try:
        for address in accepted:
            results[address] = code_of(client.reply())
    except Lost:
        pass


class CrashTest(unittest.TestCase):

    def setUp(self):
        self.seed = int(os.environ.get("LMTPD_CRASH_SEED",
                                       str(int.from_bytes(os.urandom(4),
                                                          "big"))))
        self.rng = random.Random(self.seed)
        self.world = CrashWorld()
        print("\ncrash seed %d (set LMTPD_CRASH_SEED=%d to repeat)"
              % (self.seed, self.seed))

    def open_transaction(self, process, dialogue, recipients):
        """Run LHLO, MAIL, RCPT and DATA; return the client."""
        client = Client(dialogue)
        client.reply()
        client.command("LHLO client.example\r\n")
        client.command("MAIL FROM:<sender@example.org>\r\n")
        for address in recipients:
            reply = client.command("RCPT TO:<%s>\r\n" % address)
            self.assertTrue(reply.startswith("250"), reply)
        reply = client.command("DATA\r\n")
        self.assertTrue(reply.startswith("354"), reply)
        return client

    def calibrate(self, size):
        """Return the longest time from the final dot to the last reply
        over a few rounds without a kill, for messages of size bytes."""
        longest = 0.0
        for number in range(CALIBRATION_ROUNDS):
            tag = "calibration-%d-%d" % (size, number)
            process, dialogue = self.world.start(tag, size)
            recipients = [MAILDIR_USER, MBOX_USER]
            client = self.open_transaction(process, dialogue, recipients)
            start = time.monotonic()
            client.send(data_bytes(self.world.bodies[tag]))
            results = {}
            read_results(client, recipients, results)
            longest = max(longest, time.monotonic() - start)
            client.command("QUIT\r\n")
            dialogue.sock.close()
            process.wait(10)
            for address in recipients:
                self.assertEqual(results[address], DELIVERED)
                self.world.delivered[address].add(tag)
        return longest

    def crash_round(self, number, delivery_times, counts):
        """Run one round and kill lmtpd; return the violations."""
        rng, world = self.rng, self.world
        tag = "crash-%d" % number
        recipients = [MAILDIR_USER, MBOX_USER]
        rng.shuffle(recipients)
        large = rng.random() < LARGE_SHARE
        delivery_time = delivery_times[large]
        process, dialogue = world.start(
            tag, rng.randint(*(LARGE_SIZES if large else SMALL_SIZES)))
        results = {}
        try:
            client = self.open_transaction(process, dialogue, recipients)
            data = data_bytes(world.bodies[tag])
            if rng.random() < 0.5:
                counts["during DATA"] += 1
                client.send(data[:rng.randint(0, len(data) - 1)])
                time.sleep(rng.uniform(0, 0.002))
            else:
                counts["during delivery"] += 1
                client.send(data)
                time.sleep(rng.uniform(0, delivery_time * 1.2))
            process.kill()
            read_results(client, recipients, results)
        except Lost:
            process.kill()
        dialogue.sock.close()
        process.wait(10)

        for address, code in results.items():
            if code == DELIVERED:
                world.delivered[address].add(tag)
                counts["250 before the kill"] += 1
        if os.path.exists(world.mbox + ".lock"):
            counts["dotlocks left"] += 1
            offset = record_offset(world.mbox + ".lock")
            if offset is not None and os.path.getsize(world.mbox) > offset:
                counts["partial mbox messages"] += 1
        violations = world.check_maildir() + world.check_mbox()
        if os.listdir(world.spool):
            violations.append("spool folder holds %s"
                              % os.listdir(world.spool))
        return ["round %d: %s" % (number, v) for v in violations]

    def final_check(self):
        """Deliver once more, then check every 250 and the whole mbox."""
        world = self.world
        tag = "final"
        process, dialogue = world.start(tag, 2000)
        recipients = [MAILDIR_USER, MBOX_USER]
        client = self.open_transaction(process, dialogue, recipients)
        client.send(data_bytes(world.bodies[tag]))
        results = {}
        read_results(client, recipients, results)
        client.command("QUIT\r\n")
        dialogue.sock.close()
        process.wait(10)
        self.assertEqual(results, {a: DELIVERED for a in recipients})
        world.delivered[MAILDIR_USER].add(tag)
        world.delivered[MBOX_USER].add(tag)

        violations = world.check_maildir()
        self.assertFalse(os.path.exists(world.mbox + ".lock"))
        tags, problems = mbox_tags(world.mbox, world.bodies)
        violations += ["mbox: %s" % p for p in problems]
        for address, present in ((MAILDIR_USER, world.maildir_tags),
                                 (MBOX_USER, tags)):
            missing = world.delivered[address] - set(present)
            violations += ["%s: %s got 250 but is missing" % (address, t)
                           for t in sorted(missing)]
            if len(present) != len(set(present)):
                violations.append("%s: a message is stored twice" % address)
        return violations, tags

    def test_random_kills(self):
        counts = {"during DATA": 0, "during delivery": 0,
                  "250 before the kill": 0, "dotlocks left": 0,
                  "partial mbox messages": 0}
        delivery_times = (self.calibrate(SMALL_SIZES[1]),
                          self.calibrate(LARGE_SIZES[1]))
        deadline = time.monotonic() + TIME_LIMIT
        violations, rounds = [], 0
        while rounds < ROUNDS and time.monotonic() < deadline:
            violations += self.crash_round(rounds, delivery_times, counts)
            rounds += 1

        final_violations, tags = self.final_check()
        violations += final_violations
        left = len(os.listdir(os.path.join(self.world.maildir, "tmp")))
        print("crash: %d rounds, %s, delivery %.1f and %.1f ms, %d mbox "
              "messages, %d Maildir messages, %d files left in tmp/, "
              "%d violations"
              % (rounds, ", ".join("%d %s" % (n, k) for k, n in
                                   counts.items()),
                 delivery_times[0] * 1000, delivery_times[1] * 1000,
                 len(tags),
                 len(self.world.maildir_tags), left, len(violations)))
        for violation in violations[:20]:
            print("  " + violation)
        self.assertEqual(violations, [])
        self.assertGreaterEqual(rounds, min(MIN_ROUNDS, ROUNDS),
                                "rounds in %d s" % TIME_LIMIT)


if __name__ == "__main__":
    unittest.main()
