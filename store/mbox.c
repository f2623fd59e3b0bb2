/*
 * mbox.c: appends a message to an mbox file in the mboxrd format, under
 * a dotlock and an fcntl() lock.  When a write fails, the file is cut
 * back to its old size, so a failed delivery leaves no partial message.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "store/store.h"

/* Size of the spool read buffer and of the mbox write buffer. */
#define BUFFER_SIZE 65536

/* Pause between two attempts to take a lock: 100 ms. */
#define LOCK_RETRY_NS 100000000L

/* Maximum wait in seconds for both locks of one delivery. */
static unsigned lock_timeout = 30;

/*
 * Buffered output to the mbox with mboxrd quoting.  At a line start the
 * writer holds back a possible ">*From " prefix as two counts, so that a
 * prefix split between two reads is still seen whole, in bounded memory.
 */
struct mbox_writer {
    int fd;
    int error;          /* errno of the first failed write, or 0 */
    int at_line_start;  /* the next input byte starts a line */
    size_t held_quotes; /* '>' bytes held back at this line start */
    size_t held_from;   /* bytes of "From " held back after them */
    char last;          /* last byte of input, '\n' before any */
    size_t len;         /* bytes in buffer */
    char buffer[BUFFER_SIZE];
};

/* Sets the maximum wait for the dotlock and the fcntl() lock together. */
void
mbox_set_lock_timeout(unsigned seconds)
{
    lock_timeout = seconds;
}

static void
writer_flush(struct mbox_writer *w)
{
    size_t done = 0;
    ssize_t written;

    while (done < w->len && w->error == 0) {
        written = write(w->fd, w->buffer + done, w->len - done);
        if (written == -1 && errno == EINTR)
            continue;
        if (written <= 0)
            w->error = written == -1 ? errno : EIO;
        else
            done += (size_t)written;
    }
    w->len = 0;
}

/* Appends bytes to the output as they are; after an error, drops them. */
static void
writer_put(struct mbox_writer *w, const char *data, size_t len)
{
    size_t room;

    while (len > 0 && w->error == 0) {
        if (w->len == sizeof w->buffer)
            writer_flush(w);
        room = sizeof w->buffer - w->len;
        if (room > len)
            room = len;
        memcpy(w->buffer + w->len, data, room);
        w->len += room;
        data += room;
        len -= room;
    }
}

/* Writes the held-back prefix unchanged, because it did not match. */
static void
writer_release(struct mbox_writer *w)
{
    for (; w->held_quotes > 0; w->held_quotes--)
        writer_put(w, ">", 1);
    writer_put(w, "From ", w->held_from);
    w->held_from = 0;
}

/*
 * Takes one byte at a line start.  mboxrd quoting: a line that matches
 * ">*From " gets one more '>' in front, so a reader can strip one '>'
 * from every such line and get the message back unchanged.
 */
static void
writer_line_start_byte(struct mbox_writer *w, char c)
{
    static const char from[] = "From ";

    if (c == '>' && w->held_from == 0) {
        w->held_quotes++;
        return;
    }
    if (c == from[w->held_from]) {
        w->held_from++;
        if (w->held_from == sizeof from - 1) {
            writer_put(w, ">", 1);
            writer_release(w);
            w->at_line_start = 0;
        }
        return;
    }

    writer_release(w);
    writer_put(w, &c, 1);
    w->at_line_start = c == '\n';
}

/* Writes message bytes with mboxrd quoting. */
static void
writer_quote(struct mbox_writer *w, const char *data, size_t len)
{
    const char *newline;
    size_t i = 0, span;

    if (len > 0)
        w->last = data[len - 1];
    while (i < len) {
        if (w->at_line_start) {
            writer_line_start_byte(w, data[i++]);
            continue;
        }
        newline = memchr(data + i, '\n', len - i);
        span = newline ? (size_t)(newline - data) + 1 - i : len - i;
        writer_put(w, data + i, span);
        i += span;
        w->at_line_start = newline != NULL;
    }
}

/*
 * Ends the message with a line end if it lacks one, then adds the blank
 * line that separates it from the next "From " line.
 */
static void
writer_end_message(struct mbox_writer *w)
{
    if (w->at_line_start)
        writer_release(w);
    if (w->last != '\n')
        writer_put(w, "\n", 1);
    writer_put(w, "\n", 1);
    writer_flush(w);
}

/*
 * Writes "From SENDER DATE", DATE in asctime() format in UTC.  A space
 * or control byte in the sender becomes '?', because readers split the
 * line at spaces.  Day and month names come from a table because
 * strftime() follows the locale.
 */
static void
writer_from_line(struct mbox_writer *w, const char *reverse_path,
                 time_t arrival)
{
    static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed",
                                    "Thu", "Fri", "Sat"};
    static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr",
                                       "May", "Jun", "Jul", "Aug",
                                       "Sep", "Oct", "Nov", "Dec"};
    const char *sender = reverse_path[0] ? reverse_path : "MAILER-DAEMON";
    char date[96];
    struct tm tm;
    size_t i;

    writer_put(w, "From ", 5);
    for (i = 0; sender[i] != '\0'; i++) {
        unsigned char c = (unsigned char)sender[i];

        writer_put(w, c <= ' ' || c == 0x7f ? "?" : &sender[i], 1);
    }

    if (gmtime_r(&arrival, &tm) == NULL)
        memset(&tm, 0, sizeof tm);
    snprintf(date, sizeof date, " %.3s %.3s %2d %02d:%02d:%02d %d\n",
             days[tm.tm_wday], months[tm.tm_mon], tm.tm_mday, tm.tm_hour,
             tm.tm_min, tm.tm_sec, tm.tm_year + 1900);
    writer_put(w, date, strlen(date));
}

/* Sleeps before the next lock attempt, or returns -1 past the deadline. */
static int
wait_for_retry(const struct timespec *deadline)
{
    struct timespec now;
    struct timespec pause = {0, LOCK_RETRY_NS};

    clock_gettime(CLOCK_MONOTONIC, &now);
    if (now.tv_sec > deadline->tv_sec ||
        (now.tv_sec == deadline->tv_sec && now.tv_nsec >= deadline->tv_nsec))
        return -1;
    nanosleep(&pause, NULL);
    return 0;
}

/*
 * Checks the file that holds the dotlock path.  A symbolic link, a
 * file of another type or a file with more links is no lock that a mail
 * reader took, but a trap: waiting for it would only delay the 451.
 * NOTE: liblockfile takes a dotlock by link() from a unique name, so for
 * an instant its lock has two links, and a delivery that looks then is
 * deferred.
 */
static int
check_dotlock(const char *lock_path, struct store_reply *reply)
{
    struct stat st;

    if (lstat(lock_path, &st) == -1)
        return errno == ENOENT ? 0 : -1;
    if (S_ISLNK(st.st_mode)) {
        store_reply_set(reply, STORE_LOCAL_ERROR,
                        "dotlock %s: symbolic link, not followed", lock_path);
        return -1;
    }
    if (!S_ISREG(st.st_mode) || st.st_nlink != 1) {
        store_reply_set(reply, STORE_LOCAL_ERROR,
                        "dotlock %s: not a regular file with one link "
                        "(%lu links)", lock_path, (unsigned long)st.st_nlink);
        return -1;
    }
    return 0;
}

/*
 * Creates the dotlock "<mbox>.lock" with O_EXCL, the lock that mail
 * readers without fcntl() locks honour.  O_EXCL never follows a link,
 * and check_dotlock() rejects one that is in the way.
 * NOTE: this needs write access to the mbox's folder.  Where a mail spool
 * lets only group "mail" create files, every delivery fails with 451.
 */
static int
take_dotlock(const char *lock_path, const struct timespec *deadline,
             struct store_reply *reply)
{
    int fd;

    for (;;) {
        fd = open(lock_path,
                  O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd >= 0) {
            close(fd);
            return 0;
        }
        if (errno != EEXIST) {
            store_reply_errno(reply, errno, "create dotlock", lock_path);
            return -1;
        }
        if (check_dotlock(lock_path, reply) == -1)
            return -1;
        /* TODO: remove a dotlock that a crashed process left behind. */
        if (wait_for_retry(deadline) == -1) {
            store_reply_set(reply, STORE_BUSY, "dotlock %s exists after %u s",
                            lock_path, lock_timeout);
            return -1;
        }
    }
}

/* Takes a write lock on the whole file, waiting up to the deadline. */
static int
take_fcntl_lock(int fd, const char *path, const struct timespec *deadline,
                struct store_reply *reply)
{
    struct flock lock;

    memset(&lock, 0, sizeof lock);
    lock.l_type = F_WRLCK;
    lock.l_whence = SEEK_SET;

    for (;;) {
        if (fcntl(fd, F_SETLK, &lock) == 0)
            return 0;
        if (errno != EACCES && errno != EAGAIN && errno != EINTR) {
            store_reply_errno(reply, errno, "lock", path);
            return -1;
        }
        if (wait_for_retry(deadline) == -1) {
            store_reply_set(reply, STORE_BUSY, "mbox %s locked after %u s",
                            path, lock_timeout);
            return -1;
        }
    }
}

/*
 * Takes the dotlock, then the fcntl() lock, within one deadline.  As
 * each wait is bounded, a program that takes them in the other order
 * can delay this one but not deadlock with it.  On failure, neither lock
 * is held.
 */
static int
lock_mbox(int fd, const char *path, const char *lock_path,
          struct store_reply *reply)
{
    struct timespec deadline;

    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += lock_timeout;

    if (take_dotlock(lock_path, &deadline, reply) == -1)
        return -1;
    if (take_fcntl_lock(fd, path, &deadline, reply) == -1) {
        unlink(lock_path);
        return -1;
    }
    return 0;
}

/*
 * Checks that the mbox is a regular file with one link and owned by the
 * effective user, so that a link planted by another user cannot direct
 * mail into a file of theirs.  The effective user is the record's uid
 * when it names one, because privilege_run() takes that uid or rejects
 * the record.
 */
static int
check_mbox(const struct stat *st, const char *path, struct store_reply *reply)
{
    if (!S_ISREG(st->st_mode)) {
        store_reply_set(reply, STORE_LOCAL_ERROR, "mbox %s: not a regular file",
                        path);
        return -1;
    }
    if (st->st_nlink != 1) {
        store_reply_set(reply, STORE_LOCAL_ERROR,
                        "mbox %s: %lu hard links, expected 1", path,
                        (unsigned long)st->st_nlink);
        return -1;
    }
    if (st->st_uid != geteuid()) {
        store_reply_set(reply, STORE_LOCAL_ERROR,
                        "mbox %s: owner uid %lu, expected %lu", path,
                        (unsigned long)st->st_uid, (unsigned long)geteuid());
        return -1;
    }
    return 0;
}

/*
 * Opens an existing mbox, or creates a new one with O_EXCL so that no
 * file planted in between is taken for it.  O_NOFOLLOW rejects a
 * symbolic link.  O_NONBLOCK keeps open() of a FIFO from waiting for a
 * reader, and has no effect on the regular file that check_mbox() wants.
 */
static int
open_or_create(const char *path, struct store_reply *reply)
{
    const int flags = O_WRONLY | O_APPEND | O_NOFOLLOW | O_NONBLOCK |
                      O_NOCTTY | O_CLOEXEC;
    struct stat st;
    int attempt, fd = -1;

    for (attempt = 0; attempt < 2 && fd == -1; attempt++) {
        fd = open(path, flags);
        if (fd == -1 && errno == ENOENT)
            fd = open(path, flags | O_CREAT | O_EXCL, 0600);
        if (fd == -1 && errno != EEXIST && errno != ENOENT)
            break;
    }
    if (fd >= 0)
        return fd;
    if (errno == ELOOP && lstat(path, &st) == 0 && S_ISLNK(st.st_mode))
        store_reply_set(reply, STORE_LOCAL_ERROR,
                        "mbox %s: symbolic link, not followed", path);
    else
        store_reply_errno(reply, errno, "open", path);
    return -1;
}

/* Opens or creates the mbox and checks it with check_mbox(). */
static int
open_mbox(const char *path, struct store_reply *reply)
{
    struct stat st;
    int fd;

    fd = open_or_create(path, reply);
    if (fd == -1)
        return -1;
    if (fstat(fd, &st) == -1) {
        store_reply_errno(reply, errno, "fstat", path);
        close(fd);
        return -1;
    }
    if (check_mbox(&st, path, reply) == -1) {
        close(fd);
        return -1;
    }
    return fd;
}

/*
 * Checks, with the locks held, that the path still names the open file:
 * a mail reader may have replaced the mbox while this process waited.
 * Stores the size to cut back to if the delivery fails.
 */
static int
check_locked_mbox(int fd, const char *path, off_t *old_size,
                  struct store_reply *reply)
{
    struct stat st, path_st;

    if (fstat(fd, &st) == -1) {
        store_reply_errno(reply, errno, "fstat", path);
        return -1;
    }
    if (lstat(path, &path_st) == -1 || path_st.st_dev != st.st_dev ||
        path_st.st_ino != st.st_ino) {
        store_reply_set(reply, STORE_LOCAL_ERROR,
                        "mbox %s: replaced while waiting for the lock", path);
        return -1;
    }
    if (check_mbox(&st, path, reply) == -1)
        return -1;
    *old_size = st.st_size;
    return 0;
}

/* Copies the spool through the writer, by explicit offsets. */
static int
copy_body(struct mbox_writer *w, int spool_fd, off_t spool_size,
          struct store_reply *reply)
{
    char buffer[BUFFER_SIZE];
    off_t offset = 0;
    ssize_t got;

    while (offset < spool_size && w->error == 0) {
        size_t len = sizeof buffer;

        if ((off_t)len > spool_size - offset)
            len = (size_t)(spool_size - offset);
        got = pread(spool_fd, buffer, len, offset);
        if (got == -1 && errno == EINTR)
            continue;
        if (got == -1) {
            store_reply_errno(reply, errno, "read", "spool");
            return -1;
        }
        if (got == 0) {
            store_reply_set(reply, STORE_LOCAL_ERROR,
                            "spool ended at byte %lld of %lld",
                            (long long)offset, (long long)spool_size);
            return -1;
        }
        writer_quote(w, buffer, (size_t)got);
        offset += got;
    }
    return 0;
}

/*
 * Cuts the mbox back to old_size after a failed append.  The reply
 * already contains the first error, and a failed cut is added to its
 * detail.
 */
static void
roll_back(int fd, const char *path, off_t old_size, struct store_reply *reply)
{
    size_t used;

    if (ftruncate(fd, old_size) == 0 && fsync(fd) == 0)
        return;
    used = strlen(reply->detail);
    snprintf(reply->detail + used, sizeof reply->detail - used,
             "; cutting %s back to %lld bytes failed: %s", path,
             (long long)old_size, strerror(errno));
}

/* Writes the From line, header block, quoted body and blank line. */
static int
append_message(int fd, const char *path, const char *reverse_path,
               time_t arrival, const char *header, size_t header_len,
               int spool_fd, off_t spool_size, off_t old_size,
               struct store_reply *reply)
{
    struct mbox_writer w;

    w.fd = fd;
    w.error = 0;
    w.at_line_start = 1;
    w.held_quotes = w.held_from = 0;
    w.last = '\n';
    w.len = 0;

    writer_from_line(&w, reverse_path, arrival);
    writer_quote(&w, header, header_len);
    if (copy_body(&w, spool_fd, spool_size, reply) == -1)
        goto fail;
    writer_end_message(&w);
    if (w.error != 0) {
        store_reply_errno(reply, w.error, "write", path);
        goto fail;
    }
    if (fsync(fd) == -1) {
        store_reply_errno(reply, errno, "fsync", path);
        goto fail;
    }
    return 0;

fail:
    roll_back(fd, path, old_size, reply);
    return -1;
}

/*
 * Appends the message to the mbox at path, creating the file if missing
 * (its folder must exist).  Returns 0 with a 250 reply once the message
 * is fsynced.  Returns -1 with the reply set and the mbox as it was,
 * unless cutting it back failed, which the reply's detail then reports.
 */
int
mbox_deliver(const char *path, const char *reverse_path, time_t arrival,
             const char *header, size_t header_len, int spool_fd,
             off_t spool_size, struct store_reply *reply)
{
    char lock_path[PATH_MAX];
    off_t old_size;
    int fd, result = -1;

    if ((size_t)snprintf(lock_path, sizeof lock_path, "%s.lock", path) >=
        sizeof lock_path) {
        store_reply_errno(reply, ENAMETOOLONG, "dotlock for", path);
        return -1;
    }
    fd = open_mbox(path, reply);
    if (fd == -1)
        return -1;
    if (lock_mbox(fd, path, lock_path, reply) == -1) {
        close(fd);
        return -1;
    }

    if (check_locked_mbox(fd, path, &old_size, reply) == 0 &&
        append_message(fd, path, reverse_path, arrival, header, header_len,
                       spool_fd, spool_size, old_size, reply) == 0) {
        store_reply_set(reply, STORE_OK, "mbox %s", path);
        result = 0;
    }

    /*
     * close() drops the fcntl() lock, then the dotlock goes.  A failed
     * close() after fsync() leaves the message in the mbox, but 451 is
     * safer than 250 for a write the system may not have finished.
     */
    if (close(fd) == -1 && result == 0) {
        store_reply_errno(reply, errno, "close", path);
        result = -1;
    }
    unlink(lock_path);
    return result;
}
