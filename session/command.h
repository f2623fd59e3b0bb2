/*
 * command.h: splitting a command line into its verb and arguments, and
 * reading the MAIL and RCPT parameters.  Internal to session/.
 */
#ifndef LMTPD_COMMAND_H
#define LMTPD_COMMAND_H

#include "session/path.h"

enum command_verb {
    VERB_UNKNOWN,
    VERB_LHLO,
    VERB_MAIL,
    VERB_RCPT,
    VERB_DATA,
    VERB_BDAT,
    VERB_RSET,
    VERB_NOOP,
    VERB_VRFY,
    VERB_QUIT,
    VERB_HELO,
    VERB_EHLO,
    VERB_HELP
};

enum body_type { BODY_7BIT, BODY_8BITMIME, BODY_BINARYMIME };

/* A reply for a rejected command: code, enhanced status and text. */
struct command_error {
    int code;
    const char *status;
    const char *text;
};

struct mail_request {
    char reverse_path[PATH_MAX_LENGTH];
    unsigned long long size; /* SIZE=, 0 when absent */
    enum body_type body;
    int smtputf8; /* the SMTPUTF8 parameter was given (RFC 6531) */
};

struct rcpt_request {
    char forward_path[PATH_MAX_LENGTH];
};

enum command_verb command_verb(const char *line, const char **argument);
int command_parse_mail(const char *argument, unsigned long long max_size,
                       struct mail_request *, struct command_error *);
int command_parse_rcpt(const char *argument, int smtputf8,
                       struct rcpt_request *, struct command_error *);
int command_parse_bdat(const char *argument, unsigned long long *size,
                       int *last);

#endif
