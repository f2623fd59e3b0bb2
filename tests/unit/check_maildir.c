/*
 * check_maildir.c: unit tests for Maildir delivery in store/maildir.c,
 * run against real directories under /tmp.
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <regex.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "store/store.h"

static const char header[] = "Return-Path: <alice@example.org>\n"
                             "Delivered-To: bob@example.com\n";
static const char body[] = "Subject: test\n\nHello, Bob.\n";

#define BASE_TEMPLATE "/tmp/check_maildir.XXXXXX"

static char base[] = BASE_TEMPLATE;
static char maildir[sizeof base + 16];

static void
make_base(void)
{
    /* Without CK_FORK, one process runs every test. */
    memcpy(base, BASE_TEMPLATE, sizeof base);
    ck_assert_ptr_nonnull(mkdtemp(base));
    snprintf(maildir, sizeof maildir, "%s/Maildir/", base);
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

/* Returns "<maildir><sub>" in a static buffer. */
static const char *
sub_path(const char *sub)
{
    static char path[2][512];
    static int next;

    next = !next;
    snprintf(path[next], sizeof path[next], "%s%s", maildir, sub);
    return path[next];
}

/*
 * Makes a spool file in folder with the given content, its file offset
 * moved away from 0 so the tests can see that delivery leaves it alone.
 */
static int
make_spool_in(const char *folder, const char *content, size_t len)
{
    char path[256];
    int fd;

    snprintf(path, sizeof path, "%s/spool.XXXXXX", folder);
    fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(unlink(path), 0);
    ck_assert_int_eq(write(fd, content, len), (ssize_t)len);
    ck_assert_int_eq(lseek(fd, 3, SEEK_SET), 3);
    return fd;
}

static int
make_spool(const char *content, size_t len)
{
    return make_spool_in(base, content, len);
}

/* Reads a whole file into a malloc()ed buffer. */
static char *
read_file(const char *path, size_t *len)
{
    struct stat st;
    char *data;
    int fd = open(path, O_RDONLY);

    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(fstat(fd, &st), 0);
    data = malloc((size_t)st.st_size + 1);
    ck_assert_ptr_nonnull(data);
    ck_assert_int_eq(read(fd, data, (size_t)st.st_size), st.st_size);
    close(fd);
    *len = (size_t)st.st_size;
    return data;
}

/* Counts the entries of a folder; the last name goes into name. */
static int
count_entries(const char *path, char *name, size_t size)
{
    struct dirent *entry;
    DIR *dir = opendir(path);
    int count = 0;

    ck_assert_msg(dir != NULL, "opendir %s: %s", path, strerror(errno));
    while ((entry = readdir(dir)) != NULL) {
        if (strcmp(entry->d_name, ".") == 0 || strcmp(entry->d_name, "..") == 0)
            continue;
        count++;
        if (name != NULL)
            snprintf(name, size, "%s", entry->d_name);
    }
    closedir(dir);
    return count;
}

/* Checks that new/NAME contains exactly header + content. */
static void
check_message(const char *name, const char *content, size_t len)
{
    char path[1024];
    char size_tag[32];
    struct stat st;
    size_t file_len;
    char *data;

    snprintf(path, sizeof path, "%snew/%s", maildir, name);
    ck_assert_int_eq(lstat(path, &st), 0);
    ck_assert_msg(S_ISREG(st.st_mode), "%s is not a regular file", path);
    ck_assert_uint_eq(st.st_mode & 07777, 0600);
    ck_assert_int_eq(st.st_nlink, 1);

    snprintf(size_tag, sizeof size_tag, ",S=%lld", (long long)st.st_size);
    ck_assert_msg(strstr(name, size_tag) != NULL, "name %s lacks %s", name,
                  size_tag);
    ck_assert_uint_eq((size_t)st.st_size, strlen(header) + len);

    data = read_file(path, &file_len);
    ck_assert_int_eq(memcmp(data, header, strlen(header)), 0);
    ck_assert_int_eq(memcmp(data + strlen(header), content, len), 0);
    free(data);
}

static void
check_mode(const char *path, unsigned mode)
{
    struct stat st;

    ck_assert_msg(lstat(path, &st) == 0, "lstat %s: %s", path, strerror(errno));
    ck_assert_msg(S_ISDIR(st.st_mode), "%s is not a folder", path);
    ck_assert_uint_eq(st.st_mode & 07777, mode);
}

START_TEST(deliver_creates_maildir)
{
    struct store_reply reply;
    char name[512];
    int spool = make_spool(body, strlen(body));

    ck_assert_int_eq(maildir_deliver(maildir, header, strlen(header), spool,
                                     (off_t)strlen(body), &reply),
                     0);
    ck_assert_int_eq(reply.code, 250);
    ck_assert_str_eq(reply.status, "2.0.0");
    ck_assert_str_eq(reply.text, "delivered");

    check_mode(maildir, 0700);
    check_mode(sub_path("tmp"), 0700);
    check_mode(sub_path("new"), 0700);
    check_mode(sub_path("cur"), 0700);
    ck_assert_int_eq(count_entries(sub_path("new"), name, sizeof name), 1);
    ck_assert_int_eq(count_entries(sub_path("tmp"), NULL, 0), 0);
    ck_assert_int_eq(count_entries(sub_path("cur"), NULL, 0), 0);
    check_message(name, body, strlen(body));
    ck_assert_msg(strstr(reply.detail, name) != NULL, "detail \"%s\"",
                  reply.detail);

    /* The spool's file offset is where the test left it. */
    ck_assert_int_eq(lseek(spool, 0, SEEK_CUR), 3);
    close(spool);
}
END_TEST

START_TEST(deliver_name_format)
{
    struct store_reply reply;
    char name[512];
    regex_t pattern;
    int spool = make_spool(body, strlen(body));

    ck_assert_int_eq(maildir_deliver(maildir, header, strlen(header), spool,
                                     (off_t)strlen(body), &reply),
                     0);
    ck_assert_int_eq(count_entries(sub_path("new"), name, sizeof name), 1);

    /* <seconds>.M<microseconds>P<pid>Q<count>.<host>,S=<size> */
    ck_assert_int_eq(regcomp(&pattern,
                             "^[0-9]+\\.M[0-9]{6}P[0-9]+Q[0-9]+\\.[^/:]+"
                             ",S=[0-9]+$",
                             REG_EXTENDED | REG_NOSUB),
                     0);
    ck_assert_msg(regexec(&pattern, name, 0, NULL, 0) == 0, "name %s", name);
    regfree(&pattern);
    close(spool);
}
END_TEST

/*
 * '/' and ':' in the host name, set in a child's own UTS namespace, come
 * out as \057 and \072.  The child exits with 77 where it may not
 * create the namespace.
 */
START_TEST(deliver_escapes_host_name)
{
    static const char host[] = "mx/a:b";
    struct store_reply reply;
    char name[512];
    int status;
    int spool = make_spool(body, strlen(body));
    pid_t pid = fork();

    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        if (unshare(CLONE_NEWUTS) == -1 ||
            sethostname(host, strlen(host)) == -1)
            _exit(77);
        _exit(maildir_deliver(maildir, header, strlen(header), spool,
                              (off_t)strlen(body), &reply) == 0
                  ? 0
                  : 1);
    }
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status));
    if (WEXITSTATUS(status) == 77) {
        fprintf(stderr, "deliver_escapes_host_name: no UTS namespace, "
                        "case skipped\n");
        close(spool);
        return;
    }
    ck_assert_int_eq(WEXITSTATUS(status), 0);
    ck_assert_int_eq(count_entries(sub_path("new"), name, sizeof name), 1);
    ck_assert_msg(strstr(name, ".mx\\057a\\072b,S=") != NULL, "name %s", name);
    close(spool);
}
END_TEST

START_TEST(deliver_twice_distinct_names)
{
    struct store_reply reply;
    char name[512];
    DIR *dir;
    struct dirent *entry;
    char names[2][512];
    int count = 0;
    int spool = make_spool(body, strlen(body));

    ck_assert_int_eq(maildir_deliver(maildir, header, strlen(header), spool,
                                     (off_t)strlen(body), &reply),
                     0);
    ck_assert_int_eq(maildir_deliver(maildir, header, strlen(header), spool,
                                     (off_t)strlen(body), &reply),
                     0);
    ck_assert_int_eq(count_entries(sub_path("new"), name, sizeof name), 2);
    ck_assert_int_eq(count_entries(sub_path("tmp"), NULL, 0), 0);

    dir = opendir(sub_path("new"));
    ck_assert_ptr_nonnull(dir);
    while ((entry = readdir(dir)) != NULL) {
        if (entry->d_name[0] == '.')
            continue;
        snprintf(names[count++], sizeof names[0], "%s", entry->d_name);
    }
    closedir(dir);
    ck_assert_str_ne(names[0], names[1]);
    check_message(names[0], body, strlen(body));
    check_message(names[1], body, strlen(body));
    close(spool);
}
END_TEST

/* Delivers a message larger than any copy buffer, spooled in folder. */
static void
check_large_message(const char *folder)
{
    struct store_reply reply;
    size_t len = 3 * 1024 * 1024 + 7;
    char name[512];
    char *content = malloc(len);
    size_t i;
    int spool;

    ck_assert_ptr_nonnull(content);
    for (i = 0; i < len; i++)
        content[i] = (char)('a' + (i * 7 + i / 97) % 26);
    spool = make_spool_in(folder, content, len);

    ck_assert_int_eq(maildir_deliver(maildir, header, strlen(header), spool,
                                     (off_t)len, &reply),
                     0);
    ck_assert_int_eq(count_entries(sub_path("new"), name, sizeof name), 1);
    check_message(name, content, len);
    ck_assert_int_eq(lseek(spool, 0, SEEK_CUR), 3);
    close(spool);
    free(content);
}

START_TEST(deliver_large_message)
{
    check_large_message(base);
}
END_TEST

/*
 * A spool on another file system, where copy_file_range() can fail with
 * EXDEV and the copy falls back to pread() and write().
 */
START_TEST(deliver_spool_other_filesystem)
{
    struct stat shm_st, base_st;

    if (stat("/dev/shm", &shm_st) == -1 || stat(base, &base_st) == -1 ||
        shm_st.st_dev == base_st.st_dev) {
        fprintf(stderr, "deliver_spool_other_filesystem: no second file "
                        "system at /dev/shm, case skipped\n");
        return;
    }
    check_large_message("/dev/shm");
}
END_TEST

START_TEST(deliver_empty_body)
{
    struct store_reply reply;
    char name[512];
    int spool = make_spool("", 0);

    ck_assert_int_eq(
        maildir_deliver(maildir, header, strlen(header), spool, 0, &reply), 0);
    ck_assert_int_eq(count_entries(sub_path("new"), name, sizeof name), 1);
    check_message(name, "", 0);
    close(spool);
}
END_TEST

START_TEST(deliver_existing_maildir)
{
    struct store_reply reply;
    char name[512];
    int spool = make_spool(body, strlen(body));

    /* Modes of folders that exist already stay as they are. */
    ck_assert_int_eq(mkdir(maildir, 0750), 0);
    ck_assert_int_eq(mkdir(sub_path("new"), 0755), 0);
    ck_assert_int_eq(maildir_deliver(maildir, header, strlen(header), spool,
                                     (off_t)strlen(body), &reply),
                     0);
    check_mode(maildir, 0750);
    check_mode(sub_path("new"), 0755);
    check_mode(sub_path("tmp"), 0700);
    ck_assert_int_eq(count_entries(sub_path("new"), name, sizeof name), 1);
    check_message(name, body, strlen(body));
    close(spool);
}
END_TEST

/* A message in memory is stored as header block and body, byte for byte. */
START_TEST(deliver_from_memory)
{
    struct store_reply reply;
    char name[512];

    ck_assert_int_eq(maildir_deliver_memory(maildir, header, strlen(header),
                                            body, strlen(body), &reply),
                     0);
    ck_assert_int_eq(reply.code, 250);
    ck_assert_int_eq(count_entries(sub_path("new"), name, sizeof name), 1);
    ck_assert_int_eq(count_entries(sub_path("tmp"), NULL, 0), 0);
    check_message(name, body, strlen(body));
}
END_TEST

/* A body larger than one write() may take still arrives whole. */
START_TEST(deliver_from_memory_large)
{
    struct store_reply reply;
    char name[512];
    size_t len = 5 * 1024 * 1024 + 3;
    char *content = malloc(len);

    ck_assert_ptr_nonnull(content);
    for (size_t i = 0; i < len; i++)
        content[i] = (char)('a' + i % 23);
    ck_assert_int_eq(maildir_deliver_memory(maildir, header, strlen(header),
                                            content, len, &reply),
                     0);
    ck_assert_int_eq(count_entries(sub_path("new"), name, sizeof name), 1);
    check_message(name, content, len);
    free(content);
}
END_TEST

/*
 * A draft holds the header block from the start, takes the message
 * through its descriptor and reaches new/ only when committed.
 */
START_TEST(draft_commit)
{
    struct maildir_draft draft;
    struct store_reply reply;
    char name[512];

    ck_assert_int_eq(maildir_draft_open(&draft, maildir, header,
                                        strlen(header), &reply), 0);
    ck_assert_int_eq(count_entries(sub_path("tmp"), NULL, 0), 1);
    ck_assert_int_eq(count_entries(sub_path("new"), NULL, 0), 0);
    ck_assert_int_eq(write(draft.fd, body, strlen(body)),
                     (ssize_t)strlen(body));
    ck_assert_int_eq(maildir_draft_commit(&draft, (off_t)strlen(body),
                                          &reply), 0);
    ck_assert_int_eq(reply.code, 250);
    ck_assert_int_eq(draft.fd, -1);
    ck_assert_int_eq(count_entries(sub_path("tmp"), NULL, 0), 0);
    ck_assert_int_eq(count_entries(sub_path("new"), name, sizeof name), 1);
    check_message(name, body, strlen(body));
    /* Discarding a committed draft changes nothing. */
    maildir_draft_discard(&draft);
    ck_assert_int_eq(count_entries(sub_path("new"), NULL, 0), 1);
}
END_TEST

/* A discarded draft leaves nothing in tmp/ or new/. */
START_TEST(draft_discard)
{
    struct maildir_draft draft;
    struct store_reply reply;

    ck_assert_int_eq(maildir_draft_open(&draft, maildir, header,
                                        strlen(header), &reply), 0);
    ck_assert_int_eq(write(draft.fd, body, strlen(body)),
                     (ssize_t)strlen(body));
    maildir_draft_discard(&draft);
    ck_assert_int_eq(draft.fd, -1);
    ck_assert_int_eq(count_entries(sub_path("tmp"), NULL, 0), 0);
    ck_assert_int_eq(count_entries(sub_path("new"), NULL, 0), 0);
}
END_TEST

/* A draft that cannot be opened leaves nothing open to discard. */
START_TEST(draft_open_fails)
{
    struct maildir_draft draft;
    struct store_reply reply;
    char missing[600];

    snprintf(missing, sizeof missing, "%s/no/such/Maildir/", base);
    ck_assert_int_eq(maildir_draft_open(&draft, missing, header,
                                        strlen(header), &reply), -1);
    ck_assert_int_eq(reply.code, 451);
    ck_assert_int_eq(draft.fd, -1);
    ck_assert_int_eq(draft.tmp_fd, -1);
    maildir_draft_discard(&draft);
}
END_TEST

/* A Maildir whose tmp/ exists but new/ does not gets new/ made. */
START_TEST(deliver_creates_missing_new)
{
    struct store_reply reply;
    char name[512];
    int spool = make_spool(body, strlen(body));

    ck_assert_int_eq(mkdir(maildir, 0700), 0);
    ck_assert_int_eq(mkdir(sub_path("tmp"), 0700), 0);
    ck_assert_int_eq(maildir_deliver(maildir, header, strlen(header), spool,
                                     (off_t)strlen(body), &reply),
                     0);
    check_mode(sub_path("new"), 0700);
    check_mode(sub_path("cur"), 0700);
    ck_assert_int_eq(count_entries(sub_path("new"), name, sizeof name), 1);
    ck_assert_int_eq(count_entries(sub_path("tmp"), NULL, 0), 0);
    check_message(name, body, strlen(body));
    close(spool);
}
END_TEST

/* Checks a 451 4.3.0 failure that left nothing in tmp/ or new/. */
static void
check_failed(int result, const struct store_reply *reply, const char *text)
{
    ck_assert_int_eq(result, -1);
    ck_assert_int_eq(reply->code, 451);
    ck_assert_str_eq(reply->status, "4.3.0");
    ck_assert_msg(strstr(reply->detail, text) != NULL,
                  "detail \"%s\" lacks \"%s\"", reply->detail, text);
}

START_TEST(fail_new_is_file)
{
    struct store_reply reply;
    struct stat st;
    int result, fd;
    int spool = make_spool(body, strlen(body));

    /*
     * Permission bits do not stop root, who runs these tests, so a
     * regular file takes the place of new/.
     */
    ck_assert_int_eq(mkdir(maildir, 0700), 0);
    fd = open(sub_path("new"), O_WRONLY | O_CREAT | O_EXCL, 0600);
    ck_assert_int_ge(fd, 0);
    close(fd);

    result = maildir_deliver(maildir, header, strlen(header), spool,
                             (off_t)strlen(body), &reply);
    check_failed(result, &reply, "Not a directory");
    ck_assert_int_eq(count_entries(sub_path("tmp"), NULL, 0), 0);
    ck_assert_int_eq(stat(sub_path("new"), &st), 0);
    ck_assert_msg(S_ISREG(st.st_mode) && st.st_size == 0,
                  "new is no longer the empty file");
    close(spool);
}
END_TEST

START_TEST(fail_new_dangling_symlink)
{
    struct store_reply reply;
    int result;
    int spool = make_spool(body, strlen(body));

    ck_assert_int_eq(mkdir(maildir, 0700), 0);
    ck_assert_int_eq(symlink("/nonexistent/lmtpd-test", sub_path("new")), 0);

    result = maildir_deliver(maildir, header, strlen(header), spool,
                             (off_t)strlen(body), &reply);
    check_failed(result, &reply, "new: symbolic link, not followed");
    ck_assert_int_eq(count_entries(sub_path("tmp"), NULL, 0), 0);
    close(spool);
}
END_TEST

START_TEST(fail_tmp_dangling_symlink)
{
    struct store_reply reply;
    int result;
    int spool = make_spool(body, strlen(body));

    ck_assert_int_eq(mkdir(maildir, 0700), 0);
    ck_assert_int_eq(symlink("/nonexistent/lmtpd-test", sub_path("tmp")), 0);

    result = maildir_deliver(maildir, header, strlen(header), spool,
                             (off_t)strlen(body), &reply);
    check_failed(result, &reply, "tmp: symbolic link, not followed");
    /* The Maildir is left as it was: no new/ was made beside the link. */
    ck_assert_int_eq(access(sub_path("new"), F_OK), -1);
    close(spool);
}
END_TEST

/*
 * Makes a complete Maildir at base/elsewhere for a planted link to point
 * to, and returns its path in a static buffer.
 */
static const char *
make_elsewhere(void)
{
    static char path[sizeof base + 32];
    static const char *const subdirs[] = {"", "/tmp", "/new", "/cur"};
    char sub[sizeof path + 8];

    snprintf(path, sizeof path, "%s/elsewhere", base);
    for (size_t i = 0; i < sizeof subdirs / sizeof subdirs[0]; i++) {
        snprintf(sub, sizeof sub, "%s%s", path, subdirs[i]);
        ck_assert_int_eq(mkdir(sub, 0700), 0);
    }
    return path;
}

/* Checks that nothing was written into base/elsewhere/SUB. */
static void
check_elsewhere_empty(const char *elsewhere, const char *sub)
{
    char path[sizeof base + 64];

    snprintf(path, sizeof path, "%s/%s", elsewhere, sub);
    ck_assert_int_eq(count_entries(path, NULL, 0), 0);
}

/* Symbolic links planted at the Maildir, tmp/ and new/ of a Maildir. */
static const char *const planted_links[] = {"", "tmp", "new"};

START_TEST(fail_link_to_directory)
{
    const char *planted = planted_links[_i];
    const char *elsewhere = make_elsewhere();
    char expected[512];
    char link_path[sizeof base + 32];
    struct store_reply reply;
    int result;
    int spool = make_spool(body, strlen(body));

    if (planted[0] == '\0') {
        snprintf(link_path, sizeof link_path, "%s", maildir);
        link_path[strlen(link_path) - 1] = '\0';
        ck_assert_int_eq(symlink(elsewhere, link_path), 0);
    } else {
        char target[sizeof base + 64];

        ck_assert_int_eq(mkdir(maildir, 0700), 0);
        snprintf(target, sizeof target, "%s/%s", elsewhere, planted);
        ck_assert_int_eq(symlink(target, sub_path(planted)), 0);
    }

    result = maildir_deliver(maildir, header, strlen(header), spool,
                             (off_t)strlen(body), &reply);
    snprintf(expected, sizeof expected, "%s%s: symbolic link, not followed",
             planted[0] == '\0' ? "" : maildir, planted[0] == '\0' ? maildir
                                                                  : planted);
    check_failed(result, &reply, expected);
    check_elsewhere_empty(elsewhere, "tmp");
    check_elsewhere_empty(elsewhere, "new");
    close(spool);
}
END_TEST

START_TEST(fail_parent_missing)
{
    struct store_reply reply;
    char dir[sizeof base + 32];
    int result;
    int spool = make_spool(body, strlen(body));

    snprintf(dir, sizeof dir, "%s/missing/Maildir/", base);
    result = maildir_deliver(dir, header, strlen(header), spool,
                             (off_t)strlen(body), &reply);
    check_failed(result, &reply, "mkdir ");
    close(spool);
}
END_TEST

START_TEST(fail_path_without_slash)
{
    struct store_reply reply;
    char dir[sizeof base + 32];
    int result;
    int spool = make_spool(body, strlen(body));

    snprintf(dir, sizeof dir, "%s/Maildir", base);
    result = maildir_deliver(dir, header, strlen(header), spool,
                             (off_t)strlen(body), &reply);
    check_failed(result, &reply, "ending in '/'");
    ck_assert_int_eq(access(dir, F_OK), -1);
    close(spool);
}
END_TEST

START_TEST(fail_spool_short)
{
    struct store_reply reply;
    int result;
    int spool = make_spool(body, strlen(body));

    /* The spool contains fewer bytes than the session counted. */
    result = maildir_deliver(maildir, header, strlen(header), spool,
                             (off_t)strlen(body) + 10, &reply);
    check_failed(result, &reply, "spool ended");
    ck_assert_int_eq(count_entries(sub_path("tmp"), NULL, 0), 0);
    ck_assert_int_eq(count_entries(sub_path("new"), NULL, 0), 0);
    close(spool);
}
END_TEST

/*
 * A file size limit makes the write fail half way with EFBIG.  The
 * delivery runs in a child, which sends the reply back through a pipe.
 */
/*
 * Delivers content of len bytes in a child under a 4 KiB file size
 * limit, from a spool file or from memory, and returns the reply.  The
 * write fails half way with EFBIG.
 */
static void
deliver_over_size_limit(const char *content, size_t len, int from_memory,
                        struct store_reply *reply)
{
    int channel[2], status;
    int spool = make_spool(content, len);
    pid_t pid;

    ck_assert_int_eq(pipe(channel), 0);
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        struct rlimit limit = {4096, 4096};

        signal(SIGXFSZ, SIG_IGN);
        setrlimit(RLIMIT_FSIZE, &limit);
        memset(reply, 0, sizeof *reply);
        if (from_memory)
            maildir_deliver_memory(maildir, header, strlen(header), content,
                                   len, reply);
        else
            maildir_deliver(maildir, header, strlen(header), spool,
                            (off_t)len, reply);
        _exit(write(channel[1], reply, sizeof *reply) == sizeof *reply ? 0
                                                                        : 1);
    }
    close(channel[1]);
    ck_assert_int_eq(read(channel[0], reply, sizeof *reply),
                     (ssize_t)sizeof *reply);
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "child exit status %d", status);
    close(channel[0]);
    close(spool);
}

START_TEST(fail_file_size_limit)
{
    struct store_reply reply;
    size_t len = 256 * 1024;
    char *content = calloc(1, len);

    ck_assert_ptr_nonnull(content);
    memset(content, 'x', len);
    for (int from_memory = 0; from_memory <= 1; from_memory++) {
        deliver_over_size_limit(content, len, from_memory, &reply);
        ck_assert_int_eq(reply.code, 552);
        ck_assert_str_eq(reply.status, "5.3.4");
        ck_assert_int_eq(count_entries(sub_path("tmp"), NULL, 0), 0);
        ck_assert_int_eq(count_entries(sub_path("new"), NULL, 0), 0);
    }
    free(content);
}
END_TEST

static Suite *
maildir_suite(void)
{
    Suite *suite = suite_create("maildir");
    TCase *deliver = tcase_create("deliver");
    TCase *fail = tcase_create("fail");

    tcase_add_checked_fixture(deliver, make_base, remove_base);
    tcase_add_test(deliver, deliver_creates_maildir);
    tcase_add_test(deliver, deliver_name_format);
    tcase_add_test(deliver, deliver_escapes_host_name);
    tcase_add_test(deliver, deliver_twice_distinct_names);
    tcase_add_test(deliver, deliver_large_message);
    tcase_add_test(deliver, deliver_spool_other_filesystem);
    tcase_add_test(deliver, deliver_empty_body);
    tcase_add_test(deliver, deliver_existing_maildir);
    tcase_add_test(deliver, deliver_creates_missing_new);
    tcase_add_test(deliver, deliver_from_memory);
    tcase_add_test(deliver, deliver_from_memory_large);
    tcase_add_test(deliver, draft_commit);
    tcase_add_test(deliver, draft_discard);
    tcase_add_test(deliver, draft_open_fails);
    suite_add_tcase(suite, deliver);

    tcase_add_checked_fixture(fail, make_base, remove_base);
    tcase_add_test(fail, fail_new_is_file);
    tcase_add_test(fail, fail_new_dangling_symlink);
    tcase_add_test(fail, fail_tmp_dangling_symlink);
    tcase_add_loop_test(fail, fail_link_to_directory, 0,
                        sizeof planted_links / sizeof planted_links[0]);
    tcase_add_test(fail, fail_parent_missing);
    tcase_add_test(fail, fail_path_without_slash);
    tcase_add_test(fail, fail_spool_short);
    tcase_add_test(fail, fail_file_size_limit);
    suite_add_tcase(suite, fail);
    return suite;
}

int
main(void)
{
    SRunner *runner = srunner_create(maildir_suite());
    int failed;

    srunner_run_all(runner, CK_NORMAL);
    failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
