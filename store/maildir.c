/*
 * maildir.c: delivers a message into a Maildir as the Maildir spec
 * (cr.yp.to/proto/maildir.html) describes: write and fsync tmp/NAME, then
 * move it into new/, so a reader never sees a partial message.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "store/store.h"

/* Maximum number of names tried when the previous one already exists. */
#define NAME_ATTEMPTS 5

/* Read buffer for copying the spool when copy_file_range() fails. */
#define COPY_BUFFER_SIZE 65536

/* Counter that keeps names of one process unique within a microsecond. */
static unsigned long delivery_count;

/* The message after the header block: in memory, or in the spool file. */
struct body {
    const char *data; /* the message, or NULL when it is in spool_fd */
    int spool_fd;
    off_t size;
};

/* Opens the directory and fsyncs it, to make a new entry in it durable. */
static int
sync_dir(const char *path, struct store_reply *reply)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

    if (fd == -1) {
        store_reply_errno(reply, errno, "open", path);
        return -1;
    }
    if (fsync(fd) == -1) {
        store_reply_errno(reply, errno, "fsync", path);
        close(fd);
        return -1;
    }
    close(fd);
    return 0;
}

/* Creates path with mode 0700, setting *created to 1 if it was missing. */
static int
make_dir(const char *path, int *created, struct store_reply *reply)
{
    *created = 0;
    if (mkdir(path, 0700) == 0) {
        *created = 1;
        return 0;
    }
    if (errno == EEXIST)
        return 0;
    store_reply_errno(reply, errno, "mkdir", path);
    return -1;
}

/* Writes "<dir><name>" into path, or fails with ENAMETOOLONG. */
static int
join_path(char *path, size_t size, const char *dir, const char *name,
          struct store_reply *reply)
{
    int len = snprintf(path, size, "%s%s", dir, name);

    if (len < 0 || (size_t)len >= size) {
        store_reply_errno(reply, ENAMETOOLONG, "path", dir);
        return -1;
    }
    return 0;
}

/*
 * Creates dir and its tmp/, new/ and cur/ where missing.  The parent of
 * dir must exist.  Each directory created is made durable by an fsync of
 * the directory that contains it.
 */
static int
make_dirs(const char *dir, struct store_reply *reply)
{
    static const char *const subdirs[] = {"tmp", "new", "cur"};
    char path[PATH_MAX];
    int created, any_created = 0;
    char *slash;
    size_t i;

    if (make_dir(dir, &created, reply) == -1)
        return -1;
    if (created) {
        /* dir ends in '/': cut that, then cut the last component. */
        snprintf(path, sizeof path, "%s", dir);
        path[strlen(path) - 1] = '\0';
        slash = strrchr(path, '/');
        if (slash != NULL)
            slash[slash == path ? 1 : 0] = '\0';
        if (sync_dir(path, reply) == -1)
            return -1;
    }

    for (i = 0; i < sizeof subdirs / sizeof subdirs[0]; i++) {
        if (join_path(path, sizeof path, dir, subdirs[i], reply) == -1 ||
            make_dir(path, &created, reply) == -1)
            return -1;
        any_created |= created;
    }
    return any_created ? sync_dir(dir, reply) : 0;
}

/*
 * Makes a unique file name of this form:
 *     <seconds>.M<microseconds>P<pid>Q<count>.<host>
 * The Maildir spec has '/' and ':' in the host name written as \057 and
 * \072, because a unique name may contain neither.
 */
static int
make_unique_name(char *name, size_t size)
{
    char host[256] = "localhost";
    char escaped[4 * sizeof host];
    struct timespec now;
    size_t i, len = 0;
    int written;

    if (gethostname(host, sizeof host - 1) == -1)
        snprintf(host, sizeof host, "localhost");
    host[sizeof host - 1] = '\0';
    for (i = 0; host[i] != '\0'; i++) {
        if (host[i] == '/' || host[i] == ':') {
            len += (size_t)sprintf(escaped + len, "\\%03o",
                                   (unsigned)(unsigned char)host[i]);
            continue;
        }
        escaped[len++] = host[i];
    }
    escaped[len] = '\0';

    clock_gettime(CLOCK_REALTIME, &now);
    written =
        snprintf(name, size, "%lld.M%06ldP%ldQ%lu.%s", (long long)now.tv_sec,
                 now.tv_nsec / 1000, (long)getpid(), ++delivery_count, escaped);
    return written > 0 && (size_t)written < size ? 0 : -1;
}

/* Writes all of buffer, going on after short writes and EINTR. */
static int
write_all(int fd, const char *buffer, size_t len)
{
    ssize_t written;

    while (len > 0) {
        written = write(fd, buffer, len);
        if (written == -1 && errno == EINTR)
            continue;
        if (written <= 0)
            return -1;
        buffer += written;
        len -= (size_t)written;
    }
    return 0;
}

/* Writes a and then b with writev(), going on after short writes. */
static int
write_two(int fd, const char *a, size_t a_len, const char *b, size_t b_len)
{
    struct iovec iov[2] = {{(void *)a, a_len}, {(void *)b, b_len}};
    ssize_t written;

    while (iov[0].iov_len + iov[1].iov_len > 0) {
        written = writev(fd, iov, 2);
        if (written == -1 && errno == EINTR)
            continue;
        if (written <= 0)
            return -1;
        for (int i = 0; i < 2; i++) {
            size_t done = (size_t)written < iov[i].iov_len ? (size_t)written
                                                            : iov[i].iov_len;

            iov[i].iov_base = (char *)iov[i].iov_base + done;
            iov[i].iov_len -= done;
            written -= (ssize_t)done;
        }
    }
    return 0;
}

/* Copies one block of the spool with pread() and write(). */
static ssize_t
copy_block(int fd, int spool_fd, off_t offset, size_t len)
{
    char buffer[COPY_BUFFER_SIZE];
    ssize_t got;

    if (len > sizeof buffer)
        len = sizeof buffer;
    do
        got = pread(spool_fd, buffer, len, offset);
    while (got == -1 && errno == EINTR);

    if (got > 0 && write_all(fd, buffer, (size_t)got) == -1)
        return -1;
    return got;
}

/*
 * Appends the spool to fd from offset 0, by explicit offsets, so the
 * spool's file offset stays where it is for the next recipient.  Uses
 * copy_file_range() and falls back to pread() and write() where the
 * kernel or the file systems do not support it.
 */
static int
copy_spool(int fd, const char *path, int spool_fd, off_t spool_size,
           struct store_reply *reply)
{
    off_t offset = 0;
    int use_copy_range = 1;
    ssize_t copied;

    while (offset < spool_size) {
        size_t len = (size_t)(spool_size - offset);

        if (len > (1u << 30))
            len = 1u << 30;
        if (use_copy_range) {
            copied = copy_file_range(spool_fd, &offset, fd, NULL, len, 0);
            if (copied == -1 && (errno == EXDEV || errno == ENOSYS ||
                                 errno == EINVAL || errno == EOPNOTSUPP)) {
                use_copy_range = 0;
                continue;
            }
        } else {
            copied = copy_block(fd, spool_fd, offset, len);
            if (copied > 0)
                offset += copied;
        }

        if (copied == -1 && errno == EINTR)
            continue;
        if (copied == -1) {
            store_reply_errno(reply, errno, "write", path);
            return -1;
        }
        if (copied == 0) {
            store_reply_set(reply, STORE_LOCAL_ERROR,
                            "spool ended at byte %lld of %lld",
                            (long long)offset, (long long)spool_size);
            return -1;
        }
    }
    return 0;
}

/*
 * Creates tmp/NAME with O_EXCL, so an existing file is never reused, and
 * O_NOFOLLOW, so a planted symbolic link is never followed.  Returns the
 * descriptor with the path in tmp_path, or -1 with the reply and errno
 * set.
 */
static int
create_tmp(const char *dir, char *tmp_path, size_t size,
           struct store_reply *reply)
{
    char name[NAME_MAX + 1];
    char relative[sizeof name + 4];
    int attempt, fd, err;

    for (attempt = 0; attempt < NAME_ATTEMPTS; attempt++) {
        if (make_unique_name(name, sizeof name) == -1) {
            store_reply_errno(reply, ENAMETOOLONG, "name in", dir);
            errno = ENAMETOOLONG;
            return -1;
        }
        snprintf(relative, sizeof relative, "tmp/%s", name);
        if (join_path(tmp_path, size, dir, relative, reply) == -1) {
            errno = ENAMETOOLONG;
            return -1;
        }

        fd = open(tmp_path,
                  O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd >= 0)
            return fd;
        if (errno != EEXIST)
            break;
    }
    err = errno;
    store_reply_errno(reply, err, "open", tmp_path);
    errno = err;
    return -1;
}

/* Writes the header block and the body to fd, fsyncs and closes it. */
static int
write_message(int fd, const char *path, const char *header, size_t header_len,
              const struct body *body, struct store_reply *reply)
{
    if (body->data != NULL) {
        if (write_two(fd, header, header_len, body->data,
                      (size_t)body->size) == -1) {
            store_reply_errno(reply, errno, "write", path);
            goto fail;
        }
    } else if (write_all(fd, header, header_len) == -1) {
        store_reply_errno(reply, errno, "write", path);
        goto fail;
    } else if (copy_spool(fd, path, body->spool_fd, body->size, reply) == -1) {
        goto fail;
    }
    if (fsync(fd) == -1) {
        store_reply_errno(reply, errno, "fsync", path);
        goto fail;
    }
    /* close(2): NFS among others may report a write error only here. */
    if (close(fd) == -1) {
        store_reply_errno(reply, errno, "close", path);
        return -1;
    }
    return 0;

fail:
    close(fd);
    return -1;
}

/*
 * Moves tmp/NAME to new/NAME without replacing an existing file:
 * renameat2() with RENAME_NOREPLACE is one step, and link() then
 * unlink() does the same where the kernel or the file system lacks it.
 * Returns -1 with errno set and tmp/NAME in place on failure.
 */
static int
move_into_new(const char *tmp_path, const char *new_path)
{
    if (renameat2(AT_FDCWD, tmp_path, AT_FDCWD, new_path,
                  RENAME_NOREPLACE) == 0)
        return 0;
    if (errno != EINVAL && errno != ENOSYS)
        return -1;
    if (link(tmp_path, new_path) == -1)
        return -1;
    /* If this unlink() fails, the message stays in tmp/ too, where
     * readers do not show it. */
    unlink(tmp_path);
    return 0;
}

/*
 * Moves tmp/NAME to new/NAME,S=<size>, or to a fresh name if that
 * exists, and fsyncs new/.  ",S=<size>" lets readers learn the size
 * without a stat() call.  A missing new/ is created with the rest of
 * the Maildir.  On failure nothing of the message is in new/, and the
 * file may still be in tmp/.
 */
static int
move_into_new_dir(const char *dir, const char *tmp_path, off_t size,
                  struct store_reply *reply)
{
    char name[NAME_MAX + 1];
    char relative[sizeof name + 32];
    char new_dir[PATH_MAX];
    char new_path[PATH_MAX];
    int attempt, dirs_made = 0;

    if (join_path(new_dir, sizeof new_dir, dir, "new", reply) == -1)
        return -1;
    snprintf(name, sizeof name, "%s", strrchr(tmp_path, '/') + 1);
    for (attempt = 1;; attempt++) {
        snprintf(relative, sizeof relative, "new/%s,S=%lld", name,
                 (long long)size);
        if (join_path(new_path, sizeof new_path, dir, relative, reply) == -1)
            return -1;
        if (move_into_new(tmp_path, new_path) == 0)
            break;
        if (errno == ENOENT && !dirs_made) {
            if (make_dirs(dir, reply) == -1)
                return -1;
            dirs_made = 1;
            continue;
        }
        if (errno != EEXIST || attempt >= NAME_ATTEMPTS) {
            store_reply_errno(reply, errno, "rename to", new_path);
            return -1;
        }
        if (make_unique_name(name, sizeof name) == -1) {
            store_reply_errno(reply, ENAMETOOLONG, "name in", dir);
            return -1;
        }
    }

    if (sync_dir(new_dir, reply) == -1) {
        unlink(new_path);
        return -1;
    }
    store_reply_set(reply, STORE_OK, "%s", new_path);
    return 0;
}

/*
 * Delivers the header block and the body into the Maildir dir, which
 * ends in '/'.  When tmp/ or new/ is missing, creates whichever of dir,
 * tmp/, new/ and cur/ are missing, with mode 0700.  A Maildir that lacks
 * only cur/ is left as it is, because delivery does not use cur/.
 */
static int
deliver_body(const char *dir, const char *header, size_t header_len,
             const struct body *body, struct store_reply *reply)
{
    char tmp_path[PATH_MAX];
    size_t dir_len = strlen(dir);
    off_t size = (off_t)header_len + body->size;
    int fd, result = -1;

    reply->notice[0] = '\0';
    if (dir_len == 0 || dir[dir_len - 1] != '/' || dir[0] != '/') {
        store_reply_set(reply, STORE_LOCAL_ERROR,
                        "maildir %s: not an absolute path ending in '/'", dir);
        return -1;
    }

    /* Most Maildirs exist, so the folders are made only when needed. */
    fd = create_tmp(dir, tmp_path, sizeof tmp_path, reply);
    if (fd == -1 && errno == ENOENT) {
        if (make_dirs(dir, reply) == -1)
            return -1;
        fd = create_tmp(dir, tmp_path, sizeof tmp_path, reply);
    }
    if (fd == -1)
        return -1;

    if (write_message(fd, tmp_path, header, header_len, body, reply) == 0)
        result = move_into_new_dir(dir, tmp_path, size, reply);

    /* On failure the tmp/ file must go.  If unlink() fails, it stays in
     * tmp/, which readers do not show as a message. */
    if (result == -1)
        unlink(tmp_path);
    return result;
}

/*
 * Delivers the header block and the spool into the Maildir dir, see
 * deliver_body().  Returns 0 with a 250 reply once the message is
 * durable in new/.  Returns -1 with the reply set and nothing of the
 * message in new/, nor in tmp/ unless unlink() failed there.
 */
int
maildir_deliver(const char *dir, const char *header, size_t header_len,
                int spool_fd, off_t spool_size, struct store_reply *reply)
{
    struct body body = {NULL, spool_fd, spool_size};

    return deliver_body(dir, header, header_len, &body, reply);
}

/* Delivers as maildir_deliver() does, the message being size bytes at data. */
int
maildir_deliver_memory(const char *dir, const char *header,
                       size_t header_len, const char *data, size_t size,
                       struct store_reply *reply)
{
    struct body body = {data, -1, (off_t)size};

    return deliver_body(dir, header, header_len, &body, reply);
}
