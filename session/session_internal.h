/*
 * session_internal.h: the state of one LMTP session and the reply
 * functions shared by session.c, which reads the commands, and
 * transfer.c, which receives and delivers the message.  Internal to
 * session/.
 */
#ifndef LMTPD_SESSION_INTERNAL_H
#define LMTPD_SESSION_INTERNAL_H

#include <stddef.h>
#include <time.h>

#include "session/command.h"
#include "session/lineio.h"
#include "session/session.h"
#include "session/spool.h"
#include "store/store.h"

struct recipient {
    char address[PATH_MAX_LENGTH];
    struct mailbox mailbox;
};

struct session {
    const struct session_config *config;
    const char *client;
    char id[16];
    char lhlo[256];
    int greeted;
    int in_transaction;
    unsigned int transactions;
    struct mail_request mail;
    struct recipient **recipients;
    size_t recipient_count;
    struct spool *spool;  /* open from DATA or the first BDAT */
    struct spool *spool_memory; /* what spool points to while open */
    struct maildir_draft *draft; /* the lone Maildir recipient's, or NULL */
    struct maildir_draft *draft_memory; /* what draft points to when open */
    int chunking;         /* BDAT was used in this transaction */
    int chunk_failed;     /* a chunk was rejected: only RSET or MAIL */
    struct store_reply chunk_failure; /* why, repeated at BDAT LAST */
    unsigned int errors;  /* 4xx and 5xx replies to commands */
    unsigned long delivered; /* recipient results with 250 */
    unsigned long failed;    /* recipient results with 4xx or 5xx */
    struct lineio io;
    char *line;           /* config->max_line_length + 2 bytes */
};

/* What a command handler returns: go on reading commands, or end. */
enum { CONTINUE = 0, CLOSE = 1 };

/* session.c */

/* Sends one reply line, CRLF added, and traces it under --verbose. */
void send_line(struct session *, const char *format, ...)
    __attribute__((format(printf, 2, 3)));

/* Sends a reply to a command.  4xx and 5xx count toward --max-errors. */
void reply(struct session *, int code, const char *status,
           const char *format, ...) __attribute__((format(printf, 4, 5)));

/* Sends one recipient's delivery result, which is not a command error. */
void reply_result(struct session *, int code, const char *status,
                  const char *format, ...)
    __attribute__((format(printf, 4, 5)));

/* Ends the transaction: frees the recipients, discards any draft and
 * closes the spool. */
void reset_transaction(struct session *);

/* Returns the milliseconds elapsed since start, on the monotonic clock. */
unsigned long elapsed_ms(const struct timespec *start);

/* transfer.c: the handlers of DATA and BDAT, as in the command table. */
int do_data(struct session *, const char *argument);
int do_bdat(struct session *, const char *argument);

#endif
