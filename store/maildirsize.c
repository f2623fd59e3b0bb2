/*
 * maildirsize.c: the Maildir++ "maildirsize" file that Courier and
 * Dovecot (quota backend "maildir") read and write too: parsing it,
 * deciding whether its totals can be trusted, appending a delivery to it,
 * and rebuilding it from the Maildir's folders.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "store/quota_internal.h"
#include "store/store.h"

/*
 * The Maildir++ rules for trusting maildirsize come from Courier's
 * README.maildirquota.html, "Calculating the quota for a Maildir++".  A
 * file of 5120 bytes or more is recalculated.  So is one that shows the
 * mailbox over quota if it has more than one line of counts or is at
 * least 15 minutes old.  Dovecot 2.3's quota-maildir.c reads "more than
 * one line" as lines after the limits line, and so does this file.
 */
#define MAILDIRSIZE_MAX 5120
#define MAILDIRSIZE_STALE_SECONDS (15 * 60)

/* Room for the longest limits line and one line of counts. */
#define MAILDIRSIZE_REBUILT_MAX 128

/* One recalculation: the totals and the latest mtime of new/ and cur/. */
struct scan {
    struct quota_counts usage;
    struct timespec latest;
    int recheck; /* compare mtimes with latest, count nothing */
    int changed; /* the recheck found a later mtime */
};

static void
add_saturated(unsigned long long *total, unsigned long long value)
{
    *total = value > ULLONG_MAX - *total ? ULLONG_MAX : *total + value;
}

/* Parses an optionally negative decimal number and moves past it. */
static int
parse_signed(const char **cursor, const char *end, long long *value)
{
    const char *p = *cursor;
    unsigned long long n = 0;
    int negative = p < end && *p == '-';

    p += negative;
    if (p == end || *p < '0' || *p > '9')
        return -1;
    for (; p < end && *p >= '0' && *p <= '9'; p++) {
        if (n > ((unsigned long long)LLONG_MAX - (unsigned)(*p - '0')) / 10)
            return -1;
        n = n * 10 + (unsigned)(*p - '0');
    }
    *value = negative ? -(long long)n : (long long)n;
    *cursor = p;
    return 0;
}

/*
 * Parses the limits line, a comma-separated list of "<n>S" (bytes) and
 * "<n>C" (messages) in any order.  A missing item is 0, no limit.
 */
static int
parse_limits(const char *line, const char *end, struct quota_counts *limits)
{
    long long value;

    limits->bytes = limits->messages = 0;
    for (;;) {
        if (parse_signed(&line, end, &value) == -1 || value < 0 ||
            line == end)
            return -1;
        if (*line == 'S')
            limits->bytes = (unsigned long long)value;
        else if (*line == 'C')
            limits->messages = (unsigned long long)value;
        else
            return -1;
        if (++line == end)
            return 0;
        if (*line++ != ',')
            return -1;
    }
}

static const char *
skip_blanks(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    return p;
}

/*
 * Parses a line of counts, "<bytes> <messages>", either negative for a
 * removal.  Courier pads the line with spaces, so blanks may surround
 * both numbers.
 */
static int
parse_counts(const char *line, const char *end, long long *bytes,
             long long *messages)
{
    const char *p = skip_blanks(line, end);

    if (parse_signed(&p, end, bytes) == -1 || p == end ||
        (*p != ' ' && *p != '\t'))
        return -1;
    p = skip_blanks(p, end);
    if (parse_signed(&p, end, messages) == -1)
        return -1;
    return skip_blanks(p, end) == end ? 0 : -1;
}

/*
 * Parses the text of a maildirsize file: the limits line, then lines of
 * counts, each ended by LF.  Stores the limits, the sums of the counts
 * in usage and the number of lines of counts in deltas.  Returns -1 when
 * the text is corrupt: a NUL byte, a last line without LF, a malformed
 * line, no line of counts, or a sum that is negative or overflows.
 */
int
quota_parse_maildirsize(const char *text, size_t len,
                        struct quota_counts *limits,
                        struct quota_counts *usage, size_t *deltas)
{
    const char *end = text + len;
    const char *line, *newline;
    long long bytes = 0, messages = 0, line_bytes, line_messages;

    if (len == 0 || text[len - 1] != '\n' || memchr(text, '\0', len) != NULL)
        return -1;
    newline = memchr(text, '\n', len);
    if (parse_limits(text, newline, limits) == -1)
        return -1;

    *deltas = 0;
    for (line = newline + 1; line < end; line = newline + 1) {
        newline = memchr(line, '\n', (size_t)(end - line));
        if (parse_counts(line, newline, &line_bytes, &line_messages) == -1 ||
            __builtin_add_overflow(bytes, line_bytes, &bytes) ||
            __builtin_add_overflow(messages, line_messages, &messages))
            return -1;
        (*deltas)++;
    }
    if (*deltas == 0 || bytes < 0 || messages < 0)
        return -1;
    usage->bytes = (unsigned long long)bytes;
    usage->messages = (unsigned long long)messages;
    return 0;
}

/* Writes "<maildir>maildirsize" into path. */
static int
maildirsize_path(char *path, size_t size, const char *maildir)
{
    int len = snprintf(path, size, "%smaildirsize", maildir);

    if (len < 0 || (size_t)len >= size) {
        errno = ENAMETOOLONG;
        return -1;
    }
    return 0;
}

/* Reads up to size bytes, going on after short reads and EINTR. */
static ssize_t
read_up_to(int fd, char *buffer, size_t size)
{
    size_t used = 0;
    ssize_t got;

    while (used < size) {
        got = read(fd, buffer + used, size - used);
        if (got == -1 && errno == EINTR)
            continue;
        if (got == -1)
            return -1;
        if (got == 0)
            break;
        used += (size_t)got;
    }
    return (ssize_t)used;
}

/*
 * Decides from an open maildirsize whether its totals can be used for a
 * message of size bytes, by the Maildir++ rules above.  Returns 1 with
 * usage set when they can, 0 when the file must be rebuilt, and -1 with
 * errno when it cannot be read.
 */
static int
trust_maildirsize(int fd, const struct quota_counts *limits,
                  unsigned long long size, struct quota_counts *usage)
{
    char text[MAILDIRSIZE_MAX];
    struct quota_counts file_limits;
    struct stat st;
    size_t deltas;
    ssize_t len;

    if (fstat(fd, &st) == -1)
        return -1;
    if (!S_ISREG(st.st_mode) || st.st_size >= MAILDIRSIZE_MAX)
        return 0;
    len = read_up_to(fd, text, sizeof text);
    if (len == -1)
        return -1;
    if ((size_t)len == sizeof text ||
        quota_parse_maildirsize(text, (size_t)len, &file_limits, usage,
                                &deltas) == -1)
        return 0;
    if (file_limits.bytes != limits->bytes ||
        file_limits.messages != limits->messages)
        return 0;
    if (quota_exceeds(limits, usage, size) &&
        (deltas > 1 || time(NULL) - st.st_mtime >= MAILDIRSIZE_STALE_SECONDS))
        return 0;
    return 1;
}

/*
 * Opens and judges the maildirsize of a Maildir.  A missing file, and a
 * symbolic link in its place, are rebuilt.  Returns as
 * trust_maildirsize() does.
 */
static int
read_maildirsize(const char *maildir, const struct quota_counts *limits,
                 unsigned long long size, struct quota_counts *usage)
{
    char path[PATH_MAX];
    int fd, result, saved;

    if (maildirsize_path(path, sizeof path, maildir) == -1)
        return -1;
    fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd == -1)
        return errno == ENOENT || errno == ELOOP ? 0 : -1;
    result = trust_maildirsize(fd, limits, size, usage);
    saved = errno;
    close(fd);
    errno = saved;
    return result;
}

static int
is_later(const struct timespec *a, const struct timespec *b)
{
    return a->tv_sec > b->tv_sec ||
           (a->tv_sec == b->tv_sec && a->tv_nsec > b->tv_nsec);
}

/*
 * Returns the size that a message file name carries as ",S=<size>",
 * ended by ':', ',' or the end of the name, or -1 when it has none.
 */
static long long
size_from_name(const char *name)
{
    const char *p = strstr(name, ",S=");
    const char *end;
    long long size;

    if (p == NULL)
        return -1;
    p += 3;
    end = p + strlen(p);
    if (parse_signed(&p, end, &size) == -1 || size < 0)
        return -1;
    return *p == '\0' || *p == ':' || *p == ',' ? size : -1;
}

/* Adds the size of one message file, by its name or else by lstat(). */
static int
count_message(int dir_fd, const char *name, struct quota_counts *usage)
{
    long long size = size_from_name(name);
    struct stat st;

    if (size < 0) {
        if (fstatat(dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) == -1)
            return errno == ENOENT ? 0 : -1;
        if (!S_ISREG(st.st_mode))
            return 0;
        size = st.st_size;
    }
    add_saturated(&usage->bytes, (unsigned long long)size);
    add_saturated(&usage->messages, 1);
    return 0;
}

/* Closes a directory stream, keeping errno for the caller. */
static void
close_dir(DIR *dir)
{
    int saved = errno;

    closedir(dir);
    errno = saved;
}

/* Counts the messages in the folder open at fd, which this closes. */
static int
count_messages(int fd, struct scan *scan)
{
    struct dirent *entry;
    DIR *dir = fdopendir(fd);
    int result = 0;

    if (dir == NULL) {
        close(fd);
        return -1;
    }
    while (result == 0) {
        errno = 0;
        entry = readdir(dir);
        if (entry == NULL) {
            result = errno != 0 ? -1 : 0;
            break;
        }
        if (entry->d_name[0] != '.')
            result = count_message(dirfd(dir), entry->d_name, &scan->usage);
    }
    close_dir(dir);
    return result;
}

/*
 * Scans the new/ or cur/ folder name below parent_fd: records its mtime,
 * then counts its messages unless this is the recheck.  A missing folder
 * counts as empty.
 */
static int
scan_messages(int parent_fd, const char *name, struct scan *scan)
{
    int fd = openat(parent_fd, name,
                    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    struct stat st;

    if (fd == -1)
        return errno == ENOENT || errno == ENOTDIR || errno == ELOOP ? 0 : -1;
    if (fstat(fd, &st) == -1) {
        close(fd);
        return -1;
    }
    if (scan->recheck) {
        scan->changed |= is_later(&st.st_mtim, &scan->latest);
        close(fd);
        return 0;
    }
    if (is_later(&st.st_mtim, &scan->latest))
        scan->latest = st.st_mtim;
    return count_messages(fd, scan);
}

/* Scans new/ and cur/ of the inbox or folder open at fd. */
static int
scan_folder(int fd, struct scan *scan)
{
    if (scan_messages(fd, "new", scan) == -1 ||
        scan_messages(fd, "cur", scan) == -1)
        return -1;
    return 0;
}

/* Scans the Maildir++ folder name (".name") below the inbox. */
static int
scan_subfolder(int inbox_fd, const char *name, struct scan *scan)
{
    int fd, result;

    if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
        return 0;
    fd = openat(inbox_fd, name,
                O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd == -1)
        return errno == ENOENT || errno == ENOTDIR || errno == ELOOP ? 0 : -1;
    result = scan_folder(fd, scan);
    close(fd);
    return result;
}

/*
 * Scans the inbox and every Maildir++ folder, Trash included as Dovecot
 * counts it by default, though Courier's default build leaves it out.
 * A missing Maildir counts as empty.  Returns -1 with errno on failure.
 */
static int
scan_maildir(const char *maildir, struct scan *scan)
{
    struct dirent *entry;
    DIR *dir;
    int fd = open(maildir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int result;

    if (fd == -1)
        return errno == ENOENT ? 0 : -1;
    if (scan_folder(fd, scan) == -1 || (dir = fdopendir(fd)) == NULL) {
        close(fd);
        return -1;
    }
    result = 0;
    while (result == 0) {
        errno = 0;
        entry = readdir(dir);
        if (entry == NULL) {
            result = errno != 0 ? -1 : 0;
            break;
        }
        if (entry->d_name[0] == '.')
            result = scan_subfolder(dirfd(dir), entry->d_name, scan);
    }
    close_dir(dir);
    return result;
}

/*
 * Formats a rebuilt maildirsize.  The limits line is written as Dovecot
 * 2.3 writes it, "<bytes>S,<messages>C" without the parts that are 0,
 * and "0S" when both are, so that Dovecot finds its own limits there.
 */
static size_t
format_maildirsize(char *text, size_t size, const struct quota_counts *limits,
                   const struct quota_counts *usage)
{
    int len;

    if (limits->messages == 0)
        len = snprintf(text, size, "%lluS", limits->bytes);
    else if (limits->bytes == 0)
        len = snprintf(text, size, "%lluC", limits->messages);
    else
        len = snprintf(text, size, "%lluS,%lluC", limits->bytes,
                       limits->messages);
    len += snprintf(text + len, size - (size_t)len, "\n%llu %llu\n",
                    usage->bytes, usage->messages);
    return (size_t)len;
}

/*
 * Writes a new maildirsize into tmp/ and renames it over the old one, as
 * the Maildir++ rules ask, so that a reader sees the old file or the new
 * one whole.  It is not fsynced: after a crash an empty or missing file
 * is rebuilt again.
 */
static int
write_maildirsize(const char *maildir, const struct quota_counts *limits,
                  const struct quota_counts *usage)
{
    char text[MAILDIRSIZE_REBUILT_MAX];
    char path[PATH_MAX], tmp_path[PATH_MAX];
    size_t len = format_maildirsize(text, sizeof text, limits, usage);
    struct timespec now;
    int fd, written;

    clock_gettime(CLOCK_REALTIME, &now);
    written = snprintf(tmp_path, sizeof tmp_path,
                       "%stmp/%lld.M%06ldP%ld.maildirsize", maildir,
                       (long long)now.tv_sec, now.tv_nsec / 1000,
                       (long)getpid());
    if (written < 0 || (size_t)written >= sizeof tmp_path ||
        maildirsize_path(path, sizeof path, maildir) == -1)
        return -1;

    fd = open(tmp_path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
              0600);
    if (fd == -1)
        return -1;
    if (write(fd, text, len) != (ssize_t)len) {
        close(fd);
        unlink(tmp_path);
        return -1;
    }
    if (close(fd) == -1 || rename(tmp_path, path) == -1) {
        unlink(tmp_path);
        return -1;
    }
    return 0;
}

/*
 * Recalculates a Maildir's usage from the names of the files in new/ and
 * cur/ of the inbox and of each folder, and writes a new maildirsize.
 * A delivery during the scan may be counted twice or not at all.  So if
 * a new/ or cur/ changed meanwhile, the Maildir++ rules have the new
 * file removed, and the next check recalculates again.  Returns 0 with
 * usage set, also when maildirsize could not be written (tmp/ may not
 * exist yet), or -1 with the reply set when a folder cannot be read.
 */
int
quota_maildir_rebuild(const char *maildir, const struct quota_counts *limits,
                      struct quota_counts *usage, struct store_reply *reply)
{
    char path[PATH_MAX];
    struct scan scan;

    memset(&scan, 0, sizeof scan);
    if (scan_maildir(maildir, &scan) == -1) {
        store_reply_errno(reply, errno, "scan maildir", maildir);
        return -1;
    }
    *usage = scan.usage;
    if (write_maildirsize(maildir, limits, usage) == -1)
        return 0;

    scan.recheck = 1;
    if ((scan_maildir(maildir, &scan) == -1 || scan.changed) &&
        maildirsize_path(path, sizeof path, maildir) == 0)
        unlink(path);
    return 0;
}

/*
 * Finds the usage of a Maildir, ending in '/', for a new message of size
 * bytes: from its maildirsize when the Maildir++ rules let it be trusted
 * and its limits line matches limits, otherwise by quota_maildir_rebuild().
 * Returns 0 with usage set, or -1 with the reply set.
 */
int
quota_maildir_usage(const char *maildir, const struct quota_counts *limits,
                    unsigned long long size, struct quota_counts *usage,
                    struct store_reply *reply)
{
    int trusted = read_maildirsize(maildir, limits, size, usage);

    if (trusted == 1)
        return 0;
    if (trusted == -1) {
        store_reply_errno(reply, errno, "read maildirsize in", maildir);
        return -1;
    }
    return quota_maildir_rebuild(maildir, limits, usage, reply);
}

/*
 * Adds one message of size bytes to the maildirsize of a Maildir with a
 * single O_APPEND write of "<size> 1", as Maildir++ writers do after the
 * message is in new/.  Does nothing when the file does not exist.  When
 * the write fails, removes the file so that no reader trusts the stale
 * total.  Returns 0, or -1 with errno.
 */
int
quota_maildir_record(const char *maildir, unsigned long long size)
{
    char path[PATH_MAX];
    char line[32];
    int fd, len, saved;

    if (maildirsize_path(path, sizeof path, maildir) == -1)
        return -1;
    fd = open(path, O_WRONLY | O_APPEND | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd == -1)
        return errno == ENOENT ? 0 : -1;

    len = snprintf(line, sizeof line, "%llu 1\n", size);
    if (write(fd, line, (size_t)len) == len) {
        if (close(fd) == 0)
            return 0;
        saved = errno;
    } else {
        saved = errno;
        close(fd);
    }
    unlink(path);
    errno = saved;
    return -1;
}
