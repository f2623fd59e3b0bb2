/*
 * mboxlock.c: the two locks of an mbox append, a dotlock and an fcntl()
 * lock, taken within one bounded wait.  The dotlock also records where
 * the append starts, so that the next delivery can cut off the partial
 * message of a delivery that was killed part way.
 *
 * The holder of a dotlock keeps an fcntl() lock on the dotlock file
 * itself, which the kernel drops when the process dies.  So an lmtpd
 * dotlock that no process has locked was left by an interrupted
 * delivery: one that was killed, or that failed and could not cut its
 * message off.  The next delivery takes it over at once instead of
 * waiting for it to turn stale.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "store/mboxlock.h"

/* Pause between two attempts to take a lock: 100 ms. */
#define LOCK_RETRY_NS 100000000L

/*
 * Second lines of an lmtpd dotlock: before the append starts, and with
 * the record of the append.  Their common start marks the dotlock as
 * lmtpd's.
 */
#define MARK "lmtpd-"
#define LOCK_TAG MARK "lock"
#define RECORD_TAG MARK "append"

/* Room for the two lines of a record before its prefix. */
#define RECORD_HEAD_MAX 160

/* Maximum wait in seconds for both locks of one delivery. */
static unsigned lock_timeout = 30;

/* Age in seconds at which another program's dotlock is stale. */
static unsigned stale_lock_time = 300;

/* Kinds of dotlock content, as read_dotlock() finds them. */
enum dotlock_content {
    CONTENT_OTHER, /* empty, or another program's */
    CONTENT_LMTPD, /* lmtpd's, without a complete record */
    CONTENT_RECORD /* lmtpd's, with the record of an append */
};

/* State of the dotlock's path, as inspect_dotlock() finds it. */
enum dotlock_state {
    DOTLOCK_ERROR = -1,
    DOTLOCK_TAKEN, /* an interrupted delivery's, now held by us */
    DOTLOCK_GONE,  /* missing, or removed as stale: create it again */
    DOTLOCK_HELD   /* another process has it: wait */
};

/* Sets the maximum wait for the dotlock and the fcntl() lock together. */
void
mbox_set_lock_timeout(unsigned seconds)
{
    lock_timeout = seconds;
}

/* Sets the age at which a dotlock of another program is removed. */
void
mbox_set_stale_lock_time(unsigned seconds)
{
    stale_lock_time = seconds;
}

static int
past_deadline(const struct timespec *deadline)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return now.tv_sec > deadline->tv_sec ||
           (now.tv_sec == deadline->tv_sec && now.tv_nsec >= deadline->tv_nsec);
}

/* Sleeps before the next lock attempt, or returns -1 past the deadline. */
static int
wait_for_retry(const struct timespec *deadline)
{
    struct timespec pause = {0, LOCK_RETRY_NS};

    if (past_deadline(deadline))
        return -1;
    nanosleep(&pause, NULL);
    return 0;
}

/* Tries once to take a write lock on the whole file. */
static int
try_fcntl_lock(int fd)
{
    struct flock lock;

    memset(&lock, 0, sizeof lock);
    lock.l_type = F_WRLCK;
    lock.l_whence = SEEK_SET;
    return fcntl(fd, F_SETLK, &lock);
}

/* Returns 1 for the errno values of a lock that another process holds. */
static int
lock_is_busy(int err)
{
    return err == EACCES || err == EAGAIN || err == EINTR;
}

/* Returns 1 when path still names the file open as fd. */
static int
is_same_file(int fd, const char *path)
{
    struct stat fd_st, path_st;

    return fstat(fd, &fd_st) == 0 && lstat(path, &path_st) == 0 &&
           fd_st.st_dev == path_st.st_dev && fd_st.st_ino == path_st.st_ino;
}

/*
 * Reads a dotlock.  lmtpd writes a line with its process id, for other
 * programs that check whether a dotlock's holder still runs, then
 * "lmtpd-lock", which an append replaces with its record:
 *     lmtpd-append <device> <inode> <offset> <prefix length>
 * followed by the prefix.  A record cut short, by a process killed while
 * it wrote it, counts as no record: that process had not started to
 * append.
 */
static enum dotlock_content
read_dotlock(int fd, struct mbox_append_record *record)
{
    char buffer[RECORD_HEAD_MAX + MBOX_RECORD_PREFIX_MAX + 1];
    uintmax_t dev, ino;
    intmax_t offset;
    size_t prefix_len, start;
    ssize_t len;
    char *line;
    int used = 0;

    len = pread(fd, buffer, sizeof buffer - 1, 0);
    if (len <= 0)
        return CONTENT_OTHER;
    buffer[len] = '\0';
    line = memchr(buffer, '\n', (size_t)len);
    if (line == NULL || strncmp(line + 1, MARK, strlen(MARK)) != 0)
        return CONTENT_OTHER;
    line++;
    if (sscanf(line, RECORD_TAG " %ju %ju %jd %zu%n", &dev, &ino, &offset,
               &prefix_len, &used) != 4 ||
        line[used] != '\n')
        return CONTENT_LMTPD;

    start = (size_t)(line + used + 1 - buffer);
    if (offset < 0 || prefix_len == 0 || prefix_len > MBOX_RECORD_PREFIX_MAX ||
        (size_t)len - start != prefix_len)
        return CONTENT_LMTPD;
    record->dev = (dev_t)dev;
    record->ino = (ino_t)ino;
    record->offset = (off_t)offset;
    record->prefix_len = prefix_len;
    memcpy(record->prefix, buffer + start, prefix_len);
    return CONTENT_RECORD;
}

/* Writes the content of a dotlock that no append has used yet. */
static int
write_lock_tag(int fd)
{
    char text[64];
    int len =
        snprintf(text, sizeof text, "%ld\n" LOCK_TAG "\n", (long)getpid());

    return pwrite(fd, text, (size_t)len, 0) == len ? 0 : -1;
}

/*
 * Creates the dotlock with O_EXCL, where the file system lacks O_TMPFILE.
 * Returns 0 when created, 1 when it exists already, and -1 on any other
 * error with the reply set.
 * NOTE: a process killed between open() and write_lock_tag() leaves an
 * empty dotlock, which looks like another program's and blocks the mbox
 * until it is stale.
 */
static int
create_dotlock_excl(struct mbox_lock *lk, const struct timespec *deadline,
                    struct store_reply *reply)
{
    int fd;

    fd = open(lk->path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
              0600);
    if (fd == -1 && errno == EEXIST)
        return 1;
    if (fd == -1) {
        store_reply_errno(reply, errno, "create dotlock", lk->path);
        return -1;
    }

    /* inspect_dotlock() in another process may hold it for a moment. */
    for (;;) {
        if (try_fcntl_lock(fd) == 0)
            break;
        if (!lock_is_busy(errno)) {
            store_reply_errno(reply, errno, "lock", lk->path);
            goto fail;
        }
        if (wait_for_retry(deadline) == -1) {
            store_reply_set(reply, STORE_BUSY, "dotlock %s locked after %u s",
                            lk->path, lock_timeout);
            goto fail;
        }
    }
    if (write_lock_tag(fd) == -1) {
        store_reply_errno(reply, errno, "write dotlock", lk->path);
        goto fail;
    }
    lk->fd = fd;
    return 0;

fail:
    unlink(lk->path);
    close(fd);
    return -1;
}

/*
 * Creates the dotlock with its content and its fcntl() lock in place from
 * the start: the file is written and locked while it has no name
 * (O_TMPFILE), then linked to the dotlock's name, which fails with
 * EEXIST when the name is taken.  So a process killed at any moment
 * leaves either no dotlock or one that the next delivery can take over.
 * Returns 0 when created, 1 when it exists already, and -1 on any other
 * error with the reply set.
 */
static int
create_dotlock(struct mbox_lock *lk, const struct timespec *deadline,
               struct store_reply *reply)
{
    char folder[PATH_MAX], fd_path[64];
    char *slash;
    int fd, err;

    snprintf(folder, sizeof folder, "%s", lk->path);
    slash = strrchr(folder, '/');
    if (slash == NULL)
        snprintf(folder, sizeof folder, ".");
    else
        slash[slash == folder ? 1 : 0] = '\0';

    fd = open(folder, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd == -1 && (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL))
        return create_dotlock_excl(lk, deadline, reply);
    if (fd == -1 || try_fcntl_lock(fd) == -1 || write_lock_tag(fd) == -1) {
        store_reply_errno(reply, errno, "create dotlock", lk->path);
        if (fd >= 0)
            close(fd);
        return -1;
    }

    /* linkat() with AT_EMPTY_PATH would need CAP_DAC_READ_SEARCH. */
    snprintf(fd_path, sizeof fd_path, "/proc/self/fd/%d", fd);
    if (linkat(AT_FDCWD, fd_path, AT_FDCWD, lk->path, AT_SYMLINK_FOLLOW) == 0) {
        lk->fd = fd;
        return 0;
    }
    err = errno;
    close(fd);
    if (err == EEXIST)
        return 1;
    /* Without /proc the unnamed file cannot be linked. */
    if (err == ENOENT && access("/proc/self/fd", F_OK) == -1)
        return create_dotlock_excl(lk, deadline, reply);
    store_reply_errno(reply, err, "create dotlock", lk->path);
    return -1;
}

/*
 * Removes the dotlock of another program once it is older than the
 * stale lock time, because its holder has most likely died.
 * NOTE: between lstat() and unlink() another process may replace the
 * stale dotlock with its own, which is then removed.  The fcntl() lock
 * on the mbox still keeps two lmtpd processes from appending at once.
 */
static enum dotlock_state
remove_if_stale(struct mbox_lock *lk, struct store_reply *reply)
{
    struct stat st;
    time_t age;

    if (lstat(lk->path, &st) == -1) {
        if (errno == ENOENT)
            return DOTLOCK_GONE;
        store_reply_errno(reply, errno, "lstat dotlock", lk->path);
        return DOTLOCK_ERROR;
    }
    age = time(NULL) - st.st_mtime;
    if (age < (time_t)stale_lock_time)
        return DOTLOCK_HELD;

    if (unlink(lk->path) == -1) {
        if (errno == ENOENT)
            return DOTLOCK_GONE;
        store_reply_errno(reply, errno, "remove stale dotlock", lk->path);
        return DOTLOCK_ERROR;
    }
    store_reply_notice(reply, "removed stale dotlock %s, %lld s old", lk->path,
                       (long long)age);
    return DOTLOCK_GONE;
}

/*
 * Looks at an existing dotlock.  An lmtpd dotlock that no process has
 * locked was left by an interrupted delivery and is taken over, with its
 * record if it has one.  Any other is waited for until it turns stale.
 */
static enum dotlock_state
inspect_dotlock(struct mbox_lock *lk, struct store_reply *reply)
{
    enum dotlock_content content;
    struct stat st;
    int fd;

    fd =
        open(lk->path, O_RDWR | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (fd == -1)
        return errno == ENOENT ? DOTLOCK_GONE : remove_if_stale(lk, reply);
    /*
     * lmtpd makes dotlocks with one link and its own owner.  Any other
     * file is never taken over and written to.
     */
    if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode) || st.st_nlink != 1 ||
        st.st_uid != geteuid()) {
        close(fd);
        return remove_if_stale(lk, reply);
    }
    if (try_fcntl_lock(fd) == -1) {
        int busy = lock_is_busy(errno);

        close(fd);
        return busy ? DOTLOCK_HELD : remove_if_stale(lk, reply);
    }

    content = read_dotlock(fd, &lk->record);
    if (content == CONTENT_OTHER) {
        close(fd);
        return remove_if_stale(lk, reply);
    }
    /* Its holder may have removed it just before it was locked here. */
    if (!is_same_file(fd, lk->path)) {
        close(fd);
        return DOTLOCK_GONE;
    }
    lk->fd = fd;
    lk->recovered = 1;
    lk->has_record = content == CONTENT_RECORD;
    return DOTLOCK_TAKEN;
}

/*
 * Checks the file that holds the dotlock path.  A symbolic link, a file
 * of another type or a file with more links is no lock that a mail
 * reader took, but a trap, planted to make a delivery follow it or
 * remove it as stale: it gets 451 4.3.0 at once, and it stays in place
 * for the postmaster.
 * NOTE: liblockfile takes a dotlock by link() from a unique name, so for
 * an instant its lock has two links, and a delivery that looks then is
 * deferred.
 */
static int
check_dotlock(const char *lock_path, struct store_reply *reply)
{
    struct stat st;

    if (lstat(lock_path, &st) == -1) {
        if (errno == ENOENT)
            return 0;
        store_reply_errno(reply, errno, "lstat dotlock", lock_path);
        return -1;
    }
    if (S_ISLNK(st.st_mode)) {
        store_reply_set(reply, STORE_LOCAL_ERROR,
                        "dotlock %s: symbolic link, not followed", lock_path);
        return -1;
    }
    /* No links left: its holder removed it while lstat() looked it up. */
    if (S_ISREG(st.st_mode) && st.st_nlink == 0)
        return 0;
    if (!S_ISREG(st.st_mode) || st.st_nlink != 1) {
        store_reply_set(reply, STORE_LOCAL_ERROR,
                        "dotlock %s: not a regular file with one link "
                        "(%lu links)",
                        lock_path, (unsigned long)st.st_nlink);
        return -1;
    }
    return 0;
}

static int
take_dotlock(struct mbox_lock *lk, const struct timespec *deadline,
             struct store_reply *reply)
{
    enum dotlock_state state;
    int created;

    for (;;) {
        created = create_dotlock(lk, deadline, reply);
        if (created != 1)
            return created;
        if (check_dotlock(lk->path, reply) == -1)
            return -1;

        state = inspect_dotlock(lk, reply);
        if (state == DOTLOCK_TAKEN)
            return 0;
        if (state == DOTLOCK_ERROR)
            return -1;
        if (state == DOTLOCK_GONE && !past_deadline(deadline))
            continue;
        if (wait_for_retry(deadline) == -1) {
            store_reply_set(reply, STORE_BUSY, "dotlock %s exists after %u s",
                            lk->path, lock_timeout);
            return -1;
        }
    }
}

/* Takes a write lock on the whole mbox, waiting up to the deadline. */
static int
take_fcntl_lock(int fd, const char *path, const struct timespec *deadline,
                struct store_reply *reply)
{
    for (;;) {
        if (try_fcntl_lock(fd) == 0)
            return 0;
        if (!lock_is_busy(errno)) {
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
 * Takes the dotlock "<mbox>.lock", then the fcntl() lock on the mbox,
 * within one deadline.  As each wait is bounded, a program that takes
 * them in the other order can delay this one but not deadlock with it.
 * Returns 0 with both held, or -1 with neither held and the reply set.
 * An interrupted delivery's dotlock that was taken over stays in place
 * on failure, with its record, for the next delivery.
 * NOTE: the dotlock needs write access to the mbox's folder.  Where a
 * mail spool lets only group "mail" create files, every delivery fails
 * with 451.
 */
int
mbox_lock(struct mbox_lock *lk, int mbox_fd, const char *mbox_path,
          struct store_reply *reply)
{
    struct timespec deadline;

    lk->fd = -1;
    lk->recovered = 0;
    lk->has_record = 0;
    if ((size_t)snprintf(lk->path, sizeof lk->path, "%s.lock", mbox_path) >=
        sizeof lk->path) {
        store_reply_errno(reply, ENAMETOOLONG, "dotlock for", mbox_path);
        return -1;
    }
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += lock_timeout;

    if (take_dotlock(lk, &deadline, reply) == -1)
        return -1;
    if (take_fcntl_lock(mbox_fd, mbox_path, &deadline, reply) == -1) {
        if (!lk->recovered)
            mbox_lock_remove(lk);
        mbox_lock_release(lk);
        return -1;
    }
    return 0;
}

/*
 * Cuts off the partial message of an interrupted delivery whose dotlock
 * was taken over.  The cut is made only when st describes the file that the
 * record names, that file is longer than the recorded offset, and the
 * recorded prefix is found there.  So it never removes what a program
 * that broke the dotlock has written since.  Sets *size to the size of
 * the mbox after the cut.  Returns -1 with the reply set when the cut
 * fails.
 */
int
mbox_lock_recover(struct mbox_lock *lk, int mbox_fd, const char *mbox_path,
                  const struct stat *st, off_t *size, struct store_reply *reply)
{
    const struct mbox_append_record *r = &lk->record;
    char found[MBOX_RECORD_PREFIX_MAX];
    size_t compared;

    *size = st->st_size;
    if (!lk->recovered)
        return 0;
    if (!lk->has_record || st->st_dev != r->dev || st->st_ino != r->ino ||
        st->st_size <= r->offset) {
        store_reply_notice(reply,
                           "took over dotlock %s of an "
                           "interrupted delivery, which left nothing to cut "
                           "in %s",
                           lk->path, mbox_path);
        return 0;
    }

    compared = r->prefix_len;
    if ((off_t)compared > st->st_size - r->offset)
        compared = (size_t)(st->st_size - r->offset);
    if (pread(mbox_fd, found, compared, r->offset) != (ssize_t)compared ||
        memcmp(found, r->prefix, compared) != 0) {
        store_reply_notice(reply,
                           "took over dotlock %s of an "
                           "interrupted delivery, but %s does not continue "
                           "with its message at byte %lld: nothing cut",
                           lk->path, mbox_path, (long long)r->offset);
        return 0;
    }

    if (ftruncate(mbox_fd, r->offset) == -1 || fsync(mbox_fd) == -1) {
        store_reply_errno(reply, errno, "cut partial message from", mbox_path);
        return -1;
    }
    store_reply_notice(reply,
                       "cut %lld bytes of a partial message that "
                       "an interrupted delivery left in %s",
                       (long long)(st->st_size - r->offset), mbox_path);
    *size = r->offset;
    return 0;
}

/*
 * Writes into the dotlock where this append starts: the mbox's device
 * and inode from st, offset, and the first bytes that the append will
 * write, up to MBOX_RECORD_PREFIX_MAX of them.  The record is not
 * fsynced, because it serves after the process is killed, and not after
 * the system crashes.
 */
int
mbox_lock_record(struct mbox_lock *lk, const struct stat *st, off_t offset,
                 const char *prefix, size_t prefix_len,
                 struct store_reply *reply)
{
    char buffer[RECORD_HEAD_MAX + MBOX_RECORD_PREFIX_MAX];
    size_t len, done = 0;
    ssize_t written;
    int head_len;

    if (prefix_len > MBOX_RECORD_PREFIX_MAX)
        prefix_len = MBOX_RECORD_PREFIX_MAX;
    head_len = snprintf(buffer, RECORD_HEAD_MAX,
                        "%ld\n" RECORD_TAG " %ju %ju %jd %zu\n", (long)getpid(),
                        (uintmax_t)st->st_dev, (uintmax_t)st->st_ino,
                        (intmax_t)offset, prefix_len);
    if (head_len < 0 || head_len >= RECORD_HEAD_MAX) {
        store_reply_errno(reply, EOVERFLOW, "write dotlock", lk->path);
        return -1;
    }
    memcpy(buffer + head_len, prefix, prefix_len);
    len = (size_t)head_len + prefix_len;

    while (done < len) {
        written = pwrite(lk->fd, buffer + done, len - done, (off_t)done);
        if (written == -1 && errno == EINTR)
            continue;
        if (written <= 0) {
            store_reply_errno(reply, written == -1 ? errno : EIO,
                              "write dotlock", lk->path);
            return -1;
        }
        done += (size_t)written;
    }
    /* A longer record of an interrupted delivery may be under it. */
    if (lk->recovered && ftruncate(lk->fd, (off_t)len) == -1) {
        store_reply_errno(reply, errno, "write dotlock", lk->path);
        return -1;
    }
    return 0;
}

/* Removes the dotlock.  Returns -1 with errno when unlink() fails. */
int
mbox_lock_remove(struct mbox_lock *lk)
{
    return unlink(lk->path);
}

/*
 * Closes the dotlock, which drops its fcntl() lock.  Unless it was
 * removed first, the next delivery then takes it over with its record.
 * The fcntl() lock on the mbox goes when the mbox is closed.
 */
void
mbox_lock_release(struct mbox_lock *lk)
{
    if (lk->fd >= 0)
        close(lk->fd);
    lk->fd = -1;
}
