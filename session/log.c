/*
 * log.c: the logging calls of the whole program.  The target is chosen
 * once at start, and stderr is used only when it cannot be the client.
 * Each recipient's result is one line of key=value facts, and in the
 * journal also one entry with a field per fact.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <systemd/sd-journal.h>

#include "session/log.h"

static enum log_target target = LOG_TARGET_STDERR;
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

/* Writes one line to the target, after the session id when one is set. */
static void
write_line(int priority, const char *text)
{
    const char *separator = session_id[0] != '\0' ? ": " : "";

    switch (target) {
    case LOG_TARGET_NONE:
        break;
    case LOG_TARGET_JOURNAL:
        sd_journal_send("MESSAGE=%s%s%s", session_id, separator, text,
                        "PRIORITY=%d", priority, "SYSLOG_FACILITY=%d",
                        LOG_MAIL >> 3, "SYSLOG_IDENTIFIER=lmtpd",
                        "LMTPD_SESSION=%s", session_id, NULL);
        break;
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
    sd_journal_send("MESSAGE=%s: %s", session_id, line,
                    "PRIORITY=%d", priority,
                    "SYSLOG_FACILITY=%d", LOG_MAIL >> 3,
                    "SYSLOG_IDENTIFIER=lmtpd",
                    "LMTPD_SESSION=%s", session_id,
                    "LMTPD_CLIENT=%s", client,
                    "LMTPD_SENDER=%s", d->sender,
                    "LMTPD_RECIPIENT=%s", d->recipient,
                    "LMTPD_MAILBOX=%s", d->mailbox,
                    "LMTPD_SIZE=%lld", d->size,
                    "LMTPD_REPLY_CODE=%d", d->code,
                    "LMTPD_STATUS=%s", d->status,
                    "LMTPD_DELIVERY_MS=%lu", d->delivery_ms,
                    "LMTPD_RESULT=%s", d->text,
                    "LMTPD_DETAIL=%s", d->detail, NULL);
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
