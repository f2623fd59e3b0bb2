/*
 * check_store.c: unit tests for the reply table in store/reply.c and for
 * the header block and store_deliver() in store/deliver.c.
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "store/store.h"

/* 2023-11-14 22:13:20 UTC, a Tuesday. */
#define ARRIVAL ((time_t)1700000000)

#define BASE_TEMPLATE "/tmp/check_store.XXXXXX"

/* Run as root, deliveries go to this uid and gid, those of "nobody". */
#define TEST_ID 65534

/* store_reply_set */

struct failure_case {
    enum store_failure failure;
    int code;
    const char *status;
    const char *text;
};

static const struct failure_case failure_cases[] = {
    {STORE_OK, 250, "2.0.0", "delivered"},
    {STORE_UNKNOWN_USER, 550, "5.1.1", "no such user"},
    {STORE_MAP_ERROR, 451, "4.3.0", "user map unavailable, try again later"},
    {STORE_MAILBOX_FULL, 552, "5.2.2", "mailbox full"},
    {STORE_TOO_BIG, 552, "5.3.4", "message too big"},
    {STORE_NO_SPACE, 452, "4.3.1", "insufficient system storage"},
    {STORE_BUSY, 451, "4.2.0", "mailbox busy"},
    {STORE_LOCAL_ERROR, 451, "4.3.0", "local error"},
    {STORE_OTHER_HOST, 450, "4.4.0", "mailbox is on another host"},
    /* A value outside the enum is a bug, and a bug must not bounce. */
    {(enum store_failure)99, 451, "4.3.0", "local error"},
};

START_TEST(reply_set_table)
{
    const struct failure_case *c = &failure_cases[_i];
    struct store_reply reply;

    memset(&reply, 'x', sizeof reply);
    store_reply_set(&reply, c->failure, "map %s key \"%s\" %d", "/m", "k", 42);
    ck_assert_int_eq(reply.code, c->code);
    ck_assert_str_eq(reply.status, c->status);
    ck_assert_str_eq(reply.text, c->text);
    ck_assert_str_eq(reply.detail, "map /m key \"k\" 42");
}
END_TEST

START_TEST(reply_set_empty_detail)
{
    struct store_reply reply;

    memset(&reply, 'x', sizeof reply);
    store_reply_set(&reply, STORE_OK, "%s", "");
    ck_assert_str_eq(reply.detail, "");
}
END_TEST

START_TEST(reply_set_long_detail)
{
    struct store_reply reply;
    char long_text[2000];

    memset(long_text, 'd', sizeof long_text - 1);
    long_text[sizeof long_text - 1] = '\0';
    store_reply_set(&reply, STORE_LOCAL_ERROR, "%s", long_text);
    ck_assert_uint_eq(strlen(reply.detail), sizeof reply.detail - 1);
}
END_TEST

/* store_reply_errno */

struct errno_case {
    int err;
    int code;
    const char *status;
    const char *text;
};

static const struct errno_case errno_cases[] = {
    {ENOSPC, 452, "4.3.1", "insufficient system storage"},
    {EDQUOT, 552, "5.2.2", "mailbox full"},
    {EFBIG, 552, "5.3.4", "message too big"},
    {EACCES, 451, "4.3.0", "local error"},
    {EPERM, 451, "4.3.0", "local error"},
    {ELOOP, 451, "4.3.0", "local error"},
    {EMLINK, 451, "4.3.0", "local error"},
    {EIO, 451, "4.3.0", "local error"},
    {ENOENT, 451, "4.3.0", "local error"},
};

START_TEST(reply_errno_table)
{
    const struct errno_case *c = &errno_cases[_i];
    struct store_reply reply;
    char detail[256];

    store_reply_errno(&reply, c->err, "open", "/var/mail/bob");
    snprintf(detail, sizeof detail, "open /var/mail/bob: %s", strerror(c->err));
    ck_assert_int_eq(reply.code, c->code);
    ck_assert_str_eq(reply.status, c->status);
    ck_assert_str_eq(reply.text, c->text);
    ck_assert_str_eq(reply.detail, detail);
}
END_TEST

START_TEST(reply_errno_without_path)
{
    struct store_reply reply;

    store_reply_errno(&reply, EIO, "read spool", "");
    ck_assert_str_eq(reply.detail, "read spool: Input/output error");
    store_reply_errno(&reply, EIO, "read spool", NULL);
    ck_assert_str_eq(reply.detail, "read spool: Input/output error");
}
END_TEST

/* store_reply_spool_errno: EDQUOT on the spool defers. */

static const struct errno_case spool_errno_cases[] = {
    {ENOSPC, 452, "4.3.1", "insufficient system storage"},
    {EDQUOT, 452, "4.3.1", "insufficient system storage"},
    {EFBIG, 552, "5.3.4", "message too big"},
    {EIO, 451, "4.3.0", "local error"},
};

START_TEST(reply_spool_errno_table)
{
    const struct errno_case *c = &spool_errno_cases[_i];
    struct store_reply reply;
    char detail[256];

    store_reply_spool_errno(&reply, c->err, "write spool in", "/tmp");
    snprintf(detail, sizeof detail, "write spool in /tmp: %s",
             strerror(c->err));
    ck_assert_int_eq(reply.code, c->code);
    ck_assert_str_eq(reply.status, c->status);
    ck_assert_str_eq(reply.text, c->text);
    ck_assert_str_eq(reply.detail, detail);
}
END_TEST

START_TEST(reply_notice_appends)
{
    struct store_reply reply;

    memset(&reply, 0, sizeof reply);
    store_reply_notice(&reply, "removed %s", "a.lock");
    ck_assert_str_eq(reply.notice, "removed a.lock");
    store_reply_notice(&reply, "cut %d bytes", 12);
    ck_assert_str_eq(reply.notice, "removed a.lock; cut 12 bytes");

    /* store_reply_set() changes the result but keeps the notice. */
    store_reply_set(&reply, STORE_OK, NULL);
    ck_assert_str_eq(reply.notice, "removed a.lock; cut 12 bytes");
}
END_TEST

START_TEST(reply_notice_long)
{
    struct store_reply reply;
    char long_text[2000];

    memset(&reply, 0, sizeof reply);
    memset(long_text, 'n', sizeof long_text - 1);
    long_text[sizeof long_text - 1] = '\0';
    store_reply_notice(&reply, "%s", long_text);
    ck_assert_uint_eq(strlen(reply.notice), sizeof reply.notice - 1);
    store_reply_notice(&reply, "%s", "more");
    ck_assert_uint_eq(strlen(reply.notice), sizeof reply.notice - 1);
}
END_TEST

START_TEST(reply_quota_tempfail)
{
    struct store_reply reply;

    store_reply_quota_tempfail(1);
    store_reply_errno(&reply, EDQUOT, "write", "/var/mail/bob");
    ck_assert_int_eq(reply.code, 452);
    ck_assert_str_eq(reply.status, "4.2.2");
    ck_assert_str_eq(reply.text, "mailbox full");
    store_reply_set(&reply, STORE_MAILBOX_FULL, NULL);
    ck_assert_int_eq(reply.code, 452);
    ck_assert_str_eq(reply.status, "4.2.2");
    /* Other failures keep their codes. */
    store_reply_errno(&reply, ENOSPC, "write", "/var/mail/bob");
    ck_assert_int_eq(reply.code, 452);
    ck_assert_str_eq(reply.status, "4.3.1");
    store_reply_set(&reply, STORE_TOO_BIG, NULL);
    ck_assert_int_eq(reply.code, 552);

    store_reply_quota_tempfail(0);
    store_reply_errno(&reply, EDQUOT, "write", "/var/mail/bob");
    ck_assert_int_eq(reply.code, 552);
    ck_assert_str_eq(reply.status, "5.2.2");
}
END_TEST

/* store_header_block */

struct header_case {
    const char *name;
    const char *tz;
    const char *reverse_path;
    const char *recipient;
    const char *lhlo;
    const char *client;
    const char *expected;
};

static const struct header_case header_cases[] = {
    {"normal sender", "UTC0", "alice@example.org", "bob@example.com",
     "mx.example.org", "192.0.2.7",
     "Return-Path: <alice@example.org>\n"
     "Delivered-To: bob@example.com\n"
     "Received: from mx.example.org (192.0.2.7)\n"
     "\tby mail.example.com (lmtpd) with LMTP id S1.1\n"
     "\tfor <bob@example.com>; Tue, 14 Nov 2023 22:13:20 +0000\n"},
    {"null sender", "UTC0", "", "bob@example.com", "mx.example.org",
     "192.0.2.7",
     "Return-Path: <>\n"
     "Delivered-To: bob@example.com\n"
     "Received: from mx.example.org (192.0.2.7)\n"
     "\tby mail.example.com (lmtpd) with LMTP id S1.1\n"
     "\tfor <bob@example.com>; Tue, 14 Nov 2023 22:13:20 +0000\n"},
    {"no client", "UTC0", "alice@example.org", "bob@example.com", "localhost",
     "",
     "Return-Path: <alice@example.org>\n"
     "Delivered-To: bob@example.com\n"
     "Received: from localhost\n"
     "\tby mail.example.com (lmtpd) with LMTP id S1.1\n"
     "\tfor <bob@example.com>; Tue, 14 Nov 2023 22:13:20 +0000\n"},
    {"null sender, no client", "UTC0", "", "bob@example.com", "[127.0.0.1]", "",
     "Return-Path: <>\n"
     "Delivered-To: bob@example.com\n"
     "Received: from [127.0.0.1]\n"
     "\tby mail.example.com (lmtpd) with LMTP id S1.1\n"
     "\tfor <bob@example.com>; Tue, 14 Nov 2023 22:13:20 +0000\n"},
    {"zone west of UTC", "EST5", "a@example.org", "b@example.com",
     "mx.example.org", "",
     "Return-Path: <a@example.org>\n"
     "Delivered-To: b@example.com\n"
     "Received: from mx.example.org\n"
     "\tby mail.example.com (lmtpd) with LMTP id S1.1\n"
     "\tfor <b@example.com>; Tue, 14 Nov 2023 17:13:20 -0500\n"},
    {"zone east of UTC, next day", "XYZ-3", "a@example.org", "b@example.com",
     "MX.Example.ORG", "",
     "Return-Path: <a@example.org>\n"
     "Delivered-To: b@example.com\n"
     "Received: from MX.Example.ORG\n"
     "\tby mail.example.com (lmtpd) with LMTP id S1.1\n"
     "\tfor <b@example.com>; Wed, 15 Nov 2023 01:13:20 +0300\n"},
    {"control bytes", "UTC0", "a@example.org",
     "bob\r\nX-Injected: 1@example.com", "evil\nhost\t", "",
     "Return-Path: <a@example.org>\n"
     "Delivered-To: bob??X-Injected: 1@example.com\n"
     "Received: from evil?host?\n"
     "\tby mail.example.com (lmtpd) with LMTP id S1.1\n"
     "\tfor <bob??X-Injected: 1@example.com>; "
     "Tue, 14 Nov 2023 22:13:20 +0000\n"},
};

static struct delivery
make_delivery(const char *reverse_path, const char *recipient, const char *lhlo,
              const char *client)
{
    struct delivery d = {
        .reverse_path = reverse_path,
        .recipient = recipient,
        .hostname = "mail.example.com",
        .lhlo = lhlo,
        .client = client,
        .id = "S1.1",
        .arrival = ARRIVAL,
        .spool_fd = -1,
        .spool_size = 0,
    };
    return d;
}

static void
set_zone(const char *tz)
{
    ck_assert_int_eq(setenv("TZ", tz, 1), 0);
    tzset();
}

START_TEST(header_block_table)
{
    const struct header_case *c = &header_cases[_i];
    struct delivery d =
        make_delivery(c->reverse_path, c->recipient, c->lhlo, c->client);
    char buffer[1024];
    size_t len;

    set_zone(c->tz);
    len = store_header_block(&d, buffer, sizeof buffer);
    ck_assert_msg(len == strlen(c->expected), "%s: length %zu, expected %zu",
                  c->name, len, strlen(c->expected));
    ck_assert_msg(memcmp(buffer, c->expected, len) == 0,
                  "%s: got\n%s\nexpected\n%s", c->name, buffer, c->expected);
    ck_assert_int_eq(buffer[len], '\0');
}
END_TEST

START_TEST(header_block_buffer_size)
{
    struct delivery d = make_delivery("a@example.org", "b@example.com",
                                      "mx.example.org", "192.0.2.7");
    char buffer[512];
    size_t len;

    set_zone("UTC0");
    len = store_header_block(&d, buffer, sizeof buffer);
    ck_assert_uint_gt(len, 0);

    /* The block and its NUL fit exactly, one byte less does not. */
    ck_assert_uint_eq(store_header_block(&d, buffer, len + 1), len);
    ck_assert_uint_eq(store_header_block(&d, buffer, len), 0);
    ck_assert_uint_eq(store_header_block(&d, buffer, 10), 0);
    ck_assert_uint_eq(store_header_block(&d, buffer, 0), 0);
}
END_TEST

/* store_deliver */

static char base[] = BASE_TEMPLATE;

static void
make_base(void)
{
    /* Without CK_FORK, one process runs every test. */
    memcpy(base, BASE_TEMPLATE, sizeof base);
    ck_assert_ptr_nonnull(mkdtemp(base));
    set_zone("UTC0");
}

/*
 * Gives the mailbox an owner to deliver as when the tests run as root,
 * who delivers only for records with uid= and gid=, and hands the test
 * folder to that owner.
 */
static void
set_owner(struct mailbox *mb)
{
    if (geteuid() != 0)
        return;
    mb->has_uid = mb->has_gid = 1;
    mb->uid = TEST_ID;
    mb->gid = TEST_ID;
    ck_assert_int_eq(chown(base, TEST_ID, TEST_ID), 0);
}

static int
remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st;
    (void)type;
    (void)ftw;
    return remove(path);
}

static void
remove_base(void)
{
    nftw(base, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static int
make_spool(const char *body)
{
    char path[sizeof base + 32];
    int fd;

    snprintf(path, sizeof path, "%s/spool.XXXXXX", base);
    fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(unlink(path), 0);
    ck_assert_int_eq(write(fd, body, strlen(body)), (ssize_t)strlen(body));
    return fd;
}

static char *
read_file(const char *path)
{
    struct stat st;
    char *data;
    int fd = open(path, O_RDONLY);

    ck_assert_msg(fd >= 0, "open %s: %s", path, strerror(errno));
    ck_assert_int_eq(fstat(fd, &st), 0);
    data = malloc((size_t)st.st_size + 1);
    ck_assert_ptr_nonnull(data);
    ck_assert_int_eq(read(fd, data, (size_t)st.st_size), st.st_size);
    data[st.st_size] = '\0';
    close(fd);
    return data;
}

static const char deliver_header[] =
    "Return-Path: <alice@example.org>\n"
    "Delivered-To: bob@example.com\n"
    "Received: from mx.example.org (192.0.2.7)\n"
    "\tby mail.example.com (lmtpd) with LMTP id S1.1\n"
    "\tfor <bob@example.com>; Tue, 14 Nov 2023 22:13:20 +0000\n";

static const char deliver_body[] = "Subject: hi\n\nFrom here on.\n";

/* Returns the contents of the one message in the Maildir's new/. */
static char *
read_new_message(const char *maildir)
{
    char path[PATH_MAX + 512];
    struct dirent *entry;
    DIR *dir;

    snprintf(path, sizeof path, "%snew", maildir);
    dir = opendir(path);
    ck_assert_ptr_nonnull(dir);
    do
        entry = readdir(dir);
    while (entry != NULL && entry->d_name[0] == '.');
    ck_assert_ptr_nonnull(entry);
    snprintf(path, sizeof path, "%snew/%s", maildir, entry->d_name);
    closedir(dir);
    return read_file(path);
}

START_TEST(deliver_to_maildir)
{
    struct delivery d = make_delivery("alice@example.org", "bob@example.com",
                                      "mx.example.org", "192.0.2.7");
    struct mailbox mb;
    struct store_reply reply;
    struct dirent *entry;
    char path[PATH_MAX + 512];
    struct stat st;
    char *data;
    DIR *dir;

    memset(&mb, 0, sizeof mb);
    snprintf(mb.path, sizeof mb.path, "%s/Maildir/", base);
    mb.is_maildir = 1;
    set_owner(&mb);
    d.spool_fd = make_spool(deliver_body);
    d.spool_size = (off_t)strlen(deliver_body);

    ck_assert_int_eq(store_deliver(&d, &mb, &reply), 0);
    ck_assert_int_eq(reply.code, 250);
    ck_assert_str_eq(reply.status, "2.0.0");

    snprintf(path, sizeof path, "%snew", mb.path);
    dir = opendir(path);
    ck_assert_ptr_nonnull(dir);
    do
        entry = readdir(dir);
    while (entry != NULL && entry->d_name[0] == '.');
    ck_assert_ptr_nonnull(entry);
    snprintf(path, sizeof path, "%snew/%s", mb.path, entry->d_name);
    closedir(dir);

    /* As root, the file belongs to the record's owner, not to root. */
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_uint_eq(st.st_uid, geteuid() == 0 ? TEST_ID : geteuid());
    ck_assert_uint_eq(st.st_mode & 07777, 0600);

    /* Maildir stores the body as it is, with no "From " quoting. */
    data = read_file(path);
    ck_assert_uint_eq(strlen(data),
                      strlen(deliver_header) + strlen(deliver_body));
    ck_assert_int_eq(strncmp(data, deliver_header, strlen(deliver_header)), 0);
    ck_assert_str_eq(data + strlen(deliver_header), deliver_body);
    free(data);
    close(d.spool_fd);
}
END_TEST

/* A message kept in memory is stored as one from a spool file would be. */
START_TEST(deliver_to_maildir_from_memory)
{
    struct delivery d = make_delivery("alice@example.org", "bob@example.com",
                                      "mx.example.org", "192.0.2.7");
    struct mailbox mb;
    struct store_reply reply;
    char *data;

    memset(&mb, 0, sizeof mb);
    snprintf(mb.path, sizeof mb.path, "%s/Maildir/", base);
    mb.is_maildir = 1;
    set_owner(&mb);
    d.spool_data = deliver_body;
    d.spool_size = (off_t)strlen(deliver_body);

    ck_assert_int_eq(store_deliver(&d, &mb, &reply), 0);
    ck_assert_int_eq(reply.code, 250);
    data = read_new_message(mb.path);
    ck_assert_uint_eq(strlen(data),
                      strlen(deliver_header) + strlen(deliver_body));
    ck_assert_int_eq(strncmp(data, deliver_header, strlen(deliver_header)), 0);
    ck_assert_str_eq(data + strlen(deliver_header), deliver_body);
    free(data);
}
END_TEST

/* mbox delivery reads a spool file, so a message in memory is a 451. */
START_TEST(deliver_to_mbox_from_memory)
{
    struct delivery d = make_delivery("alice@example.org", "bob@example.com",
                                      "mx.example.org", "192.0.2.7");
    struct mailbox mb;
    struct store_reply reply;

    memset(&mb, 0, sizeof mb);
    snprintf(mb.path, sizeof mb.path, "%s/bob", base);
    set_owner(&mb);
    d.spool_data = deliver_body;
    d.spool_size = (off_t)strlen(deliver_body);

    ck_assert_int_eq(store_deliver(&d, &mb, &reply), -1);
    ck_assert_int_eq(reply.code, 451);
    ck_assert_str_eq(reply.status, "4.3.0");
    ck_assert_msg(strstr(reply.detail, "not in a spool file") != NULL,
                  "detail \"%s\"", reply.detail);
    ck_assert_int_eq(access(mb.path, F_OK), -1);
}
END_TEST

START_TEST(deliver_to_mbox)
{
    struct delivery d = make_delivery("alice@example.org", "bob@example.com",
                                      "mx.example.org", "192.0.2.7");
    struct mailbox mb;
    struct store_reply reply;
    char expected[1024];
    char *data;

    memset(&mb, 0, sizeof mb);
    snprintf(mb.path, sizeof mb.path, "%s/bob", base);
    set_owner(&mb);
    d.spool_fd = make_spool(deliver_body);
    d.spool_size = (off_t)strlen(deliver_body);

    ck_assert_int_eq(store_deliver(&d, &mb, &reply), 0);
    ck_assert_int_eq(reply.code, 250);
    ck_assert_str_eq(reply.status, "2.0.0");

    /* mboxrd quoting turns the body's "From " line into ">From ". */
    snprintf(expected, sizeof expected,
             "From alice@example.org Tue Nov 14 22:13:20 2023\n%s"
             "Subject: hi\n\n>From here on.\n\n",
             deliver_header);
    data = read_file(mb.path);
    ck_assert_str_eq(data, expected);
    free(data);
    close(d.spool_fd);
}
END_TEST

START_TEST(deliver_header_too_long)
{
    static char lhlo[5000];
    struct delivery d;
    struct mailbox mb;
    struct store_reply reply;

    memset(lhlo, 'h', sizeof lhlo - 1);
    d = make_delivery("a@example.org", "b@example.com", lhlo, "");
    memset(&mb, 0, sizeof mb);
    snprintf(mb.path, sizeof mb.path, "%s/bob", base);
    set_owner(&mb);
    d.spool_fd = make_spool("x\n");
    d.spool_size = 2;

    ck_assert_int_eq(store_deliver(&d, &mb, &reply), -1);
    ck_assert_int_eq(reply.code, 451);
    ck_assert_str_eq(reply.status, "4.3.0");
    ck_assert_int_eq(access(mb.path, F_OK), -1);
    close(d.spool_fd);
}
END_TEST

START_TEST(deliver_failure_reply)
{
    struct delivery d =
        make_delivery("a@example.org", "b@example.com", "mx.example.org", "");
    struct mailbox mb;
    struct store_reply reply;

    memset(&mb, 0, sizeof mb);
    snprintf(mb.path, sizeof mb.path, "%s/missing/Maildir/", base);
    mb.is_maildir = 1;
    set_owner(&mb);
    d.spool_fd = make_spool("x\n");
    d.spool_size = 2;

    ck_assert_int_eq(store_deliver(&d, &mb, &reply), -1);
    ck_assert_int_eq(reply.code, 451);
    ck_assert_str_eq(reply.status, "4.3.0");
    ck_assert_msg(strstr(reply.detail, mb.path) != NULL, "detail \"%s\"",
                  reply.detail);
    close(d.spool_fd);
}
END_TEST

static Suite *
store_suite(void)
{
    Suite *suite = suite_create("store");
    TCase *reply = tcase_create("reply");
    TCase *header = tcase_create("header");
    TCase *deliver = tcase_create("deliver");

    tcase_add_loop_test(reply, reply_set_table, 0,
                        sizeof failure_cases / sizeof failure_cases[0]);
    tcase_add_test(reply, reply_set_empty_detail);
    tcase_add_test(reply, reply_set_long_detail);
    tcase_add_loop_test(reply, reply_errno_table, 0,
                        sizeof errno_cases / sizeof errno_cases[0]);
    tcase_add_test(reply, reply_errno_without_path);
    tcase_add_loop_test(reply, reply_spool_errno_table, 0,
                        sizeof spool_errno_cases / sizeof spool_errno_cases[0]);
    tcase_add_test(reply, reply_notice_appends);
    tcase_add_test(reply, reply_notice_long);
    tcase_add_test(reply, reply_quota_tempfail);
    suite_add_tcase(suite, reply);

    tcase_add_loop_test(header, header_block_table, 0,
                        sizeof header_cases / sizeof header_cases[0]);
    tcase_add_test(header, header_block_buffer_size);
    suite_add_tcase(suite, header);

    tcase_add_checked_fixture(deliver, make_base, remove_base);
    tcase_add_test(deliver, deliver_to_maildir);
    tcase_add_test(deliver, deliver_to_mbox);
    tcase_add_test(deliver, deliver_to_maildir_from_memory);
    tcase_add_test(deliver, deliver_to_mbox_from_memory);
    tcase_add_test(deliver, deliver_header_too_long);
    tcase_add_test(deliver, deliver_failure_reply);
    suite_add_tcase(suite, deliver);
    return suite;
}

int
main(void)
{
    SRunner *runner = srunner_create(store_suite());
    int failed;

    srunner_run_all(runner, CK_NORMAL);
    failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
