"""A private Postfix instance delivering through lmtpd.

swaks sends mail over SMTP to a Postfix instance with its own
configuration, queue and log under tests/work/postfix/.  Postfix hands
every message for the virtual domain example.com to lmtpd over LMTP
(virtual_transport), and local(8) hands every message for its own host
name to lmtpd too, after alias expansion (mailbox_transport).  lmtpd
listens on private/lmtpd in the queue folder, so both settings are the
ones docs/recipes.md shows.  Mail for the relay domain example.net goes
to a second lmtpd that runs with --quota-tempfail.  The tests read
Postfix's log and the mailboxes.  Nothing can leave the host: the
default and relay transports are the error transport, and master.cf has
no smtp client service (see tests/lib/postfix.py).

Needs root (Postfix's master and lmtpd writing the mailboxes), Postfix
and swaks.  Without them the suite is skipped.

Run: TESTS=postfix python3 tests/run.py
"""

import mailbox
import os
import pwd
import re
import subprocess
import unittest

from harness import WORK, LmtpdServer, read_recipe
from postfix import (POSTFIX_HOSTNAME, PostfixTestCase, missing_requirement,
                     print_log_on_failure)

INSTANCE = "postfix"

SENDER = "sender@example.com"
UNKNOWN_RECIPIENT = "nobody@example.com"
USERS = {
    SENDER: "sender/",
    "solo@example.com": "solo/",
    "multi@example.com": "multi/",
    "multi-mbox@example.com": "multi.mbox",
    "null@example.com": "null/",
    "null-mbox@example.com": "null.mbox",
    "dots@example.com": "dots/",
    "dots-mbox@example.com": "dots.mbox",
    "quota-sender@example.com": "quota-sender/",
    # A local(8) recipient of the host name, and the one its alias names.
    "carol@" + POSTFIX_HOSTNAME: "carol/",
}
# Recipients of the host name that are aliases, for local(8).
ALIASES = {"postmaster": "carol"}
# The socket in Postfix's queue folder, as the lmtp client logs it.
RELAY = "%s[private/lmtpd]" % POSTFIX_HOSTNAME

# A full mailbox behind each lmtpd: the second runs with --quota-tempfail
# and gets the mail for example.net.
FULL_RECIPIENT = "full@example.com"
FULL_TEMPFAIL_RECIPIENT = "full@example.net"
QUOTA_SENDER = "quota-sender@example.com"
TEMPFAIL_USERS = {
    FULL_TEMPFAIL_RECIPIENT: "mailbox=%s/full/ quota=100"
    % os.path.join(WORK, INSTANCE, "lmtpd-tempfail", "mail"),
}
USERS[FULL_RECIPIENT] = ("mailbox=%s/full/ quota=100"
                         % os.path.join(WORK, INSTANCE, "lmtpd", "mail"))


def unquote_mboxrd(text):
    """Remove one ">" from every line that matches ^>+From ."""
    return re.sub(r"(?m)^>(>*From )", r"\1", text)


class PostfixTest(PostfixTestCase):
    lmtpd = None
    lmtpd_tempfail = None

    @classmethod
    def setUpClass(cls):
        reason = missing_requirement()
        if reason is not None:
            raise unittest.SkipTest(reason)
        try:
            cls.start_servers()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def start_servers(cls):
        # Postfix's lmtp client runs as user postfix, so the socket of
        # the second lmtpd and its folder are opened up.
        cls.lmtpd_tempfail = LmtpdServer(INSTANCE + "/lmtpd-tempfail",
                                         TEMPFAIL_USERS,
                                         extra_args=["--quota-tempfail"])
        os.chmod(cls.lmtpd_tempfail.folder, 0o755)
        os.chmod(cls.lmtpd_tempfail.socket_path, 0o666)

        aliases = ", ".join("%s=%s" % pair for pair in ALIASES.items())
        cls.configure_postfix(INSTANCE + "/postfix", "\n".join([
            "mydestination = $myhostname",
            "virtual_mailbox_domains = example.com",
            "virtual_transport = lmtp:unix:private/lmtpd",
            "mailbox_transport = lmtp:unix:private/lmtpd",
            "lmtp_assume_final = yes",
            "local_transport = local:$myhostname",
            "alias_maps = inline:{ %s }" % aliases,
            "relay_domains = example.net",
            "transport_maps = inline:{ example.net=lmtp:unix:%s }"
            % cls.lmtpd_tempfail.socket_path,
            ""]), services="local     unix - n n - - local\n")
        # postfix check makes the queue's private/ folder for the socket.
        cls.run_postfix_command(["postfix", "-c", cls.config, "check"])

        # lmtpd runs as root and writes the mailboxes.  The socket is
        # owned by postfix with mode 0600, as lmtpd.socket makes it.
        cls.lmtpd = LmtpdServer(INSTANCE + "/lmtpd", USERS,
                                socket_path=os.path.join(cls.queue,
                                                         "private", "lmtpd"))
        postfix = pwd.getpwnam("postfix")
        os.chown(cls.lmtpd.socket_path, postfix.pw_uid, postfix.pw_gid)
        os.chmod(cls.lmtpd.socket_path, 0o600)
        cls.start_postfix()

    @classmethod
    def tearDownClass(cls):
        cls.stop_postfix()
        if cls.lmtpd is not None:
            cls.lmtpd.stop()
            cls.lmtpd = None
        if cls.lmtpd_tempfail is not None:
            cls.lmtpd_tempfail.stop()
            cls.lmtpd_tempfail = None

    # Helpers: the queue, the mailboxes.

    def delete_from_queue(self, queue_id):
        """Delete a deferred message, so that Postfix does not retry it
        while the other tests run."""
        result = subprocess.run(["postsuper", "-c", self.config, "-d",
                                 queue_id],
                                stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True,
                                timeout=60, check=False)
        self.assertEqual(result.returncode, 0, result.stdout)

    def dsn(self, lines, recipient):
        """Return the dsn= field of the lmtp client's line for recipient."""
        for line in lines:
            match = re.search(r" postfix/lmtp\[[0-9]+\]: [0-9A-Za-z]+: "
                              r"to=<%s>, .* dsn=([0-9.]+), status="
                              % re.escape(recipient), line)
            if match is not None:
                return match.group(1)
        self.fail("no lmtp line for %s:\n%s" % (recipient, "\n".join(lines)))
        return None

    def fill_full_mailbox(self, server):
        """Put a 200-byte message into the Maildir "full/" of server,
        whose quota is 100 bytes."""
        for sub in ("tmp", "new", "cur"):
            os.makedirs(os.path.join(server.path("full/"), sub),
                        exist_ok=True)
        new = os.path.join(server.path("full/"), "new")
        with open(os.path.join(new, "prefill.host,S=200"), "wb") as f:
            f.write(b"p" * 200)

    def assert_sent(self, statuses, recipient):
        self.assertIn(recipient, statuses)
        status, relay, text = statuses[recipient]
        self.assertEqual(status, "sent", text)
        self.assertEqual(relay, RELAY)
        self.assertRegex(text, r"^250 2\.0\.0 <%s> delivered$"
                         % re.escape(recipient))

    def maildir(self, box):
        return mailbox.Maildir(self.lmtpd.path(box), factory=None,
                               create=False)

    def mbox(self, box):
        return mailbox.mbox(self.lmtpd.path(box), create=False)

    def assert_lmtpd_headers(self, message, sender, recipient):
        """Check lmtpd's Return-Path, Delivered-To and Received fields."""
        self.assertEqual(message.get_all("Return-Path"), ["<%s>" % sender])
        self.assertEqual(message.get_all("Delivered-To"), [recipient])
        received = message.get_all("Received")
        self.assertRegex(received[0],
                         r"^from %s\s.*\(lmtpd\) with LMTP id "
                         % re.escape(POSTFIX_HOSTNAME))
        self.assertIn("for <%s>;" % recipient, received[0])
        # Postfix's own Received field comes next.
        self.assertIn("by %s (Postfix)" % POSTFIX_HOSTNAME, received[1])

    # The tests.

    @print_log_on_failure
    def test_one_recipient_maildir(self):
        body = "Hello from the Postfix test."
        queue_id, sent = self.swaks(SENDER, ["solo@example.com"], body,
                                    "one recipient")
        statuses = self.delivery_statuses(self.wait_until_removed(queue_id))
        self.assertEqual(list(statuses), ["solo@example.com"])
        self.assert_sent(statuses, "solo@example.com")

        messages = self.maildir("solo/").values()
        self.assertEqual(len(messages), 1)
        message = messages[0]
        self.assertEqual(message["Subject"], "one recipient")
        self.assertEqual(message.get_payload(), sent)
        self.assert_lmtpd_headers(message, SENDER, "solo@example.com")
        raw = message.as_bytes()
        self.assertTrue(raw.startswith(b"Return-Path: <%s>\nDelivered-To: "
                                       b"solo@example.com\n"
                                       % SENDER.encode()), raw[:200])

    @print_log_on_failure
    def test_unknown_recipient_bounces(self):
        """Two deliveries and one 550 5.1.1, whose bounce comes back
        through lmtpd into the sender's Maildir."""
        body = "One message for three recipients."
        recipients = ["multi@example.com", "multi-mbox@example.com",
                      UNKNOWN_RECIPIENT]
        queue_id, sent = self.swaks(SENDER, recipients, body,
                                    "three recipients")
        lines = self.wait_until_removed(queue_id)
        statuses = self.delivery_statuses(lines)
        self.assertEqual(sorted(statuses), sorted(recipients))
        self.assert_sent(statuses, "multi@example.com")
        self.assert_sent(statuses, "multi-mbox@example.com")
        status, relay, text = statuses[UNKNOWN_RECIPIENT]
        self.assertEqual(status, "bounced", text)
        self.assertEqual(relay, RELAY)
        self.assertIn("550 5.1.1 <%s>" % UNKNOWN_RECIPIENT, text)
        self.assertIn("in reply to RCPT TO command", text)

        maildir_messages = self.maildir("multi/").values()
        self.assertEqual(len(maildir_messages), 1)
        self.assertEqual(maildir_messages[0]["Subject"], "three recipients")
        self.assertEqual(maildir_messages[0].get_payload(), sent)
        self.assert_lmtpd_headers(maildir_messages[0], SENDER,
                                  "multi@example.com")

        mbox_messages = self.mbox("multi.mbox").values()
        self.assertEqual(len(mbox_messages), 1)
        self.assertTrue(mbox_messages[0].get_from().startswith(SENDER + " "),
                        mbox_messages[0].get_from())
        self.assertEqual(mbox_messages[0]["Subject"], "three recipients")
        self.assertEqual(mbox_messages[0].get_payload(), sent)
        self.assert_lmtpd_headers(mbox_messages[0], SENDER,
                                  "multi-mbox@example.com")

        # The non-delivery notification is a new message with the null
        # sender, which Postfix delivers through lmtpd to the sender.
        notices = []
        for line in lines:
            match = re.search(r"sender non-delivery notification: "
                              r"([0-9A-Za-z]+)$", line)
            if match is not None:
                notices.append(match.group(1))
        self.assertEqual(len(notices), 1, "\n".join(lines))
        self.queue_ids.append(notices[0])
        statuses = self.delivery_statuses(
            self.wait_until_removed(notices[0]))
        self.assert_sent(statuses, SENDER)

        bounces = self.maildir("sender/").values()
        self.assertEqual(len(bounces), 1)
        bounce = bounces[0]
        self.assert_lmtpd_headers(bounce, "", SENDER)
        self.assertEqual(bounce.get_content_type(), "multipart/report")
        self.assertRegex(bounce["From"], r"MAILER-DAEMON@")
        content = bounce.as_string()
        unknown = re.escape(UNKNOWN_RECIPIENT)
        # Postfix folds this text at spaces, at places that depend on
        # its length.
        self.assertRegex(content, r"<%s>: host\s+%s\s+said:\s+550\s+"
                         r"5\.1\.1\s+<%s>\s"
                         % (unknown, re.escape(RELAY), unknown))
        self.assertRegex(content, r"Diagnostic-Code: smtp; 550 5\.1\.1 <%s> "
                         % unknown)
        self.assertIn("Final-Recipient: rfc822; " + UNKNOWN_RECIPIENT,
                      content)
        self.assertIn("Status: 5.1.1", content)
        self.assertNotIn("multi@example.com", content.split(
            "Content-Description: Undelivered Message")[0])

    @print_log_on_failure
    def test_null_sender(self):
        body = "A message with the null reverse-path."
        recipients = ["null@example.com", "null-mbox@example.com"]
        queue_id, sent = self.swaks("<>", recipients, body, "null sender")
        statuses = self.delivery_statuses(self.wait_until_removed(queue_id))
        self.assertEqual(sorted(statuses), sorted(recipients))
        self.assert_sent(statuses, "null@example.com")
        self.assert_sent(statuses, "null-mbox@example.com")

        messages = self.maildir("null/").values()
        self.assertEqual(len(messages), 1)
        self.assert_lmtpd_headers(messages[0], "", "null@example.com")
        self.assertEqual(messages[0].get_payload(), sent)

        messages = self.mbox("null.mbox").values()
        self.assertEqual(len(messages), 1)
        self.assertTrue(messages[0].get_from().startswith("MAILER-DAEMON "),
                        messages[0].get_from())
        self.assert_lmtpd_headers(messages[0], "", "null-mbox@example.com")
        self.assertEqual(messages[0].get_payload(), sent)
        with open(self.lmtpd.path("null.mbox"), "rb") as f:
            self.assertTrue(f.read().startswith(b"From MAILER-DAEMON "))

    @print_log_on_failure
    def test_dot_and_from_lines(self):
        """Dot-stuffing undone at both hops, and mboxrd quoting in the
        mbox."""
        body = ("First line.\n"
                ".A line that starts with a dot\n"
                "..Two dots\n"
                ".\n"
                "From the start of a line\n"
                ">From a line quoted already\n"
                "Last line.")
        recipients = ["dots@example.com", "dots-mbox@example.com"]
        queue_id, sent = self.swaks(SENDER, recipients, body,
                                    "dots and From")
        statuses = self.delivery_statuses(self.wait_until_removed(queue_id))
        self.assert_sent(statuses, "dots@example.com")
        self.assert_sent(statuses, "dots-mbox@example.com")

        messages = self.maildir("dots/").values()
        self.assertEqual(len(messages), 1)
        self.assertEqual(messages[0].get_payload(), sent)

        # Python's mailbox.mbox splits at every "From " line and leaves
        # the ">" quoting in place, so one message read back means the
        # "From " line was quoted, and removing one ">" gives the body.
        messages = self.mbox("dots.mbox").values()
        self.assertEqual(len(messages), 1)
        payload = messages[0].get_payload()
        self.assertIn("\n>From the start of a line\n", payload)
        self.assertIn("\n>>From a line quoted already\n", payload)
        self.assertEqual(unquote_mboxrd(payload), sent)
        with open(self.lmtpd.path("dots.mbox"), "rb") as f:
            raw = f.read()
        self.assertIn(b"\n.A line that starts with a dot\n..Two dots\n.\n"
                      b">From the start of a line\n", raw)
        self.assertTrue(raw.endswith(b"\nLast line.\n\n\n\n"), raw[-40:])

    def test_recipe_lines_in_main_cf(self):
        """main.cf has every line of the Postfix recipe in the docs."""
        with open(os.path.join(self.config, "main.cf"),
                  encoding="utf-8") as f:
            main_cf = f.read().splitlines()
        recipe = [line for line in read_recipe("postfix").splitlines()
                  if not line.startswith("#")]
        self.assertEqual(len(recipe), 4, recipe)
        for line in recipe:
            self.assertIn(line, main_cf)

    @print_log_on_failure
    def test_local_recipients_mailbox_transport(self):
        """local(8) takes mail for the host name, expands the alias, and
        hands both messages to lmtpd through mailbox_transport."""
        carol = "carol@" + POSTFIX_HOSTNAME
        postmaster = "postmaster@" + POSTFIX_HOSTNAME
        direct_id, direct = self.swaks(SENDER, [carol], "To carol.",
                                       "local direct")
        alias_id, alias = self.swaks(SENDER, [postmaster], "To postmaster.",
                                     "local alias")
        for queue_id in (direct_id, alias_id):
            lines = self.wait_until_removed(queue_id)
            statuses = self.delivery_statuses(lines)
            self.assertEqual(list(statuses), [carol], "\n".join(lines))
            self.assert_sent(statuses, carol)
        alias_lines = self.log_lines([alias_id])
        self.assertTrue(any("to=<%s>, orig_to=<%s>" % (carol, postmaster)
                            in line for line in alias_lines),
                        "\n".join(alias_lines))

        messages = {m["Subject"]: m for m in self.maildir("carol/").values()}
        self.assertEqual(sorted(messages), ["local alias", "local direct"])
        self.assertEqual(messages["local direct"].get_payload(), direct)
        self.assertEqual(messages["local alias"].get_payload(), alias)
        for message in messages.values():
            self.assert_lmtpd_headers(message, SENDER, carol)

    @print_log_on_failure
    def test_full_mailbox_bounces(self):
        """552 5.2.2 at RCPT: Postfix bounces the message, and the
        notification comes back through lmtpd."""
        self.fill_full_mailbox(self.lmtpd)
        queue_id, _ = self.swaks(QUOTA_SENDER, [FULL_RECIPIENT],
                                 "For a full mailbox.", "full mailbox")
        lines = self.wait_until_removed(queue_id)
        statuses = self.delivery_statuses(lines)
        self.assertEqual(list(statuses), [FULL_RECIPIENT])
        status, relay, text = statuses[FULL_RECIPIENT]
        self.assertEqual(status, "bounced", text)
        self.assertEqual(relay, RELAY)
        self.assertEqual(text, "host %s said: 552 5.2.2 <%s> mailbox full "
                         "(in reply to RCPT TO command)"
                         % (RELAY, FULL_RECIPIENT))
        self.assertEqual(self.dsn(lines, FULL_RECIPIENT), "5.2.2")
        self.assertEqual(len(self.maildir("full/")), 1)

        notices = [m.group(1) for m in
                   (re.search(r"sender non-delivery notification: "
                              r"([0-9A-Za-z]+)$", line) for line in lines)
                   if m is not None]
        self.assertEqual(len(notices), 1, "\n".join(lines))
        self.queue_ids.append(notices[0])
        self.assert_sent(self.delivery_statuses(
            self.wait_until_removed(notices[0])), QUOTA_SENDER)
        bounces = self.maildir("quota-sender/").values()
        self.assertEqual(len(bounces), 1)
        content = bounces[0].as_string()
        self.assertIn("Final-Recipient: rfc822; " + FULL_RECIPIENT, content)
        self.assertIn("Status: 5.2.2", content)
        self.assertRegex(content, r"Diagnostic-Code: smtp; 552 5\.2\.2 <%s> "
                         r"mailbox full" % re.escape(FULL_RECIPIENT))

    @print_log_on_failure
    def test_full_mailbox_deferred(self):
        """452 4.2.2 with --quota-tempfail: Postfix keeps the message."""
        self.fill_full_mailbox(self.lmtpd_tempfail)
        queue_id, _ = self.swaks(QUOTA_SENDER, [FULL_TEMPFAIL_RECIPIENT],
                                 "For a full mailbox, again.",
                                 "full mailbox, tempfail")
        lines = self.wait_until_deferred(queue_id)
        statuses = self.delivery_statuses(lines)
        self.assertEqual(list(statuses), [FULL_TEMPFAIL_RECIPIENT])
        status, relay, text = statuses[FULL_TEMPFAIL_RECIPIENT]
        self.assertEqual(status, "deferred", text)
        self.assertIn(self.lmtpd_tempfail.socket_path, relay)
        self.assertEqual(text, "host %s[%s] said: 452 4.2.2 <%s> mailbox "
                         "full (in reply to RCPT TO command)"
                         % (POSTFIX_HOSTNAME, self.lmtpd_tempfail.socket_path,
                            FULL_TEMPFAIL_RECIPIENT))
        self.assertEqual(self.dsn(lines, FULL_TEMPFAIL_RECIPIENT), "4.2.2")
        self.assertFalse(any("non-delivery notification" in line
                             for line in lines), "\n".join(lines))
        self.assertEqual(len(mailbox.Maildir(
            self.lmtpd_tempfail.path("full/"), factory=None,
            create=False)), 1)
        self.delete_from_queue(queue_id)


if __name__ == "__main__":
    unittest.main()
