/*
 * log.h: lmtpd's log, written to the journal, to syslog (facility mail)
 * or to stderr, never to the client's socket.  Every line carries the
 * session id once one is set.
 */
#ifndef LMTPD_LOG_H
#define LMTPD_LOG_H

#include <syslog.h>

enum log_target {
    LOG_TARGET_AUTO,    /* journal under systemd, else syslog */
    LOG_TARGET_STDERR,
    LOG_TARGET_SYSLOG,
    LOG_TARGET_JOURNAL,
    LOG_TARGET_NONE     /* discard, for the fuzz targets; no option */
};

int log_parse_target(const char *name, enum log_target *);
void log_open(enum log_target, int stderr_free);
void log_set_session(const char *id);
void log_message(int priority, const char *format, ...)
    __attribute__((format(printf, 2, 3)));

#define log_info(...) log_message(LOG_INFO, __VA_ARGS__)
#define log_warning(...) log_message(LOG_WARNING, __VA_ARGS__)
#define log_error(...) log_message(LOG_ERR, __VA_ARGS__)

#endif
