/*
 * check_mbox.c: unit tests for mbox delivery in store/mbox.c: the mboxrd
 * format, the file checks, both locks and the roll-back on failure.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "store/store.h"

/* 2023-11-14 22:13:20 UTC, a Tuesday. */
#define ARRIVAL ((time_t)1700000000)
#define FROM_DATE "Tue Nov 14 22:13:20 2023"

/* The spool read size in store/mbox.c, for the buffer boundary cases. */
#define READ_SIZE 65536

#define BASE_TEMPLATE "/tmp/check_mbox.XXXXXX"

static const char header[] = "Return-Path: <alice@example.org>\n"
                             "Delivered-To: bob@example.com\n";

static char base[] = BASE_TEMPLATE;
static char mbox[sizeof base + 16];
static char dotlock[sizeof base + 32];

static void
make_base(void)
{
    /* Without CK_FORK, one process runs every test. */
    memcpy(base, BASE_TEMPLATE, sizeof base);
    ck_assert_ptr_nonnull(mkdtemp(base));
    snprintf(mbox, sizeof mbox, "%s/bob", base);
    snprintf(dotlock, sizeof dotlock, "%s/bob.lock", base);
    mbox_set_lock_timeout(30);
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

/* An unlinked spool file with the given body, offset moved off 0. */
static int
make_spool(const char *body, size_t len)
{
    char path[sizeof base + 32];
    int fd;

    snprintf(path, sizeof path, "%s/spool.XXXXXX", base);
    fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(unlink(path), 0);
    ck_assert_int_eq(write(fd, body, len), (ssize_t)len);
    ck_assert_int_eq(lseek(fd, 3, SEEK_SET), 3);
    return fd;
}

static int
deliver_to(const char *path, const char *reverse_path, const char *body,
           size_t len, struct store_reply *reply)
{
    int spool = make_spool(body, len);
    int result;

    memset(reply, 0, sizeof *reply);
    result = mbox_deliver(path, reverse_path, ARRIVAL, header, strlen(header),
                          spool, (off_t)len, reply);
    ck_assert_int_eq(lseek(spool, 0, SEEK_CUR), 3);
    close(spool);
    return result;
}

static char *
read_file(const char *path, size_t *len)
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
    *len = (size_t)st.st_size;
    return data;
}

static void
write_file(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
}

/* Checks that the file at path contains exactly len bytes of expected. */
static void
check_file(const char *path, const char *expected, size_t len)
{
    size_t file_len;
    char *data = read_file(path, &file_len);

    ck_assert_uint_eq(file_len, len);
    ck_assert_msg(memcmp(data, expected, len) == 0, "%s differs", path);
    free(data);
}

/* The whole mbox entry that one delivery of quoted_body writes. */
static char *
expected_entry(const char *sender, const char *quoted_body, size_t len,
               size_t *entry_len)
{
    size_t size = len + 512;
    char *entry = malloc(size);
    int used;

    ck_assert_ptr_nonnull(entry);
    used = snprintf(entry, size, "From %s " FROM_DATE "\n%s", sender, header);
    memcpy(entry + used, quoted_body, len);
    *entry_len = (size_t)used + len;
    entry[(*entry_len)++] = '\n';
    return entry;
}

START_TEST(deliver_creates_mbox)
{
    static const char body[] = "Subject: hi\n\nHello.\n";
    static const char expected[] = "From alice@example.org " FROM_DATE "\n"
                                   "Return-Path: <alice@example.org>\n"
                                   "Delivered-To: bob@example.com\n"
                                   "Subject: hi\n\nHello.\n\n";
    struct store_reply reply;
    struct stat st;

    ck_assert_int_eq(
        deliver_to(mbox, "alice@example.org", body, strlen(body), &reply), 0);
    ck_assert_int_eq(reply.code, 250);
    ck_assert_str_eq(reply.status, "2.0.0");
    check_file(mbox, expected, strlen(expected));

    ck_assert_int_eq(stat(mbox, &st), 0);
    ck_assert_uint_eq(st.st_mode & 07777, 0600);
    ck_assert_int_eq(access(dotlock, F_OK), -1);
}
END_TEST

START_TEST(deliver_null_sender)
{
    static const char body[] = "Subject: bounce\n\nFailed.\n";
    struct store_reply reply;
    size_t len;
    char *expected = expected_entry("MAILER-DAEMON", body, strlen(body), &len);

    ck_assert_int_eq(deliver_to(mbox, "", body, strlen(body), &reply), 0);
    check_file(mbox, expected, len);
    free(expected);
}
END_TEST

START_TEST(deliver_sender_with_space)
{
    struct store_reply reply;
    size_t len;
    char *expected = expected_entry("\"a?b\"@example.org", "x\n", 2, &len);

    ck_assert_int_eq(deliver_to(mbox, "\"a b\"@example.org", "x\n", 2, &reply),
                     0);
    check_file(mbox, expected, len);
    free(expected);
}
END_TEST

struct quote_case {
    const char *body;
    const char *quoted; /* with the final line end added, if missing */
};

static const struct quote_case quote_cases[] = {
    {"From x\n", ">From x\n"},
    {">From x\n", ">>From x\n"},
    {">>>From x\n", ">>>>From x\n"},
    {"From\n", "From\n"},
    {"From", "From\n"},
    {"Fromage\n", "Fromage\n"},
    {"from x\n", "from x\n"},
    {"FROM x\n", "FROM x\n"},
    {"> From x\n", "> From x\n"},
    {" From x\n", " From x\n"},
    {">Fro\n", ">Fro\n"},
    {">>\n", ">>\n"},
    {">", ">\n"},
    {"From x", ">From x\n"},
    {"From ", ">From \n"},
    {"a From b\n", "a From b\n"},
    {"a\nFrom b\nc\n>From d\n", "a\n>From b\nc\n>>From d\n"},
    {"\nFrom x\n\n", "\n>From x\n\n"},
    {"x\n\nFrom y\n", "x\n\n>From y\n"},
    {"From x\nFrom y\n", ">From x\n>From y\n"},
    {"abc", "abc\n"},
    {"", ""},
};

START_TEST(deliver_quoting_table)
{
    const struct quote_case *c = &quote_cases[_i];
    struct store_reply reply;
    size_t len;
    char *expected =
        expected_entry("alice@example.org", c->quoted, strlen(c->quoted), &len);

    ck_assert_int_eq(
        deliver_to(mbox, "alice@example.org", c->body, strlen(c->body), &reply),
        0);
    check_file(mbox, expected, len);
    free(expected);
}
END_TEST

/* A "From " line in the header block is quoted too. */
START_TEST(deliver_quotes_header_block)
{
    static const char odd_header[] = "X-Test: 1\nFrom evil\n";
    static const char expected[] = "From a@example.org " FROM_DATE "\n"
                                   "X-Test: 1\n>From evil\nbody\n\n";
    struct store_reply reply;
    int spool = make_spool("body\n", 5);

    ck_assert_int_eq(mbox_deliver(mbox, "a@example.org", ARRIVAL, odd_header,
                                  strlen(odd_header), spool, 5, &reply),
                     0);
    check_file(mbox, expected, strlen(expected));
    close(spool);
}
END_TEST

/*
 * A line that starts at READ_SIZE - shift, so that ">*From " is split
 * between two reads of the spool in every possible place.
 */
struct boundary_case {
    const char *line;
    const char *quoted;
    size_t shift;
};

static const struct boundary_case boundary_cases[] = {
    {"From x\n", ">From x\n", 0},     {"From x\n", ">From x\n", 1},
    {"From x\n", ">From x\n", 2},     {"From x\n", ">From x\n", 3},
    {"From x\n", ">From x\n", 4},     {"From x\n", ">From x\n", 5},
    {"From x\n", ">From x\n", 6},     {">>From x\n", ">>>From x\n", 1},
    {">>From x\n", ">>>From x\n", 2}, {">>From x\n", ">>>From x\n", 5},
    {"Fromage\n", "Fromage\n", 3},    {">>Fro\n", ">>Fro\n", 2},
};

START_TEST(deliver_quoting_buffer_boundary)
{
    const struct boundary_case *c = &boundary_cases[_i];
    size_t start = READ_SIZE - c->shift;
    size_t body_len = start + strlen(c->line) + 2;
    size_t quoted_len = start + strlen(c->quoted) + 2;
    char *body = malloc(body_len);
    char *quoted = malloc(quoted_len);
    struct store_reply reply;
    size_t len;
    char *expected;

    ck_assert_ptr_nonnull(body);
    ck_assert_ptr_nonnull(quoted);
    memset(body, 'a', start - 1);
    body[start - 1] = '\n';
    memcpy(body + start, c->line, strlen(c->line));
    memcpy(body + start + strlen(c->line), "z\n", 2);
    memcpy(quoted, body, start);
    memcpy(quoted + start, c->quoted, strlen(c->quoted));
    memcpy(quoted + start + strlen(c->quoted), "z\n", 2);
    expected = expected_entry("a@example.org", quoted, quoted_len, &len);

    ck_assert_int_eq(deliver_to(mbox, "a@example.org", body, body_len, &reply),
                     0);
    check_file(mbox, expected, len);
    free(expected);
    free(quoted);
    free(body);
}
END_TEST

START_TEST(deliver_body_without_newline)
{
    static const char body[] = "Subject: x\n\nno line end";
    struct store_reply reply;
    size_t len;
    char *data;

    ck_assert_int_eq(
        deliver_to(mbox, "a@example.org", body, strlen(body), &reply), 0);
    data = read_file(mbox, &len);
    ck_assert_uint_ge(len, 13);
    ck_assert_str_eq(data + len - 13, "no line end\n\n");
    free(data);
}
END_TEST

START_TEST(deliver_twice_appends)
{
    static const char first[] = "Subject: 1\n\none\n";
    static const char second[] = "Subject: 2\n\nFrom two\n";
    struct store_reply reply;
    size_t len1, len2;
    char *entry1 = expected_entry("a@example.org", first, strlen(first), &len1);
    char *entry2 =
        expected_entry("b@example.org", "Subject: 2\n\n>From two\n", 22, &len2);
    char *both = malloc(len1 + len2);

    ck_assert_ptr_nonnull(both);
    memcpy(both, entry1, len1);
    memcpy(both + len1, entry2, len2);

    ck_assert_int_eq(
        deliver_to(mbox, "a@example.org", first, strlen(first), &reply), 0);
    ck_assert_int_eq(
        deliver_to(mbox, "b@example.org", second, strlen(second), &reply), 0);
    check_file(mbox, both, len1 + len2);
    free(both);
    free(entry2);
    free(entry1);
}
END_TEST

/* A large body goes through in bounded buffers, byte for byte. */
START_TEST(deliver_large_body)
{
    size_t body_len = 5 * READ_SIZE + 123;
    char *body = malloc(body_len);
    struct store_reply reply;
    size_t len, i;
    char *expected;

    ck_assert_ptr_nonnull(body);
    for (i = 0; i < body_len; i++)
        body[i] = i % 71 == 70 ? '\n' : (char)('a' + i % 26);
    body[body_len - 1] = '\n';
    expected = expected_entry("a@example.org", body, body_len, &len);

    ck_assert_int_eq(deliver_to(mbox, "a@example.org", body, body_len, &reply),
                     0);
    check_file(mbox, expected, len);
    free(expected);
    free(body);
}
END_TEST

/* Checks a 451 failure that left the old file as it was. */
static void
check_rejected(int result, const struct store_reply *reply, const char *status,
               const char *text)
{
    ck_assert_int_eq(result, -1);
    ck_assert_int_eq(reply->code, 451);
    ck_assert_str_eq(reply->status, status);
    ck_assert_msg(strstr(reply->detail, text) != NULL,
                  "detail \"%s\" lacks \"%s\"", reply->detail, text);
}

START_TEST(reject_symlink)
{
    char target[sizeof base + 16];
    struct store_reply reply;
    int result;

    snprintf(target, sizeof target, "%s/target", base);
    write_file(target, "keep\n");
    ck_assert_int_eq(symlink(target, mbox), 0);

    result = deliver_to(mbox, "a@example.org", "x\n", 2, &reply);
    check_rejected(result, &reply, "4.3.0", "bob: symbolic link, not followed");
    check_file(target, "keep\n", 5);
    ck_assert_int_eq(access(dotlock, F_OK), -1);
}
END_TEST

START_TEST(reject_dangling_symlink)
{
    char target[sizeof base + 16];
    struct store_reply reply;
    int result;

    /* O_CREAT alone would create the file the link points to. */
    snprintf(target, sizeof target, "%s/target", base);
    ck_assert_int_eq(symlink(target, mbox), 0);

    result = deliver_to(mbox, "a@example.org", "x\n", 2, &reply);
    check_rejected(result, &reply, "4.3.0", "bob: symbolic link, not followed");
    ck_assert_int_eq(access(target, F_OK), -1);
    ck_assert_int_eq(access(dotlock, F_OK), -1);
}
END_TEST

START_TEST(reject_hard_link)
{
    char other[sizeof base + 16];
    struct store_reply reply;
    int result;

    snprintf(other, sizeof other, "%s/other", base);
    write_file(mbox, "keep\n");
    ck_assert_int_eq(link(mbox, other), 0);

    result = deliver_to(mbox, "a@example.org", "x\n", 2, &reply);
    check_rejected(result, &reply, "4.3.0", "2 hard links");
    check_file(mbox, "keep\n", 5);
    ck_assert_int_eq(access(dotlock, F_OK), -1);
}
END_TEST

START_TEST(reject_other_owner)
{
    struct store_reply reply;
    int result;

    write_file(mbox, "keep\n");
    ck_assert_int_eq(chown(mbox, geteuid() + 1000, (gid_t)-1), 0);

    result = deliver_to(mbox, "a@example.org", "x\n", 2, &reply);
    check_rejected(result, &reply, "4.3.0", "owner uid");
    check_file(mbox, "keep\n", 5);
}
END_TEST

START_TEST(reject_fifo)
{
    struct store_reply reply;
    int result;

    /* Without O_NONBLOCK, open() would wait here for a reader. */
    ck_assert_int_eq(mkfifo(mbox, 0600), 0);
    result = deliver_to(mbox, "a@example.org", "x\n", 2, &reply);
    check_rejected(result, &reply, "4.3.0", mbox);
}
END_TEST

START_TEST(reject_folder_missing)
{
    char path[sizeof base + 32];
    struct store_reply reply;
    int result;

    snprintf(path, sizeof path, "%s/missing/bob", base);
    result = deliver_to(path, "a@example.org", "x\n", 2, &reply);
    check_rejected(result, &reply, "4.3.0", "No such file");
}
END_TEST

/*
 * Starts a child that holds an fcntl() write lock on path until the
 * returned pipe is closed.
 */
static pid_t
start_lock_holder(const char *path, int *release)
{
    int ready[2], hold[2];
    pid_t pid;
    char c;

    ck_assert_int_eq(pipe(ready), 0);
    ck_assert_int_eq(pipe(hold), 0);
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        struct flock lock = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
        int fd = open(path, O_RDWR);

        close(ready[0]);
        close(hold[1]);
        if (fd == -1 || fcntl(fd, F_SETLK, &lock) == -1)
            _exit(1);
        if (write(ready[1], "l", 1) != 1)
            _exit(1);
        /* Returns 0 once the parent closes its end. */
        while (read(hold[0], &c, 1) > 0)
            continue;
        _exit(0);
    }
    close(ready[1]);
    close(hold[0]);
    ck_assert_int_eq(read(ready[0], &c, 1), 1);
    close(ready[0]);
    *release = hold[1];
    return pid;
}

START_TEST(busy_fcntl_lock)
{
    struct timespec before, after;
    struct store_reply reply;
    int release, status, result;
    pid_t holder;

    write_file(mbox, "keep\n");
    holder = start_lock_holder(mbox, &release);
    mbox_set_lock_timeout(1);

    clock_gettime(CLOCK_MONOTONIC, &before);
    result = deliver_to(mbox, "a@example.org", "x\n", 2, &reply);
    clock_gettime(CLOCK_MONOTONIC, &after);
    close(release);
    ck_assert_int_eq(waitpid(holder, &status, 0), holder);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "lock holder failed");

    check_rejected(result, &reply, "4.2.0", "locked after 1 s");
    ck_assert_str_eq(reply.text, "mailbox busy");
    ck_assert_int_ge(after.tv_sec - before.tv_sec, 1);
    check_file(mbox, "keep\n", 5);
    ck_assert_int_eq(access(dotlock, F_OK), -1);

    /* With the lock released, the same delivery goes through. */
    ck_assert_int_eq(deliver_to(mbox, "a@example.org", "x\n", 2, &reply), 0);
}
END_TEST

START_TEST(busy_dotlock)
{
    struct store_reply reply;
    int result;

    write_file(mbox, "keep\n");
    write_file(dotlock, "");
    mbox_set_lock_timeout(1);

    result = deliver_to(mbox, "a@example.org", "x\n", 2, &reply);
    check_rejected(result, &reply, "4.2.0", "dotlock");
    ck_assert_str_eq(reply.notice, "");
    check_file(mbox, "keep\n", 5);

    /* Another process's dotlock is left in place. */
    ck_assert_int_eq(access(dotlock, F_OK), 0);
}
END_TEST

/* Sets the modification time of path to seconds ago. */
static void
age_file(const char *path, time_t seconds)
{
    struct timespec times[2];

    clock_gettime(CLOCK_REALTIME, &times[0]);
    times[0].tv_sec -= seconds;
    times[1] = times[0];
    ck_assert_int_eq(utimensat(AT_FDCWD, path, times, 0), 0);
}

START_TEST(stale_dotlock_removed)
{
    struct store_reply reply;
    char expected_notice[128];
    size_t len;
    char *expected = expected_entry("a@example.org", "x\n", 2, &len);

    write_file(dotlock, "");
    age_file(dotlock, 400);
    mbox_set_lock_timeout(1);

    ck_assert_int_eq(deliver_to(mbox, "a@example.org", "x\n", 2, &reply), 0);
    check_file(mbox, expected, len);
    ck_assert_int_eq(access(dotlock, F_OK), -1);
    snprintf(expected_notice, sizeof expected_notice,
             "removed stale dotlock %s, 40", dotlock);
    ck_assert_msg(strncmp(reply.notice, expected_notice,
                          strlen(expected_notice)) == 0,
                  "notice \"%s\"", reply.notice);
    free(expected);
}
END_TEST

START_TEST(stale_lock_time_option)
{
    struct store_reply reply;
    int result;

    write_file(mbox, "keep\n");
    write_file(dotlock, "4242\n");
    age_file(dotlock, 400);
    mbox_set_lock_timeout(1);
    mbox_set_stale_lock_time(1000);

    result = deliver_to(mbox, "a@example.org", "x\n", 2, &reply);
    mbox_set_stale_lock_time(300);
    check_rejected(result, &reply, "4.2.0", "dotlock");
    ck_assert_str_eq(reply.notice, "");
    check_file(mbox, "keep\n", 5);
    ck_assert_int_eq(access(dotlock, F_OK), 0);
}
END_TEST

/*
 * Writes the dotlock that a delivery killed part way leaves: the pid,
 * the record line and the first bytes of its message.
 */
static void
write_record(const char *prefix, off_t offset, ino_t inode_change)
{
    struct stat st;
    FILE *f;

    ck_assert_int_eq(stat(mbox, &st), 0);
    f = fopen(dotlock, "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f, "4242\nlmtpd-append %ju %ju %jd %zu\n%s", (uintmax_t)st.st_dev,
            (uintmax_t)(st.st_ino + inode_change), (intmax_t)offset,
            strlen(prefix), prefix);
    ck_assert_int_eq(fclose(f), 0);
}

#define OLD_ENTRY "From x@example.org " FROM_DATE "\n\nold\n\n"
#define KILLED_PREFIX "From k@example.org " FROM_DATE "\n" \
                      "Return-Path: <k@example.org>\n" \
                      "Delivered-To: bob@example.com\n"

/* A killed delivery's partial message, and the mbox after it is cut. */
struct killed_case {
    const char *name;
    const char *tail;     /* what the killed delivery wrote */
    const char *prefix;   /* the prefix in its record */
    ino_t inode_change;   /* 1: the record names another file */
    const char *remaining; /* the part of tail left in the mbox */
    const char *notice;
};

static const struct killed_case killed_cases[] = {
    {"cut partial", "From k@example.org " FROM_DATE "\nReturn-Pa",
     KILLED_PREFIX, 0, "", "cut 53 bytes of a partial message"},
    {"cut whole message", KILLED_PREFIX "\nbody\n\n", KILLED_PREFIX, 0, "",
     "cut 110 bytes of a partial message"},
    {"nothing written", "", KILLED_PREFIX, 0, "", "left nothing to cut"},
    {"other content", "From z@example.org other\n", KILLED_PREFIX, 0,
     "From z@example.org other\n", "does not continue with its message"},
    {"other file", "From k@example.org ", KILLED_PREFIX, 1,
     "From k@example.org ", "left nothing to cut"},
};

START_TEST(killed_delivery_table)
{
    const struct killed_case *c = &killed_cases[_i];
    struct store_reply reply;
    size_t entry_len, expected_len;
    char *entry = expected_entry("a@example.org", "x\n", 2, &entry_len);
    char *expected, *start;

    start = malloc(strlen(OLD_ENTRY) + strlen(c->tail) + 1);
    ck_assert_ptr_nonnull(start);
    snprintf(start, strlen(OLD_ENTRY) + strlen(c->tail) + 1, "%s%s",
             OLD_ENTRY, c->tail);
    write_file(mbox, start);
    write_record(c->prefix, (off_t)strlen(OLD_ENTRY), c->inode_change);
    mbox_set_lock_timeout(1);

    ck_assert_int_eq(deliver_to(mbox, "a@example.org", "x\n", 2, &reply), 0);
    ck_assert_msg(strstr(reply.notice, c->notice) != NULL,
                  "%s: notice \"%s\"", c->name, reply.notice);
    ck_assert_msg(strstr(reply.notice, dotlock) != NULL ||
                      strstr(reply.notice, mbox) != NULL,
                  "%s: notice \"%s\" names no file", c->name, reply.notice);
    ck_assert_int_eq(access(dotlock, F_OK), -1);

    expected_len = strlen(OLD_ENTRY) + strlen(c->remaining) + entry_len;
    expected = malloc(expected_len + 1);
    ck_assert_ptr_nonnull(expected);
    snprintf(expected, expected_len + 1, "%s%s", OLD_ENTRY, c->remaining);
    memcpy(expected + expected_len - entry_len, entry, entry_len);
    check_file(mbox, expected, expected_len);
    free(expected);
    free(start);
    free(entry);
}
END_TEST

/* lmtpd dotlocks without a whole record: nothing was appended yet. */
static const char *const unrecorded_locks[] = {
    "4242\nlmtpd-lock\n",
    "4242\nlmtpd-append 1 2 3 40\nFrom k@exa",
    "4242\nlmtpd-app",
};

START_TEST(killed_before_record)
{
    static const char old[] = OLD_ENTRY "From z@example.org other\n";
    struct store_reply reply;
    size_t entry_len;
    char *entry = expected_entry("a@example.org", "x\n", 2, &entry_len);
    char *expected = malloc(sizeof old + entry_len);

    ck_assert_ptr_nonnull(expected);
    write_file(mbox, old);
    write_file(dotlock, unrecorded_locks[_i]);
    mbox_set_lock_timeout(1);

    ck_assert_int_eq(deliver_to(mbox, "a@example.org", "x\n", 2, &reply), 0);
    ck_assert_msg(strstr(reply.notice, "left nothing to cut") != NULL,
                  "notice \"%s\"", reply.notice);
    ck_assert_int_eq(access(dotlock, F_OK), -1);
    memcpy(expected, old, sizeof old - 1);
    memcpy(expected + sizeof old - 1, entry, entry_len);
    check_file(mbox, expected, sizeof old - 1 + entry_len);
    free(expected);
    free(entry);
}
END_TEST

/*
 * A dotlock with a second link is never taken over and written to, even
 * with the content of an lmtpd dotlock: it is rejected as a planted link.
 */
START_TEST(linked_dotlock_not_taken)
{
    static const char content[] = "4242\nlmtpd-lock\n";
    char other[sizeof base + 16];
    struct store_reply reply;
    int result;

    snprintf(other, sizeof other, "%s/other", base);
    write_file(mbox, "keep\n");
    write_file(other, content);
    ck_assert_int_eq(link(other, dotlock), 0);
    mbox_set_lock_timeout(1);

    result = deliver_to(mbox, "a@example.org", "x\n", 2, &reply);
    check_rejected(result, &reply, "4.3.0", "(2 links)");
    check_file(other, content, strlen(content));
    check_file(mbox, "keep\n", 5);
}
END_TEST

/* A dotlock with a record is a live delivery's while it is locked. */
START_TEST(held_record_busy)
{
    static const char partial[] = OLD_ENTRY "From k@example.org ";
    struct store_reply reply;
    int release, status, result;
    pid_t holder;

    write_file(mbox, partial);
    write_record(KILLED_PREFIX, (off_t)strlen(OLD_ENTRY), 0);
    holder = start_lock_holder(dotlock, &release);
    mbox_set_lock_timeout(1);

    result = deliver_to(mbox, "a@example.org", "x\n", 2, &reply);
    close(release);
    ck_assert_int_eq(waitpid(holder, &status, 0), holder);
    check_rejected(result, &reply, "4.2.0", "dotlock");
    ck_assert_str_eq(reply.notice, "");
    check_file(mbox, partial, strlen(partial));
    ck_assert_int_eq(access(dotlock, F_OK), 0);

    /* Once its holder is gone, the next delivery cuts the partial. */
    ck_assert_int_eq(deliver_to(mbox, "a@example.org", "x\n", 2, &reply), 0);
    ck_assert_msg(strstr(reply.notice, "cut 19 bytes") != NULL,
                  "notice \"%s\"", reply.notice);
}
END_TEST

/*
 * A link planted at the dotlock path is rejected at once with 4.3.0, not
 * waited for as a lock, and neither it nor its target is changed.
 */
START_TEST(reject_dotlock_symlink)
{
    char target[sizeof base + 16];
    struct store_reply reply;
    int result;

    write_file(mbox, "keep\n");
    snprintf(target, sizeof target, "%s/target", base);
    write_file(target, "other\n");
    ck_assert_int_eq(symlink(target, dotlock), 0);

    result = deliver_to(mbox, "a@example.org", "x\n", 2, &reply);
    check_rejected(result, &reply, "4.3.0",
                   "bob.lock: symbolic link, not followed");
    check_file(mbox, "keep\n", 5);
    check_file(target, "other\n", 6);
    ck_assert_int_eq(access(dotlock, F_OK), 0);
}
END_TEST

START_TEST(reject_dotlock_dangling_symlink)
{
    char target[sizeof base + 16];
    struct store_reply reply;
    int result;

    write_file(mbox, "keep\n");
    snprintf(target, sizeof target, "%s/target", base);
    ck_assert_int_eq(symlink(target, dotlock), 0);

    result = deliver_to(mbox, "a@example.org", "x\n", 2, &reply);
    check_rejected(result, &reply, "4.3.0",
                   "bob.lock: symbolic link, not followed");
    check_file(mbox, "keep\n", 5);
    ck_assert_int_eq(access(target, F_OK), -1);
}
END_TEST

START_TEST(reject_dotlock_hard_link)
{
    char other[sizeof base + 16];
    struct store_reply reply;
    int result;

    write_file(mbox, "keep\n");
    snprintf(other, sizeof other, "%s/other", base);
    write_file(other, "other\n");
    ck_assert_int_eq(link(other, dotlock), 0);

    result = deliver_to(mbox, "a@example.org", "x\n", 2, &reply);
    check_rejected(result, &reply, "4.3.0", "bob.lock: not a regular file "
                   "with one link (2 links)");
    check_file(mbox, "keep\n", 5);
    check_file(other, "other\n", 6);
    ck_assert_int_eq(access(dotlock, F_OK), 0);
}
END_TEST

/*
 * A file size limit makes a write fail with EFBIG part way through the
 * message.  The delivery runs in a child that ignores SIGXFSZ and sends
 * the reply back through a pipe.
 */
START_TEST(rollback_on_write_error)
{
    static const char old[] = "From x@example.org " FROM_DATE "\n"
                              "Subject: old\n\nold message\n\n";
    size_t body_len = 3 * READ_SIZE;
    char *body = malloc(body_len);
    struct store_reply reply;
    int channel[2], status, spool;
    pid_t pid;

    ck_assert_ptr_nonnull(body);
    memset(body, 'y', body_len);
    spool = make_spool(body, body_len);
    write_file(mbox, old);
    ck_assert_int_eq(pipe(channel), 0);

    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        struct rlimit limit = {sizeof old + 100, sizeof old + 100};

        signal(SIGXFSZ, SIG_IGN);
        setrlimit(RLIMIT_FSIZE, &limit);
        memset(&reply, 0, sizeof reply);
        mbox_deliver(mbox, "a@example.org", ARRIVAL, header, strlen(header),
                     spool, (off_t)body_len, &reply);
        free(body);
        _exit(write(channel[1], &reply, sizeof reply) == sizeof reply ? 0 : 1);
    }
    close(channel[1]);
    ck_assert_int_eq(read(channel[0], &reply, sizeof reply),
                     (ssize_t)sizeof reply);
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "child exit status %d", status);
    close(channel[0]);

    ck_assert_int_eq(reply.code, 552);
    ck_assert_str_eq(reply.status, "5.3.4");
    ck_assert_msg(strstr(reply.detail, "File too large") != NULL,
                  "detail \"%s\"", reply.detail);
    check_file(mbox, old, strlen(old));
    ck_assert_int_eq(access(dotlock, F_OK), -1);
    close(spool);
    free(body);
}
END_TEST

START_TEST(rollback_on_short_spool)
{
    static const char old[] = "From x@example.org " FROM_DATE "\n\nold\n\n";
    struct store_reply reply;
    int spool = make_spool("short\n", 6);
    int result;

    write_file(mbox, old);
    result = mbox_deliver(mbox, "a@example.org", ARRIVAL, header,
                          strlen(header), spool, 600, &reply);
    check_rejected(result, &reply, "4.3.0", "spool ended");
    check_file(mbox, old, strlen(old));
    close(spool);
}
END_TEST

static Suite *
mbox_suite(void)
{
    Suite *suite = suite_create("mbox");
    TCase *format = tcase_create("format");
    TCase *checks = tcase_create("checks");
    TCase *locks = tcase_create("locks");

    tcase_add_checked_fixture(format, make_base, remove_base);
    tcase_add_test(format, deliver_creates_mbox);
    tcase_add_test(format, deliver_null_sender);
    tcase_add_test(format, deliver_sender_with_space);
    tcase_add_loop_test(format, deliver_quoting_table, 0,
                        sizeof quote_cases / sizeof quote_cases[0]);
    tcase_add_test(format, deliver_quotes_header_block);
    tcase_add_loop_test(format, deliver_quoting_buffer_boundary, 0,
                        sizeof boundary_cases / sizeof boundary_cases[0]);
    tcase_add_test(format, deliver_body_without_newline);
    tcase_add_test(format, deliver_twice_appends);
    tcase_add_test(format, deliver_large_body);
    suite_add_tcase(suite, format);

    tcase_add_checked_fixture(checks, make_base, remove_base);
    tcase_add_test(checks, reject_symlink);
    tcase_add_test(checks, reject_dangling_symlink);
    tcase_add_test(checks, reject_hard_link);
    tcase_add_test(checks, reject_other_owner);
    tcase_add_test(checks, reject_fifo);
    tcase_add_test(checks, reject_folder_missing);
    tcase_add_test(checks, rollback_on_write_error);
    tcase_add_test(checks, rollback_on_short_spool);
    suite_add_tcase(suite, checks);

    tcase_add_checked_fixture(locks, make_base, remove_base);
    tcase_add_test(locks, busy_fcntl_lock);
    tcase_add_test(locks, busy_dotlock);
    tcase_add_test(locks, stale_dotlock_removed);
    tcase_add_test(locks, stale_lock_time_option);
    tcase_add_loop_test(locks, killed_delivery_table, 0,
                        sizeof killed_cases / sizeof killed_cases[0]);
    tcase_add_loop_test(locks, killed_before_record, 0,
                        sizeof unrecorded_locks / sizeof unrecorded_locks[0]);
    tcase_add_test(locks, held_record_busy);
    tcase_add_test(locks, linked_dotlock_not_taken);
    tcase_add_test(locks, reject_dotlock_symlink);
    tcase_add_test(locks, reject_dotlock_dangling_symlink);
    tcase_add_test(locks, reject_dotlock_hard_link);
    suite_add_tcase(suite, locks);
    return suite;
}

int
main(void)
{
    SRunner *runner = srunner_create(mbox_suite());
    int failed;

    srunner_run_all(runner, CK_NORMAL);
    failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
