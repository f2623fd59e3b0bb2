/*
 * reply.c: the one place that turns a delivery failure or an errno value
 * into an LMTP reply code, an enhanced status code (RFC 3463) and a short
 * text for the client, with a longer detail for the log.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "store/store.h"

struct reply_entry {
    int code;
    const char *status;
    const char *text;
};

/*
 * Indexed by enum store_failure.  A 4xx makes the MTA keep the message
 * and retry, and a 5xx makes it bounce the message (RFC 5321 section
 * 4.2.1), so only conditions that a retry is unlikely to change get 5xx.
 */
static const struct reply_entry reply_table[] = {
    [STORE_OK] = {250, "2.0.0", "delivered"},
    [STORE_UNKNOWN_USER] = {550, "5.1.1", "no such user"},
    [STORE_MAP_ERROR] = {451, "4.3.0", "user map unavailable, try again later"},
    [STORE_MAILBOX_FULL] = {552, "5.2.2", "mailbox full"},
    [STORE_TOO_BIG] = {552, "5.3.4", "message too big"},
    [STORE_NO_SPACE] = {452, "4.3.1", "insufficient system storage"},
    [STORE_BUSY] = {451, "4.2.0", "mailbox busy"},
    [STORE_LOCAL_ERROR] = {451, "4.3.0", "local error"},
    /*
     * The site's own MTA routed the recipient to the wrong host.  A
     * corrected transport table fixes that, so the reply is temporary.
     * 450 is RFC 5321's "mailbox unavailable" (451 means a local error).
     * RFC 3463 puts routing problems in X.4, and X.4.0 fits best because
     * X.4.4 means missing routing information and X.1.6 (mailbox moved)
     * is for permanent failures only.  users_check_home() puts the host's
     * name into the text.
     */
    [STORE_OTHER_HOST] = {450, "4.4.0", "mailbox is on another host"},
};

/*
 * A full mailbox with --quota-tempfail: the MTA keeps the message and
 * retries, in case the owner makes room before the queue lifetime ends.
 */
static const struct reply_entry mailbox_full_tempfail = {452, "4.2.2",
                                                         "mailbox full"};

static int quota_tempfail;

/*
 * Sets whether a full mailbox, from the quota or from EDQUOT, is answered
 * 452 4.2.2 (enabled) or 552 5.2.2 (the default).
 */
void
store_reply_quota_tempfail(int enabled)
{
    quota_tempfail = enabled;
}

static void
set_code(struct store_reply *reply, enum store_failure failure)
{
    const struct reply_entry *entry;

    /* An out-of-range value is a bug, and a bug must defer, not bounce. */
    if ((size_t)failure >= sizeof reply_table / sizeof reply_table[0])
        failure = STORE_LOCAL_ERROR;
    entry = &reply_table[failure];
    if (failure == STORE_MAILBOX_FULL && quota_tempfail)
        entry = &mailbox_full_tempfail;

    reply->code = entry->code;
    snprintf(reply->status, sizeof reply->status, "%s", entry->status);
    snprintf(reply->text, sizeof reply->text, "%s", entry->text);
}

/* Sets the reply for a failure, or for success with STORE_OK. */
void
store_reply_set(struct store_reply *reply, enum store_failure failure,
                const char *detail_fmt, ...)
{
    va_list ap;

    set_code(reply, failure);

    reply->detail[0] = '\0';
    if (detail_fmt == NULL)
        return;
    va_start(ap, detail_fmt);
    vsnprintf(reply->detail, sizeof reply->detail, detail_fmt, ap);
    va_end(ap);
}

/* Returns the failure that an errno value of a mailbox write stands for. */
static enum store_failure
failure_of_errno(int err)
{
    switch (err) {
    case ENOSPC:
        return STORE_NO_SPACE;
#ifdef EDQUOT
    case EDQUOT:
        return STORE_MAILBOX_FULL;
#endif
    case EFBIG:
        return STORE_TOO_BIG;
    default:
        return STORE_LOCAL_ERROR;
    }
}

static void
set_errno_detail(struct store_reply *reply, enum store_failure failure,
                 int err, const char *what, const char *path)
{
    if (path == NULL || path[0] == '\0')
        store_reply_set(reply, failure, "%s: %s", what, strerror(err));
    else
        store_reply_set(reply, failure, "%s %s: %s", what, path, strerror(err));
}

/*
 * Sets the reply for a failed system call on a mailbox: ENOSPC is 452
 * 4.3.1, EDQUOT 552 5.2.2 (452 4.2.2 with store_reply_quota_tempfail()),
 * EFBIG (file size limit) 552 5.3.4, and every other value, EACCES,
 * EPERM, ELOOP and EMLINK included, 451 4.3.0.  The detail reads
 * "<what> <path>: <strerror>", for example "open /var/mail/bob: ...".
 */
void
store_reply_errno(struct store_reply *reply, int err, const char *what,
                  const char *path)
{
    set_errno_detail(reply, failure_of_errno(err), err, what, path);
}

/*
 * Sets the reply for a failed system call on the spool, which is lmtpd's
 * own file and no recipient's.  EDQUOT there is the quota of the user
 * lmtpd runs as, which a retry may find lifted, so it is 452 4.3.1 like
 * ENOSPC and not a recipient's full mailbox.
 */
void
store_reply_spool_errno(struct store_reply *reply, int err, const char *what,
                        const char *path)
{
    enum store_failure failure = failure_of_errno(err);

    if (failure == STORE_MAILBOX_FULL)
        failure = STORE_NO_SPACE;
    set_errno_detail(reply, failure, err, what, path);
}

/* Appends a sentence to the reply's notice, after a "; " if not first. */
void
store_reply_notice(struct store_reply *reply, const char *format, ...)
{
    size_t used = strlen(reply->notice);
    va_list ap;

    if (used > 0 && used + 2 < sizeof reply->notice) {
        memcpy(reply->notice + used, "; ", 3);
        used += 2;
    }
    va_start(ap, format);
    vsnprintf(reply->notice + used, sizeof reply->notice - used, format, ap);
    va_end(ap);
}
