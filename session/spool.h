/*
 * spool.h: where a message waits between the final dot and its
 * delivery: in the buffer while it fits, else in one unnamed file.
 * Internal to session/.
 */
#ifndef LMTPD_SPOOL_H
#define LMTPD_SPOOL_H

#include <stddef.h>
#include <sys/types.h>

#include "session/lineio.h"

/* Largest message kept in memory; a larger one goes to a file. */
#define SPOOL_MEMORY_MAX 65536

/* Bytes written to an opener's file between starts of its writeback. */
#define SPOOL_WRITEBACK_STEP (256 * 1024)

struct spool {
    int fd;                      /* the file, or -1 while buffer has all */
    const char *dir;             /* where the file is created */
    off_t size;                  /* bytes kept, after unstuffing */
    unsigned long long max_size; /* 0 for no limit */
    int too_big;                 /* more than max_size came */
    int write_errno;             /* first write error, or 0 */
    int pending_cr;              /* a chunk ended with CR */
    size_t used;                 /* bytes in buffer not yet in the file */
    int (*opener)(void *);       /* makes the file instead, or NULL */
    void *opener_arg;
    int borrowed;                /* the file came from opener */
    off_t synced;                /* where writeback of opener's file began */
    off_t unsynced;              /* bytes written to it since then */
    char buffer[SPOOL_MEMORY_MAX];
};

void spool_open(struct spool *, const char *dir, unsigned long long max_size);
void spool_set_opener(struct spool *, int (*opener)(void *), void *arg);
int spool_check_dir(const char *dir);
void spool_close(struct spool *);
void spool_save(struct spool *);
int spool_read_data(struct spool *, struct lineio *, int bare_lf);
int spool_read_chunk(struct spool *, struct lineio *,
                     unsigned long long count);
void spool_end_chunks(struct spool *);

#endif
