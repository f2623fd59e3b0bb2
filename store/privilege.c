/*
 * privilege.c: the user that a delivery runs as.  Started as root, lmtpd
 * forks one child per recipient, which drops to the uid and gid of the
 * map record before it opens anything in the mailbox.  Started as any
 * other user, lmtpd writes as itself and never changes identity.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "store/store.h"

/*
 * Drops every privilege for good: supplementary groups, then the group,
 * then the user, each call checked, because a set-user-ID call made
 * first would leave no right to change the groups.  With name set, the
 * supplementary groups are those of /etc/group (initgroups(3)),
 * otherwise gid alone.  Returns 0, or -1 with a message in error.
 */
int
privilege_drop(uid_t uid, gid_t gid, const char *name, char *error,
               size_t size)
{
    uid_t ruid, euid, suid;
    gid_t rgid, egid, sgid;

    if (uid == 0) {
        snprintf(error, size,
                 "uid 0 is not allowed: lmtpd never delivers as root");
        return -1;
    }
    if ((name != NULL ? initgroups(name, gid) : setgroups(1, &gid)) == -1) {
        snprintf(error, size, "setgroups to gid %lu: %s", (unsigned long)gid,
                 strerror(errno));
        return -1;
    }
    if (setresgid(gid, gid, gid) == -1) {
        snprintf(error, size, "setresgid %lu: %s", (unsigned long)gid,
                 strerror(errno));
        return -1;
    }
    if (setresuid(uid, uid, uid) == -1) {
        snprintf(error, size, "setresuid %lu: %s", (unsigned long)uid,
                 strerror(errno));
        return -1;
    }

    if (getresuid(&ruid, &euid, &suid) == -1 ||
        getresgid(&rgid, &egid, &sgid) == -1 || ruid != uid ||
        euid != uid || suid != uid || rgid != gid || egid != gid ||
        sgid != gid) {
        snprintf(error, size, "uid %lu gid %lu not in force after the change",
                 (unsigned long)uid, (unsigned long)gid);
        return -1;
    }
    /* A kernel or a capability set that still allows this is unsafe. */
    if (setuid(0) != -1 || seteuid(0) != -1 || setegid(0) != -1) {
        snprintf(error, size, "root regained after dropping to uid %lu",
                 (unsigned long)uid);
        return -1;
    }
    return 0;
}

/* Reads the reply that the child wrote, going on after EINTR. */
static ssize_t
read_reply(int fd, struct store_reply *reply)
{
    size_t done = 0;
    ssize_t got;

    while (done < sizeof *reply) {
        got = read(fd, (char *)reply + done, sizeof *reply - done);
        if (got == -1 && errno == EINTR)
            continue;
        if (got <= 0)
            break;
        done += (size_t)got;
    }
    return (ssize_t)done;
}

/* Drops to the record's owner, runs the task and sends its reply. */
static void __attribute__((noreturn))
run_child(int fd, const struct mailbox *mb, privilege_task task, void *arg)
{
    struct store_reply reply;
    char error[256];
    size_t done = 0;
    ssize_t written;

    memset(&reply, 0, sizeof reply);
    if (privilege_drop(mb->uid, mb->gid, NULL, error, sizeof error) == -1)
        store_reply_set(&reply, STORE_LOCAL_ERROR, "%s", error);
    else
        task(arg, &reply);

    while (done < sizeof reply) {
        written = write(fd, (char *)&reply + done, sizeof reply - done);
        if (written == -1 && errno == EINTR)
            continue;
        if (written <= 0)
            _exit(1);
        done += (size_t)written;
    }
    _exit(0);
}

/* Waits for the child and describes how it ended when it failed. */
static void
reap_child(pid_t pid, int reply_complete, struct store_reply *reply)
{
    int status = 0;

    while (waitpid(pid, &status, 0) == -1 && errno == EINTR)
        ;
    if (reply_complete)
        return;
    if (WIFSIGNALED(status))
        store_reply_set(reply, STORE_LOCAL_ERROR,
                        "delivery process killed by signal %d",
                        WTERMSIG(status));
    else
        store_reply_set(reply, STORE_LOCAL_ERROR,
                        "delivery process exited with status %d and no "
                        "reply", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
}

/*
 * Runs task in a child that has dropped to mb's uid and gid, and copies
 * the child's reply into reply through a pipe.  A child that dies
 * before it replies gives 451 4.3.0.
 */
static int
run_as_owner(const struct mailbox *mb, privilege_task task, void *arg,
             struct store_reply *reply)
{
    int fds[2];
    pid_t pid;
    ssize_t got;

    if (pipe2(fds, O_CLOEXEC) == -1) {
        store_reply_errno(reply, errno, "pipe", NULL);
        return -1;
    }
    pid = fork();
    if (pid == -1) {
        store_reply_errno(reply, errno, "fork", NULL);
        close(fds[0]);
        close(fds[1]);
        return -1;
    }
    if (pid == 0) {
        close(fds[0]);
        run_child(fds[1], mb, task, arg);
    }

    close(fds[1]);
    got = read_reply(fds[0], reply);
    close(fds[0]);
    reap_child(pid, got == (ssize_t)sizeof *reply, reply);
    return reply->code == 250 ? 0 : -1;
}

/*
 * Runs task, which writes into mb's mailbox, as the user it must run
 * as.  As root: only for a record with uid= and gid= and a uid other
 * than 0, in a child that has dropped to them.  Any other record gets
 * 451 4.3.0, because root must never write into a mailbox.  As another
 * user: in this process, unless the record names a different uid or
 * gid, which this process cannot take (451 4.3.0).  Returns the task's
 * result: 0 with a 250 reply, or -1 with the reply set.
 */
int
privilege_run(const struct mailbox *mb, privilege_task task, void *arg,
              struct store_reply *reply)
{
    uid_t euid = geteuid();
    gid_t egid = getegid();

    if (euid == 0) {
        if (!mb->has_uid || !mb->has_gid) {
            store_reply_set(reply, STORE_LOCAL_ERROR,
                            "lmtpd runs as root and the record of %s lacks "
                            "uid= or gid=: add both, or run lmtpd as the "
                            "mailbox owner", mb->path);
            return -1;
        }
        if (mb->uid == 0) {
            store_reply_set(reply, STORE_LOCAL_ERROR,
                            "record of %s names uid 0, and no delivery runs "
                            "as root", mb->path);
            return -1;
        }
        return run_as_owner(mb, task, arg, reply);
    }

    if ((mb->has_uid && mb->uid != euid) || (mb->has_gid && mb->gid != egid)) {
        store_reply_set(reply, STORE_LOCAL_ERROR,
                        "record of %s names uid %ld gid %ld, but lmtpd runs "
                        "as uid %lu gid %lu and cannot switch",
                        mb->path, mb->has_uid ? (long)mb->uid : -1L,
                        mb->has_gid ? (long)mb->gid : -1L,
                        (unsigned long)euid, (unsigned long)egid);
        return -1;
    }
    return task(arg, reply);
}
