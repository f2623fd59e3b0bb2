"""Hostile clients: a trickle of bytes, a flood of idle connections and
a message of 1 GiB.  Each loop is bounded in count and time.
"""

import os
import select
import socket
import time
import unittest

from harness import HOSTNAME, Dialogue, LmtpdServer

USERS = {"alice@example.com": "alice/", "bob@example.com": "bob.mbox"}

GiB = 1 << 30
MiB = 1 << 20


def children_of(pid):
    """Return the pids of the live processes whose parent is pid, from
    /proc; zombies that wait to be reaped do not count."""
    children = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name, encoding="utf-8") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            children.append(int(name))
    return children


def peak_rss_kib(pid):
    """Return VmHWM, the peak resident set size, of a process in KiB."""
    with open("/proc/%d/status" % pid, encoding="utf-8") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise AssertionError("no VmHWM for pid %d" % pid)


def trickle(sock, data, interval, limit):
    """Send data one byte per interval seconds, until the server replies
    or the bytes run out; return the reply received, or b""."""
    for i in range(min(len(data), limit)):
        try:
            sock.sendall(data[i:i + 1])
        except (BrokenPipeError, ConnectionResetError):
            break
        ready, _, _ = select.select([sock], [], [], interval)
        if ready:
            return sock.recv(4096)
    ready, _, _ = select.select([sock], [], [], 5)
    return sock.recv(4096) if ready else b""


class SlowClientTest(unittest.TestCase):
    """One byte per second never lets the idle timeout fire, so the
    session time limit must end the session."""

    def check_session_limit(self, prefix, slow_bytes, expected, logged):
        server = LmtpdServer("abuse-slow", USERS,
                             extra_args=["--timeout", "3",
                                         "--session-timeout", "4"])
        self.addCleanup(server.stop)
        with server.connect_raw() as sock:
            dialogue = Dialogue(sock)
            self.assertRegex(dialogue.reply()[0], "^220 ")
            dialogue.send(prefix)
            for _ in range(prefix.count(b"\r\n")):
                dialogue.reply()
            reply = trickle(sock, slow_bytes, 1.0, 12)
            self.assertEqual(reply, expected)
            self.assertTrue(Dialogue(sock).closed())
        self.assertIn(logged, server.log_text())

    def test_command_one_byte_per_second(self):
        self.check_session_limit(
            b"LHLO c\r\n", b"NOOP NOOP NOOP NOOP NOOP\r\n",
            b"421 4.4.2 %s session time limit reached, closing "
            b"connection\r\n" % HOSTNAME.encode(),
            "session longer than 4 seconds")

    def test_data_one_byte_per_second(self):
        self.check_session_limit(
            b"LHLO c\r\nMAIL FROM:<s@example.org>\r\n"
            b"RCPT TO:<alice@example.com>\r\nDATA\r\n",
            b"Subject: slow\r\n\r\nbody\r\n",
            b"421 4.4.2 %s timeout, closing connection\r\n"
            % HOSTNAME.encode(), "timeout during DATA, nothing delivered")

    def test_idle_timeout_between_bytes(self):
        """A pause longer than --timeout ends the session at once."""
        server = LmtpdServer("abuse-idle", USERS,
                             extra_args=["--timeout", "1"])
        self.addCleanup(server.stop)
        with server.connect_raw() as sock:
            self.assertRegex(Dialogue(sock).reply()[0], "^220 ")
            reply = trickle(sock, b"NOOP\r\n", 2.5, 6)
            self.assertEqual(reply, b"421 4.4.2 %s timeout, closing "
                             b"connection\r\n" % HOSTNAME.encode())
        self.assertIn("timeout after 1 seconds idle", server.log_text())


class ConnectionFloodTest(unittest.TestCase):
    """Accept=no with --max-children 5: of 200 idle connections, five
    are served and the rest wait in the listen backlog."""

    MAX_CHILDREN = 5
    CONNECTIONS = 200

    def greeted(self, socks, wait):
        """Return the sockets that received their greeting within wait
        seconds, having read it."""
        result = []
        deadline = time.monotonic() + wait
        pending = list(socks)
        while pending:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            ready, _, _ = select.select(pending, [], [], left)
            for sock in ready:
                pending.remove(sock)
                line = Dialogue(sock).line()
                self.assertRegex(line, rb"^220 ")
                result.append(sock)
        return result

    def test_two_hundred_idle_connections(self):
        server = LmtpdServer("abuse-flood", USERS, mode="listen",
                             extra_args=["--max-children",
                                         str(self.MAX_CHILDREN),
                                         "--timeout", "60"])
        self.addCleanup(server.stop)
        socks = []
        self.addCleanup(lambda: [s.close() for s in socks])
        for _ in range(self.CONNECTIONS):
            socks.append(server.connect_raw())

        served = self.greeted(socks, 3)
        self.assertEqual(len(served), self.MAX_CHILDREN)
        self.assertEqual(len(children_of(server.process.pid)),
                         self.MAX_CHILDREN)
        # The waiting ones still get nothing while the five stay open.
        waiting = [s for s in socks if s not in served]
        self.assertEqual(self.greeted(waiting, 1), [])

        # Closing two served connections lets exactly two more in.
        for sock in served[:2]:
            sock.sendall(b"QUIT\r\n")
            self.assertRegex(Dialogue(sock).line(), rb"^221 ")
        more = self.greeted(waiting, 5)
        self.assertEqual(len(more), 2)
        self.assertLessEqual(len(children_of(server.process.pid)),
                             self.MAX_CHILDREN)

        # Each served connection works, the later ones too.
        for sock in served[2:] + more:
            sock.sendall(b"LHLO c\r\nQUIT\r\n")
            dialogue = Dialogue(sock)
            self.assertEqual(dialogue.reply()[-1], "250 SIZE 52428800")
            self.assertRegex(dialogue.reply()[0], "^221 ")


class HugeMessageTest(unittest.TestCase):
    """A 1 GiB message over a 1 MiB limit gets 552 5.3.4 for each
    recipient, and the serving process's peak memory stays that of a
    small message."""

    # Allowance for page-level noise between two runs; the spool and
    # line buffers are 64 KiB each, far below it.
    MARGIN_KIB = 2048

    def measure(self, server, total):
        """Send a message of total bytes in lines of 1 KiB and return
        (replies after the data, peak RSS in KiB of the child)."""
        with server.connect_raw() as sock:
            sock.settimeout(120)
            dialogue = Dialogue(sock)
            self.assertRegex(dialogue.reply()[0], "^220 ")
            dialogue.send(b"LHLO c\r\nMAIL FROM:<s@example.org>\r\n"
                          b"RCPT TO:<alice@example.com>\r\n"
                          b"RCPT TO:<bob@example.com>\r\nDATA\r\n")
            self.assertEqual(dialogue.reply()[-1], "250 SIZE 1048576")
            for _ in range(3):
                self.assertRegex(dialogue.reply()[0], "^250 ")
            self.assertRegex(dialogue.reply()[0], "^354 ")
            children = children_of(server.process.pid)
            self.assertEqual(len(children), 1)

            line = b"x" * 1022 + b"\r\n"
            block = line * 1024
            sent = 0
            while sent + len(block) <= total:
                sock.sendall(block)
                sent += len(block)
            while sent < total:
                sock.sendall(line)
                sent += len(line)
            peak = peak_rss_kib(children[0])
            dialogue.send(b".\r\nQUIT\r\n")
            replies = [dialogue.reply()[0] for _ in range(3)]
        return replies, peak

    def test_one_gib_message(self):
        server = LmtpdServer("abuse-huge", USERS, mode="listen",
                             extra_args=["--max-size", "1M"])
        self.addCleanup(server.stop)

        small_replies, small_peak = self.measure(server, 64 * 1024)
        self.assertEqual(small_replies[:2], [
            "250 2.0.0 <alice@example.com> delivered",
            "250 2.0.0 <bob@example.com> delivered"])

        replies, peak = self.measure(server, GiB)
        print("\npeak RSS: %d KiB for 64 KiB, %d KiB for 1 GiB"
              % (small_peak, peak), end=" ")
        self.assertEqual(replies, [
            "552 5.3.4 <alice@example.com> message too big",
            "552 5.3.4 <bob@example.com> message too big",
            "221 2.0.0 %s closing connection" % HOSTNAME])
        self.assertLessEqual(peak, small_peak + self.MARGIN_KIB)
        self.assertEqual(len(os.listdir(server.path("alice/new"))), 1)
        self.assertEqual(os.listdir(server.spool), [])


if __name__ == "__main__":
    unittest.main()
