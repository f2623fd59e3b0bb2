"""Two lmtpd stores behind one Postfix front end, sharing one user map.

store1 and store2 are lmtpd instances socket-activated on one TCP port
of 127.0.0.2 and 127.0.0.3, with --hostname store1.test.example and
store2.test.example, which --map-host defaults to.  Each runs in a mount
namespace of its own in which MAIL_ROOT is its own mail folder, so the
mailbox paths of the shared map are the same on both stores, as on two
machines, and a message lands in the mail folder of the store that
wrote it.  A private Postfix (tests/lib/postfix.py) resolves the two
names through a hosts file mounted over /etc/hosts in its own mount
namespace, and routes recipients with a transport table that
tools/lmtpd-transport made from the text of the shared map.  The table
starts out stale for dave, who has moved from store1 to store2, until
the misrouting test rebuilds it.

Needs root, Postfix, swaks and mount namespaces (unshare --mount).
Without them the suite is skipped.

Run: TESTS=multitier python3 tests/run.py
"""

import email
import email.policy
import mailbox
import os
import re
import smtplib
import socket
import subprocess
import time
import unittest

from harness import (TOP, WORK, LmtpdServer, build_map, delivery_user,
                     make_folder, mount_namespace_problem)
from postfix import (DELIVERY_TIMEOUT, POSTFIX_HOSTNAME, PostfixTestCase,
                     free_port, missing_requirement, print_log_on_failure)

NAME = "multitier"
TOOL = os.path.join(TOP, "tools", "lmtpd-transport")
STORES = {"store1": ("store1.test.example", "127.0.0.2"),
          "store2": ("store2.test.example", "127.0.0.3")}
# The folder over which each store's mount namespace bind-mounts that
# store's own mail folder.
MAIL_ROOT = os.path.join(WORK, NAME, "mail")

SENDER = "sender@example.com"
# address: (mailbox name under MAIL_ROOT, home store)
USERS = {
    SENDER: ("sender/", "store2"),
    "alice@example.com": ("alice/", "store1"),
    "carol@example.com": ("carol/", "store2"),
    "@example.org": ("org/", "store2"),
    "both1@example.com": ("both1/", "store1"),
    "both2@example.com": ("both2/", "store2"),
    "dave@example.com": ("dave/", "store2"),
    "erin@example.com": ("erin/", "store1"),
}
DOMAINS = ["example.com", "example.org"]


def map_lines(moved=None):
    """Return the shared map's text lines.  moved names a recipient whose
    record names store1 in place of its home, as in a map that the front
    end still has from before the mailbox moved."""
    # Run as root, each store delivers as the test user of the records.
    ids = delivery_user()
    owner = " uid=%d gid=%d" % ids if ids is not None else ""
    lines = []
    for address, (box, store) in USERS.items():
        if address == moved:
            store = "store1"
        lines.append("%s mailbox=%s host=%s%s"
                     % (address, os.path.join(MAIL_ROOT, box),
                        STORES[store][0], owner))
    return lines


def free_port_on_all(addresses):
    """Return a TCP port that nothing listens on at any of the addresses
    right now, after at most 20 tries."""
    for _ in range(20):
        port = free_port(addresses[0])
        try:
            for address in addresses[1:]:
                with socket.socket() as s:
                    s.bind((address, port))
            return port
        except OSError:
            continue
    raise RuntimeError("no TCP port free on all of %s" % addresses)


class MultiTierTest(PostfixTestCase):
    stores = {}

    @classmethod
    def setUpClass(cls):
        reason = missing_requirement() or mount_namespace_problem()
        if reason is not None:
            raise unittest.SkipTest(reason)
        try:
            cls.start_stores_and_front_end()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def start_stores_and_front_end(cls):
        folder = make_folder(NAME)
        os.makedirs(MAIL_ROOT)
        users_cdb = build_map(folder, map_lines())
        cls.users_txt = os.path.join(folder, "users.txt")

        cls.lmtp_port = free_port_on_all([a for _, a in STORES.values()])
        hosts = os.path.join(folder, "hosts")
        with open(hosts, "w") as f:
            f.write("127.0.0.1 localhost\n")
            for hostname, address in STORES.values():
                f.write("%s %s\n" % (address, hostname))
        for store, (hostname, address) in STORES.items():
            cls.stores[store] = LmtpdServer(
                NAME + "/" + store, {}, tcp="%s:%d" % (address,
                                                       cls.lmtp_port),
                hostname=hostname, map_path=users_cdb, mail_at=MAIL_ROOT)

        cls.transport = os.path.join(folder, "transport")
        cls.configure_postfix(NAME + "/postfix", "\n".join([
            "virtual_mailbox_domains = " + ", ".join(DOMAINS),
            # Records without host= would go here.
            "virtual_transport = lmtp:inet:[%s]:%d"
            % (STORES["store1"][0], cls.lmtp_port),
            "transport_maps = hash:" + cls.transport,
            "recipient_delimiter = +",
            # lmtpd does not announce DSN, and this makes Postfix send
            # "delivered" notices for its 250 replies, not "relayed".
            "lmtp_assume_final = yes",
            ""]))
        cls.stale_txt = os.path.join(folder, "users-stale.txt")
        with open(cls.stale_txt, "w") as f:
            f.write("\n".join(map_lines(moved="dave@example.com")) + "\n")
        cls.write_transport(cls.stale_txt)
        cls.start_postfix(hosts_file=hosts)

    @classmethod
    def write_transport(cls, users_txt):
        """Make the transport table from a map text, with lmtpd-transport
        and postmap, as an operator would."""
        with open(cls.transport, "w") as f:
            subprocess.run([TOOL, "-p", str(cls.lmtp_port), users_txt],
                           stdout=f, check=True, timeout=30)
        subprocess.run(["postmap", "-c", cls.config, "hash:" + cls.transport],
                       check=True, timeout=30)

    @classmethod
    def tearDownClass(cls):
        cls.stop_postfix()
        for server in cls.stores.values():
            server.stop()
        cls.stores = {}

    # Helpers: where mail landed.

    def messages(self, store, address):
        """Return the messages in `address`'s Maildir on the store, or []
        when the store has no such folder."""
        path = os.path.join(self.stores[store].mail, USERS[address][0])
        if not os.path.isdir(path):
            return []
        return mailbox.Maildir(path, factory=None, create=False).values()

    def other(self, store):
        return "store2" if store == "store1" else "store1"

    def assert_landed_once(self, address, recipient, subject, body):
        """Check that the home store of `address` contains exactly one
        message, which that store received and logged, and that the
        other store contains and logged nothing for it."""
        store = USERS[address][1]
        messages = self.messages(store, address)
        self.assertEqual(len(messages), 1, "%s on %s" % (address, store))
        message = messages[0]
        self.assertEqual(message["Subject"], subject)
        self.assertEqual(message.get_payload(), body)
        self.assertEqual(message.get_all("Delivered-To"), [recipient])
        received = message.get_all("Received")
        self.assertRegex(received[0], r"^from %s \(\[127\.0\.0\.1\]\)\s+"
                         r"by %s \(lmtpd\) with LMTP id "
                         % (re.escape(POSTFIX_HOSTNAME),
                            re.escape(STORES[store][0])))
        self.assertEqual(self.messages(self.other(store), address), [])

        delivery = r"to=<%s> client=\S+ mailbox=%s " % (
            re.escape(recipient),
            re.escape(os.path.join(MAIL_ROOT, USERS[address][0])))
        self.assertEqual(len(re.findall(delivery,
                                        self.stores[store].log_text())), 1)
        self.assertNotRegex(self.stores[self.other(store)].log_text(),
                            delivery)

    def assert_sent_to_home(self, statuses, address, recipient):
        store = USERS[address][1]
        hostname, ip = STORES[store]
        self.assertIn(recipient, statuses)
        status, relay, text = statuses[recipient]
        self.assertEqual(status, "sent", text)
        self.assertEqual(relay, "%s[%s]:%d" % (hostname, ip, self.lmtp_port))
        self.assertEqual(text, "250 2.0.0 <%s> delivered" % recipient)

    # The tests.

    @print_log_on_failure
    def test_each_store_gets_its_users(self):
        for address, recipient in [("alice@example.com", "alice@example.com"),
                                   ("carol@example.com", "carol@example.com"),
                                   ("@example.org", "anyone@example.org")]:
            with self.subTest(recipient=recipient):
                subject = "for " + recipient
                queue_id, sent = self.swaks(SENDER, [recipient],
                                            "Body for %s." % recipient,
                                            subject)
                statuses = self.delivery_statuses(
                    self.wait_until_removed(queue_id))
                self.assertEqual(list(statuses), [recipient])
                self.assert_sent_to_home(statuses, address, recipient)
                self.assert_landed_once(address, recipient, subject, sent)

    @print_log_on_failure
    def test_one_message_both_stores(self):
        recipients = ["both1@example.com", "both2@example.com"]
        queue_id, sent = self.swaks(SENDER, recipients,
                                    "One message, two stores.", "both")
        statuses = self.delivery_statuses(self.wait_until_removed(queue_id))
        self.assertEqual(sorted(statuses), recipients)
        for recipient in recipients:
            self.assert_sent_to_home(statuses, recipient, recipient)
            self.assert_landed_once(recipient, recipient, "both", sent)

    def retry_until_removed(self, queue_id, deferrals):
        """Flush the queue until Postfix has removed the message, which
        has been deferred `deferrals` times so far, and return its log
        lines.  Postfix's trivial-rewrite reads a rebuilt table only when
        it restarts, which postfix reload requests, so a retry that races
        the restart can still go to the old next hop."""
        while True:
            self.flush_queue()
            while True:
                lines = self.log_lines([queue_id])
                if any(" %s: removed" % queue_id in l for l in lines):
                    return lines
                count = len([l for l in lines if "status=deferred" in l])
                if count > deferrals:
                    deferrals = count
                    break
                if time.monotonic() > self.deadline:
                    self.fail("queue id %s not removed after %d deferrals "
                              "within %d s of the test start"
                              % (queue_id, deferrals, DELIVERY_TIMEOUT))
                time.sleep(0.1)
            time.sleep(1)

    @print_log_on_failure
    def test_misrouted_recipient_deferred(self):
        """The stale table sends dave (store2) to store1, which defers him
        with 450 4.4.0 naming store2.  Once the table is rebuilt, Postfix
        reloaded and the queue flushed, the message lands on store2 once."""
        queue_id, sent = self.swaks(SENDER, ["dave@example.com"],
                                    "Routed to the wrong store first.",
                                    "misrouted")
        statuses = self.delivery_statuses(self.wait_until_deferred(queue_id))
        status, relay, text = statuses["dave@example.com"]
        self.assertEqual(status, "deferred", text)
        self.assertEqual(relay, "store1.test.example[127.0.0.2]:%d"
                         % self.lmtp_port)
        self.assertEqual(text, "host store1.test.example[127.0.0.2] said: "
                         "450 4.4.0 <dave@example.com> mailbox is on "
                         "store2.test.example (in reply to RCPT TO command)")
        self.assertIn('to=<dave@example.com> reply=450 status=4.4.0 '
                      'detail="map key \\"dave@example.com\\" names host '
                      'store2.test.example, not this host '
                      'store1.test.example"',
                      self.stores["store1"].log_text())
        self.assertEqual(self.messages("store1", "dave@example.com"), [])
        self.assertEqual(self.messages("store2", "dave@example.com"), [])

        self.write_transport(self.users_txt)
        self.run_postfix_command(["postfix", "-c", self.config, "reload"])
        lines = self.retry_until_removed(queue_id, 1)
        sent_lines = [l for l in lines if "status=sent" in l]
        self.assertEqual(len(sent_lines), 1, "\n".join(lines))
        self.assert_sent_to_home(self.delivery_statuses(lines),
                                 "dave@example.com", "dave@example.com")
        self.assert_landed_once("dave@example.com", "dave@example.com",
                                "misrouted", sent)

    @print_log_on_failure
    def test_dsn_success_notice(self):
        """NOTIFY=SUCCESS for erin (store1) brings a "delivered" report
        from Postfix to the sender, whose mailbox is on store2."""
        message = ("From: %s\r\nTo: erin@example.com\r\nSubject: dsn\r\n"
                   "Message-ID: <dsn-test@client.test.example>\r\n\r\n"
                   "Tell me when it is delivered.\r\n" % SENDER)
        with smtplib.SMTP("127.0.0.1", self.port, timeout=30) as client:
            client.ehlo("client.test.example")
            self.assertTrue(client.has_extn("dsn"))
            self.assertEqual(client.mail(SENDER, ["RET=HDRS",
                                                  "ENVID=dsn-test-1"])[0],
                             250)
            self.assertEqual(client.rcpt("erin@example.com",
                                         ["NOTIFY=SUCCESS"])[0], 250)
            code, reply = client.data(message)
        self.assertEqual(code, 250, reply)
        match = re.search(rb"queued as ([0-9A-Za-z]+)", reply)
        self.assertIsNotNone(match, reply)
        queue_id = match.group(1).decode()
        self.queue_ids.append(queue_id)

        lines = self.wait_until_removed(queue_id)
        self.assert_sent_to_home(self.delivery_statuses(lines),
                                 "erin@example.com", "erin@example.com")
        self.assert_landed_once("erin@example.com", "erin@example.com", "dsn",
                                "Tell me when it is delivered.\n")
        notices = [m.group(1) for m in (
            re.search(r"sender delivery status notification: "
                      r"([0-9A-Za-z]+)$", line) for line in lines) if m]
        self.assertEqual(len(notices), 1, "\n".join(lines))
        self.queue_ids.append(notices[0])
        statuses = self.delivery_statuses(self.wait_until_removed(notices[0]))
        self.assert_sent_to_home(statuses, SENDER, SENDER)

        reports = self.messages("store2", SENDER)
        self.assertEqual(len(reports), 1)
        self.assertEqual(self.messages("store1", SENDER), [])
        report = email.message_from_bytes(reports[0].as_bytes(),
                                          policy=email.policy.default)
        self.assertEqual(report["Return-Path"], "<>")
        self.assertEqual(report["Delivered-To"], SENDER)
        self.assertIn("by store2.test.example (lmtpd)",
                      report.get_all("Received")[0])
        self.assertEqual(report.get_content_type(), "multipart/report")
        self.assertEqual(report.get_param("report-type"), "delivery-status")
        self.assertEqual(report["To"], SENDER)

        parts = {p.get_content_type(): p for p in report.iter_parts()}
        status = parts["message/delivery-status"].get_payload()
        self.assertEqual(status[0]["Reporting-MTA"],
                         "dns; " + POSTFIX_HOSTNAME)
        self.assertEqual(status[0]["Original-Envelope-Id"], "dsn-test-1")
        recipients = status[1:]
        self.assertEqual(len(recipients), 1)
        self.assertEqual(recipients[0]["Final-Recipient"],
                         "rfc822; erin@example.com")
        self.assertEqual(recipients[0]["Action"], "delivered")
        self.assertEqual(recipients[0]["Status"], "2.0.0")
        self.assertEqual(recipients[0]["Remote-MTA"],
                         "dns; store1.test.example")
        self.assertEqual(recipients[0]["Diagnostic-Code"],
                         "smtp; 250 2.0.0 <erin@example.com> delivered")
        # RET=HDRS returns the headers of the message only.
        returned = parts["text/rfc822-headers"].get_content()
        self.assertIn("Message-ID: <dsn-test@client.test.example>", returned)
        self.assertNotIn("Tell me when", returned)


if __name__ == "__main__":
    unittest.main()
