"""Benchmark lmtpd against the fsync floor and Dovecot's LMTP server.

Every scenario runs each system several times, and the order of the
systems rotates from run to run.  The report gives the median
deliveries per second with the minimum and maximum, the median
latencies, and the ratios of lmtpd to the floor and to Dovecot.  Every
delivery must succeed: loadgen checks each reply, and this script counts
the files in the Maildirs after each run.  Speed targets are reported,
never enforced.  In a scenario named with BDAT, loadgen sends the
messages with BDAT (RFC 3030) instead of DATA; the floor runs it as it
runs the others.

    python3 bench/run.py            the full benchmark (`make bench`)
    python3 bench/run.py --smoke    small counts, one run (`make bench-smoke`)
"""

import argparse
import datetime
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import servers  # noqa: E402
from servers import BenchError  # noqa: E402


class Scenario:
    """Connections x messages x recipients x size, or a peak RSS probe.
    bdat makes loadgen send the messages with BDAT instead of DATA."""

    def __init__(self, name, connections, messages, recipients, size,
                 sequential=1, measure_rss=False, floor_target=None,
                 dovecot_target=None, rss_target=None, bdat=False):
        self.name = name
        self.connections = connections
        self.sequential = sequential
        self.messages = messages
        self.recipients = recipients
        self.size = size
        self.measure_rss = measure_rss
        self.floor_target = floor_target      # minimum lmtpd/floor
        self.dovecot_target = dovecot_target  # minimum lmtpd/Dovecot
        self.rss_target = rss_target          # maximum peak RSS in KiB
        self.bdat = bdat

    def deliveries(self):
        return (self.connections * self.sequential * self.messages *
                self.recipients)

    def messages_sent(self):
        return self.connections * self.sequential * self.messages


# Systems: F floor, D Dovecot, P Dovecot with a process per connection,
# L the three lmtpd modes.  The first Dovecot listed is the reference
# for the lmtpd/Dovecot ratio.
FULL = [
    (Scenario("1 conn x 2000 msgs x 1 rcpt x 4 KiB", 1, 2000, 1, "4K",
              floor_target=0.85, dovecot_target=3), "FDL"),
    (Scenario("1 conn x 2000 msgs x 1 rcpt x 4 KiB, BDAT", 1, 2000, 1, "4K",
              bdat=True), "FDL"),
    (Scenario("1 conn x 500 msgs x 10 rcpts x 4 KiB", 1, 500, 10, "4K",
              floor_target=0.85), "FDL"),
    (Scenario("8 conns x 250 msgs x 1 rcpt x 4 KiB", 8, 250, 1, "4K",
              floor_target=0.85), "FDL"),
    (Scenario("1 conn x 100 msgs x 1 rcpt x 1 MiB", 1, 100, 1, "1M",
              floor_target=0.7), "FDL"),
    (Scenario("200 sequential conns x 1 msg x 4 KiB", 1, 1, 1, "4K",
              sequential=200, dovecot_target=4), "FPDL"),
    (Scenario("peak RSS, 4 KiB message", 1, 1, 1, "4K", measure_rss=True,
              rss_target=2048), "L"),
    (Scenario("peak RSS, 64 KiB message, kept in memory", 1, 1, 1, "64K",
              measure_rss=True, rss_target=2048), "L"),
    (Scenario("peak RSS, 1 MiB message", 1, 1, 1, "1M", measure_rss=True,
              rss_target=2048), "L"),
    (Scenario("peak RSS, 100 MiB message", 1, 1, 1, "100M",
              measure_rss=True, rss_target=2048), "L"),
]

SMOKE = [
    (Scenario("1 conn x 20 msgs x 1 rcpt x 4 KiB", 1, 20, 1, "4K"), "FDL"),
    (Scenario("1 conn x 20 msgs x 1 rcpt x 4 KiB, BDAT", 1, 20, 1, "4K",
              bdat=True), "FDL"),
    (Scenario("1 conn x 5 msgs x 3 rcpts x 4 KiB", 1, 5, 3, "4K"), "FDL"),
    (Scenario("2 conns x 5 msgs x 1 rcpt x 4 KiB", 2, 5, 1, "4K"), "FDL"),
    (Scenario("1 conn x 2 msgs x 1 rcpt x 1 MiB", 1, 2, 1, "1M"), "FDL"),
    (Scenario("5 sequential conns x 1 msg x 4 KiB", 1, 1, 1, "4K",
              sequential=5), "FPDL"),
    (Scenario("peak RSS, 4 KiB message", 1, 1, 1, "4K", measure_rss=True),
     "L"),
    (Scenario("peak RSS, 1 MiB message", 1, 1, 1, "1M", measure_rss=True),
     "L"),
]

# Users in each system's user list: enough for 8 connections or 10
# recipients.
USERS = 16

# Peak RSS of a 100 MiB message may exceed that of a smaller one by
# this many KiB and still count as the same: one page of stack or heap.
RSS_SAME_SLACK = 4


def log(text):
    print(text, file=sys.stderr, flush=True)


def make_systems(letters, work, sockets, users):
    """Create the systems named by letters, without starting them."""
    by_letter = {}
    if "F" in letters:
        by_letter["F"] = [servers.Floor(work)]
    if "D" in letters:
        by_letter["D"] = [servers.Dovecot(work, sockets, users, False)]
    if "P" in letters:
        by_letter["P"] = [servers.Dovecot(work, sockets, users, True)]
    if "L" in letters:
        by_letter["L"] = [servers.Lmtpd(work, sockets, mode, users)
                          for mode in ("accept", "listen", "inetd")]
    return by_letter


def systems_of(letters, by_letter):
    return [system for letter in letters if letter in by_letter
            for system in by_letter[letter]]


def sent_with_data(scenario, system, runs):
    """Return True when loadgen sent a BDAT scenario's messages to system
    with DATA, because the server did not announce CHUNKING."""
    return (scenario.bdat and isinstance(system, servers.LmtpServer) and
            any(f.get("sent_with_bdat", 0) != scenario.messages_sent()
                for f in runs))


def run_scenario(scenario, systems, runs, timeout):
    """Run each system runs times and return, for each system's key,
    the list of summary fields of its runs."""
    results = {system.key: [] for system in systems}
    for run in range(runs):
        shift = run % len(systems)
        for system in systems[shift:] + systems[:shift]:
            system.prepare(USERS)
            os.sync()
            fields = system.run(scenario, timeout)
            system.check_delivered(scenario.deliveries())
            results[system.key].append(fields)
            if scenario.measure_rss:
                log("  %-34s run %d: peak RSS %d KiB"
                    % (system.label, run + 1,
                       fields["server_peak_rss_kib"]))
            else:
                log("  %-34s run %d: %8.1f deliveries/s"
                    % (system.label, run + 1, fields["rate"]))
    return results


def median_range(values, fmt):
    return "%s (%s-%s)" % (fmt % statistics.median(values),
                           fmt % min(values), fmt % max(values))


def median_of(runs, key):
    return statistics.median(fields[key] for fields in runs)


def reference_dovecot(letters, by_letter):
    for letter in letters:
        if letter in "DP" and letter in by_letter:
            return by_letter[letter][0]
    return None


def ratio_cell(runs, other):
    """Format the ratio of the median rates, and in brackets the range of
    the ratios of the runs made in the same round."""
    pairs = [a["rate"] / b["rate"] for a, b in zip(runs, other)]
    return "%.2f (%.2f-%.2f)" % (median_of(runs, "rate") /
                                 median_of(other, "rate"),
                                 min(pairs), max(pairs))


def throughput_table(scenario, letters, by_letter, results):
    """Return the markdown rows of one throughput scenario."""
    rows = []
    floor = results.get("floor")
    dovecot = reference_dovecot(letters, by_letter)
    for system in systems_of(letters, by_letter):
        runs = results[system.key]
        versus_floor = versus_dovecot = ""
        if isinstance(system, servers.Lmtpd):
            if floor:
                versus_floor = ratio_cell(runs, floor)
            if dovecot is not None:
                versus_dovecot = ratio_cell(runs, results[dovecot.key])
        cpu = [100 * f["cpu_seconds"] / f["seconds"] for f in runs]
        label = system.label
        if sent_with_data(scenario, system, runs):
            label += " (sent with DATA: no CHUNKING)"
        rows.append("| %s | %s | %s | %.2f | %.2f | %.0f | %s | %s |" % (
            scenario.name, label,
            median_range([f["rate"] for f in runs], "%.0f"),
            median_of(runs, "p50_ms"), median_of(runs, "p99_ms"),
            statistics.median(cpu), versus_floor, versus_dovecot))
    return rows


def rss_table(rss_results):
    rows = []
    for scenario, letters, by_letter, results in rss_results:
        cells = [median_range([f["server_peak_rss_kib"]
                               for f in results[s.key]], "%.0f")
                 for s in systems_of(letters, by_letter)]
        rows.append("| %s | %s |" % (scenario.name, " | ".join(cells)))
    return rows


def check_rss(scenario, system, rss, smaller):
    """Return the verdicts on one peak RSS median.  smaller maps each
    message size already seen to this system's median for it."""
    lines = [verdict(rss <= scenario.rss_target,
                     "%s, %s: %d KiB, at most %d"
                     % (scenario.name, system.label, rss,
                        scenario.rss_target))]
    if scenario.size != "100M":
        return lines
    for size, label in (("1M", "1 MiB"), ("4K", "4 KiB")):
        if size in smaller:
            lines.append(verdict(
                rss <= smaller[size] + RSS_SAME_SLACK,
                "%s, %s: %d KiB, the same as for %s (%d KiB, %+d)"
                % (scenario.name, system.label, rss, label, smaller[size],
                   rss - smaller[size])))
    return lines


def check_targets(measured):
    """Return lines saying which targets were met, from the medians."""
    lines = []
    rss_by_size = {}
    for scenario, letters, by_letter, results in measured:
        floor = results.get("floor")
        dovecot = reference_dovecot(letters, by_letter)
        for system in systems_of(letters, by_letter):
            if not isinstance(system, servers.Lmtpd):
                continue
            runs = results[system.key]
            if scenario.rss_target is not None:
                rss = median_of(runs, "server_peak_rss_kib")
                smaller = rss_by_size.setdefault(system.key, {})
                lines += check_rss(scenario, system, rss, smaller)
                smaller[scenario.size] = rss
                continue
            rate = median_of(runs, "rate")
            if scenario.floor_target is not None and floor:
                ratio = rate / median_of(floor, "rate")
                lines.append(verdict(ratio >= scenario.floor_target,
                                     "%s, %s: %.3f x floor, at least %.2f"
                                     % (scenario.name, system.label, ratio,
                                        scenario.floor_target)))
            if scenario.dovecot_target is not None and dovecot is not None:
                ratio = rate / median_of(results[dovecot.key], "rate")
                lines.append(verdict(ratio >= scenario.dovecot_target,
                                     "%s, %s: %.3f x %s, at least %.0f"
                                     % (scenario.name, system.label, ratio,
                                        dovecot.label,
                                        scenario.dovecot_target)))
    return lines


def verdict(met, text):
    return "- %s: %s" % ("met" if met else "MISSED", text)


def read_text(path):
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            return f.read().strip()
    except OSError:
        return ""


def file_system_of(path):
    """Return (device, mount point, type, options) of path's file system."""
    mount_point = os.path.abspath(path)
    while not os.path.ismount(mount_point):
        mount_point = os.path.dirname(mount_point)
    found = ("unknown", mount_point, "unknown", "")
    for line in read_text("/proc/self/mounts").splitlines():
        fields = line.split()
        if len(fields) >= 4 and fields[1] == mount_point:
            found = tuple(fields[:4])  # the last mount there is visible
    return found


def journal_of(device, fs_type):
    """Say whether an ext4 file system has a journal, from /proc/fs/jbd2."""
    if fs_type != "ext4":
        return ""
    name = os.path.basename(device)
    journals = (os.listdir("/proc/fs/jbd2")
                if os.path.isdir("/proc/fs/jbd2") else [])
    if any(j.startswith(name + "-") for j in journals):
        return ", with a journal"
    return ", without a journal (no /proc/fs/jbd2 entry)"


def disk_of(mount_device):
    """Describe the block device behind /dev/NAME from /sys/block."""
    name = os.path.basename(mount_device)
    block = os.path.join("/sys/block", name)
    if not os.path.isdir(block):
        return "not visible"
    sectors = read_text(os.path.join(block, "size"))
    rotational = read_text(os.path.join(block, "queue", "rotational"))
    model = read_text(os.path.join(block, "device", "model"))
    size = "%.0f GiB" % (int(sectors) * 512 / 2**30) if sectors else "?"
    kind = "queue/rotational %s" % (rotational or "?")
    return "%s, %s, %s%s" % (name, size, kind,
                             ", model " + model if model else "")


def describe_machine(work):
    """Return markdown lines on the machine, the versions and the load."""
    cpus = [line.split(":", 1)[1].strip()
            for line in read_text("/proc/cpuinfo").splitlines()
            if line.startswith("model name")]
    memory = [line.split(":", 1)[1].strip()
              for line in read_text("/proc/meminfo").splitlines()
              if line.startswith("MemTotal")]
    device, mount_point, fs_type, options = file_system_of(work)
    commit = subprocess.run(["git", "-C", servers.TOP, "describe",
                             "--always", "--dirty"], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True,
                            check=False).stdout.strip()
    return [
        "- date: %s" % datetime.datetime.now().isoformat(timespec="seconds"),
        "- lmtpd: commit %s; %s" % (commit or "unknown",
                                    servers.dovecot_version_line()),
        "- kernel: %s %s" % (platform.system(), platform.release()),
        "- CPUs: %d (nproc), %s" % (os.cpu_count() or 0,
                                    cpus[0] if cpus else "unknown model"),
        "- memory: %s" % (memory[0] if memory else "unknown"),
        "- work folder: %s" % work,
        "- file system: %s on %s, %s (%s)%s"
        % (device, mount_point, fs_type, options,
           journal_of(device, fs_type)),
        "- disk: %s" % disk_of(device),
    ]


def load_average():
    """Return the load averages and, where the kernel has PSI, the share
    of the last minute in which tasks waited for CPU or I/O."""
    text = " ".join(read_text("/proc/loadavg").split()[:3])
    waits = []
    for resource in ("cpu", "io"):
        line = read_text("/proc/pressure/" + resource).split("\n")[0]
        for field in line.split():
            if field.startswith("avg60="):
                waits.append("%s %s%%" % (resource, field[6:]))
    if waits:
        text += " (waiting for %s)" % " and ".join(waits)
    return text


def io_pressure_avg10():
    """Return the share of the last 10 seconds in which tasks waited for
    I/O, in percent, or None where the kernel has no PSI."""
    for field in read_text("/proc/pressure/io").split("\n")[0].split():
        if field.startswith("avg10="):
            return float(field[6:])
    return None


def wait_for_quiet_disk(limit):
    """Sync, then wait up to limit seconds until tasks waited for I/O in
    under 5 % of the last 10 seconds.  An earlier run deletes its mail
    at its end, and the discards and writes that follow would otherwise
    slow the first scenarios.  Returns a line for the report."""
    started = time.monotonic()
    os.sync()
    while True:
        pressure = io_pressure_avg10()
        waited = time.monotonic() - started
        if pressure is None:
            return "not measured (no /proc/pressure/io)"
        if pressure < 5.0:
            return "%.0f s until I/O waits fell to %.1f%% of 10 s" % (
                waited, pressure)
        if waited >= limit:
            return ("gave up after %.0f s with I/O waits at %.1f%% of 10 s"
                    % (waited, pressure))
        time.sleep(1)


def print_throughput(measured):
    """Print the throughput table and its legend."""
    print("| Scenario | System | Deliveries/s | p50 ms | p99 ms "
          "| Client CPU % | lmtpd/floor | lmtpd/Dovecot |")
    print("|---|---|---|---|---|---|---|---|")
    for scenario, letters, by_letter, results in measured:
        if not scenario.measure_rss:
            print("\n".join(throughput_table(scenario, letters, by_letter,
                                             results)))
    print("\nLatencies run from the final dot to the last reply, and "
          "with BDAT from the end of the chunk, sent in one write with MAIL "
          "and RCPT, to the last reply; the "
          "floor's from open() to the fsync() of new/.  Client CPU is the "
          "CPU time of loadgen, or of the floor program, over the wall "
          "time.  A ratio compares medians, and its brackets give the range "
          "of the ratios within each round of runs.  In the sequential "
          "scenario lmtpd/Dovecot compares with Dovecot run a process per "
          "connection.")


def print_rss(rss):
    """Print the peak RSS table of the RSS scenarios."""
    labels = [s.label for s in systems_of(rss[0][1], rss[0][2])]
    print("\nPeak RSS (VmHWM) of the lmtpd process that served the "
          "connection, in KiB:\n")
    print("| Message | %s |" % " | ".join(labels))
    print("|---|%s" % ("---|" * len(labels)))
    print("\n".join(rss_table(rss)))


def print_report(args, machine, load_before, measured):
    print("# lmtpd benchmark%s\n" % (" (smoke)" if args.smoke else ""))
    print("Command: `%s`\n" % " ".join(["python3", "bench/run.py"] +
                                        sys.argv[1:]))
    print("\n".join(machine))
    print("- load average (1, 5, 15 min): %s before, %s after"
          % (load_before, load_average()))
    print("- runs per system: %d; medians, with minimum-maximum in brackets"
          % args.runs)
    if args.no_dovecot:
        print("- Dovecot skipped: %s" % args.no_dovecot)
    print()
    print_throughput(measured)
    rss = [entry for entry in measured if entry[0].measure_rss]
    if rss:
        print_rss(rss)
    if not args.smoke:
        print("\nTargets:\n")
        print("\n".join(check_targets(measured)))
    sys.stdout.flush()


def parse_arguments():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true",
                        help="small counts and one run, to check the "
                        "harness in seconds")
    parser.add_argument("--runs", type=int, default=None,
                        help="runs per system (default 3, 1 with --smoke)")
    parser.add_argument("--work", default=os.path.join(servers.TOP, "bench",
                                                       "work"),
                        help="folder for mailboxes, spools and logs, on the "
                        "file system to measure (default bench/work)")
    parser.add_argument("--only", default="",
                        help="run only the scenarios whose name contains "
                        "this text")
    parser.add_argument("--timeout", type=int, default=60,
                        help="seconds one socket read or write may wait "
                        "(default 60)")
    args = parser.parse_args()
    if args.runs is None:
        args.runs = 1 if args.smoke else 3
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    return args


def check_requirements():
    """Raise BenchError when a program the benchmark runs is missing.
    Return why Dovecot cannot run, or None when it can."""
    for path in (servers.LMTPD, servers.LOADGEN, servers.FLOOR):
        if not os.access(path, os.X_OK):
            raise BenchError("%s is missing: run make bench" % path)
    for program in ("systemd-socket-activate", "cdb"):
        if shutil.which(program) is None:
            raise BenchError("%s is missing: run make deps" % program)
    if os.geteuid() != 0:
        return "the private Dovecot instance needs root"
    if servers.dovecot_version() is None or not servers.lmtp_installed():
        return "Dovecot's LMTP server is missing: run make bench-deps"
    return None


def measure(args, sockets):
    """Run every scenario and return (scenario, letters, systems,
    results) for each."""
    table = SMOKE if args.smoke else FULL
    chosen = [(s, l) for s, l in table if args.only in s.name]
    if args.no_dovecot:
        chosen = [(s, l.replace("D", "").replace("P", ""))
                  for s, l in chosen]
    letters = "".join(sorted(set("".join(l for _, l in chosen))))
    by_letter = make_systems(letters, args.work, sockets, USERS)
    measured = []
    try:
        for system in systems_of(letters, by_letter):
            if hasattr(system, "start"):
                system.start()
        for scenario, wanted in chosen:
            log(scenario.name)
            results = run_scenario(scenario, systems_of(wanted, by_letter),
                                   args.runs, args.timeout)
            measured.append((scenario, wanted, by_letter, results))
    finally:
        for system in systems_of(letters, by_letter):
            system.stop()
            shutil.rmtree(system.mail, ignore_errors=True)
        shutil.rmtree(servers.old_mail_folder(args.work), ignore_errors=True)
    return measured


def stop_on_signal(number, frame):
    raise SystemExit("bench: stopped by signal %d" % number)


def main():
    # SIGTERM then stops the servers through the finally blocks.
    signal.signal(signal.SIGTERM, stop_on_signal)
    args = parse_arguments()
    args.work = os.path.abspath(args.work)
    try:
        args.no_dovecot = check_requirements()
        if args.no_dovecot is None:
            args.no_dovecot = servers.dovecot_cannot_reach(args.work)
        if args.no_dovecot:
            log("Dovecot skipped: %s" % args.no_dovecot)
        os.makedirs(args.work, exist_ok=True)
        machine = describe_machine(args.work)
        settled = wait_for_quiet_disk(5 if args.smoke else 180)
        log("disk settled: " + settled)
        machine.append("- waited for the disk to settle: " + settled)
        load_before = load_average()
        # Dovecot's unprivileged processes reach their sockets here.
        sockets = tempfile.mkdtemp(prefix="lmtpd-bench-")
        os.chmod(sockets, 0o755)
        try:
            started = time.monotonic()
            measured = measure(args, sockets)
        finally:
            shutil.rmtree(sockets, ignore_errors=True)
        log("finished in %.0f seconds" % (time.monotonic() - started))
    except BenchError as e:
        print("bench: %s" % e, file=sys.stderr)
        return 1
    print_report(args, machine, load_before, measured)
    return 0


if __name__ == "__main__":
    sys.exit(main())
