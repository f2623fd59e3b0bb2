/*
 * check_quota.c: unit tests for store/quota.c and store/maildirsize.c:
 * parsing maildirsize, trusting, appending to and rebuilding it in real
 * Maildirs under /tmp, the limits at their boundaries, and the check in
 * store_deliver().
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "store/store.h"

#define BASE_TEMPLATE "/tmp/check_quota.XXXXXX"

/* Run as root, store_deliver() writes as this uid and gid, "nobody". */
#define TEST_ID 65534

static char base[] = BASE_TEMPLATE;
static char maildir[sizeof base + 16];

/* quota_parse_maildirsize */

struct parse_case {
    const char *name;
    const char *text;
    size_t len; /* 0: strlen(text) */
    int result;
    unsigned long long limit_bytes, limit_messages;
    unsigned long long bytes, messages;
    size_t deltas;
};

static const struct parse_case parse_cases[] = {
    {"both limits", "1000S,10C\n100 1\n", 0, 0, 1000, 10, 100, 1, 1},
    {"limits in either order", "10C,1000S\n100 1\n", 0, 0, 1000, 10, 100, 1,
     1},
    {"bytes only", "5000S\n100 1\n250 1\n", 0, 0, 5000, 0, 350, 2, 2},
    {"messages only", "7C\n0 0\n", 0, 0, 0, 7, 0, 0, 1},
    {"no limits", "0S\n12 3\n", 0, 0, 0, 0, 12, 3, 1},
    {"courier padding", "1000S\n      1234     1\n", 0, 0, 1000, 0, 1234, 1,
     1},
    {"tabs", "1000S\n\t12\t1\t\n", 0, 0, 1000, 0, 12, 1, 1},
    {"removals", "1000S\n500 2\n-200 -1\n", 0, 0, 1000, 0, 300, 1, 2},
    {"empty", "", 0, -1, 0, 0, 0, 0, 0},
    {"limits only", "1000S\n", 0, -1, 0, 0, 0, 0, 0},
    {"no final newline", "1000S\n100 1", 0, -1, 0, 0, 0, 0, 0},
    {"partial last line", "1000S\n100 1\n20", 0, -1, 0, 0, 0, 0, 0},
    {"one number", "1000S\n100\n", 0, -1, 0, 0, 0, 0, 0},
    {"three numbers", "1000S\n100 1 1\n", 0, -1, 0, 0, 0, 0, 0},
    {"letters in counts", "1000S\nabc 1\n", 0, -1, 0, 0, 0, 0, 0},
    {"carriage return", "1000S\n100 1\r\n", 0, -1, 0, 0, 0, 0, 0},
    {"blank line", "1000S\n\n100 1\n", 0, -1, 0, 0, 0, 0, 0},
    {"unknown limit", "1000X\n100 1\n", 0, -1, 0, 0, 0, 0, 0},
    {"trailing comma", "1000S,\n100 1\n", 0, -1, 0, 0, 0, 0, 0},
    {"limit without number", "S\n100 1\n", 0, -1, 0, 0, 0, 0, 0},
    {"negative limit", "-5S\n100 1\n", 0, -1, 0, 0, 0, 0, 0},
    {"empty limits line", "\n100 1\n", 0, -1, 0, 0, 0, 0, 0},
    {"negative total", "1000S\n100 1\n-200 -1\n", 0, -1, 0, 0, 0, 0, 0},
    {"negative count", "1000S\n100 1\n0 -2\n", 0, -1, 0, 0, 0, 0, 0},
    {"nul byte", "1000S\n10\0 1\n", 12, -1, 0, 0, 0, 0, 0},
    {"number too large", "1000S\n9223372036854775808 1\n", 0, -1, 0, 0, 0, 0,
     0},
    {"sum overflows", "1000S\n9223372036854775807 1\n1 1\n", 0, -1, 0, 0, 0, 0,
     0},
};

START_TEST(parse_table)
{
    const struct parse_case *c = &parse_cases[_i];
    size_t len = c->len ? c->len : strlen(c->text);
    struct quota_counts limits = {42, 42}, usage = {42, 42};
    size_t deltas = 42;
    int result = quota_parse_maildirsize(c->text, len, &limits, &usage,
                                         &deltas);

    ck_assert_msg(result == c->result, "%s: result %d, expected %d", c->name,
                  result, c->result);
    if (c->result == -1)
        return;
    ck_assert_msg(limits.bytes == c->limit_bytes, "%s: byte limit %llu",
                  c->name, limits.bytes);
    ck_assert_msg(limits.messages == c->limit_messages,
                  "%s: message limit %llu", c->name, limits.messages);
    ck_assert_msg(usage.bytes == c->bytes, "%s: bytes %llu", c->name,
                  usage.bytes);
    ck_assert_msg(usage.messages == c->messages, "%s: messages %llu", c->name,
                  usage.messages);
    ck_assert_msg(deltas == c->deltas, "%s: %zu lines of counts", c->name,
                  deltas);
}
END_TEST

/* Maildirs on disk */

static void
make_base(void)
{
    /* Without CK_FORK, one process runs every test. */
    memcpy(base, BASE_TEMPLATE, sizeof base);
    ck_assert_ptr_nonnull(mkdtemp(base));
    snprintf(maildir, sizeof maildir, "%s/Maildir/", base);
    quota_set_default(0);
    store_reply_quota_tempfail(0);
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
    quota_set_default(0);
    store_reply_quota_tempfail(0);
}

/* Returns "<maildir><sub>" in one of two static buffers. */
static const char *
sub_path(const char *sub)
{
    static char path[2][512];
    static int next;

    next = !next;
    snprintf(path[next], sizeof path[next], "%s%s", maildir, sub);
    return path[next];
}

static void
make_dir(const char *sub)
{
    const char *path = sub_path(sub);

    ck_assert_msg(mkdir(path, 0700) == 0, "mkdir %s: %s", path,
                  strerror(errno));
}

/* Makes the Maildir with tmp/, new/ and cur/, and a folder of each name. */
static void
make_maildir(const char *const *folders)
{
    char sub[256];

    make_dir("");
    make_dir("tmp");
    make_dir("new");
    make_dir("cur");
    for (; folders != NULL && *folders != NULL; folders++) {
        make_dir(*folders);
        snprintf(sub, sizeof sub, "%s/new", *folders);
        make_dir(sub);
        snprintf(sub, sizeof sub, "%s/cur", *folders);
        make_dir(sub);
    }
}

/* Writes a file of size bytes at "<maildir><sub>". */
static void
write_file(const char *sub, size_t size)
{
    const char *path = sub_path(sub);
    char *data = malloc(size + 1);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

    ck_assert_msg(fd >= 0, "open %s: %s", path, strerror(errno));
    ck_assert_ptr_nonnull(data);
    memset(data, 'm', size);
    ck_assert_int_eq(write(fd, data, size), (ssize_t)size);
    ck_assert_int_eq(close(fd), 0);
    free(data);
}

static void
write_text(const char *sub, const char *text)
{
    const char *path = sub_path(sub);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

    ck_assert_msg(fd >= 0, "open %s: %s", path, strerror(errno));
    ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    ck_assert_int_eq(close(fd), 0);
}

/* Returns the text of "<maildir><sub>", or "(missing)", in a buffer. */
static const char *
read_text(const char *sub)
{
    static char text[8192];
    int fd = open(sub_path(sub), O_RDONLY);
    ssize_t len;

    if (fd == -1 && errno == ENOENT)
        return "(missing)";
    ck_assert_int_ge(fd, 0);
    len = read(fd, text, sizeof text - 1);
    ck_assert_int_ge(len, 0);
    text[len] = '\0';
    close(fd);
    return text;
}

static ino_t
inode_of(const char *sub)
{
    struct stat st;

    ck_assert_int_eq(stat(sub_path(sub), &st), 0);
    return st.st_ino;
}

/* Fills the Maildir with messages that total 600 bytes in 4 files. */
static void
fill_maildir(void)
{
    static const char *const folders[] = {".Sent", ".Trash", NULL};

    make_maildir(folders);
    write_file("new/1.M1P1.host,S=100", 100);
    /* A name with flags; the ",S=" size wins over the file's length. */
    write_file("cur/2.M2P2.host,S=200,W=210:2,S", 5);
    write_file(".Sent/cur/3.M3P3.host,S=250:2,", 250);
    /* No ",S=": the size comes from lstat(). */
    write_file(".Trash/new/4.M4P4.host", 50);

    /* Neither messages nor folders. */
    write_file("tmp/5.M5P5.host,S=9000", 10);
    write_file(".hidden-file", 70);
    write_file("new/.6.M6P6.host,S=8000", 10);
    make_dir(".NoSubfolders");
}

static const struct quota_counts limits_1000 = {1000, 0};

START_TEST(rebuild_when_missing)
{
    struct quota_counts usage = {0, 0};
    struct store_reply reply;

    fill_maildir();
    ck_assert_int_eq(
        quota_maildir_usage(maildir, &limits_1000, 1, &usage, &reply), 0);
    ck_assert_uint_eq(usage.bytes, 600);
    ck_assert_uint_eq(usage.messages, 4);
    ck_assert_str_eq(read_text("maildirsize"), "1000S\n600 4\n");
    /* The rebuilt file was renamed out of tmp/. */
    ck_assert_str_eq(read_text("tmp/5.M5P5.host,S=9000"), "mmmmmmmmmm");
}
END_TEST

START_TEST(rebuild_limits_line_forms)
{
    static const struct {
        struct quota_counts limits;
        const char *text;
    } forms[] = {
        {{1000, 0}, "1000S\n0 0\n"},
        {{0, 5}, "5C\n0 0\n"},
        {{1000, 5}, "1000S,5C\n0 0\n"},
        {{0, 0}, "0S\n0 0\n"},
    };
    struct quota_counts usage;
    struct store_reply reply;
    size_t i;

    make_maildir(NULL);
    for (i = 0; i < sizeof forms / sizeof forms[0]; i++) {
        ck_assert_int_eq(quota_maildir_rebuild(maildir, &forms[i].limits,
                                               &usage, &reply),
                         0);
        ck_assert_str_eq(read_text("maildirsize"), forms[i].text);
    }
}
END_TEST

START_TEST(rebuild_missing_maildir)
{
    struct quota_counts usage = {42, 42};
    struct store_reply reply;

    ck_assert_int_eq(
        quota_maildir_usage(maildir, &limits_1000, 1, &usage, &reply), 0);
    ck_assert_uint_eq(usage.bytes, 0);
    ck_assert_uint_eq(usage.messages, 0);
    ck_assert_int_eq(access(maildir, F_OK), -1);
}
END_TEST

START_TEST(rebuild_unreadable_folder)
{
    struct quota_counts usage;
    struct store_reply reply;

    make_maildir(NULL);
    ck_assert_int_eq(rmdir(sub_path("cur")), 0);
    /* A file where cur/ should be counts as an empty folder... */
    write_file("cur", 10);
    ck_assert_int_eq(
        quota_maildir_usage(maildir, &limits_1000, 1, &usage, &reply), 0);
    ck_assert_uint_eq(usage.messages, 0);

    /* ...but a folder that cannot be opened fails the check with 451. */
    ck_assert_int_eq(unlink(sub_path("maildirsize")), 0);
    ck_assert_int_eq(chmod(sub_path("new"), 0), 0);
    if (geteuid() == 0)
        return; /* root reads it anyway */
    ck_assert_int_eq(
        quota_maildir_usage(maildir, &limits_1000, 1, &usage, &reply), -1);
    ck_assert_int_eq(reply.code, 451);
    ck_assert_ptr_nonnull(strstr(reply.detail, "scan maildir"));
}
END_TEST

START_TEST(trust_valid_file)
{
    struct quota_counts usage;
    struct store_reply reply;
    ino_t inode;

    fill_maildir();
    /* Totals unlike the files on disk show that the file was read. */
    write_text("maildirsize", "1000S\n300 2\n  20   1\n");
    inode = inode_of("maildirsize");
    ck_assert_int_eq(
        quota_maildir_usage(maildir, &limits_1000, 1, &usage, &reply), 0);
    ck_assert_uint_eq(usage.bytes, 320);
    ck_assert_uint_eq(usage.messages, 3);
    ck_assert_str_eq(read_text("maildirsize"), "1000S\n300 2\n  20   1\n");
    ck_assert_uint_eq(inode_of("maildirsize"), inode);
}
END_TEST

/* Texts that a check must never trust: each is rebuilt to 600 bytes. */
static const char *const untrusted_texts[] = {
    "garbage\n",
    "1000S\n300 2\n20",
    "1000S\n300 2\nx 1\n",
    "1000S\n",
    "1000S\n300 2\n-400 -1\n",
    "2000S\n300 2\n",
    "1000S,10C\n300 2\n",
    "",
};

START_TEST(rebuild_untrusted_file)
{
    struct quota_counts usage;
    struct store_reply reply;
    const char *text = untrusted_texts[_i];

    fill_maildir();
    write_text("maildirsize", text);
    ck_assert_int_eq(
        quota_maildir_usage(maildir, &limits_1000, 1, &usage, &reply), 0);
    ck_assert_msg(usage.bytes == 600, "\"%s\": %llu bytes", text,
                  usage.bytes);
    ck_assert_uint_eq(usage.messages, 4);
    ck_assert_str_eq(read_text("maildirsize"), "1000S\n600 4\n");
}
END_TEST

START_TEST(rebuild_limits_changed)
{
    struct quota_counts limits = {2048, 10};
    struct quota_counts usage;
    struct store_reply reply;

    fill_maildir();
    write_text("maildirsize", "1000S\n600 4\n");
    ck_assert_int_eq(quota_maildir_usage(maildir, &limits, 1, &usage, &reply),
                     0);
    ck_assert_str_eq(read_text("maildirsize"), "2048S,10C\n600 4\n");
}
END_TEST

START_TEST(rebuild_file_at_size_limit)
{
    char text[5200];
    struct quota_counts usage;
    struct store_reply reply;
    size_t len;

    fill_maildir();
    /* 5119 bytes are read; 5120 bytes or more are rebuilt. */
    len = (size_t)snprintf(text, sizeof text, "1000S\n");
    while (len + 4 <= 5119 - 10)
        len += (size_t)snprintf(text + len, sizeof text - len, "0 0\n");
    /* The last line, padded with spaces as Courier pads its lines. */
    len += (size_t)snprintf(text + len, sizeof text - len, "%*s\n",
                            (int)(5119 - len - 1), "1 1");
    ck_assert_uint_eq(len, 5119);
    write_text("maildirsize", text);
    ck_assert_int_eq(
        quota_maildir_usage(maildir, &limits_1000, 1, &usage, &reply), 0);
    ck_assert_uint_eq(usage.bytes, 1);

    snprintf(text + len, sizeof text - len, "0 0\n");
    write_text("maildirsize", text);
    ck_assert_int_eq(
        quota_maildir_usage(maildir, &limits_1000, 1, &usage, &reply), 0);
    ck_assert_uint_eq(usage.bytes, 600);
    ck_assert_str_eq(read_text("maildirsize"), "1000S\n600 4\n");
}
END_TEST

START_TEST(over_quota_rebuilds_several_lines)
{
    struct quota_counts usage;
    struct store_reply reply;

    fill_maildir();
    /* Over quota by its lines: two lines of counts are recalculated. */
    write_text("maildirsize", "1000S\n900 2\n200 1\n");
    ck_assert_int_eq(
        quota_maildir_usage(maildir, &limits_1000, 1, &usage, &reply), 0);
    ck_assert_uint_eq(usage.bytes, 600);
    ck_assert_str_eq(read_text("maildirsize"), "1000S\n600 4\n");
}
END_TEST

START_TEST(over_quota_trusts_fresh_line)
{
    struct quota_counts usage;
    struct store_reply reply;

    fill_maildir();
    /* One line of counts written just now is trusted, over quota too. */
    write_text("maildirsize", "1000S\n1100 5\n");
    ck_assert_int_eq(
        quota_maildir_usage(maildir, &limits_1000, 1, &usage, &reply), 0);
    ck_assert_uint_eq(usage.bytes, 1100);
    ck_assert_str_eq(read_text("maildirsize"), "1000S\n1100 5\n");
}
END_TEST

START_TEST(over_quota_rebuilds_stale_line)
{
    struct timespec times[2] = {{0, 0}, {0, 0}};
    struct quota_counts usage;
    struct store_reply reply;

    fill_maildir();
    write_text("maildirsize", "1000S\n1100 5\n");
    times[0].tv_sec = times[1].tv_sec = time(NULL) - 15 * 60;
    ck_assert_int_eq(utimensat(AT_FDCWD, sub_path("maildirsize"), times, 0),
                     0);
    ck_assert_int_eq(
        quota_maildir_usage(maildir, &limits_1000, 1, &usage, &reply), 0);
    ck_assert_uint_eq(usage.bytes, 600);
    ck_assert_str_eq(read_text("maildirsize"), "1000S\n600 4\n");
}
END_TEST

START_TEST(over_quota_counts_new_message)
{
    struct quota_counts usage;
    struct store_reply reply;

    fill_maildir();
    /* 900 bytes fit, but not with a message of 101: verify them first. */
    write_text("maildirsize", "1000S\n800 2\n100 1\n");
    ck_assert_int_eq(
        quota_maildir_usage(maildir, &limits_1000, 100, &usage, &reply), 0);
    ck_assert_uint_eq(usage.bytes, 900);
    ck_assert_int_eq(
        quota_maildir_usage(maildir, &limits_1000, 101, &usage, &reply), 0);
    ck_assert_uint_eq(usage.bytes, 600);
}
END_TEST

START_TEST(rebuild_replaces_symlink)
{
    struct quota_counts usage;
    struct store_reply reply;
    char target[sizeof base + 16];
    struct stat st;

    fill_maildir();
    snprintf(target, sizeof target, "%s/elsewhere", base);
    ck_assert_int_eq(symlink(target, sub_path("maildirsize")), 0);
    ck_assert_int_eq(
        quota_maildir_usage(maildir, &limits_1000, 1, &usage, &reply), 0);
    ck_assert_uint_eq(usage.bytes, 600);
    ck_assert_int_eq(lstat(sub_path("maildirsize"), &st), 0);
    ck_assert(S_ISREG(st.st_mode));
    ck_assert_int_eq(access(target, F_OK), -1);
}
END_TEST

START_TEST(record_appends_line)
{
    fill_maildir();
    write_text("maildirsize", "1000S\n600 4\n");
    ck_assert_int_eq(quota_maildir_record(maildir, 123), 0);
    ck_assert_int_eq(quota_maildir_record(maildir, 0), 0);
    ck_assert_str_eq(read_text("maildirsize"), "1000S\n600 4\n123 1\n0 1\n");
}
END_TEST

START_TEST(record_without_file)
{
    fill_maildir();
    ck_assert_int_eq(quota_maildir_record(maildir, 123), 0);
    ck_assert_str_eq(read_text("maildirsize"), "(missing)");
}
END_TEST

START_TEST(record_symlink_refused)
{
    char target[sizeof base + 16];

    fill_maildir();
    snprintf(target, sizeof target, "%s/target", base);
    write_text("../target", "1000S\n0 0\n");
    ck_assert_int_eq(symlink(target, sub_path("maildirsize")), 0);
    errno = 0;
    ck_assert_int_eq(quota_maildir_record(maildir, 5), -1);
    ck_assert_int_eq(errno, ELOOP);
    /* The target is unchanged; the next check replaces the link. */
    ck_assert_str_eq(read_text("../target"), "1000S\n0 0\n");
}
END_TEST

/* quota_check: the limits at their boundaries */

static struct mailbox
make_mailbox(const char *path, unsigned long long bytes,
             unsigned long long messages)
{
    struct mailbox mb;

    memset(&mb, 0, sizeof mb);
    snprintf(mb.path, sizeof mb.path, "%s", path);
    mb.is_maildir = path[strlen(path) - 1] == '/';
    mb.quota_bytes = bytes;
    mb.has_quota = 1;
    mb.quota_messages = messages;
    return mb;
}

static void
assert_full(const struct store_reply *reply, int code, const char *status)
{
    ck_assert_int_eq(reply->code, code);
    ck_assert_str_eq(reply->status, status);
    ck_assert_str_eq(reply->text, "mailbox full");
}

START_TEST(check_byte_limit_boundary)
{
    struct mailbox mb = make_mailbox(maildir, 1000, 0);
    struct store_reply reply;

    fill_maildir();
    /* 600 used: 400 more reach the limit exactly, 401 pass it. */
    ck_assert_int_eq(quota_check(&mb, 400, &reply), 0);
    ck_assert_int_eq(quota_check(&mb, 401, &reply), -1);
    assert_full(&reply, 552, "5.2.2");
    ck_assert_msg(strstr(reply.detail, "600 bytes used and 401 more exceed "
                                       "the quota of 1000 bytes") != NULL,
                  "detail: %s", reply.detail);
}
END_TEST

START_TEST(check_full_mailbox_unknown_size)
{
    struct mailbox mb = make_mailbox(maildir, 600, 0);
    struct store_reply reply;

    fill_maildir();
    /* Exactly at the limit: even a message of unknown size is refused. */
    ck_assert_int_eq(quota_check(&mb, 0, &reply), -1);
    assert_full(&reply, 552, "5.2.2");
    mb.quota_bytes = 601;
    ck_assert_int_eq(quota_check(&mb, 0, &reply), 0);
}
END_TEST

START_TEST(check_message_limit_boundary)
{
    struct mailbox mb = make_mailbox(maildir, 0, 5);
    struct store_reply reply;

    fill_maildir();
    ck_assert_int_eq(quota_check(&mb, 100000, &reply), 0);
    write_file("new/7.M7P7.host,S=1", 1);
    ck_assert_int_eq(quota_maildir_record(maildir, 1), 0);
    /* Five messages now: a sixth passes the limit. */
    ck_assert_int_eq(quota_check(&mb, 1, &reply), -1);
    assert_full(&reply, 552, "5.2.2");
    ck_assert_msg(strstr(reply.detail, "5 messages, the limit is 5") != NULL,
                  "detail: %s", reply.detail);
}
END_TEST

START_TEST(check_tempfail)
{
    struct mailbox mb = make_mailbox(maildir, 100, 0);
    struct store_reply reply;

    fill_maildir();
    store_reply_quota_tempfail(1);
    ck_assert_int_eq(quota_check(&mb, 1, &reply), -1);
    assert_full(&reply, 452, "4.2.2");
    store_reply_quota_tempfail(0);
    ck_assert_int_eq(quota_check(&mb, 1, &reply), -1);
    assert_full(&reply, 552, "5.2.2");
}
END_TEST

START_TEST(check_no_limits)
{
    struct mailbox mb = make_mailbox(maildir, 0, 0);
    struct store_reply reply;

    fill_maildir();
    ck_assert_int_eq(quota_check(&mb, 1ULL << 40, &reply), 0);
    /* Without limits, no maildirsize is made. */
    ck_assert_str_eq(read_text("maildirsize"), "(missing)");
}
END_TEST

START_TEST(check_default_quota)
{
    struct mailbox mb = make_mailbox(maildir, 0, 0);
    struct quota_counts limits;
    struct store_reply reply;

    fill_maildir();
    quota_set_default(700);
    mb.has_quota = 0;
    quota_limits(&mb, &limits);
    ck_assert_uint_eq(limits.bytes, 700);
    ck_assert_int_eq(quota_check(&mb, 100, &reply), 0);
    ck_assert_int_eq(quota_check(&mb, 101, &reply), -1);
    assert_full(&reply, 552, "5.2.2");

    /* quota=0 in the record means no limit, whatever the default. */
    mb.has_quota = 1;
    ck_assert_int_eq(quota_check(&mb, 101, &reply), 0);
}
END_TEST

START_TEST(check_mbox_file_size)
{
    char path[sizeof base + 16];
    struct mailbox mb;
    struct quota_counts limits;
    struct store_reply reply;
    int fd;

    snprintf(path, sizeof path, "%s/mbox", base);
    mb = make_mailbox(path, 1000, 1);
    /* A missing mbox is empty. */
    ck_assert_int_eq(quota_check(&mb, 1000, &reply), 0);
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, "From a\n\nbody\n\n", 14), 14);
    ck_assert_int_eq(close(fd), 0);
    ck_assert_int_eq(quota_check(&mb, 1000 - 14, &reply), 0);
    ck_assert_int_eq(quota_check(&mb, 1000 - 13, &reply), -1);
    assert_full(&reply, 552, "5.2.2");

    /* messages= does not apply to an mbox. */
    quota_limits(&mb, &limits);
    ck_assert_uint_eq(limits.messages, 0);
}
END_TEST

/* store_deliver: the check after the data */

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

/* Counts the files in "<maildir><sub>" whose names do not start with '.'. */
static int
count_messages_in(const char *sub)
{
    struct dirent *entry;
    DIR *dir = opendir(sub_path(sub));
    int count = 0;

    ck_assert_ptr_nonnull(dir);
    while ((entry = readdir(dir)) != NULL)
        count += entry->d_name[0] != '.';
    closedir(dir);
    return count;
}

/* Delivers body to mb and returns the stored size in *stored. */
static int
chown_entry(const char *path, const struct stat *st, int type,
            struct FTW *ftw)
{
    (void)st;
    (void)type;
    (void)ftw;
    return lchown(path, TEST_ID, TEST_ID);
}

/* The user that store_deliver() writes as: TEST_ID as root. */
static uid_t
delivery_uid(void)
{
    return geteuid() == 0 ? TEST_ID : geteuid();
}

/*
 * Delivers body to mb with store_deliver().  As root, which delivers
 * only for records with uid= and gid=, the mailbox gets TEST_ID as its
 * owner and the test folder is handed to that user first.
 */
static int
deliver(const struct mailbox *record, const char *body, size_t *stored,
        struct store_reply *reply)
{
    struct mailbox owned = *record;
    const struct mailbox *mb = &owned;
    char header[1024];
    struct delivery d = {
        .reverse_path = "alice@example.org",
        .recipient = "bob@example.com",
        .hostname = "mail.example.com",
        .lhlo = "mx.example.org",
        .client = "",
        .id = "S1.1",
        .arrival = 1700000000,
    };
    int result;

    if (geteuid() == 0) {
        owned.has_uid = owned.has_gid = 1;
        owned.uid = TEST_ID;
        owned.gid = TEST_ID;
        ck_assert_int_eq(nftw(base, chown_entry, 16, FTW_PHYS), 0);
    }
    d.spool_fd = make_spool(body);
    d.spool_size = (off_t)strlen(body);
    *stored = store_header_block(&d, header, sizeof header) + strlen(body);
    result = store_deliver(&d, mb, reply);
    close(d.spool_fd);
    return result;
}

START_TEST(deliver_exactly_at_limit)
{
    struct mailbox mb = make_mailbox(maildir, 0, 0);
    struct store_reply reply;
    char expected[64];
    size_t stored;

    fill_maildir();
    write_text("maildirsize", "1000S\n600 4\n");
    /* Learn the stored size without a limit, then set the limit to it. */
    ck_assert_int_eq(deliver(&mb, "x\n", &stored, &reply), 0);
    ck_assert_int_eq(unlink(sub_path("maildirsize")), 0);
    mb.quota_bytes = 600 + 2 * stored;
    ck_assert_int_eq(deliver(&mb, "y\n", &stored, &reply), 0);
    ck_assert_int_eq(reply.code, 250);
    snprintf(expected, sizeof expected, "%lluS\n%zu 5\n%zu 1\n",
             mb.quota_bytes, 600 + stored, stored);
    ck_assert_str_eq(read_text("maildirsize"), expected);
}
END_TEST

START_TEST(deliver_one_byte_over)
{
    struct mailbox mb = make_mailbox(maildir, 0, 0);
    struct store_reply reply;
    struct stat st;
    char expected[64];
    size_t stored;

    fill_maildir();
    ck_assert_int_eq(deliver(&mb, "x\n", &stored, &reply), 0);
    mb.quota_bytes = 600 + 2 * stored - 1;
    ck_assert_int_eq(deliver(&mb, "y\n", &stored, &reply), -1);
    assert_full(&reply, 552, "5.2.2");
    /*
     * The check rebuilt maildirsize as the delivery user, and no line was
     * added for "y".
     */
    snprintf(expected, sizeof expected, "%lluS\n%zu 5\n", mb.quota_bytes,
             600 + stored);
    ck_assert_str_eq(read_text("maildirsize"), expected);
    ck_assert_int_eq(stat(sub_path("maildirsize"), &st), 0);
    ck_assert_uint_eq(st.st_uid, delivery_uid());
    ck_assert_int_eq(count_messages_in("new"), 2);
}
END_TEST

START_TEST(deliver_folder_counts_to_inbox)
{
    struct mailbox mb = make_mailbox(maildir, 100000, 0);
    struct store_reply reply;
    char expected[64];
    size_t stored;

    fill_maildir();
    snprintf(mb.detail, sizeof mb.detail, "Sent");
    ck_assert_int_eq(deliver(&mb, "z\n", &stored, &reply), 0);
    ck_assert_msg(strstr(reply.detail, "/.Sent/new/") != NULL, "detail: %s",
                  reply.detail);
    snprintf(expected, sizeof expected, "100000S\n600 4\n%zu 1\n", stored);
    ck_assert_str_eq(read_text("maildirsize"), expected);
    ck_assert_str_eq(read_text(".Sent/maildirsize"), "(missing)");
}
END_TEST

START_TEST(deliver_mbox_over_quota)
{
    char path[sizeof base + 16];
    struct mailbox mb;
    struct store_reply reply;
    size_t stored;

    snprintf(path, sizeof path, "%s/mbox", base);
    mb = make_mailbox(path, 10, 0);
    ck_assert_int_eq(deliver(&mb, "x\n", &stored, &reply), -1);
    assert_full(&reply, 552, "5.2.2");
    ck_assert_int_eq(access(path, F_OK), -1);
}
END_TEST

static Suite *
quota_suite(void)
{
    Suite *suite = suite_create("quota");
    TCase *parse = tcase_create("parse");
    TCase *maildirsize = tcase_create("maildirsize");
    TCase *check = tcase_create("check");
    TCase *after_data = tcase_create("after data");

    tcase_add_loop_test(parse, parse_table, 0,
                        sizeof parse_cases / sizeof parse_cases[0]);
    suite_add_tcase(suite, parse);

    tcase_add_checked_fixture(maildirsize, make_base, remove_base);
    tcase_add_test(maildirsize, rebuild_when_missing);
    tcase_add_test(maildirsize, rebuild_limits_line_forms);
    tcase_add_test(maildirsize, rebuild_missing_maildir);
    tcase_add_test(maildirsize, rebuild_unreadable_folder);
    tcase_add_test(maildirsize, trust_valid_file);
    tcase_add_loop_test(maildirsize, rebuild_untrusted_file, 0,
                        sizeof untrusted_texts / sizeof untrusted_texts[0]);
    tcase_add_test(maildirsize, rebuild_limits_changed);
    tcase_add_test(maildirsize, rebuild_file_at_size_limit);
    tcase_add_test(maildirsize, over_quota_rebuilds_several_lines);
    tcase_add_test(maildirsize, over_quota_trusts_fresh_line);
    tcase_add_test(maildirsize, over_quota_rebuilds_stale_line);
    tcase_add_test(maildirsize, over_quota_counts_new_message);
    tcase_add_test(maildirsize, rebuild_replaces_symlink);
    tcase_add_test(maildirsize, record_appends_line);
    tcase_add_test(maildirsize, record_without_file);
    tcase_add_test(maildirsize, record_symlink_refused);
    suite_add_tcase(suite, maildirsize);

    tcase_add_checked_fixture(check, make_base, remove_base);
    tcase_add_test(check, check_byte_limit_boundary);
    tcase_add_test(check, check_full_mailbox_unknown_size);
    tcase_add_test(check, check_message_limit_boundary);
    tcase_add_test(check, check_tempfail);
    tcase_add_test(check, check_no_limits);
    tcase_add_test(check, check_default_quota);
    tcase_add_test(check, check_mbox_file_size);
    suite_add_tcase(suite, check);

    tcase_add_checked_fixture(after_data, make_base, remove_base);
    tcase_add_test(after_data, deliver_exactly_at_limit);
    tcase_add_test(after_data, deliver_one_byte_over);
    tcase_add_test(after_data, deliver_folder_counts_to_inbox);
    tcase_add_test(after_data, deliver_mbox_over_quota);
    suite_add_tcase(suite, after_data);
    return suite;
}

int
main(void)
{
    SRunner *runner = srunner_create(quota_suite());
    int failed;

    srunner_run_all(runner, CK_NORMAL);
    failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
