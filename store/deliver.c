/*
 * deliver.c: delivers one spooled message to one recipient.  Builds the
 * per-recipient header block (Return-Path, Delivered-To, Received) and
 * hands it with the spool to the Maildir or mbox writer.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "store/store.h"

/*
 * Maximum size of the header block.  RFC 5321 4.5.3.1 limits a path to
 * 256 bytes and a domain to 255, so a valid envelope needs under 2 KiB.
 */
#define HEADER_BLOCK_SIZE 4096

/* A bounded output buffer that remembers whether anything was cut. */
struct header_buffer {
    char *data;
    size_t size;
    size_t len;
    int overflow;
};

static void
append_text(struct header_buffer *out, const char *text)
{
    size_t len = strlen(text);

    if (out->overflow || len >= out->size - out->len) {
        out->overflow = 1;
        return;
    }
    memcpy(out->data + out->len, text, len);
    out->len += len;
}

/*
 * Appends a value from the envelope or the session with each control
 * byte replaced by '?'.  The session rejects control bytes already, and
 * this second check keeps a CR or LF from starting a header line of its
 * own (RFC 5322 section 2.2).
 */
static void
append_value(struct header_buffer *out, const char *text)
{
    size_t start = out->len;
    size_t i;

    append_text(out, text != NULL ? text : "");
    if (out->overflow)
        return;
    for (i = start; i < out->len; i++) {
        unsigned char c = (unsigned char)out->data[i];

        if (c < 0x20 || c == 0x7f)
            out->data[i] = '?';
    }
}

/*
 * Formats a date-time as RFC 5322 section 3.3 wants it, in local time
 * with a numeric zone.  Day and month names come from a table because
 * strftime()'s %a and %b follow the locale.
 */
static int
format_date(char *out, size_t size, time_t when)
{
    static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed",
                                    "Thu", "Fri", "Sat"};
    static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr",
                                       "May", "Jun", "Jul", "Aug",
                                       "Sep", "Oct", "Nov", "Dec"};
    char zone[8];
    struct tm tm;
    int len;

    if (localtime_r(&when, &tm) == NULL ||
        strftime(zone, sizeof zone, "%z", &tm) == 0)
        return -1;

    len = snprintf(out, size, "%s, %02d %s %d %02d:%02d:%02d %s",
                   days[tm.tm_wday], tm.tm_mday, months[tm.tm_mon],
                   tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec, zone);
    return len > 0 && (size_t)len < size ? 0 : -1;
}

/*
 * Formats the header block for one recipient into buffer, with LF line
 * ends and a NUL after it.  The Received field follows RFC 5321 4.4 with
 * the "LMTP" protocol keyword of RFC 3848.  Returns the length without
 * the NUL, or 0 when the block does not fit or the date cannot be made.
 */
size_t
store_header_block(const struct delivery *d, char *buffer, size_t size)
{
    struct header_buffer out = {buffer, size, 0, 0};
    char date[64];

    if (size == 0 || format_date(date, sizeof date, d->arrival) == -1)
        return 0;

    append_text(&out, "Return-Path: <");
    append_value(&out, d->reverse_path);
    append_text(&out, ">\nDelivered-To: ");
    append_value(&out, d->recipient);
    append_text(&out, "\nReceived: from ");
    append_value(&out, d->lhlo);
    if (d->client != NULL && d->client[0] != '\0') {
        append_text(&out, " (");
        append_value(&out, d->client);
        append_text(&out, ")");
    }
    append_text(&out, "\n\tby ");
    append_value(&out, d->hostname);
    append_text(&out, " (lmtpd) with LMTP id ");
    append_value(&out, d->id);
    append_text(&out, "\n\tfor <");
    append_value(&out, d->recipient);
    append_text(&out, ">; ");
    append_text(&out, date);
    append_text(&out, "\n");

    if (out.overflow)
        return 0;
    buffer[out.len] = '\0';
    return out.len;
}

/*
 * Delivers into the Maildir, or its +detail folder, and counts the
 * message in the inbox's maildirsize, which covers the folders too.  A
 * failed count leaves the 250 alone and is added to the log detail.
 */
static int
deliver_maildir(const struct delivery *d, const struct mailbox *mb,
                const char *header, size_t len, struct store_reply *reply)
{
    char folder[PATH_MAX];
    size_t used;
    int result;

    maildir_choose_folder(mb->path, mb->detail, d->create_folders, folder,
                          sizeof folder);
    if (d->spool_data != NULL)
        result = maildir_deliver_memory(folder, header, len, d->spool_data,
                                        (size_t)d->spool_size, reply);
    else
        result = maildir_deliver(folder, header, len, d->spool_fd,
                                 d->spool_size, reply);
    if (result == -1)
        return -1;
    if (quota_maildir_record(mb->path,
                             len + (unsigned long long)d->spool_size) == -1) {
        used = strlen(reply->detail);
        snprintf(reply->detail + used, sizeof reply->detail - used,
                 "; maildirsize in %s removed after a failed update: %s",
                 mb->path, strerror(errno));
    }
    return 0;
}

/* Arguments of the task that writes one mailbox, see privilege_run(). */
struct mailbox_write {
    const struct delivery *delivery;
    const struct mailbox *mailbox;
    const char *header;
    size_t header_len;
};

/*
 * Checks the quota, then writes the header block and the spool into the
 * Maildir or the mbox.  This is the task that privilege_run() runs as
 * the mailbox owner, so the quota check reads maildirsize and the mbox
 * with the owner's rights, and the maildirsize update and the mbox locks
 * are taken by the owner too.
 */
static int
write_mailbox(void *arg, struct store_reply *reply)
{
    const struct mailbox_write *job = arg;
    const struct delivery *d = job->delivery;
    const struct mailbox *mb = job->mailbox;

    /* The size as stored: ",S=" in a Maildir, before mbox framing. */
    if (quota_check(mb, job->header_len + (unsigned long long)d->spool_size,
                    reply) == -1)
        return -1;
    if (mb->is_maildir)
        return deliver_maildir(d, mb, job->header, job->header_len, reply);
    if (d->spool_data != NULL) {
        store_reply_set(reply, STORE_LOCAL_ERROR,
                        "mbox %s: the message is not in a spool file",
                        mb->path);
        return -1;
    }
    return mbox_deliver(mb->path, d->reverse_path, d->arrival, job->header,
                        job->header_len, d->spool_fd, d->spool_size, reply);
}

/* Arguments of the task that checks one mailbox's quota. */
struct quota_job {
    const struct mailbox *mailbox;
    unsigned long long size;
};

/* Runs quota_check(), with a 250 reply when the message fits. */
static int
check_quota_task(void *arg, struct store_reply *reply)
{
    const struct quota_job *job = arg;

    if (quota_check(job->mailbox, job->size, reply) == -1)
        return -1;
    store_reply_set(reply, STORE_OK, "%s fits its quota", job->mailbox->path);
    return 0;
}

/*
 * Checks, before the data, that a message of size bytes fits the
 * mailbox's quota, as quota_check() does.  The check reads and may
 * rewrite maildirsize, so it runs as the user that privilege_run()
 * chooses, in a child when lmtpd runs as root.  A mailbox without limits
 * needs no check and no child.  Returns 0 when the message fits, or -1
 * with the reply set.
 */
int
store_check_quota(const struct mailbox *mb, unsigned long long size,
                  struct store_reply *reply)
{
    struct quota_job job = {mb, size};
    struct quota_counts limits;

    quota_limits(mb, &limits);
    if (limits.bytes == 0 && limits.messages == 0)
        return 0;
    reply->notice[0] = '\0';
    return privilege_run(mb, check_quota_task, &job, reply);
}

/*
 * Delivers the spooled message with its header block to the mailbox, as
 * the user that privilege_run() chooses, after checking that the header
 * block and the message fit its quota.  Returns 0 with a 250 reply only
 * when the message is on disk and fsynced.  Returns -1 with the reply
 * set after the writer has removed what it wrote, with the exceptions
 * that maildir_deliver() and mbox_deliver() document.  Every field of
 * the reply, notice included, comes from the task as it ran.
 */
int
store_deliver(const struct delivery *d, const struct mailbox *mb,
              struct store_reply *reply)
{
    char header[HEADER_BLOCK_SIZE];
    struct mailbox_write job = {d, mb, header, 0};

    reply->notice[0] = '\0';
    if (d->spool_size < 0) {
        store_reply_set(reply, STORE_LOCAL_ERROR, "invalid spool size %lld",
                        (long long)d->spool_size);
        return -1;
    }
    job.header_len = store_header_block(d, header, sizeof header);
    if (job.header_len == 0) {
        store_reply_set(reply, STORE_LOCAL_ERROR,
                        "header block for %s does not fit in %zu bytes",
                        mb->path, sizeof header);
        return -1;
    }
    return privilege_run(mb, write_mailbox, &job, reply);
}
