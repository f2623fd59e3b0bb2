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

/* The open folders of one Maildir, so that no path is resolved twice. */
struct maildir {
    const char *path; /* as given, ending in '/', for messages */
    int dir_fd;
    int tmp_fd;
    int new_fd;
};

/* Fsyncs a directory, to make a new entry in it durable. */
static int
sync_fd(int fd, const char *path, struct store_reply *reply)
{
    if (fsync(fd) == -1) {
        store_reply_errno(reply, errno, "fsync", path);
        return -1;
    }
    return 0;
}

/*
 * Opens the directory name under at_fd without following a symbolic
 * link in its last component, so that a link planted in place of the
 * Maildir, tmp/ or new/ cannot send the message elsewhere.  shown is
 * the path for the reply.  Returns -1 with the reply and errno set,
 * errno being ELOOP for a symbolic link.
 */
static int
open_dir(int at_fd, const char *name, const char *shown,
         struct store_reply *reply)
{
    struct stat st;
    int fd, err;

    fd = openat(at_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd >= 0)
        return fd;
    err = errno;
    if (fstatat(at_fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
        S_ISLNK(st.st_mode)) {
        store_reply_set(reply, STORE_LOCAL_ERROR,
                        "%s: symbolic link, not followed", shown);
        errno = ELOOP;
        return -1;
    }
    store_reply_errno(reply, err, "open", shown);
    errno = err;
    return -1;
}

/* Creates name under at_fd with mode 0700; *created is 1 if it was new. */
static int
make_dir(int at_fd, const char *name, const char *shown, int *created,
         struct store_reply *reply)
{
    *created = 0;
    if (mkdirat(at_fd, name, 0700) == 0) {
        *created = 1;
        return 0;
    }
    if (errno == EEXIST)
        return 0;
    store_reply_errno(reply, errno, "mkdir", shown);
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
 * Opens the Maildir folder itself, creating it where missing.  Its
 * parent must exist, and an fsync of the parent makes a new folder
 * durable.  The trailing '/' is cut first, because with it open() would
 * follow a symbolic link even with O_NOFOLLOW.
 */
static int
open_top(struct maildir *md, struct store_reply *reply)
{
    char top[PATH_MAX];
    char *slash;
    int created, parent_fd;

    if (join_path(top, sizeof top, md->path, "", reply) == -1)
        return -1;
    top[strlen(top) - 1] = '\0';

    /* Most Maildirs exist, so mkdir() runs only when the open fails. */
    md->dir_fd = open_dir(AT_FDCWD, top, md->path, reply);
    if (md->dir_fd >= 0 || errno != ENOENT)
        return md->dir_fd == -1 ? -1 : 0;
    if (make_dir(AT_FDCWD, top, md->path, &created, reply) == -1)
        return -1;
    md->dir_fd = open_dir(AT_FDCWD, top, md->path, reply);
    if (md->dir_fd == -1 || !created)
        return md->dir_fd == -1 ? -1 : 0;

    slash = strrchr(top, '/');
    slash[slash == top ? 1 : 0] = '\0';
    parent_fd = open(top, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (parent_fd == -1) {
        store_reply_errno(reply, errno, "open", top);
        return -1;
    }
    created = sync_fd(parent_fd, top, reply);
    close(parent_fd);
    return created;
}

/*
 * Creates whichever of tmp/, new/ and cur/ are missing, with mode 0700,
 * and makes them durable by an fsync of the Maildir.
 */
static int
make_subdirs(struct maildir *md, struct store_reply *reply)
{
    static const char *const subdirs[] = {"tmp", "new", "cur"};
    char shown[PATH_MAX];
    int created, any_created = 0;
    size_t i;

    for (i = 0; i < sizeof subdirs / sizeof subdirs[0]; i++) {
        if (join_path(shown, sizeof shown, md->path, subdirs[i], reply) == -1 ||
            make_dir(md->dir_fd, subdirs[i], shown, &created, reply) == -1)
            return -1;
        any_created |= created;
    }
    return any_created ? sync_fd(md->dir_fd, md->path, reply) : 0;
}

/* Opens the subfolder name of the Maildir into *fd, unless already open. */
static int
open_subdir(struct maildir *md, const char *name, int *fd,
            struct store_reply *reply)
{
    char shown[PATH_MAX];

    if (*fd >= 0)
        return 0;
    if (join_path(shown, sizeof shown, md->path, name, reply) == -1) {
        errno = ENAMETOOLONG;
        return -1;
    }
    *fd = open_dir(md->dir_fd, name, shown, reply);
    return *fd == -1 ? -1 : 0;
}

/*
 * Opens the Maildir md->path and its tmp/ and new/.  When one of them is
 * missing, creates whichever of the Maildir, tmp/, new/ and cur/ are
 * missing, with mode 0700; a Maildir that lacks only cur/ is left as it
 * is, because delivery does not use cur/.  Each directory created is
 * made durable by an fsync of the directory that contains it.  On
 * failure the descriptors already open stay in md for close_maildir().
 */
static int
open_maildir(struct maildir *md, struct store_reply *reply)
{
    if (open_top(md, reply) == -1)
        return -1;
    if (open_subdir(md, "tmp", &md->tmp_fd, reply) == 0 &&
        open_subdir(md, "new", &md->new_fd, reply) == 0)
        return 0;
    if (errno != ENOENT || make_subdirs(md, reply) == -1)
        return -1;
    if (open_subdir(md, "tmp", &md->tmp_fd, reply) == -1 ||
        open_subdir(md, "new", &md->new_fd, reply) == -1)
        return -1;
    return 0;
}

static void
close_maildir(struct maildir *md)
{
    if (md->new_fd >= 0)
        close(md->new_fd);
    if (md->tmp_fd >= 0)
        close(md->tmp_fd);
    if (md->dir_fd >= 0)
        close(md->dir_fd);
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
 * descriptor with NAME in name and its path in tmp_path, or -1 with the
 * reply set.
 */
static int
create_tmp(const struct maildir *md, char *name, size_t name_size,
           char *tmp_path, size_t size, struct store_reply *reply)
{
    char relative[NAME_MAX + 5];
    int attempt, fd;

    for (attempt = 0; attempt < NAME_ATTEMPTS; attempt++) {
        if (make_unique_name(name, name_size) == -1) {
            store_reply_errno(reply, ENAMETOOLONG, "name in", md->path);
            return -1;
        }
        snprintf(relative, sizeof relative, "tmp/%s", name);
        if (join_path(tmp_path, size, md->path, relative, reply) == -1)
            return -1;

        fd = openat(md->tmp_fd, name,
                    O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                    0600);
        if (fd >= 0)
            return fd;
        if (errno != EEXIST)
            break;
    }
    store_reply_errno(reply, errno, "open", tmp_path);
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
 * Moves tmp/NAME to new/NEW_NAME without replacing an existing file:
 * renameat2() with RENAME_NOREPLACE is one step, and linkat() then
 * unlinkat() does the same where the kernel or the file system lacks
 * it.  Returns -1 with errno set and tmp/NAME in place on failure.
 */
static int
move_into_new(const struct maildir *md, const char *tmp_name,
              const char *new_name)
{
    if (renameat2(md->tmp_fd, tmp_name, md->new_fd, new_name,
                  RENAME_NOREPLACE) == 0)
        return 0;
    if (errno != EINVAL && errno != ENOSYS)
        return -1;
    if (linkat(md->tmp_fd, tmp_name, md->new_fd, new_name, 0) == -1)
        return -1;
    /* If this unlinkat() fails, the message stays in tmp/ too, where
     * readers do not show it. */
    unlinkat(md->tmp_fd, tmp_name, 0);
    return 0;
}

/*
 * Moves tmp/NAME to new/NAME,S=<size>, or to a fresh name if that
 * exists, and fsyncs new/.  ",S=<size>" lets readers learn the size
 * without a stat() call.  On failure nothing of the message is in new/,
 * and the file may still be in tmp/.
 */
static int
move_into_new_dir(const struct maildir *md, const char *tmp_name,
                  off_t size, struct store_reply *reply)
{
    char name[NAME_MAX + 1];
    char new_name[NAME_MAX + 32];
    char new_path[PATH_MAX];
    int attempt;

    snprintf(name, sizeof name, "%s", tmp_name);
    for (attempt = 1;; attempt++) {
        snprintf(new_name, sizeof new_name, "%s,S=%lld", name,
                 (long long)size);
        if ((size_t)snprintf(new_path, sizeof new_path, "%snew/%s", md->path,
                             new_name) >= sizeof new_path) {
            store_reply_errno(reply, ENAMETOOLONG, "path", md->path);
            return -1;
        }
        if (move_into_new(md, tmp_name, new_name) == 0)
            break;
        if (errno != EEXIST || attempt == NAME_ATTEMPTS) {
            store_reply_errno(reply, errno, "rename to", new_path);
            return -1;
        }
        if (make_unique_name(name, sizeof name) == -1) {
            store_reply_errno(reply, ENAMETOOLONG, "name in", md->path);
            return -1;
        }
    }

    if (sync_fd(md->new_fd, new_path, reply) == -1) {
        unlinkat(md->new_fd, new_name, 0);
        return -1;
    }
    store_reply_set(reply, STORE_OK, "%s", new_path);
    return 0;
}

/*
 * Delivers the header block and the body into the Maildir dir, which
 * ends in '/', creating its folders as open_maildir() does, and follows
 * no symbolic link at dir, tmp/, new/ or the message file.
 */
static int
deliver_body(const char *dir, const char *header, size_t header_len,
             const struct body *body, struct store_reply *reply)
{
    struct maildir md = {dir, -1, -1, -1};
    char tmp_name[NAME_MAX + 1];
    char tmp_path[PATH_MAX];
    size_t dir_len = strlen(dir);
    off_t size = (off_t)header_len + body->size;
    int fd, result = -1;

    reply->notice[0] = '\0';
    if (dir_len < 2 || dir[dir_len - 1] != '/' || dir[0] != '/') {
        store_reply_set(reply, STORE_LOCAL_ERROR,
                        "maildir %s: not an absolute path ending in '/'", dir);
        return -1;
    }
    if (open_maildir(&md, reply) == -1)
        goto done;
    fd = create_tmp(&md, tmp_name, sizeof tmp_name, tmp_path, sizeof tmp_path,
                    reply);
    if (fd == -1)
        goto done;

    if (write_message(fd, tmp_path, header, header_len, body, reply) == 0)
        result = move_into_new_dir(&md, tmp_name, size, reply);

    /* On failure the tmp/ file must go.  If unlinkat() fails, it stays
     * in tmp/, which readers do not show as a message. */
    if (result == -1)
        unlinkat(md.tmp_fd, tmp_name, 0);

done:
    close_maildir(&md);
    return result;
}

/*
 * Delivers the header block and the spool into the Maildir dir, see
 * deliver_body().  Returns 0 with a 250 reply once the message is
 * durable in new/.  Returns -1 with the reply set and nothing of the
 * message in new/, nor in tmp/ unless unlinkat() failed there.
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

/*
 * Starts a message in the Maildir dir, which ends in '/', before it has
 * all arrived: opens or creates the Maildir as deliver_body() does,
 * creates tmp/NAME and writes the header block into it.  The caller
 * appends the message to draft->fd, then calls maildir_draft_commit()
 * or maildir_draft_discard().  Returns 0, or -1 with the reply set and
 * nothing left open or in tmp/.
 */
int
maildir_draft_open(struct maildir_draft *draft, const char *dir,
                   const char *header, size_t header_len,
                   struct store_reply *reply)
{
    struct maildir md = {draft->dir, -1, -1, -1};
    size_t dir_len = strlen(dir);

    reply->notice[0] = '\0';
    draft->fd = -1;
    draft->dir_fd = draft->tmp_fd = draft->new_fd = -1;
    if (dir_len < 2 || dir[dir_len - 1] != '/' || dir[0] != '/' ||
        dir_len >= sizeof draft->dir) {
        store_reply_set(reply, STORE_LOCAL_ERROR,
                        "maildir %s: not an absolute path ending in '/'", dir);
        return -1;
    }
    memcpy(draft->dir, dir, dir_len + 1);
    if (open_maildir(&md, reply) == -1)
        goto fail;
    draft->fd = create_tmp(&md, draft->tmp_name, sizeof draft->tmp_name,
                           draft->tmp_path, sizeof draft->tmp_path, reply);
    if (draft->fd == -1)
        goto fail;
    if (write_all(draft->fd, header, header_len) == -1) {
        store_reply_errno(reply, errno, "write", draft->tmp_path);
        close(draft->fd);
        draft->fd = -1;
        unlinkat(md.tmp_fd, draft->tmp_name, 0);
        goto fail;
    }
    draft->header_len = (off_t)header_len;
    draft->dir_fd = md.dir_fd;
    draft->tmp_fd = md.tmp_fd;
    draft->new_fd = md.new_fd;
    return 0;

fail:
    close_maildir(&md);
    return -1;
}

/*
 * Completes a draft whose message of body_size bytes follows the header
 * block in draft->fd: fsyncs and closes the file and moves it into new/
 * as deliver_body() does.  Returns 0 with a 250 reply once the message
 * is durable in new/, or -1 with the reply set and the file removed
 * unless unlinkat() failed.  Either way the draft is closed.
 */
int
maildir_draft_commit(struct maildir_draft *draft, off_t body_size,
                     struct store_reply *reply)
{
    struct maildir md = {draft->dir, draft->dir_fd, draft->tmp_fd,
                         draft->new_fd};
    int fd = draft->fd, result = -1;

    reply->notice[0] = '\0';
    draft->fd = -1;
    if (fsync(fd) == -1) {
        store_reply_errno(reply, errno, "fsync", draft->tmp_path);
        close(fd);
    } else if (close(fd) == -1) {
        store_reply_errno(reply, errno, "close", draft->tmp_path);
    } else {
        result = move_into_new_dir(&md, draft->tmp_name,
                                   draft->header_len + body_size, reply);
    }
    if (result == -1)
        unlinkat(md.tmp_fd, draft->tmp_name, 0);
    close_maildir(&md);
    draft->dir_fd = draft->tmp_fd = draft->new_fd = -1;
    return result;
}

/* Removes a draft that will not be delivered, and closes it. */
void
maildir_draft_discard(struct maildir_draft *draft)
{
    struct maildir md = {draft->dir, draft->dir_fd, draft->tmp_fd,
                         draft->new_fd};

    if (draft->fd >= 0) {
        close(draft->fd);
        unlinkat(draft->tmp_fd, draft->tmp_name, 0);
    }
    draft->fd = -1;
    close_maildir(&md);
    draft->dir_fd = draft->tmp_fd = draft->new_fd = -1;
}
