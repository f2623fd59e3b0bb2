/*
 * quota_internal.h: what quota.c (the limits and the checks) shares with
 * maildirsize.c (the Maildir++ maildirsize file).  Internal to store/.
 */
#ifndef LMTPD_QUOTA_INTERNAL_H
#define LMTPD_QUOTA_INTERNAL_H

#include "store/store.h"

/*
 * Returns 1 when one more message of size bytes, added to usage, passes
 * one of limits, where 0 means no limit.  Returns 0 otherwise.
 */
int quota_exceeds(const struct quota_counts *limits,
                  const struct quota_counts *usage, unsigned long long size);

#endif
