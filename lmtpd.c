/*
 * lmtpd.c: main().  Reads the options, finds the connection that systemd
 * or inetd handed over (or the terminal), and serves it.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <unistd.h>

#include "session/log.h"
#include "session/session.h"
#include "store/store.h"

#ifndef LMTPD_VERSION
#define LMTPD_VERSION "0.1"
#endif

#define DEFAULT_MAP "/etc/lmtpd/users.cdb"

/* The first descriptor that systemd passes, see listen_fds(). */
#define LISTEN_FDS_START 3

static volatile sig_atomic_t child_exited;
static volatile sig_atomic_t stop_requested;

static void
usage(FILE *out)
{
    fprintf(out,
        "usage: lmtpd [options]\n"
        "Serves one LMTP connection handed over by systemd, inetd or on\n"
        "stdin, and delivers each message into Maildir or mbox mailboxes.\n"
        "\n"
        "  -m, --map FILE          tinycdb user map (default %s)\n"
        "  -H, --hostname NAME     name in the greeting and Received\n"
        "                          (default: this host's name)\n"
        "      --map-host NAME     this host's name in the host= fields of\n"
        "                          the map: a recipient whose record names\n"
        "                          another host is deferred with 450 4.4.0\n"
        "                          (default: the --hostname value)\n"
        "  -s, --max-size BYTES    largest message accepted, with K, M or G\n"
        "                          suffix, 0 for no limit (default 50M)\n"
        "  -d, --recipient-delimiter CHARS\n"
        "                          characters that start a +detail in a\n"
        "                          local part, \"\" for none (default +)\n"
        "      --default-quota BYTES\n"
        "                          quota of a map record without a quota\n"
        "                          field, with K, M or G suffix, 0 for no\n"
        "                          limit (default 0)\n"
        "      --quota-tempfail    answer a full mailbox with 452 4.2.2, so\n"
        "                          the MTA retries (default: 552 5.2.2, the\n"
        "                          MTA bounces)\n"
        "      --create-folders    create the Maildir++ folder of a +detail\n"
        "                          when it is missing (default: deliver to\n"
        "                          the inbox)\n"
        "  -t, --timeout SECONDS   idle timeout of a session (default 300)\n"
        "      --session-timeout SECONDS\n"
        "                          limit on a whole session, 0 for none\n"
        "                          (default 3600)\n"
        "      --max-line-length BYTES\n"
        "                          longest command line, without CRLF\n"
        "                          (default 2048, at least 510)\n"
        "      --max-recipients N  recipients in one transaction (default\n"
        "                          1000, at least 100)\n"
        "      --max-errors N      command errors before the session is\n"
        "                          closed, 0 for no limit (default 20)\n"
        "      --lock-timeout SECONDS\n"
        "                          longest wait for an mbox's dotlock and\n"
        "                          fcntl lock together (default 30)\n"
        "      --stale-lock-time SECONDS\n"
        "                          age at which another program's dotlock\n"
        "                          is removed (default 300)\n"
        "  -S, --spool-dir DIR     folder for the unnamed spool file of a\n"
        "                          message over 64 KiB for several\n"
        "                          recipients or as root, or for an mbox\n"
        "                          (default $TMPDIR or /tmp)\n"
        "  -c, --max-children N    connections served at once when systemd\n"
        "                          passes a listening socket (default 100)\n"
        "  -u, --user NAME         started as root, switch to this user and\n"
        "                          its groups at start and deliver as it\n"
        "                          (default: as root, deliver each message\n"
        "                          as the uid= and gid= of its map record)\n"
        "  -l, --log TARGET        auto, journal, syslog or stderr\n"
        "                          (default auto: journal under systemd,\n"
        "                          stderr on a pipe or terminal, otherwise\n"
        "                          syslog facility mail)\n"
        "  -v, --verbose           also log each command and reply, without\n"
        "                          the message content\n"
        "      --check-map FILE    check every record of a cdb user map,\n"
        "                          report each bad one and exit\n"
        "      --check-map-text FILE\n"
        "                          the same for the text source of a map,\n"
        "                          with line numbers; both may be given\n"
        "  -h, --help              show this help and exit\n"
        "  -V, --version           show the version and exit\n",
        DEFAULT_MAP);
}

/*
 * Reports an invalid command line and exits with EX_USAGE.  The message
 * goes to the log and to stderr, unless stderr is the client's socket.
 */
static void
usage_error(const char *format, ...)
    __attribute__((format(printf, 1, 2), noreturn));

static void
usage_error(const char *format, ...)
{
    char text[1024];
    va_list ap;

    va_start(ap, format);
    vsnprintf(text, sizeof(text), format, ap);
    va_end(ap);
    log_startup(LOG_ERR, "%s; see lmtpd --help", text);
    exit(EX_USAGE);
}

static unsigned long
parse_number(const char *option, const char *text, unsigned long min,
             unsigned long max)
{
    char *end;
    unsigned long value;

    errno = 0;
    value = strtoul(text, &end, 10);
    if (text[0] < '0' || text[0] > '9' || *end != '\0' || errno != 0 ||
        value < min || value > max) {
        usage_error("invalid value \"%s\" for %s: expected a whole number "
                    "from %lu to %lu", text, option, min, max);
    }
    return value;
}

static void
parse_default_quota(const char *text)
{
    unsigned long long bytes;

    if (users_parse_size(text, &bytes) < 0)
        usage_error("invalid size \"%s\" for --default-quota: expected "
                    "bytes with an optional K, M or G", text);
    quota_set_default(bytes);
}

/* Long options without a short form. */
enum {
    OPTION_SESSION_TIMEOUT = 256,
    OPTION_MAX_LINE,
    OPTION_MAX_RECIPIENTS,
    OPTION_MAX_ERRORS,
    OPTION_CREATE_FOLDERS,
    OPTION_DEFAULT_QUOTA,
    OPTION_QUOTA_TEMPFAIL,
    OPTION_MAP_HOST,
    OPTION_LOCK_TIMEOUT,
    OPTION_STALE_LOCK_TIME,
    OPTION_CHECK_MAP,
    OPTION_CHECK_MAP_TEXT
};

/* Settings from the command line other than the session's. */
struct run_options {
    enum log_target log_target;
    unsigned long max_children;
    const char *check_map;      /* --check-map FILE, or NULL */
    const char *check_map_text; /* --check-map-text FILE, or NULL */
    const char *user;           /* --user NAME, or NULL */
};

static void
parse_options(int argc, char **argv, struct session_config *config,
              struct run_options *run)
{
    static const struct option options[] = {
        {"map", required_argument, NULL, 'm'},
        {"hostname", required_argument, NULL, 'H'},
        {"max-size", required_argument, NULL, 's'},
        {"recipient-delimiter", required_argument, NULL, 'd'},
        {"timeout", required_argument, NULL, 't'},
        {"spool-dir", required_argument, NULL, 'S'},
        {"max-children", required_argument, NULL, 'c'},
        {"log", required_argument, NULL, 'l'},
        {"user", required_argument, NULL, 'u'},
        {"session-timeout", required_argument, NULL, OPTION_SESSION_TIMEOUT},
        {"max-line-length", required_argument, NULL, OPTION_MAX_LINE},
        {"max-recipients", required_argument, NULL, OPTION_MAX_RECIPIENTS},
        {"max-errors", required_argument, NULL, OPTION_MAX_ERRORS},
        {"create-folders", no_argument, NULL, OPTION_CREATE_FOLDERS},
        {"default-quota", required_argument, NULL, OPTION_DEFAULT_QUOTA},
        {"quota-tempfail", no_argument, NULL, OPTION_QUOTA_TEMPFAIL},
        {"map-host", required_argument, NULL, OPTION_MAP_HOST},
        {"lock-timeout", required_argument, NULL, OPTION_LOCK_TIMEOUT},
        {"stale-lock-time", required_argument, NULL, OPTION_STALE_LOCK_TIME},
        {"check-map", required_argument, NULL, OPTION_CHECK_MAP},
        {"check-map-text", required_argument, NULL, OPTION_CHECK_MAP_TEXT},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    int c;

    /* getopt's own messages would go to stderr, the client under inetd. */
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":m:H:s:d:t:S:c:l:u:vhV", options,
                            NULL)) != -1) {
        switch (c) {
        case 'm':
            config->map_path = optarg;
            break;
        case 'H':
            if (optarg[0] == '\0' || strpbrk(optarg, " \t\r\n") != NULL)
                usage_error("invalid host name \"%s\" for --hostname: "
                            "expected a name without spaces", optarg);
            config->hostname = optarg;
            break;
        case OPTION_MAP_HOST:
            if (!users_host_name_is_valid(optarg, strlen(optarg)))
                usage_error("invalid host name \"%s\" for --map-host: "
                            "expected dot-separated labels of letters, "
                            "digits and hyphens", optarg);
            config->map_host = optarg;
            break;
        case 's':
            if (users_parse_size(optarg, &config->max_size) < 0)
                usage_error("invalid size \"%s\" for --max-size: expected "
                            "bytes with an optional K, M or G", optarg);
            break;
        case 'd':
            config->delimiters = optarg;
            break;
        case 't':
            config->timeout =
                (unsigned int)parse_number("--timeout", optarg, 0, 86400);
            break;
        case 'S':
            config->spool_dir = optarg;
            break;
        case OPTION_SESSION_TIMEOUT:
            config->session_timeout = (unsigned int)parse_number(
                "--session-timeout", optarg, 0, 604800);
            break;
        case OPTION_MAX_LINE:
            /* RFC 5321 section 4.5.3.1.4: 512 octets with the CRLF. */
            config->max_line_length = parse_number("--max-line-length",
                                                   optarg, 510, 1048576);
            break;
        case OPTION_MAX_RECIPIENTS:
            /* RFC 5321 section 4.5.3.1.8: at least 100 recipients. */
            config->max_recipients = parse_number("--max-recipients",
                                                  optarg, 100, 1000000);
            break;
        case OPTION_CREATE_FOLDERS:
            config->create_folders = 1;
            break;
        case OPTION_DEFAULT_QUOTA:
            parse_default_quota(optarg);
            break;
        case OPTION_QUOTA_TEMPFAIL:
            store_reply_quota_tempfail(1);
            break;
        case OPTION_MAX_ERRORS:
            config->max_errors = (unsigned int)parse_number(
                "--max-errors", optarg, 0, 1000000);
            break;
        case OPTION_LOCK_TIMEOUT:
            mbox_set_lock_timeout((unsigned)parse_number("--lock-timeout",
                                                         optarg, 0, 3600));
            break;
        case OPTION_STALE_LOCK_TIME:
            mbox_set_stale_lock_time((unsigned)parse_number(
                "--stale-lock-time", optarg, 1, 604800));
            break;
        case 'c':
            run->max_children =
                parse_number("--max-children", optarg, 1, 100000);
            break;
        case 'l':
            if (log_parse_target(optarg, &run->log_target) < 0)
                usage_error("invalid log target \"%s\" for --log: expected"
                            " auto, journal, syslog or stderr", optarg);
            break;
        case 'u':
            run->user = optarg;
            break;
        case 'v':
            log_set_verbose(1);
            break;
        case OPTION_CHECK_MAP:
            run->check_map = optarg;
            break;
        case OPTION_CHECK_MAP_TEXT:
            run->check_map_text = optarg;
            break;
        case ':':
            usage_error("option %s requires a value", argv[optind - 1]);
        case 'h':
            usage(stdout);
            exit(0);
        case 'V':
            printf("lmtpd %s\n", LMTPD_VERSION);
            exit(0);
        default:
            /* optopt names an unknown short option; a long one is 0. */
            if (optopt > 0 && optopt < 256)
                usage_error("unknown option \"-%c\"", optopt);
            usage_error("unknown option \"%s\"", argv[optind - 1]);
        }
    }
    if (optind < argc)
        usage_error("unexpected argument \"%s\"", argv[optind]);
}

/* Describes the peer of fd for Received: "[192.0.2.1]", or "" if local. */
static void
describe_peer(int fd, char *text, size_t size)
{
    struct sockaddr_storage address;
    socklen_t length = sizeof(address);
    char host[INET6_ADDRSTRLEN];

    text[0] = '\0';
    if (getpeername(fd, (struct sockaddr *)&address, &length) < 0)
        return;
    if (address.ss_family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)&address;

        if (inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host)) != NULL)
            snprintf(text, size, "[%s]", host);
    } else if (address.ss_family == AF_INET6) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&address;

        if (inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host)) != NULL)
            snprintf(text, size, "[IPv6:%s]", host);
    }
}

static int
serve(const struct session_config *config, int in_fd, int out_fd)
{
    char client[INET6_ADDRSTRLEN + 8];

    describe_peer(in_fd, client, sizeof(client));
    return session_run(config, in_fd, out_fd, client) < 0 ? EX_IOERR : 0;
}

static void
on_child_exit(int signal_number)
{
    (void)signal_number;
    child_exited = 1;
}

static void
on_stop(int signal_number)
{
    (void)signal_number;
    stop_requested = 1;
}

static unsigned long
reap_children(unsigned long running, int block)
{
    while (running > 0 && waitpid(-1, NULL, block ? 0 : WNOHANG) > 0) {
        running--;
        block = 0;
    }
    return running;
}

/*
 * systemd Accept=no: accepts connections on the listening socket and
 * serves each in a child, at most max_children at once.  At the limit
 * it accepts nothing, so further connections wait in the listen backlog
 * until a child exits.  Signals interrupt accept() (no SA_RESTART) so
 * exited children are reaped.
 */
static int
accept_loop(const struct session_config *config, int listen_fd,
            unsigned long max_children)
{
    struct sigaction action = {.sa_handler = on_child_exit};
    unsigned long running = 0;

    sigemptyset(&action.sa_mask);
    sigaction(SIGCHLD, &action, NULL);
    action.sa_handler = on_stop;
    sigaction(SIGTERM, &action, NULL);
    sigaction(SIGINT, &action, NULL);
    log_info("accepting connections, at most %lu at once", max_children);

    while (!stop_requested) {
        child_exited = 0;
        running = reap_children(running, running >= max_children);
        /* A signal can end the blocking wait with no child reaped. */
        if (running >= max_children)
            continue;

        int fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno != EINTR && errno != ECONNABORTED) {
                log_error("accept failed: %s", strerror(errno));
                sleep(1);
            }
            continue;
        }

        pid_t pid = fork();
        if (pid == 0) {
            close(listen_fd);
            signal(SIGCHLD, SIG_DFL);
            signal(SIGTERM, SIG_DFL);
            signal(SIGINT, SIG_DFL);
            _exit(serve(config, fd, fd));
        }
        if (pid < 0)
            log_error("fork failed: %s", strerror(errno));
        else
            running++;
        close(fd);
    }
    log_info("stopping, %lu connections still being served", running);
    return 0;
}

/*
 * Switches the whole process to the user named by --user and its groups,
 * for inetd and other setups that start lmtpd as root.  Already running
 * as that user is fine; any other user cannot switch.
 */
static int
switch_user(const char *name)
{
    struct passwd *pw;
    char error[256];

    errno = 0;
    pw = getpwnam(name);
    if (pw == NULL) {
        log_startup(LOG_ERR, "--user %s: %s", name,
                    errno != 0 ? strerror(errno) : "no such user");
        return -1;
    }
    if (geteuid() == pw->pw_uid && pw->pw_uid != 0)
        return 0;
    if (geteuid() != 0) {
        log_startup(LOG_ERR, "--user %s: lmtpd runs as uid %lu, and only "
                    "root can switch users: start it as root or as %s",
                    name, (unsigned long)geteuid(), name);
        return -1;
    }
    if (privilege_drop(pw->pw_uid, pw->pw_gid, pw->pw_name, error,
                       sizeof error) == -1) {
        log_startup(LOG_ERR, "--user %s: %s", name, error);
        return -1;
    }
    log_info("running as user %s (uid %lu, gid %lu)", name,
             (unsigned long)pw->pw_uid, (unsigned long)pw->pw_gid);
    return 0;
}

static int
is_socket(int fd)
{
    struct stat st;

    return fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode);
}

/* Parses a whole decimal number with no sign or spaces, or returns -1. */
static long
parse_count(const char *text)
{
    char *end;
    long value;

    if (text == NULL || text[0] < '0' || text[0] > '9')
        return -1;
    errno = 0;
    value = strtol(text, &end, 10);
    return *end == '\0' && errno == 0 ? value : -1;
}

/*
 * Returns the number of sockets that systemd passed to this process, as
 * sd_listen_fds(3) describes: LISTEN_PID is this process and LISTEN_FDS
 * counts the descriptors from 3 on.  Returns 0 when none were passed to
 * this process, or -1 with errno EINVAL when a variable is malformed.
 * Unsets the variables, so that no child takes the sockets for its own,
 * and marks the descriptors close-on-exec.
 */
static int
listen_fds(void)
{
    const char *pid_text = getenv("LISTEN_PID");
    const char *count_text = getenv("LISTEN_FDS");
    long pid = parse_count(pid_text);
    long count = parse_count(count_text);
    int result = 0;

    if (pid_text == NULL || count_text == NULL)
        goto done;
    if (pid < 0 || count < 0 || count > INT_MAX - LISTEN_FDS_START) {
        errno = EINVAL;
        result = -1;
        goto done;
    }
    if (pid != (long)getpid())
        goto done;
    for (int fd = LISTEN_FDS_START; fd < LISTEN_FDS_START + count; fd++) {
        if (fcntl(fd, F_SETFD, FD_CLOEXEC) == -1) {
            result = -1;
            goto done;
        }
    }
    result = (int)count;

done:
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_FDNAMES");
    return result;
}

/* Returns 1 for a listening stream socket, 0 for a connected one, or -1. */
static int
stream_socket_state(int fd)
{
    int type, listening;
    socklen_t len = sizeof(type);

    if (!is_socket(fd) ||
        getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == -1 ||
        type != SOCK_STREAM)
        return -1;
    len = sizeof(listening);
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) == -1)
        return -1;
    return listening != 0;
}

/* Checks one map for --check-map or --check-map-text.  Returns the exit
 * status: 0, EX_DATAERR for an invalid record, EX_NOINPUT when the file
 * cannot be read. */
static int
check_map(const char *path, const char *this_host,
          int (*check)(const char *, const char *, FILE *,
                       struct mapcheck_result *))
{
    struct mapcheck_result result;

    if (check(path, this_host, stdout, &result) < 0) {
        fflush(stdout);
        if (errno == EPROTO)
            fprintf(stderr, "lmtpd: cannot read map %s: not a cdb file; "
                    "check a text map with --check-map-text, and build "
                    "the cdb with \"cdb -c -m MAP.cdb %s\"\n", path, path);
        else
            fprintf(stderr, "lmtpd: cannot read map %s: %s\n", path,
                    strerror(errno));
        return EX_NOINPUT;
    }
    return result.invalid > 0 ? EX_DATAERR : 0;
}

/*
 * Runs --check-map and --check-map-text, returning the worse status.
 * this_host is the --map-host name, for the records with host= fields.
 */
static int
check_maps(const struct run_options *run, const char *this_host)
{
    int status = 0;
    int one;

    if (run->check_map != NULL) {
        one = check_map(run->check_map, this_host, mapcheck_cdb);
        status = one > status ? one : status;
    }
    if (run->check_map_text != NULL) {
        one = check_map(run->check_map_text, this_host, mapcheck_text);
        status = one > status ? one : status;
    }
    fflush(stdout);
    return status;
}

/*
 * Logs what would make every session fail: a map or spool folder that
 * cannot be used.  lmtpd still serves the connection and replies 451
 * 4.3.0, so that the MTA keeps the mail until the setup is fixed.
 */
static void
check_setup(const struct session_config *config)
{
    if (users_check_map(config->map_path) < 0)
        log_startup(LOG_ERR, "cannot use user map %s: %s; build it with "
                    "\"cdb -c -m %s FILE.txt\" or give another with --map;"
                    " until then every recipient gets 451 4.3.0",
                    config->map_path,
                    errno == EPROTO ? "not a cdb file" : strerror(errno),
                    config->map_path);
    if (session_check_spool(config->spool_dir) < 0)
        log_startup(LOG_ERR, "cannot create a spool file in %s: %s; create "
                    "the folder or give a writable one with --spool-dir or "
                    "TMPDIR; until then every message that needs a spool "
                    "file (see lmtpd(8) on --spool-dir) gets 451 4.3.0",
                    config->spool_dir, strerror(errno));
}

/* The way the connection was handed over, found by find_mode(). */
enum mode {
    MODE_INVALID,
    MODE_ACCEPT_YES, /* systemd passed a connected socket */
    MODE_ACCEPT_NO,  /* systemd passed a listening socket */
    MODE_INETD,      /* the connection is stdin and stdout */
    MODE_STDIN       /* stdin is a pipe or terminal */
};

static const char *const mode_names[] = {
    [MODE_INVALID] = "invalid",
    [MODE_ACCEPT_YES] = "systemd Accept=yes",
    [MODE_ACCEPT_NO] = "systemd Accept=no",
    [MODE_INETD] = "inetd",
    [MODE_STDIN] = "stdin",
};

/* Finds the mode from the number of sockets that systemd passed. */
static enum mode
find_mode(int fds, int bare_lf)
{
    if (fds == 0)
        return bare_lf ? MODE_STDIN : MODE_INETD;
    if (fds != 1)
        return MODE_INVALID;
    switch (stream_socket_state(LISTEN_FDS_START)) {
    case 1:
        return MODE_ACCEPT_NO;
    case 0:
        return MODE_ACCEPT_YES;
    default:
        return MODE_INVALID;
    }
}

int
main(int argc, char **argv)
{
    static char hostname[HOST_NAME_MAX + 1];
    struct session_config config = {
        .map_path = DEFAULT_MAP,
        .delimiters = "+",
        .max_size = 50ULL * 1024 * 1024,
        .timeout = 300,
        .session_timeout = 3600,
        .max_errors = 20,
        .max_recipients = 1000,
        .max_line_length = 2048,
    };
    struct run_options run = {
        .log_target = LOG_TARGET_AUTO,
        .max_children = 100,
    };
    enum mode mode;
    int fds;

    umask(077);
    signal(SIGPIPE, SIG_IGN);
    /* The delivery children of privilege.c are waited for by pid. */
    signal(SIGCHLD, SIG_DFL);
    /* A file size limit must fail the write with EFBIG, so that the
     * mbox writer can cut its partial message off, not kill us. */
    signal(SIGXFSZ, SIG_IGN);
    config.spool_dir = getenv("TMPDIR") != NULL && getenv("TMPDIR")[0] != '\0'
                           ? getenv("TMPDIR")
                           : "/tmp";
    parse_options(argc, argv, &config, &run);
    if (config.hostname == NULL) {
        if (gethostname(hostname, sizeof(hostname)) < 0 ||
            hostname[0] == '\0')
            snprintf(hostname, sizeof(hostname), "localhost");
        config.hostname = hostname;
    }
    if (config.map_host == NULL)
        config.map_host = config.hostname;
    if (run.check_map != NULL || run.check_map_text != NULL)
        return check_maps(&run, config.map_host);
    fds = listen_fds();
    /* A pipe or terminal on stdin is someone testing by hand. */
    if (fds == 0 && !is_socket(STDIN_FILENO))
        config.bare_lf = 1;
    log_open(run.log_target, config.bare_lf);
    if (run.user != NULL && switch_user(run.user) == -1)
        return EX_NOUSER;

    if (fds < 0) {
        log_startup(LOG_ERR, "cannot read the sockets passed by systemd: %s",
                    strerror(errno));
        return EX_OSERR;
    }
    if (fds > 1) {
        log_startup(LOG_ERR, "systemd passed %d sockets, expected one: give "
                    "the socket unit a single Listen line", fds);
        return EX_CONFIG;
    }
    mode = find_mode(fds, config.bare_lf);
    if (mode == MODE_INVALID) {
        log_startup(LOG_ERR, "the descriptor passed by systemd is not a "
                    "stream socket: give the socket unit a ListenStream line");
        return EX_CONFIG;
    }

    log_info("starting lmtpd %s (%s), map %s, spool folder %s",
             LMTPD_VERSION, mode_names[mode], config.map_path,
             config.spool_dir);
    check_setup(&config);
    if (mode == MODE_ACCEPT_NO)
        return accept_loop(&config, LISTEN_FDS_START, run.max_children);
    if (mode == MODE_ACCEPT_YES)
        return serve(&config, LISTEN_FDS_START, LISTEN_FDS_START);
    return serve(&config, STDIN_FILENO, STDOUT_FILENO);
}
