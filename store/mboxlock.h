/*
 * mboxlock.h: the locks around an mbox append, internal to store/.
 * Used by mbox.c only.
 */
#ifndef LMTPD_MBOXLOCK_H
#define LMTPD_MBOXLOCK_H

#include <limits.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "store/store.h"

/* Maximum number of message bytes that a dotlock's record holds. */
#define MBOX_RECORD_PREFIX_MAX 4096

/*
 * Record of an append in its dotlock: the mbox's device and inode, its
 * size before the append, and the first bytes that the append writes.
 */
struct mbox_append_record {
    dev_t dev;
    ino_t ino;
    off_t offset;
    size_t prefix_len;
    char prefix[MBOX_RECORD_PREFIX_MAX];
};

/* The dotlock "<mbox>.lock" while this process holds it. */
struct mbox_lock {
    char path[PATH_MAX];
    int fd;         /* the dotlock, open and fcntl()-locked, or -1 */
    int recovered;  /* an interrupted delivery's dotlock was taken over */
    int has_record; /* with the record of an append it had begun */
    struct mbox_append_record record;
};

int mbox_lock(struct mbox_lock *, int mbox_fd, const char *mbox_path,
              struct store_reply *);
int mbox_lock_recover(struct mbox_lock *, int mbox_fd, const char *mbox_path,
                      const struct stat *mbox_st, off_t *size,
                      struct store_reply *);
int mbox_lock_record(struct mbox_lock *, const struct stat *mbox_st,
                     off_t offset, const char *prefix, size_t prefix_len,
                     struct store_reply *);
int mbox_lock_remove(struct mbox_lock *);
void mbox_lock_release(struct mbox_lock *);

#endif
