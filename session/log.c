/*
 * log.c: one logging call for the whole program.  The target is chosen
 * once at start; stderr is used only when it cannot be the client.
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
    case LOG_TARGET_NONE:
        break;
    case LOG_TARGET_JOURNAL:
        sd_journal_send("MESSAGE=%s%s%s", session_id,
                        session_id[0] != '\0' ? ": " : "", text,
                        "PRIORITY=%d", priority, "SYSLOG_FACILITY=%d",
                        LOG_MAIL >> 3, "SYSLOG_IDENTIFIER=lmtpd",
                        "LMTPD_SESSION=%s", session_id, NULL);
        break;
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
