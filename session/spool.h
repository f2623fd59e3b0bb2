/*
 * spool.h: the one file that contains a message between the final dot and
 * its delivery.  Internal to session/.
 */
#ifndef LMTPD_SPOOL_H
#define LMTPD_SPOOL_H

#include <stddef.h>
#include <sys/types.h>

#include "session/lineio.h"

struct spool {
    int fd;
    off_t size;                  /* bytes kept, after unstuffing */
    unsigned long long max_size; /* 0 for no limit */
    int too_big;                 /* more than max_size came */
    int write_errno;             /* first write error, or 0 */
    int pending_cr;              /* a chunk ended with CR */
    size_t used;
    char buffer[65536];
};

int spool_open(struct spool *, const char *dir, unsigned long long max_size);
void spool_close(struct spool *);
int spool_read_data(struct spool *, struct lineio *, int bare_lf);
int spool_read_chunk(struct spool *, struct lineio *,
                     unsigned long long count);
void spool_end_chunks(struct spool *);

#endif
