/*
 * draft.c: delivers a message to a transaction's only recipient while
 * the message arrives, when that recipient has a Maildir and lmtpd runs
 * as its owner.  A message too large for the session's buffer then goes
 * straight into the Maildir's tmp/ instead of into a spool file that is
 * copied into tmp/ after the final dot: each byte is written once.
 *
 * The draft is a file in tmp/, which readers never show, so the rules of
 * store_deliver() hold: a 250 only once the message is durable in new/,
 * and nothing in new/ on failure.  As root a delivery runs in a child as
 * the owner, which cannot share the session's file, so no draft is used.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "store/store.h"

/* Room for the header block, as store_deliver() has. */
#define DRAFT_HEADER_SIZE 4096

/* Arguments of the task that opens the draft. */
struct draft_job {
    struct maildir_draft *draft;
    const struct delivery *delivery;
    const struct mailbox *mailbox;
};

/* Writes the header block into a new file in the recipient's tmp/. */
static int
open_task(void *arg, struct store_reply *reply)
{
    const struct draft_job *job = arg;
    char header[DRAFT_HEADER_SIZE];
    char folder[PATH_MAX];
    size_t len = store_header_block(job->delivery, header, sizeof header);

    if (len == 0) {
        store_reply_set(reply, STORE_LOCAL_ERROR,
                        "header block for %s does not fit in %zu bytes",
                        job->mailbox->path, sizeof header);
        return -1;
    }
    maildir_choose_folder(job->mailbox->path, job->mailbox->detail,
                          job->delivery->create_folders, folder,
                          sizeof folder);
    return maildir_draft_open(job->draft, folder, header, len, reply);
}

/*
 * Opens a draft for the Maildir mb, with the header block of d.  Fails
 * with the reply set as root, for an mbox, or when the Maildir cannot
 * be opened.  The caller then spools the message, and store_deliver()
 * reports the reason if it persists.
 */
int
store_draft_open(struct maildir_draft *draft, const struct delivery *d,
                 const struct mailbox *mb, struct store_reply *reply)
{
    struct draft_job job = {draft, d, mb};

    draft->fd = -1;
    draft->dir_fd = draft->tmp_fd = draft->new_fd = -1;
    if (geteuid() == 0 || !mb->is_maildir) {
        store_reply_set(reply, STORE_LOCAL_ERROR,
                        "%s: no draft for an mbox or when running as root",
                        mb->path);
        return -1;
    }
    /* Not root, so the task runs in this process, after the same check
     * of uid= and gid= as a delivery. */
    return privilege_run(mb, open_task, &job, reply);
}

/* Sets the reply for a failed write of the message into the draft. */
void
store_draft_write_failed(const struct maildir_draft *draft, int write_errno,
                         struct store_reply *reply)
{
    store_reply_errno(reply, write_errno, "write", draft->tmp_path);
}

/*
 * Completes the draft that contains the whole message of d->spool_size
 * bytes.  Checks the quota as store_deliver() does, then makes the
 * message durable in new/ and counts it in maildirsize.  write_errno is
 * the first failed write into the draft, or 0.  Returns 0 with a 250
 * reply, or -1 with the reply set and the draft removed.
 */
int
store_draft_deliver(struct maildir_draft *draft, const struct delivery *d,
                    const struct mailbox *mb, int write_errno,
                    struct store_reply *reply)
{
    unsigned long long size =
        (unsigned long long)draft->header_len +
        (unsigned long long)d->spool_size;
    size_t used;

    reply->notice[0] = '\0';
    if (write_errno != 0) {
        store_draft_write_failed(draft, write_errno, reply);
        maildir_draft_discard(draft);
        return -1;
    }
    if (quota_check(mb, size, reply) == -1) {
        maildir_draft_discard(draft);
        return -1;
    }
    if (maildir_draft_commit(draft, d->spool_size, reply) == -1)
        return -1;
    if (quota_maildir_record(mb->path, size) == -1) {
        used = strlen(reply->detail);
        snprintf(reply->detail + used, sizeof reply->detail - used,
                 "; maildirsize in %s removed after a failed update: %s",
                 mb->path, strerror(errno));
    }
    return 0;
}
