/*
 * path.h: reverse-path and forward-path syntax of RFC 5321 section 4.1.2,
 * with the UTF-8 forms of RFC 6531.  Internal to session/.
 */
#ifndef LMTPD_PATH_H
#define LMTPD_PATH_H

#include <stddef.h>

/* RFC 5321 section 4.5.3.1.3: a path is at most 256 octets. */
#define PATH_MAX_LENGTH 256

enum path_flags {
    PATH_ALLOW_NULL = 1,       /* "<>" is accepted (MAIL FROM) */
    PATH_ALLOW_POSTMASTER = 2, /* "<Postmaster>" is accepted (RCPT TO) */
    PATH_ALLOW_UTF8 = 4        /* non-ASCII is accepted (SMTPUTF8 given) */
};

enum path_result {
    PATH_OK = 0,
    PATH_INVALID = -1, /* syntax error: see the error text */
    PATH_NEEDS_UTF8 = -2 /* valid only with SMTPUTF8 */
};

int path_parse(const char *text, int flags, char *address, size_t size,
               size_t *consumed, const char **error);

#endif
