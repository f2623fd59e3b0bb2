/*
 * log.c: the logging calls of the whole program.  The target is chosen
 * once at start, and stderr is used only when it cannot be the client.
 * Each recipient's result is one line of key=value facts, and in the
 * journal also one entry with a field per fact.
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

/* Maximum number of fields in one journal entry. */
#define JOURNAL_FIELDS_MAX 20

/* One field of a journal entry. */
struct journal_field {
    const char *name;
    const char *value;
};

static enum log_target target = LOG_TARGET_STDERR;
static int journal_fd = -1;
static int opened;
static int verbose;
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
    opened = 1;
}

/* With verbose set, LOG_DEBUG lines (the protocol trace) are written. */
void
log_set_verbose(int on)
{
    verbose = on;
}

int
log_verbose(void)
{
    return verbose;
}

void
log_set_session(const char *id)
{
    snprintf(session_id, sizeof(session_id), "%s", id != NULL ? id : "");
}

/*
 * Adds one field to the iovecs of a journal entry: NAME=value and a
 * newline.  A value with a newline in it takes the binary form: the
 * name, a newline, the length as 64-bit little-endian, the value, a
 * newline.  size receives the length's bytes.  Returns the iovecs used.
 */
static size_t
add_field(struct iovec *iov, const struct journal_field *field,
          unsigned char size[8])
{
    size_t len = strlen(field->value);
    size_t used = 0;

    iov[used++] = (struct iovec){(void *)field->name, strlen(field->name)};
    if (memchr(field->value, '\n', len) == NULL) {
        iov[used++] = (struct iovec){"=", 1};
    } else {
        for (int i = 0; i < 8; i++)
            size[i] = (unsigned char)((uint64_t)len >> (8 * i));
        iov[used++] = (struct iovec){"\n", 1};
        iov[used++] = (struct iovec){size, 8};
    }
    iov[used++] = (struct iovec){(void *)field->value, len};
    iov[used++] = (struct iovec){"\n", 1};
    return used;
}

/*
 * Sends one entry to journald as a datagram in its native protocol
 * (https://systemd.io/JOURNAL_NATIVE_PROTOCOL/): PRIORITY, the syslog
 * facility and identifier, LMTPD_SESSION, the extra fields, then
 * MESSAGE.  An entry that cannot be sent is lost, as a syslog() line is
 * when no syslog daemon listens.
 */
static void
journal_send(int priority, const char *message,
             const struct journal_field *extra, size_t extra_count)
{
    static struct sockaddr_un address = {.sun_family = AF_UNIX,
                                         .sun_path = JOURNAL_SOCKET};
    struct journal_field fields[JOURNAL_FIELDS_MAX];
    struct iovec iov[JOURNAL_FIELDS_MAX * 5];
    unsigned char sizes[JOURNAL_FIELDS_MAX][8];
    char priority_text[8], facility_text[8];
    struct msghdr msg = {.msg_name = &address, .msg_namelen = sizeof address};
    size_t count = 0, used = 0;

    if (journal_fd < 0 || extra_count > JOURNAL_FIELDS_MAX - 5)
        return;
    snprintf(priority_text, sizeof priority_text, "%d", priority);
    snprintf(facility_text, sizeof facility_text, "%d", LOG_MAIL >> 3);
    fields[count++] = (struct journal_field){"PRIORITY", priority_text};
    fields[count++] = (struct journal_field){"SYSLOG_FACILITY", facility_text};
    fields[count++] = (struct journal_field){"SYSLOG_IDENTIFIER", "lmtpd"};
    fields[count++] = (struct journal_field){"LMTPD_SESSION", session_id};
    for (size_t i = 0; i < extra_count; i++)
        fields[count++] = extra[i];
    fields[count++] = (struct journal_field){"MESSAGE", message};

    for (size_t i = 0; i < count; i++)
        used += add_field(iov + used, &fields[i], sizes[i]);
    msg.msg_iov = iov;
    msg.msg_iovlen = used;
    sendmsg(journal_fd, &msg, MSG_NOSIGNAL);
}

/* Writes one line to the target, after the session id when one is set. */
static void
write_line(int priority, const char *text)
{
    const char *separator = session_id[0] != '\0' ? ": " : "";

    switch (target) {
    case LOG_TARGET_NONE:
        break;
    case LOG_TARGET_JOURNAL: {
        char message[sizeof(session_id) + 2 + 2048];

        snprintf(message, sizeof(message), "%s%s%s", session_id, separator,
                 text);
        journal_send(priority, message, NULL, 0);
        break;
    }
    case LOG_TARGET_SYSLOG:
        syslog(priority, "%s%s%s", session_id, separator, text);
        break;
    default:
        fprintf(stderr, "lmtpd[%ld]: %s%s%s\n", (long)getpid(), session_id,
                separator, text);
        break;
    }
}

void
log_message(int priority, const char *format, ...)
{
    char text[2048];
    va_list ap;

    if (priority == LOG_DEBUG && !verbose)
        return;
    va_start(ap, format);
    vsnprintf(text, sizeof(text), format, ap);
    va_end(ap);
    write_line(priority, text);
}

/*
 * Writes text as a double-quoted value, with a backslash before each '"'
 * and each backslash, cut where out is full.
 */
void
log_quote(char *out, size_t size, const char *text)
{
    size_t used = 0;

    out[used++] = '"';
    for (; *text != '\0' && used + 3 < size; text++) {
        if (*text == '"' || *text == '\\')
            out[used++] = '\\';
        out[used++] = *text;
    }
    out[used++] = '"';
    out[used] = '\0';
}

/* Sends a recipient's result to the journal with a field per fact. */
static void
journal_delivery(int priority, const struct log_delivery *d,
                 const char *client, const char *line)
{
    char message[sizeof(session_id) + 2 + 2048];
    char size[24], code[8], delivery_ms[24];
    const struct journal_field fields[] = {
        {"LMTPD_CLIENT", client},        {"LMTPD_SENDER", d->sender},
        {"LMTPD_RECIPIENT", d->recipient}, {"LMTPD_MAILBOX", d->mailbox},
        {"LMTPD_SIZE", size},            {"LMTPD_REPLY_CODE", code},
        {"LMTPD_STATUS", d->status},     {"LMTPD_DELIVERY_MS", delivery_ms},
        {"LMTPD_RESULT", d->text},       {"LMTPD_DETAIL", d->detail},
    };

    snprintf(message, sizeof(message), "%s: %s", session_id, line);
    snprintf(size, sizeof(size), "%lld", d->size);
    snprintf(code, sizeof(code), "%d", d->code);
    snprintf(delivery_ms, sizeof(delivery_ms), "%lu", d->delivery_ms);
    journal_send(priority, message, fields,
                 sizeof(fields) / sizeof(fields[0]));
}

/*
 * Logs one recipient's result: one line of key=value facts, and under
 * the journal the same facts as fields of the entry (LMTPD_RECIPIENT,
 * LMTPD_REPLY_CODE and so on), so that journalctl can select on them.
 */
void
log_delivery(const struct log_delivery *d)
{
    int priority = d->code < 400 ? LOG_INFO : LOG_WARNING;
    const char *client = d->client[0] != '\0' ? d->client : "local";
    char result[300], detail[1100], line[2048];

    log_quote(result, sizeof(result), d->text);
    log_quote(detail, sizeof(detail), d->detail);
    snprintf(line, sizeof(line),
             "from=<%s> to=<%s> client=%s mailbox=%s size=%lld reply=%d "
             "status=%s delivery_ms=%lu result=%s%s%s", d->sender,
             d->recipient, client, d->mailbox, d->size, d->code, d->status,
             d->delivery_ms, result, d->detail[0] != '\0' ? " detail=" : "",
             d->detail[0] != '\0' ? detail : "");
    if (target != LOG_TARGET_JOURNAL) {
        write_line(priority, line);
        return;
    }
    journal_delivery(priority, d, client, line);
}

/*
 * Reports a problem found while starting: on stderr, unless stderr is a
 * socket (inetd's client, or systemd's journal stream, which the log
 * reaches anyway), and in the log.  Before log_open() the log is the
 * journal under systemd and syslog otherwise.
 */
void
log_startup(int priority, const char *format, ...)
{
    int to_stderr = !stderr_is_socket();
    char text[2048];
    va_list ap;

    va_start(ap, format);
    vsnprintf(text, sizeof(text), format, ap);
    va_end(ap);

    if (!opened)
        log_open(LOG_TARGET_AUTO, 0);
    if (to_stderr && target != LOG_TARGET_STDERR)
        fprintf(stderr, "lmtpd: %s\n", text);
    write_line(priority, text);
}
