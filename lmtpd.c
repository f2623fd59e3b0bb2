/*
 * lmtpd.c: main().  Reads the options, finds the connection that systemd
 * or inetd handed over (or the terminal), and serves it.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "session/log.h"
#include "session/session.h"
#include "store/store.h"

#ifndef LMTPD_VERSION
#define LMTPD_VERSION "0.1"
#endif

#define DEFAULT_MAP "/etc/lmtpd/users.cdb"

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
        "  -s, --max-size BYTES    largest message accepted, with K, M or G\n"
        "                          suffix, 0 for no limit (default 50M)\n"
        "  -d, --recipient-delimiter CHARS\n"
        "                          characters that start a +detail in a\n"
        "                          local part, \"\" for none (default +)\n"
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
        "  -S, --spool-dir DIR     folder for the unnamed spool file\n"
        "                          (default $TMPDIR or /tmp)\n"
        "  -c, --max-children N    connections served at once when systemd\n"
        "                          passes a listening socket (default 100)\n"
        "  -u, --user NAME         started as root, switch to this user and\n"
        "                          its groups at start and deliver as it\n"
        "                          (default: as root, deliver each message\n"
        "                          as the uid= and gid= of its map record)\n"
        "  -l, --log TARGET        auto, journal, syslog or stderr\n"
        "                          (default auto: journal under systemd,\n"
        "                          otherwise syslog facility mail)\n"
        "  -h, --help              show this help and exit\n"
        "  -V, --version           show the version and exit\n",
        DEFAULT_MAP);
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
        fprintf(stderr, "lmtpd: invalid value \"%s\" for %s: expected a "
                "whole number from %lu to %lu\n", text, option, min, max);
        exit(EX_USAGE);
    }
    return value;
}

/* Long options without a short form. */
enum {
    OPTION_SESSION_TIMEOUT = 256,
    OPTION_MAX_LINE,
    OPTION_MAX_RECIPIENTS,
    OPTION_MAX_ERRORS,
    OPTION_CREATE_FOLDERS
};

/* Settings of main() that the session does not need. */
struct process_options {
    enum log_target log_target;
    unsigned long max_children;
    const char *user; /* --user, or NULL */
};

static void
parse_options(int argc, char **argv, struct session_config *config,
              struct process_options *process)
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
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    int c;

    while ((c = getopt_long(argc, argv, "m:H:s:d:t:S:c:l:u:hV", options,
                            NULL)) != -1) {
        switch (c) {
        case 'm':
            config->map_path = optarg;
            break;
        case 'H':
            if (optarg[0] == '\0' || strpbrk(optarg, " \t\r\n") != NULL) {
                fprintf(stderr, "lmtpd: invalid host name \"%s\"\n", optarg);
                exit(EX_USAGE);
            }
            config->hostname = optarg;
            break;
        case 's':
            if (users_parse_size(optarg, &config->max_size) < 0) {
                fprintf(stderr, "lmtpd: invalid size \"%s\" for --max-size:"
                        " expected bytes with an optional K, M or G\n",
                        optarg);
                exit(EX_USAGE);
            }
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
        case OPTION_MAX_ERRORS:
            config->max_errors = (unsigned int)parse_number(
                "--max-errors", optarg, 0, 1000000);
            break;
        case 'c':
            process->max_children =
                parse_number("--max-children", optarg, 1, 100000);
            break;
        case 'l':
            if (log_parse_target(optarg, &process->log_target) < 0) {
                fprintf(stderr, "lmtpd: invalid log target \"%s\": expected"
                        " auto, journal, syslog or stderr\n", optarg);
                exit(EX_USAGE);
            }
            break;
        case 'u':
            process->user = optarg;
            break;
        case 'h':
            usage(stdout);
            exit(0);
        case 'V':
            printf("lmtpd %s\n", LMTPD_VERSION);
            exit(0);
        default:
            usage(stderr);
            exit(EX_USAGE);
        }
    }
    if (optind < argc) {
        fprintf(stderr, "lmtpd: unexpected argument \"%s\"\n", argv[optind]);
        usage(stderr);
        exit(EX_USAGE);
    }
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
        log_error("--user %s: %s", name,
                  errno != 0 ? strerror(errno) : "no such user");
        return -1;
    }
    if (geteuid() == pw->pw_uid && pw->pw_uid != 0)
        return 0;
    if (geteuid() != 0) {
        log_error("--user %s: lmtpd runs as uid %lu, and only root can "
                  "switch users: start it as root or as %s", name,
                  (unsigned long)geteuid(), name);
        return -1;
    }
    if (privilege_drop(pw->pw_uid, pw->pw_gid, pw->pw_name, error,
                       sizeof error) == -1) {
        log_error("--user %s: %s", name, error);
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
    struct process_options process = {
        .log_target = LOG_TARGET_AUTO,
        .max_children = 100,
    };
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
    parse_options(argc, argv, &config, &process);
    if (config.hostname == NULL) {
        if (gethostname(hostname, sizeof(hostname)) < 0 ||
            hostname[0] == '\0')
            snprintf(hostname, sizeof(hostname), "localhost");
        config.hostname = hostname;
    }
    fds = sd_listen_fds(1);
    /* A pipe or terminal on stdin is someone testing by hand. */
    if (fds == 0 && !is_socket(STDIN_FILENO))
        config.bare_lf = 1;
    log_open(process.log_target, config.bare_lf);
    if (process.user != NULL && switch_user(process.user) == -1)
        return EX_NOUSER;

    if (fds < 0) {
        log_error("cannot read the sockets passed by systemd: %s",
                  strerror(-fds));
        return EX_OSERR;
    }
    if (fds > 1) {
        log_error("systemd passed %d sockets, expected one", fds);
        return EX_CONFIG;
    }
    if (fds == 1) {
        int fd = SD_LISTEN_FDS_START;

        if (sd_is_socket(fd, AF_UNSPEC, SOCK_STREAM, 1) > 0)
            return accept_loop(&config, fd, process.max_children);
        if (sd_is_socket(fd, AF_UNSPEC, SOCK_STREAM, 0) > 0)
            return serve(&config, fd, fd);
        log_error("the descriptor passed by systemd is not a stream socket");
        return EX_CONFIG;
    }
    return serve(&config, STDIN_FILENO, STDOUT_FILENO);
}
