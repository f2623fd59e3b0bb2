/*
 * session.h: the LMTP side of lmtpd (RFC 2033).  Reads commands from one
 * client, spools the message, and hands each accepted recipient to the
 * store; never opens a mailbox itself.
 */
#ifndef LMTPD_SESSION_H
#define LMTPD_SESSION_H

#include <stddef.h>
#include <sys/types.h>

/* Settings from the command line, shared by every session. */
struct session_config {
    const char *map_path;   /* tinycdb user map */
    const char *hostname;   /* greeting and Received */
    const char *map_host;   /* this host in the map's host= fields */
    const char *delimiters; /* recipient delimiters, "" for none */
    const char *spool_dir;  /* where the message is spooled */
    unsigned long long max_size; /* SIZE limit in bytes, 0 for none */
    unsigned int timeout;   /* idle timeout in seconds */
    unsigned int session_timeout; /* limit on a whole session, 0 for none */
    unsigned int max_errors;      /* command errors before 421, 0 for none */
    size_t max_recipients;        /* per transaction, then 452 4.5.3 */
    size_t max_line_length;       /* command line without CRLF */
    int bare_lf;            /* accept LF alone as a line end (not a socket) */
    int create_folders;     /* make missing +detail Maildir++ folders */
};

int session_run(const struct session_config *, int in_fd, int out_fd,
                const char *client);
int session_check_spool(const char *dir);

#endif
