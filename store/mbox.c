/*
 * mbox.c: appends a message to an mbox file in the mboxrd format, under
 * the locks of mboxlock.c.  When a write fails, the file is cut back to
 * its old size, so a failed delivery leaves no partial message.  When the
 * process is killed, the next delivery cuts it instead.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "store/mboxlock.h"
#include "store/store.h"

/* Size of the spool read buffer and of the mbox write buffer. */
#define BUFFER_SIZE 65536

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
    int flushed;        /* some bytes have gone to the file */
    size_t len;         /* bytes in buffer */
    char buffer[BUFFER_SIZE];
};

/* One append in progress, from the locks to the result. */
struct mbox_append {
    int fd;
    const char *path;
    dev_t dev; /* the mbox that the locks are held on */
    ino_t ino;
    struct mbox_lock lock;
    off_t old_size;   /* the size to cut back to on failure */
    int keep_dotlock; /* leave the dotlock's record for the next delivery */
    const char *reverse_path;
    time_t arrival;
    const char *header;
    size_t header_len;
    int spool_fd;
    off_t spool_size;
};

static void
writer_flush(struct mbox_writer *w)
{
    size_t done = 0;
    ssize_t written;

    while (done < w->len && w->error == 0) {
        written = write(w->fd, w->buffer + done, w->len - done);
        if (written == -1 && errno == EINTR)
            continue;
        w->flushed = 1;
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
 * file planted in between is taken for it.  It is opened for reading
 * too, because an interrupted delivery's partial message is compared
 * before it is cut.  O_NOFOLLOW rejects a symbolic link.  O_NONBLOCK
 * keeps open() of a FIFO from waiting for a reader, and has no effect on
 * the regular file that check_mbox() wants.
 */
static int
open_or_create(const char *path, struct store_reply *reply)
{
    const int flags = O_RDWR | O_APPEND | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY |
                      O_CLOEXEC;
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
 */
static int
check_locked_mbox(int fd, const char *path, struct stat *st,
                  struct store_reply *reply)
{
    struct stat path_st;

    if (fstat(fd, st) == -1) {
        store_reply_errno(reply, errno, "fstat", path);
        return -1;
    }
    if (lstat(path, &path_st) == -1 || path_st.st_dev != st->st_dev ||
        path_st.st_ino != st->st_ino) {
        store_reply_set(reply, STORE_LOCAL_ERROR,
                        "mbox %s: replaced while waiting for the lock", path);
        return -1;
    }
    return check_mbox(st, path, reply);
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
 * Cuts the mbox back to its old size after a failed append.  The reply
 * already contains the first error, and a failed cut is added to its
 * detail.  Returns -1 when the cut failed.
 */
static int
roll_back(const struct mbox_append *a, struct store_reply *reply)
{
    size_t used;

    if (ftruncate(a->fd, a->old_size) == 0 && fsync(a->fd) == 0)
        return 0;
    used = strlen(reply->detail);
    snprintf(reply->detail + used, sizeof reply->detail - used,
             "; cutting %s back to %lld bytes failed: %s", a->path,
             (long long)a->old_size, strerror(errno));
    return -1;
}

/*
 * Records in the dotlock where the append starts, before its first byte
 * reaches the file.  The prefix is what the writer holds so far: the
 * From line and the header block.
 */
static int
record_start(struct mbox_append *a, const struct stat *st,
             const struct mbox_writer *w, struct store_reply *reply)
{
    if (w->flushed || w->error != 0) {
        store_reply_set(reply, STORE_LOCAL_ERROR,
                        "mbox %s: header block of %zu bytes too long", a->path,
                        a->header_len);
        return -1;
    }
    return mbox_lock_record(&a->lock, st, a->old_size, w->buffer, w->len,
                            reply);
}

/*
 * Writes the From line, header block, quoted body and blank line, and
 * fsyncs.  The locks are held and the mbox checked.
 */
static int
write_message(struct mbox_append *a, const struct stat *st,
              struct store_reply *reply)
{
    struct mbox_writer w;

    w.fd = a->fd;
    w.error = 0;
    w.at_line_start = 1;
    w.held_quotes = w.held_from = 0;
    w.last = '\n';
    w.flushed = 0;
    w.len = 0;

    writer_from_line(&w, a->reverse_path, a->arrival);
    writer_quote(&w, a->header, a->header_len);
    if (record_start(a, st, &w, reply) == -1)
        return -1;
    if (copy_body(&w, a->spool_fd, a->spool_size, reply) == -1)
        return -1;
    writer_end_message(&w);
    if (w.error != 0) {
        store_reply_errno(reply, w.error, "write", a->path);
        return -1;
    }
    if (fsync(a->fd) == -1) {
        store_reply_errno(reply, errno, "fsync", a->path);
        return -1;
    }
    return 0;
}

/*
 * Appends the message with both locks held, after cutting off what an
 * interrupted delivery left.  Returns 0 once the message is fsynced.
 * Returns -1 with the mbox cut back to its old size, or, when that cut
 * fails, with keep_dotlock set, so that the next delivery makes the cut.
 */
static int
append_locked(struct mbox_append *a, struct store_reply *reply)
{
    struct stat st;

    if (check_locked_mbox(a->fd, a->path, &st, reply) == -1)
        return -1;
    a->dev = st.st_dev;
    a->ino = st.st_ino;
    if (mbox_lock_recover(&a->lock, a->fd, a->path, &st, &a->old_size, reply) ==
        -1) {
        a->keep_dotlock = 1;
        return -1;
    }
    if (write_message(a, &st, reply) == 0)
        return 0;
    if (roll_back(a, reply) == -1)
        a->keep_dotlock = 1;
    return -1;
}

/*
 * Cuts the message off after the mbox was closed, through a new
 * descriptor.  The dotlock, still held, keeps other deliveries out.
 */
static int
reopen_and_roll_back(struct mbox_append *a, struct store_reply *reply)
{
    struct stat st;
    size_t used;
    int result = -1;

    a->fd =
        open(a->path, O_RDWR | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (a->fd >= 0 && fstat(a->fd, &st) == 0 && st.st_dev == a->dev &&
        st.st_ino == a->ino) {
        result = roll_back(a, reply);
    } else {
        used = strlen(reply->detail);
        snprintf(reply->detail + used, sizeof reply->detail - used,
                 "; reopening %s to cut it back failed", a->path);
    }
    if (a->fd >= 0)
        close(a->fd);
    a->fd = -1;
    return result;
}

/*
 * Closes the mbox, which drops its fcntl() lock, then removes the
 * dotlock.  close(2) may report a write error that fsync() did not, as
 * NFS can, and then the message is cut off.  A 250 is given only once
 * the dotlock is gone, because a dotlock left with this append's record
 * would make the next delivery cut the message off.
 */
static int
finish_append(struct mbox_append *a, int result, struct store_reply *reply)
{
    int closed = close(a->fd);

    a->fd = -1;
    if (result == 0 && closed == -1) {
        store_reply_errno(reply, errno, "close", a->path);
        result = -1;
        if (reopen_and_roll_back(a, reply) == -1)
            a->keep_dotlock = 1;
    }

    if (result == 0 && mbox_lock_remove(&a->lock) == -1) {
        store_reply_errno(reply, errno, "remove dotlock", a->lock.path);
        result = -1;
        reopen_and_roll_back(a, reply);
    } else if (result == -1 && !a->keep_dotlock) {
        mbox_lock_remove(&a->lock);
    }
    mbox_lock_release(&a->lock);
    return result;
}

/*
 * Appends the message to the mbox at path, creating the file if missing
 * (its folder must exist).  Returns 0 with a 250 reply once the message
 * is fsynced.  Returns -1 with the reply set and the mbox as it was,
 * unless cutting it back failed, which the reply's detail then reports,
 * and the next delivery then cuts.
 */
int
mbox_deliver(const char *path, const char *reverse_path, time_t arrival,
             const char *header, size_t header_len, int spool_fd,
             off_t spool_size, struct store_reply *reply)
{
    struct mbox_append a = {
        .path = path,
        .reverse_path = reverse_path,
        .arrival = arrival,
        .header = header,
        .header_len = header_len,
        .spool_fd = spool_fd,
        .spool_size = spool_size,
    };
    int result;

    reply->notice[0] = '\0';
    a.fd = open_mbox(path, reply);
    if (a.fd == -1)
        return -1;
    if (mbox_lock(&a.lock, a.fd, path, reply) == -1) {
        close(a.fd);
        return -1;
    }

    result = append_locked(&a, reply);
    if (result == 0)
        store_reply_set(reply, STORE_OK, "mbox %s", path);
    return finish_append(&a, result, reply);
}
