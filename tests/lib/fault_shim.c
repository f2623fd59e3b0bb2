/*
 * fault_shim.c: an LD_PRELOAD library for the tests only, never linked
 * into lmtpd.  It makes a chosen call of lmtpd's file and socket I/O fail
 * or kills the process there, and can trace every such call, so a test
 * can try each failure point of a session in turn.
 *
 * Environment:
 *   LMTPD_FAULT_AT          calls to fail, separated by commas: N is the
 *                           Nth wrapped call of any kind, NAME:N the Nth
 *                           call of NAME (open, openat, write, writev,
 *                           pwrite, copy_file_range, fsync, fdatasync,
 *                           rename, renameat2, link, linkat, ftruncate,
 *                           close), counting from 1
 *   LMTPD_FAULT_ERRNO       EIO (the default), ENOSPC, EDQUOT or a number
 *   LMTPD_FAULT_ACTION      "fail" (the default) to return -1 with that
 *                           errno, or "kill" to send the process SIGKILL
 *                           in place of the call
 *   LMTPD_FAULT_TRACE       a file that gets one line per wrapped call:
 *                           number, function, outcome (ok, error:ERRNO,
 *                           fault or kill), access mode and target
 *   LMTPD_FAULT_NO_TMPFILE  when set, open() with O_TMPFILE fails with
 *                           EOPNOTSUPP, as on a file system without it
 *   LMTPD_FAULT_SCOPE       "children" to count, fail and trace only the
 *                           calls of processes forked by the first one,
 *                           such as lmtpd's delivery children as root:
 *                           each child counts from 1
 *
 * Calls that glibc makes internally, such as those of stdio and syslog,
 * bypass these wrappers and are neither counted nor failed.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

/* The entry points that _FORTIFY_SOURCE builds call in place of open(). */
int __open_2(const char *path, int flags);
int __open64_2(const char *path, int flags);
int __openat_2(int dirfd, const char *path, int flags);

/* Maximum number of entries in LMTPD_FAULT_AT. */
#define FAULTS_MAX 16

/* The wrapped functions, by the name that counting and tracing use. */
enum call {
    CALL_OPEN,
    CALL_OPENAT,
    CALL_WRITE,
    CALL_WRITEV,
    CALL_PWRITE,
    CALL_COPY_FILE_RANGE,
    CALL_FSYNC,
    CALL_FDATASYNC,
    CALL_RENAME,
    CALL_RENAMEAT2,
    CALL_LINK,
    CALL_LINKAT,
    CALL_FTRUNCATE,
    CALL_CLOSE,
    CALL_COUNT
};

static const char *const call_names[CALL_COUNT] = {
    [CALL_OPEN] = "open",
    [CALL_OPENAT] = "openat",
    [CALL_WRITE] = "write",
    [CALL_WRITEV] = "writev",
    [CALL_PWRITE] = "pwrite",
    [CALL_COPY_FILE_RANGE] = "copy_file_range",
    [CALL_FSYNC] = "fsync",
    [CALL_FDATASYNC] = "fdatasync",
    [CALL_RENAME] = "rename",
    [CALL_RENAMEAT2] = "renameat2",
    [CALL_LINK] = "link",
    [CALL_LINKAT] = "linkat",
    [CALL_FTRUNCATE] = "ftruncate",
    [CALL_CLOSE] = "close",
};

/* One entry of LMTPD_FAULT_AT: call number nth of kind, or of any. */
struct fault {
    int any; /* counts every wrapped call */
    enum call kind;
    unsigned long nth;
};

static struct {
    int loaded;
    struct fault faults[FAULTS_MAX];
    size_t fault_count;
    int err;
    int kill;
    int no_tmpfile;
    int children_only;
    pid_t first_pid; /* the process that loaded the settings */
    int trace_fd;
    unsigned long total;                /* wrapped calls so far */
    unsigned long per_call[CALL_COUNT]; /* calls of each kind so far */
} shim = {.trace_fd = -1};

static int
parse_errno(const char *text)
{
    if (text == NULL || strcmp(text, "EIO") == 0)
        return EIO;
    if (strcmp(text, "ENOSPC") == 0)
        return ENOSPC;
    if (strcmp(text, "EDQUOT") == 0)
        return EDQUOT;
    return atoi(text) > 0 ? atoi(text) : EIO;
}

static void
parse_fault(const char *item)
{
    struct fault *f = &shim.faults[shim.fault_count];
    const char *colon = strchr(item, ':');

    f->any = colon == NULL;
    if (colon != NULL) {
        size_t len = (size_t)(colon - item);
        int kind;

        for (kind = 0; kind < CALL_COUNT; kind++) {
            if (strlen(call_names[kind]) == len &&
                strncmp(call_names[kind], item, len) == 0)
                break;
        }
        if (kind == CALL_COUNT)
            return;
        f->kind = (enum call)kind;
        item = colon + 1;
    }
    f->nth = strtoul(item, NULL, 10);
    if (f->nth > 0)
        shim.fault_count++;
}

/* Reads the environment once, at the first wrapped call. */
static void
load_settings(void)
{
    const char *at = getenv("LMTPD_FAULT_AT");
    const char *trace = getenv("LMTPD_FAULT_TRACE");
    const char *action = getenv("LMTPD_FAULT_ACTION");
    char list[512];
    char *item, *saved;

    shim.loaded = 1;
    shim.err = parse_errno(getenv("LMTPD_FAULT_ERRNO"));
    shim.kill = action != NULL && strcmp(action, "kill") == 0;
    shim.no_tmpfile = getenv("LMTPD_FAULT_NO_TMPFILE") != NULL;
    shim.children_only = getenv("LMTPD_FAULT_SCOPE") != NULL &&
                         strcmp(getenv("LMTPD_FAULT_SCOPE"), "children") == 0;
    shim.first_pid = getpid();
    if (at != NULL) {
        snprintf(list, sizeof list, "%s", at);
        for (item = strtok_r(list, ",", &saved);
             item != NULL && shim.fault_count < FAULTS_MAX;
             item = strtok_r(NULL, ",", &saved))
            parse_fault(item);
    }
    /* A raw system call, so that opening the trace is not traced. */
    if (trace != NULL)
        shim.trace_fd =
            (int)syscall(SYS_openat, AT_FDCWD, trace,
                         O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
}

/*
 * Counts a call of kind and returns 1 when it is one to fail.  A call
 * that is not counted gets number 0.
 */
static int
count_call(enum call kind, unsigned long *number)
{
    size_t i;

    if (!shim.loaded)
        load_settings();
    *number = 0;
    if (shim.children_only && getpid() == shim.first_pid)
        return 0;
    *number = ++shim.total;
    shim.per_call[kind]++;
    for (i = 0; i < shim.fault_count; i++) {
        const struct fault *f = &shim.faults[i];

        if (f->any ? f->nth == shim.total
                   : f->kind == kind && f->nth == shim.per_call[kind])
            return 1;
    }
    return 0;
}

static const char *
mode_of_flags(int flags)
{
    switch (flags & O_ACCMODE) {
    case O_RDONLY:
        return "r";
    case O_WRONLY:
        return "w";
    default:
        return "rw";
    }
}

/* Writes what fd refers to, as /proc/self/fd shows it, into out. */
static const char *
describe_fd(int fd, char *out, size_t size)
{
    char link[64];
    ssize_t len;

    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    len = readlink(link, out, size - 1);
    if (len < 0)
        snprintf(out, size, "fd:%d", fd);
    else
        out[len] = '\0';
    return out;
}

static const char *
mode_of_fd(int fd)
{
    int flags = fcntl(fd, F_GETFL);

    return flags == -1 ? "-" : mode_of_flags(flags);
}

/* Appends one line to the trace, keeping errno as it was. */
static void
trace(unsigned long number, enum call kind, const char *outcome,
      const char *mode, const char *target, const char *second)
{
    char line[3 * PATH_MAX];
    int saved = errno;
    int len;

    if (shim.trace_fd < 0 || number == 0)
        return;
    len = snprintf(line, sizeof line, "%lu\t%s\t%s\t%s\t%s%s%s\n", number,
                   call_names[kind], outcome, mode, target,
                   second != NULL ? "\t" : "", second != NULL ? second : "");
    if (len > (int)sizeof line - 1)
        len = (int)sizeof line - 1;
    if (len > 0 && syscall(SYS_write, shim.trace_fd, line, (size_t)len) < 0)
        shim.trace_fd = -1;
    errno = saved;
}

/*
 * Runs before each wrapped call.  Returns 1 when the call must not run,
 * with errno set; for a kill, the process does not come back.
 */
static int
before_call(enum call kind, unsigned long *number, const char *mode,
            const char *target, const char *second)
{
    if (!count_call(kind, number))
        return 0;
    if (shim.kill) {
        trace(*number, kind, "kill", mode, target, second);
        kill(getpid(), SIGKILL);
    }
    trace(*number, kind, "fault", mode, target, second);
    errno = shim.err;
    return 1;
}

/* Traces the result of a call that ran. */
static void
after_call(unsigned long number, enum call kind, long result, const char *mode,
           const char *target, const char *second)
{
    char outcome[32];

    if (result >= 0)
        snprintf(outcome, sizeof outcome, "ok");
    else
        snprintf(outcome, sizeof outcome, "error:%d", errno);
    trace(number, kind, outcome, mode, target, second);
}

static void *
real(const char *name)
{
    return dlsym(RTLD_NEXT, name);
}

static int
shim_openat(enum call kind, const char *real_name, int dirfd, const char *path,
            int flags, mode_t mode)
{
    int (*next)(int, const char *, int, ...) = real(real_name);
    unsigned long number;
    char target[PATH_MAX + 64];
    int fd;

    if (dirfd == AT_FDCWD || path[0] == '/') {
        snprintf(target, sizeof target, "%s", path);
    } else {
        char folder[PATH_MAX];

        snprintf(target, sizeof target, "%s/%s",
                 describe_fd(dirfd, folder, sizeof folder), path);
    }
    if (before_call(kind, &number, mode_of_flags(flags), target, NULL))
        return -1;
    if (shim.no_tmpfile && (flags & O_TMPFILE) == O_TMPFILE) {
        errno = EOPNOTSUPP;
        fd = -1;
    } else {
        fd = next(dirfd, path, flags, mode);
    }
    after_call(number, kind, fd, mode_of_flags(flags), target, NULL);
    return fd;
}

static mode_t
mode_argument(int flags, va_list ap)
{
    if ((flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE)
        return (mode_t)va_arg(ap, int);
    return 0;
}

int
open(const char *path, int flags, ...)
{
    va_list ap;
    mode_t mode;

    va_start(ap, flags);
    mode = mode_argument(flags, ap);
    va_end(ap);
    return shim_openat(CALL_OPEN, "openat", AT_FDCWD, path, flags, mode);
}

int
open64(const char *path, int flags, ...)
{
    va_list ap;
    mode_t mode;

    va_start(ap, flags);
    mode = mode_argument(flags, ap);
    va_end(ap);
    return shim_openat(CALL_OPEN, "openat64", AT_FDCWD, path, flags, mode);
}

int
__open_2(const char *path, int flags)
{
    return shim_openat(CALL_OPEN, "openat", AT_FDCWD, path, flags, 0);
}

int
__open64_2(const char *path, int flags)
{
    return shim_openat(CALL_OPEN, "openat64", AT_FDCWD, path, flags, 0);
}

int
openat(int dirfd, const char *path, int flags, ...)
{
    va_list ap;
    mode_t mode;

    va_start(ap, flags);
    mode = mode_argument(flags, ap);
    va_end(ap);
    return shim_openat(CALL_OPENAT, "openat", dirfd, path, flags, mode);
}

int
openat64(int dirfd, const char *path, int flags, ...)
{
    va_list ap;
    mode_t mode;

    va_start(ap, flags);
    mode = mode_argument(flags, ap);
    va_end(ap);
    return shim_openat(CALL_OPENAT, "openat64", dirfd, path, flags, mode);
}

int
__openat_2(int dirfd, const char *path, int flags)
{
    return shim_openat(CALL_OPENAT, "openat", dirfd, path, flags, 0);
}

/* The wrapper of a call on one descriptor: fd names the target. */
#define FD_CALL(kind, fd, result_type, invocation)                             \
    do {                                                                       \
        char target[PATH_MAX];                                                 \
        const char *mode = mode_of_fd(fd);                                     \
        unsigned long number;                                                  \
        result_type result;                                                    \
                                                                               \
        describe_fd(fd, target, sizeof target);                                \
        if (before_call(kind, &number, mode, target, NULL))                    \
            return -1;                                                         \
        result = invocation;                                                   \
        after_call(number, kind, (long)result, mode, target, NULL);            \
        return result;                                                         \
    } while (0)

ssize_t
write(int fd, const void *buffer, size_t len)
{
    ssize_t (*next)(int, const void *, size_t) = real("write");

    FD_CALL(CALL_WRITE, fd, ssize_t, next(fd, buffer, len));
}

ssize_t
writev(int fd, const struct iovec *iov, int count)
{
    ssize_t (*next)(int, const struct iovec *, int) = real("writev");

    FD_CALL(CALL_WRITEV, fd, ssize_t, next(fd, iov, count));
}

ssize_t
pwrite(int fd, const void *buffer, size_t len, off_t offset)
{
    ssize_t (*next)(int, const void *, size_t, off_t) = real("pwrite");

    FD_CALL(CALL_PWRITE, fd, ssize_t, next(fd, buffer, len, offset));
}

ssize_t
pwrite64(int fd, const void *buffer, size_t len, off_t offset)
{
    ssize_t (*next)(int, const void *, size_t, off_t) = real("pwrite64");

    FD_CALL(CALL_PWRITE, fd, ssize_t, next(fd, buffer, len, offset));
}

int
fsync(int fd)
{
    int (*next)(int) = real("fsync");

    FD_CALL(CALL_FSYNC, fd, int, next(fd));
}

int
fdatasync(int fd)
{
    int (*next)(int) = real("fdatasync");

    FD_CALL(CALL_FDATASYNC, fd, int, next(fd));
}

int
ftruncate(int fd, off_t len)
{
    int (*next)(int, off_t) = real("ftruncate");

    FD_CALL(CALL_FTRUNCATE, fd, int, next(fd, len));
}

int
ftruncate64(int fd, off_t len)
{
    int (*next)(int, off_t) = real("ftruncate64");

    FD_CALL(CALL_FTRUNCATE, fd, int, next(fd, len));
}

int
close(int fd)
{
    int (*next)(int) = real("close");

    FD_CALL(CALL_CLOSE, fd, int, next(fd));
}

ssize_t
copy_file_range(int fd_in, off_t *offset_in, int fd_out, off_t *offset_out,
                size_t len, unsigned flags)
{
    ssize_t (*next)(int, off_t *, int, off_t *, size_t, unsigned) =
        real("copy_file_range");
    char target[PATH_MAX], source[PATH_MAX];
    const char *mode = mode_of_fd(fd_out);
    unsigned long number;
    ssize_t result;

    describe_fd(fd_out, target, sizeof target);
    describe_fd(fd_in, source, sizeof source);
    if (before_call(CALL_COPY_FILE_RANGE, &number, mode, target, source))
        return -1;
    result = next(fd_in, offset_in, fd_out, offset_out, len, flags);
    after_call(number, CALL_COPY_FILE_RANGE, (long)result, mode, target,
               source);
    return result;
}

/* The wrapper of a call on two paths: the second names the target. */
static int
path_call(enum call kind, const char *name, const char *from, const char *to)
{
    int (*next)(const char *, const char *) = real(name);
    unsigned long number;
    int result;

    if (before_call(kind, &number, "-", to, from))
        return -1;
    result = next(from, to);
    after_call(number, kind, result, "-", to, from);
    return result;
}

int
rename(const char *from, const char *to)
{
    return path_call(CALL_RENAME, "rename", from, to);
}

int
link(const char *from, const char *to)
{
    return path_call(CALL_LINK, "link", from, to);
}

/* Writes the path of name under dirfd into out, as shim_openat() does. */
static const char *
describe_at(int dirfd, const char *name, char *out, size_t size)
{
    char folder[PATH_MAX];

    if (dirfd == AT_FDCWD || name[0] == '/')
        snprintf(out, size, "%s", name);
    else
        snprintf(out, size, "%s/%s", describe_fd(dirfd, folder, sizeof folder),
                 name);
    return out;
}

int
linkat(int from_dirfd, const char *from, int to_dirfd, const char *to,
       int flags)
{
    int (*next)(int, const char *, int, const char *, int) = real("linkat");
    char target[PATH_MAX + 64], source[PATH_MAX + 64];
    unsigned long number;
    int result;

    describe_at(to_dirfd, to, target, sizeof target);
    describe_at(from_dirfd, from, source, sizeof source);
    if (before_call(CALL_LINKAT, &number, "-", target, source))
        return -1;
    result = next(from_dirfd, from, to_dirfd, to, flags);
    after_call(number, CALL_LINKAT, result, "-", target, source);
    return result;
}

int
renameat2(int from_dirfd, const char *from, int to_dirfd, const char *to,
          unsigned int flags)
{
    int (*next)(int, const char *, int, const char *, unsigned int) =
        real("renameat2");
    char target[PATH_MAX + 64], source[PATH_MAX + 64];
    unsigned long number;
    int result;

    describe_at(to_dirfd, to, target, sizeof target);
    describe_at(from_dirfd, from, source, sizeof source);
    if (before_call(CALL_RENAMEAT2, &number, "-", target, source))
        return -1;
    result = next(from_dirfd, from, to_dirfd, to, flags);
    after_call(number, CALL_RENAMEAT2, result, "-", target, source);
    return result;
}
