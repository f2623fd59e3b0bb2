/*
 * log.c: one logging call for the whole program.  The target is chosen
 * once at start; stderr is used only when it cannot be the client.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include "session/log.h"

/* journald's socket for its native protocol, see journal_send(). */
#define JOURNAL_SOCKET "/run/systemd/journal/socket"

static enum log_target target = LOG_TARGET_STDERR;
static int journal_fd = -1;
static char session_id[32];

int
log_parse_target(const char *name, enum log_target *result)
{
    static const struct {
        const char *name;
        enum log_target target;
    } names[] = {
        {"auto", LOG_TARGET_AUTO},
        {"stderr", LOG_TARGET_STDERR},
        {"syslog", LOG_TARGET_SYSLOG},
        {"journal", LOG_TARGET_JOURNAL},
    };

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (strcmp(name, names[i].name) == 0) {
            *result = names[i].target;
            return 0;
        }
    }
    return -1;
}

/* Returns 1 when fd 2 is a socket: under inetd it is the client itself. */
static int
stderr_is_socket(void)
{
    struct stat st;

    return fstat(STDERR_FILENO, &st) == 0 && S_ISSOCK(st.st_mode);
}

/*
 * Sets the target.  Auto picks the journal when systemd started us
 * (JOURNAL_STREAM is set for a service's stderr), stderr when the
 * caller says it is free (a session on a terminal), and syslog
 * otherwise.  A stderr request falls back to syslog when fd 2 is a
 * socket, because inetd and xinetd hand the client's connection there.
 */
void
log_open(enum log_target requested, int stderr_free)
{
    target = requested;
    if (target == LOG_TARGET_AUTO && getenv("JOURNAL_STREAM") != NULL)
        target = LOG_TARGET_JOURNAL;
    else if (target == LOG_TARGET_AUTO)
        target = stderr_free ? LOG_TARGET_STDERR : LOG_TARGET_SYSLOG;
    if (target == LOG_TARGET_STDERR && stderr_is_socket())
        target = LOG_TARGET_SYSLOG;
    if (target == LOG_TARGET_SYSLOG)
        openlog("lmtpd", LOG_PID | LOG_NDELAY, LOG_MAIL);
    if (target == LOG_TARGET_JOURNAL && journal_fd < 0)
        journal_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
}

/*
 * Sends one entry to journald as a datagram in its native protocol
 * (https://systemd.io/JOURNAL_NATIVE_PROTOCOL/): fields of the form
 * NAME=value and a newline, and MESSAGE in the binary form (the name, a
 * newline, the length as 64-bit little-endian, the value, a newline),
 * which allows a newline in the text.  An entry that cannot be sent is
 * lost, as a syslog() line is when no syslog daemon listens.
 */
static void
journal_send(int priority, const char *message)
{
    struct sockaddr_un address = {.sun_family = AF_UNIX,
                                  .sun_path = JOURNAL_SOCKET};
    size_t len = strlen(message);
    unsigned char size[8];
    char fields[128];
    struct iovec iov[4];
    struct msghdr msg = {
        .msg_name = &address,
        .msg_namelen = sizeof(address),
        .msg_iov = iov,
        .msg_iovlen = 4,
    };
    int n;

    n = snprintf(fields, sizeof(fields),
                 "PRIORITY=%d\nSYSLOG_FACILITY=%d\nSYSLOG_IDENTIFIER=lmtpd\n"
                 "LMTPD_SESSION=%s\nMESSAGE\n",
                 priority, LOG_MAIL >> 3, session_id);
    if (journal_fd < 0 || n < 0 || (size_t)n >= sizeof(fields))
        return;
    for (int i = 0; i < 8; i++)
        size[i] = (unsigned char)((uint64_t)len >> (8 * i));
    iov[0] = (struct iovec){fields, (size_t)n};
    iov[1] = (struct iovec){size, sizeof(size)};
    iov[2] = (struct iovec){(void *)message, len};
    iov[3] = (struct iovec){"\n", 1};
    sendmsg(journal_fd, &msg, MSG_NOSIGNAL);
}

void
log_set_session(const char *id)
{
    snprintf(session_id, sizeof(session_id), "%s", id != NULL ? id : "");
}

void
log_message(int priority, const char *format, ...)
{
    char text[2048];
    va_list ap;

    va_start(ap, format);
    vsnprintf(text, sizeof(text), format, ap);
    va_end(ap);

    switch (target) {
    case LOG_TARGET_JOURNAL: {
        char message[sizeof(session_id) + 2 + sizeof(text)];

        snprintf(message, sizeof(message), "%s%s%s", session_id,
                 session_id[0] != '\0' ? ": " : "", text);
        journal_send(priority, message);
        break;
    }
    case LOG_TARGET_SYSLOG:
        if (session_id[0] != '\0')
            syslog(priority, "%s: %s", session_id, text);
        else
            syslog(priority, "%s", text);
        break;
    default:
        if (session_id[0] != '\0')
            fprintf(stderr, "lmtpd[%ld]: %s: %s\n", (long)getpid(),
                    session_id, text);
        else
            fprintf(stderr, "lmtpd[%ld]: %s\n", (long)getpid(), text);
        break;
    }
}
