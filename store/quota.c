/*
 * quota.c: the size and message limits of a mailbox.  A Maildir's usage
 * comes from the Maildir++ "maildirsize" file, which Courier and Dovecot
 * (quota backend "maildir") read and write too and maildirsize.c
 * handles.  An mbox's usage is its size.
 */
#include <errno.h>
#include <sys/stat.h>

#include "store/quota_internal.h"
#include "store/store.h"

/* Limit in bytes for records without a quota field, or 0 for none. */
static unsigned long long default_quota;

/* Sets the limit in bytes for records without a quota field. */
void
quota_set_default(unsigned long long bytes)
{
    default_quota = bytes;
}

/*
 * Fills limits with the mailbox's limits, 0 meaning none.  An mbox has
 * no message limit, because counting its messages means reading it all.
 */
void
quota_limits(const struct mailbox *mb, struct quota_counts *limits)
{
    limits->bytes = mb->has_quota ? mb->quota_bytes : default_quota;
    limits->messages = mb->is_maildir ? mb->quota_messages : 0;
}

/* Returns 1 when one more message of size bytes passes a limit. */
int
quota_exceeds(const struct quota_counts *limits,
              const struct quota_counts *usage, unsigned long long size)
{
    if (limits->bytes != 0 &&
        (size > limits->bytes || usage->bytes > limits->bytes - size))
        return 1;
    return limits->messages != 0 && usage->messages >= limits->messages;
}

/* Finds the size of an mbox.  A missing mbox is empty. */
static int
mbox_usage(const char *path, struct quota_counts *usage,
           struct store_reply *reply)
{
    struct stat st;

    usage->bytes = usage->messages = 0;
    if (lstat(path, &st) == 0) {
        usage->bytes = (unsigned long long)st.st_size;
        return 0;
    }
    if (errno == ENOENT)
        return 0;
    store_reply_errno(reply, errno, "lstat", path);
    return -1;
}

/*
 * Checks that a message of size bytes fits the mailbox's limits.  A size
 * of 0 (at RCPT without SIZE=) counts as 1, because every stored message
 * has at least its header block: a mailbox exactly at its limit is full.
 * Returns 0 when it fits or no limit applies.  Returns -1 with the reply
 * set for a full mailbox (STORE_MAILBOX_FULL) or when the usage cannot
 * be read.
 */
int
quota_check(const struct mailbox *mb, unsigned long long size,
            struct store_reply *reply)
{
    struct quota_counts limits, usage;
    int result;

    quota_limits(mb, &limits);
    if (limits.bytes == 0 && limits.messages == 0)
        return 0;
    if (size == 0)
        size = 1;
    if (mb->is_maildir)
        result = quota_maildir_usage(mb->path, &limits, size, &usage, reply);
    else
        result = mbox_usage(mb->path, &usage, reply);
    if (result == -1 || !quota_exceeds(&limits, &usage, size))
        return result;

    if (limits.messages != 0 && usage.messages >= limits.messages)
        store_reply_set(reply, STORE_MAILBOX_FULL,
                        "%s: %llu messages, the limit is %llu", mb->path,
                        usage.messages, limits.messages);
    else
        store_reply_set(reply, STORE_MAILBOX_FULL,
                        "%s: %llu bytes used and %llu more exceed the quota"
                        " of %llu bytes", mb->path, usage.bytes, size,
                        limits.bytes);
    return -1;
}
