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

/* One recipient's result, logged as one line or one journal entry. */
struct log_delivery {
    const char *client;    /* "[192.0.2.1]", or "" for a local peer */
    const char *sender;    /* reverse-path without brackets, "" for <> */
    const char *recipient; /* forward-path without brackets */
    const char *mailbox;   /* path from the map */
    long long size;        /* message size in bytes, as spooled */
    int code;              /* reply code sent for this recipient */
    const char *status;    /* enhanced status code, "2.0.0" */
    const char *text;      /* reply text sent to the client */
    const char *detail;    /* longer reason for the log, or "" */
    unsigned long delivery_ms; /* time spent writing this recipient's copy */
};

int log_parse_target(const char *name, enum log_target *);
void log_open(enum log_target, int stderr_free);
void log_set_verbose(int verbose);
int log_verbose(void);
void log_set_session(const char *id);
void log_message(int priority, const char *format, ...)
    __attribute__((format(printf, 2, 3)));
void log_delivery(const struct log_delivery *);
void log_quote(char *out, size_t size, const char *text);
void log_startup(int priority, const char *format, ...)
    __attribute__((format(printf, 2, 3)));

#define log_info(...) log_message(LOG_INFO, __VA_ARGS__)
#define log_warning(...) log_message(LOG_WARNING, __VA_ARGS__)
#define log_error(...) log_message(LOG_ERR, __VA_ARGS__)
#define log_debug(...) log_message(LOG_DEBUG, __VA_ARGS__)

#endif
