/*
 * store.h: the delivery side of lmtpd.  Looks recipients up in the user
 * map and writes a spooled message into Maildir and mbox mailboxes.
 * Nothing here reads the client's socket or writes to a log.
 */
#ifndef LMTPD_STORE_H
#define LMTPD_STORE_H

#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/types.h>
#include <time.h>

/*
 * Maximum length of a host name in the map's host= field: 253 bytes, the
 * text form of RFC 1035's 255-byte limit on a domain name.
 */
#define USERS_HOST_NAME_MAX 253

/*
 * A reply for one recipient, filled by every store function that can
 * fail.  The session sends "code status <recipient> text" to the client
 * and logs detail, which names the file, the map key or the errno text.
 * notice reports what a delivery repaired on the way, such as a stale
 * dotlock it removed, whatever the result; the session logs it as a
 * warning.  store_deliver(), maildir_deliver() and mbox_deliver() clear
 * it first, and store_reply_set() leaves it alone.
 */
struct store_reply {
    int code;          /* 250, 451, 550, ... */
    char status[12];   /* enhanced status code (RFC 3463), "2.0.0" */
    char text[32 + USERS_HOST_NAME_MAX]; /* short reason for the client,
                                          * which may name a host */
    char detail[512];  /* longer reason for the log, or "" */
    char notice[512];  /* repairs done during the delivery, or "" */
};

/* Failures that are not an errno value, for store_reply_set(). */
enum store_failure {
    STORE_OK,            /* 250 2.0.0 */
    STORE_UNKNOWN_USER,  /* 550 5.1.1 */
    STORE_MAP_ERROR,     /* 451 4.3.0: map missing, unreadable or bad */
    STORE_MAILBOX_FULL,  /* 552 5.2.2, or 452 4.2.2 under tempfail */
    STORE_TOO_BIG,       /* 552 5.3.4 */
    STORE_NO_SPACE,      /* 452 4.3.1 */
    STORE_BUSY,          /* 451 4.2.0: mailbox lock not acquired */
    STORE_LOCAL_ERROR,   /* 451 4.3.0 */
    STORE_OTHER_HOST     /* 450 4.4.0: the map puts the mailbox elsewhere */
};

void store_reply_set(struct store_reply *, enum store_failure,
                     const char *detail_fmt, ...)
    __attribute__((format(printf, 3, 4)));
void store_reply_errno(struct store_reply *, int err, const char *what,
                       const char *path);
void store_reply_spool_errno(struct store_reply *, int err, const char *what,
                             const char *path);
void store_reply_notice(struct store_reply *, const char *format, ...)
    __attribute__((format(printf, 2, 3)));
void store_reply_quota_tempfail(int enabled);

/* A recipient's mailbox and limits, from one user map record. */
struct mailbox {
    char path[PATH_MAX]; /* absolute; a trailing '/' means Maildir */
    int is_maildir;
    unsigned long long quota_bytes;    /* 0: no limit */
    unsigned long long quota_messages; /* 0: no limit */
    int has_quota;                     /* the record has a quota field */
    int has_uid, has_gid;
    uid_t uid;
    gid_t gid;
    char key[320];    /* the map key that matched, for the log */
    char detail[256]; /* the +detail part of the local part, or "" */
    char host[USERS_HOST_NAME_MAX + 1]; /* home host from host=, or "" */
};

/* users.c: the tinycdb user map. */
int users_lookup(const char *map_path, const char *address,
                 const char *delimiters, struct mailbox *,
                 struct store_reply *);
int users_parse_record(const char *value, size_t len, struct mailbox *,
                       char *error, size_t error_size);
int users_parse_size(const char *text, unsigned long long *value);
int users_host_name_is_valid(const char *name, size_t len);
int users_check_home(const struct mailbox *, const char *this_host,
                     struct store_reply *);
int users_check_map(const char *map_path);

/*
 * One message for one recipient, with LF line ends and no dot-stuffing:
 * spool_size bytes at spool_data, or from offset 0 of the file spool_fd
 * when spool_data is NULL.  mbox delivery needs the file.
 */
struct delivery {
    const char *reverse_path; /* without angle brackets; "" is <> */
    const char *recipient;    /* forward-path without angle brackets */
    const char *hostname;     /* this host, for Received */
    const char *lhlo;         /* the client's LHLO argument */
    const char *client;       /* the client's address, or "" when local */
    const char *id;           /* queue id for Received and the log */
    time_t arrival;           /* the final dot or LAST chunk, or for a draft
                                 when the message outgrew memory */
    int create_folders;       /* make missing +detail Maildir++ folders */
    int spool_fd;
    off_t spool_size;
    const char *spool_data;   /* the message in memory, or NULL */
};

/* deliver.c: writes the header block and the message, and sets the reply. */
int store_deliver(const struct delivery *, const struct mailbox *,
                  struct store_reply *);
size_t store_header_block(const struct delivery *, char *buffer,
                          size_t size);
int store_check_quota(const struct mailbox *, unsigned long long size,
                      struct store_reply *);

/*
 * draft.c: delivery to a lone Maildir recipient while the message
 * arrives, for a message too large for the session's buffer.
 */
struct maildir_draft;
int store_draft_open(struct maildir_draft *, const struct delivery *,
                     const struct mailbox *, struct store_reply *);
int store_draft_deliver(struct maildir_draft *, const struct delivery *,
                        const struct mailbox *, int write_errno,
                        struct store_reply *);
void store_draft_write_failed(const struct maildir_draft *, int write_errno,
                              struct store_reply *);

/* folder.c: the Maildir++ folder of a +detail. */
int maildir_detail_is_safe(const char *detail);
void maildir_choose_folder(const char *inbox, const char *detail, int create,
                           char *path, size_t size);

/* maildir.c and mbox.c: each writer leaves no partial message behind. */
int maildir_deliver(const char *dir, const char *header, size_t header_len,
                    int spool_fd, off_t spool_size, struct store_reply *);
int maildir_deliver_memory(const char *dir, const char *header,
                           size_t header_len, const char *data, size_t size,
                           struct store_reply *);

/*
 * maildir.c: a message written into a Maildir's tmp/ while it arrives,
 * so that a large message for one Maildir recipient is written once.
 */
struct maildir_draft {
    char dir[PATH_MAX];          /* the Maildir or folder, ending in '/' */
    int dir_fd, tmp_fd, new_fd;
    int fd;                      /* the file in tmp/, or -1 */
    char tmp_name[NAME_MAX + 1];
    char tmp_path[PATH_MAX];
    off_t header_len;            /* bytes of header block at its start */
};
int maildir_draft_open(struct maildir_draft *, const char *dir,
                       const char *header, size_t header_len,
                       struct store_reply *);
int maildir_draft_commit(struct maildir_draft *, off_t body_size,
                         struct store_reply *);
void maildir_draft_discard(struct maildir_draft *);

int mbox_deliver(const char *path, const char *reverse_path, time_t arrival,
                 const char *header, size_t header_len, int spool_fd,
                 off_t spool_size, struct store_reply *);

/*
 * privilege.c: the identity a delivery runs as.  A task writes into one
 * mailbox and returns 0 with a 250 reply, or -1 with the reply set.
 */
typedef int (*privilege_task)(void *arg, struct store_reply *);
int privilege_drop(uid_t uid, gid_t gid, const char *name, char *error,
                   size_t size);
int privilege_run(const struct mailbox *, privilege_task, void *arg,
                  struct store_reply *);

/* Bytes and messages: a mailbox's usage, or its limits with 0 for none. */
struct quota_counts {
    unsigned long long bytes;
    unsigned long long messages;
};

/* quota.c: the limits of a mailbox and the check against its usage. */
void quota_set_default(unsigned long long bytes);
void quota_limits(const struct mailbox *, struct quota_counts *limits);
int quota_check(const struct mailbox *, unsigned long long size,
                struct store_reply *);

/* maildirsize.c: the Maildir++ maildirsize file of a Maildir. */
int quota_parse_maildirsize(const char *text, size_t len,
                            struct quota_counts *limits,
                            struct quota_counts *usage, size_t *deltas);
int quota_maildir_usage(const char *maildir, const struct quota_counts *limits,
                        unsigned long long size, struct quota_counts *usage,
                        struct store_reply *);
int quota_maildir_rebuild(const char *maildir,
                          const struct quota_counts *limits,
                          struct quota_counts *usage, struct store_reply *);
int quota_maildir_record(const char *maildir, unsigned long long size);

/*
 * mapcheck.c: checks every record of a map for lmtpd --check-map.
 * this_host is the --map-host name.  The folders of mailboxes whose host=
 * field names another host are not looked for, and with NULL every
 * folder is.
 */
struct mapcheck_result {
    unsigned long records; /* records read */
    unsigned long invalid; /* records with at least one problem */
};

int mapcheck_cdb(const char *path, const char *this_host, FILE *report,
                 struct mapcheck_result *);
int mapcheck_text(const char *path, const char *this_host, FILE *report,
                  struct mapcheck_result *);

/*
 * mboxlock.c: maximum wait in seconds for an mbox's locks, 30 by
 * default, and the age in seconds at which another program's dotlock is
 * stale and removed, 300 by default.
 */
void mbox_set_lock_timeout(unsigned seconds);
void mbox_set_stale_lock_time(unsigned seconds);

#endif
