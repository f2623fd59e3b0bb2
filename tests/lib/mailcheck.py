"""Messages with known content, and checks of what mailboxes contain.

The durability tests send messages whose body names them, then check
every file in a Maildir and every entry in an mbox against what was
sent: a stored message is either one of them, whole, or a violation.
They also run lmtpd directly on a socket pair, as inetd would, when a
test needs the process id or its own environment for each session.
"""

import mailbox
import os
import random
import re
import socket
import subprocess

from harness import LMTPD, Dialogue, delivery_user, strip_header_block

FAULT_SHIM = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                          "fault_shim.so")
SENDER = "sender@example.org"


# Lines that test the mboxrd quoting and the dot-stuffing on the way.
SPECIAL_LINES = (b"From the start of a line", b">From quoted once",
                 b".a line with a leading dot", b".")

# Message text of each (size, seed), made once: see make_body().
_filler_cache = {}


def make_filler(size, seed):
    """Return about size bytes of lines of letters, digits and spaces,
    with a line of SPECIAL_LINES in about one of twenty."""
    key = (size, seed)
    if key not in _filler_cache:
        rng = random.Random(seed)
        alphabet = b"abcdefghij klmnopqrstuvwxyz0123456789"
        table = bytes(alphabet[i % len(alphabet)] for i in range(256))
        text = rng.randbytes(size).translate(table)
        lines, start = [], 0
        while start < size:
            length = rng.randint(0, 200)
            if rng.random() < 0.05:
                lines.append(rng.choice(SPECIAL_LINES))
            else:
                lines.append(text[start:start + length])
            start += length
        _filler_cache[key] = b"\n".join(lines)
    return _filler_cache[key]


def make_body(tag, size, seed=0):
    """Return a message with LF line ends that names itself by tag, about
    size bytes long."""
    head = (b"From: Sender <%s>\n" % SENDER.encode()
            + b"Subject: message " + tag.encode() + b"\n"
            + b"Message-ID: <" + tag.encode() + b"@example.org>\n"
            + b"\nBody of " + tag.encode() + b".\n")
    return (head + make_filler(max(size - len(head), 0), seed)
            + b"\nEnd of " + tag.encode() + b".\n")


def data_bytes(body):
    """Return what follows the 354 reply for body: CRLF line ends,
    leading dots doubled, then the end of data."""
    stuffed = re.sub(rb"(?m)^\.", b"..", body)
    return stuffed.replace(b"\n", b"\r\n") + b".\r\n"


def chunk_bytes(body):
    """Return body as BDAT sends it: CRLF line ends, no stuffing."""
    return body.replace(b"\n", b"\r\n")


def mboxrd_quote(body):
    """Add one ">" to every line that matches ^>*From ."""
    return re.sub(rb"(?m)^(>*From )", rb">\1", body)


def body_tag(body):
    """Return the tag that a stored body names, or None."""
    match = re.search(rb"^Subject: message (\S+)$", body, re.M)
    return match.group(1).decode() if match else None


def identify(stored, bodies, quoted=False):
    """Return the tag of a stored message when it is a whole message of
    bodies (a dict from tag to body) below a header block, else None."""
    try:
        _, body = strip_header_block(stored)
    except AssertionError:
        return None
    tag = body_tag(body)
    if tag is None or tag not in bodies:
        return None
    expected = mboxrd_quote(bodies[tag]) if quoted else bodies[tag]
    return tag if body == expected else None


def maildir_files(path):
    """Return {"new": {name: bytes}, "cur": {...}, "tmp": [names]}."""
    result = {"tmp": sorted(os.listdir(os.path.join(path, "tmp")))}
    for sub in ("new", "cur"):
        folder = os.path.join(path, sub)
        result[sub] = {}
        for name in sorted(os.listdir(folder)):
            with open(os.path.join(folder, name), "rb") as f:
                result[sub][name] = f.read()
    return result


def maildir_tags(path, bodies):
    """Return (tags of whole messages in new/ and cur/, problems)."""
    files = maildir_files(path)
    tags, problems = [], []
    for sub in ("new", "cur"):
        for name, content in files[sub].items():
            tag = identify(content, bodies)
            if tag is None:
                problems.append("%s/%s is not a whole message sent: %r"
                                % (sub, name, content[:120]))
            else:
                tags.append(tag)
    return tags, problems


def mbox_structure_problems(raw):
    """Check the mbox as bytes: it is empty or starts with "From ", ends
    with a blank line, and has a blank line before every "From " line."""
    problems = []
    if raw == b"":
        return problems
    if not raw.startswith(b"From "):
        problems.append("does not start with a From line: %r" % raw[:60])
    if not raw.endswith(b"\n\n"):
        problems.append("does not end with a blank line: %r" % raw[-60:])
    for match in re.finditer(rb"\nFrom ", raw):
        if raw[max(0, match.start() - 1):match.start()] != b"\n":
            problems.append("From line at byte %d without a blank line "
                            "before it" % (match.start() + 1))
    return problems


def mbox_tags(path, bodies):
    """Parse the mbox with Python's mailbox module.  Return (tags of the
    whole messages in file order, problems)."""
    with open(path, "rb") as f:
        raw = f.read()
    problems = mbox_structure_problems(raw)
    tags = []
    box = mailbox.mbox(path, create=False)
    try:
        for key in box.keys():
            content = box.get_bytes(key)
            tag = identify(content, bodies, quoted=True)
            if tag is None:
                problems.append("mbox entry %d is not a whole message "
                                "sent: %r" % (len(tags), content[:120]))
            else:
                tags.append(tag)
    finally:
        box.close()
    return tags, problems


def start_lmtpd(args, env=None, log=None, as_owner=True):
    """Start lmtpd on one end of a socket pair, as inetd starts it.
    Return (process, Dialogue on the other end).  Run as root, the tests
    start lmtpd as the test user, the mailbox owner, as the units do
    with User=: then one process does the whole session, so the fault
    shim counts every call of the session in one sequence and a kill
    stops the delivery itself.  The caller gives that user the mail and
    spool folders (harness.give_to_delivery_user).  With as_owner false,
    lmtpd stays root and forks a delivery child per recipient for the
    records that name uid= and gid=."""
    ours, theirs = socket.socketpair()
    ids = delivery_user()
    identity = {}
    if ids is not None and as_owner:
        identity = {"user": ids[0], "group": ids[1], "extra_groups": []}
    process = subprocess.Popen([LMTPD, "--log", "stderr"] + list(args),
                               stdin=theirs, stdout=theirs,
                               stderr=log if log is not None
                               else subprocess.DEVNULL,
                               env=env, **identity)
    theirs.close()
    ours.settimeout(30)
    return process, Dialogue(ours)


def shim_preload():
    """Return the LD_PRELOAD value that loads the fault shim into LMTPD.
    An AddressSanitizer build (make sanitize-check) refuses to start
    unless its runtime comes first in the library list, so the runtime
    that LMTPD links to, as ldd(1) shows it, goes before the shim."""
    result = subprocess.run(["ldd", LMTPD], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True,
                            check=False)
    match = re.search(r"^\s*libasan\.so\S* => (\S+)", result.stdout,
                      re.MULTILINE)
    return FAULT_SHIM if match is None else match.group(1) + ":" + FAULT_SHIM


def fault_env(**settings):
    """Return an environment that preloads the fault shim with settings,
    given as LMTPD_FAULT_<NAME>=value keyword arguments."""
    env = dict(os.environ)
    env["LD_PRELOAD"] = shim_preload()
    for name, value in settings.items():
        env["LMTPD_FAULT_" + name.upper()] = str(value)
    return env


def read_trace(path):
    """Return the shim's trace as a list of dicts, one per call."""
    calls = []
    if not os.path.exists(path):
        return calls
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            fields = line.rstrip("\n").split("\t")
            calls.append({
                "number": int(fields[0]),
                "function": fields[1],
                "outcome": fields[2],
                "mode": fields[3],
                "target": fields[4],
                "source": fields[5] if len(fields) > 5 else "",
            })
    return calls


class Lost(Exception):
    """The connection ended before the reply came."""


class Client:
    """An LMTP client that sends one command at a time and raises Lost
    when the connection ends."""

    def __init__(self, dialogue):
        self.dialogue = dialogue

    def send(self, data):
        try:
            self.dialogue.send(data)
        except (BrokenPipeError, ConnectionResetError) as error:
            raise Lost() from error

    def reply(self):
        """Return the last line of the next reply; raise Lost at the end
        of the stream."""
        try:
            lines = self.dialogue.reply()
        except (ConnectionResetError, TimeoutError) as error:
            raise Lost() from error
        if lines[-1] == "":
            raise Lost()
        return lines[-1]

    def command(self, data):
        self.send(data)
        return self.reply()


def code_of(reply_line):
    """Return "250 2.0.0" from a reply line."""
    return " ".join(reply_line.split(" ")[:2])


def send_message(client, recipients, body, mode="data", first_chunk=None):
    """Send body to recipients in one transaction, one command at a time:
    LHLO, MAIL, RCPT for each recipient, DATA or two BDAT chunks, QUIT.
    Return a dict:
        rcpt: {address: code} for each RCPT reply
        data: the failure reply to DATA or to the first chunk, or None
        results: {address: code} for each per-recipient reply
        lost: whether the connection ended early
    A code is "<reply code> <enhanced status code>", as "250 2.0.0"."""
    outcome = {"rcpt": {}, "data": None, "results": {}, "lost": False}
    try:
        client.reply()
        client.command("LHLO client.example\r\n")
        client.command("MAIL FROM:<%s>\r\n" % SENDER)
        for address in recipients:
            outcome["rcpt"][address] = code_of(
                client.command("RCPT TO:<%s>\r\n" % address))
        accepted = [a for a in recipients
                    if outcome["rcpt"][a].startswith("250")]
        if accepted:
            send_content(client, outcome, body, mode, first_chunk)
            for address in (accepted if outcome["data"] is None or
                            mode == "bdat" else []):
                outcome["results"][address] = code_of(client.reply())
        client.command("QUIT\r\n")
    except Lost:
        outcome["lost"] = True
    return outcome


def send_content(client, outcome, body, mode, first_chunk):
    """Send the message with DATA, or with BDAT in two chunks."""
    if mode == "data":
        reply = client.command("DATA\r\n")
        if not reply.startswith("354"):
            outcome["data"] = code_of(reply)
            return
        client.send(data_bytes(body))
        return
    data = chunk_bytes(body)
    split = first_chunk if first_chunk is not None else len(data) // 2
    reply = client.command(b"BDAT %d\r\n" % split + data[:split])
    if not reply.startswith("250"):
        outcome["data"] = code_of(reply)
    client.send(b"BDAT %d LAST\r\n" % (len(data) - split) + data[split:])


def transaction(client, recipients, body):
    """Run MAIL, RCPT for each recipient and DATA on a greeted session.
    Return {address: code} with the RCPT failure or the delivery result
    of each recipient."""
    codes = {}
    client.command("MAIL FROM:<%s>\r\n" % SENDER)
    for address in recipients:
        codes[address] = code_of(client.command("RCPT TO:<%s>\r\n" % address))
    accepted = [a for a in recipients if codes[a].startswith("250")]
    if not accepted:
        client.command("RSET\r\n")
        return codes
    reply = client.command("DATA\r\n")
    if not reply.startswith("354"):
        return {address: code_of(reply) for address in recipients}
    client.send(data_bytes(body))
    for address in accepted:
        codes[address] = code_of(client.reply())
    return codes
