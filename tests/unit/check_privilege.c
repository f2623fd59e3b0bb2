/*
 * check_privilege.c: unit tests for store/privilege.c: the identity of a
 * delivery child, the records that root rejects, and a child that dies.
 * The cases that switch users run only as root, as CI does; as another
 * user, the rejection of a foreign uid is tested instead.
 */
#include <check.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "store/store.h"

/* A uid and gid with no rights of their own, those of "nobody". */
#define TEST_ID 65534

static struct mailbox
make_mailbox(int has_uid, uid_t uid, int has_gid, gid_t gid)
{
    struct mailbox mb;

    memset(&mb, 0, sizeof mb);
    snprintf(mb.path, sizeof mb.path, "/nonexistent/mailbox/");
    mb.is_maildir = 1;
    mb.has_uid = has_uid;
    mb.uid = uid;
    mb.has_gid = has_gid;
    mb.gid = gid;
    return mb;
}

/* Reports the identity the task runs with, and whether root comes back. */
static int
report_identity(void *arg, struct store_reply *reply)
{
    gid_t groups[8];
    int count = getgroups(8, groups);
    int regained = setuid(0) == 0 || seteuid(0) == 0;

    (void)arg;
    store_reply_set(reply, STORE_OK, "uid=%lu euid=%lu gid=%lu egid=%lu "
                    "groups=%d:%lu regained=%d", (unsigned long)getuid(),
                    (unsigned long)geteuid(), (unsigned long)getgid(),
                    (unsigned long)getegid(), count,
                    count > 0 ? (unsigned long)groups[0] : 0UL, regained);
    return 0;
}

static int
count_calls(void *arg, struct store_reply *reply)
{
    (*(int *)arg)++;
    store_reply_set(reply, STORE_OK, NULL);
    return 0;
}

static int
die_by_signal(void *arg, struct store_reply *reply)
{
    (void)arg;
    (void)reply;
    raise(SIGKILL);
    return 0;
}

START_TEST(root_child_drops_to_owner)
{
    struct mailbox mb = make_mailbox(1, TEST_ID, 1, TEST_ID);
    struct store_reply reply;
    char expected[160];

    if (geteuid() != 0)
        return;
    memset(&reply, 0, sizeof reply);
    ck_assert_int_eq(privilege_run(&mb, report_identity, NULL, &reply), 0);
    ck_assert_int_eq(reply.code, 250);
    snprintf(expected, sizeof expected, "uid=%d euid=%d gid=%d egid=%d "
             "groups=1:%d regained=0", TEST_ID, TEST_ID, TEST_ID, TEST_ID,
             TEST_ID);
    ck_assert_str_eq(reply.detail, expected);

    /* The parent keeps its identity. */
    ck_assert_uint_eq(geteuid(), 0);
}
END_TEST

/* As root, records without both ids, or with uid 0, get 451 4.3.0. */
static const struct {
    int has_uid;
    uid_t uid;
    int has_gid;
    gid_t gid;
    const char *detail;
} root_rejections[] = {
    {0, 0, 0, 0, "lacks uid= or gid="},
    {1, TEST_ID, 0, 0, "lacks uid= or gid="},
    {0, 0, 1, TEST_ID, "lacks uid= or gid="},
    {1, 0, 1, TEST_ID, "names uid 0, and no delivery runs as root"},
    {1, 0, 1, 0, "names uid 0, and no delivery runs as root"},
};

START_TEST(root_rejects_record)
{
    struct mailbox mb = make_mailbox(
        root_rejections[_i].has_uid, root_rejections[_i].uid,
        root_rejections[_i].has_gid, root_rejections[_i].gid);
    struct store_reply reply;
    int calls = 0;

    if (geteuid() != 0)
        return;
    ck_assert_int_eq(privilege_run(&mb, count_calls, &calls, &reply), -1);
    ck_assert_int_eq(calls, 0);
    ck_assert_int_eq(reply.code, 451);
    ck_assert_str_eq(reply.status, "4.3.0");
    ck_assert_msg(strstr(reply.detail, root_rejections[_i].detail) != NULL,
                  "detail \"%s\"", reply.detail);
}
END_TEST

START_TEST(root_child_killed)
{
    struct mailbox mb = make_mailbox(1, TEST_ID, 1, TEST_ID);
    struct store_reply reply;

    if (geteuid() != 0)
        return;
    ck_assert_int_eq(privilege_run(&mb, die_by_signal, NULL, &reply), -1);
    ck_assert_int_eq(reply.code, 451);
    ck_assert_str_eq(reply.status, "4.3.0");
    ck_assert_str_eq(reply.detail, "delivery process killed by signal 9");
}
END_TEST

/*
 * Runs privilege_run() in a child that has dropped root first (when
 * root), and returns the task's call count and reply code as
 * calls * 1000 + code.
 */
static int
run_unprivileged(const struct mailbox *mb)
{
    int fds[2], status, result = -1;
    pid_t pid;

    ck_assert_int_eq(pipe(fds), 0);
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        struct store_reply reply;
        char error[256];
        int calls = 0;

        if (geteuid() == 0 &&
            privilege_drop(TEST_ID, TEST_ID, NULL, error, sizeof error) == -1)
            _exit(1);
        privilege_run(mb, count_calls, &calls, &reply);
        result = calls * 1000 + reply.code;
        _exit(write(fds[1], &result, sizeof result) == sizeof result ? 0 : 1);
    }
    close(fds[1]);
    ck_assert_int_eq(read(fds[0], &result, sizeof result), sizeof result);
    close(fds[0]);
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_int_eq(status, 0);
    return result;
}

START_TEST(unprivileged_own_ids_run_here)
{
    uid_t uid = geteuid() == 0 ? TEST_ID : geteuid();
    gid_t gid = geteuid() == 0 ? TEST_ID : getegid();
    struct mailbox with_ids = make_mailbox(1, uid, 1, gid);
    struct mailbox without_ids = make_mailbox(0, 0, 0, 0);

    ck_assert_int_eq(run_unprivileged(&with_ids), 1000 + 250);
    ck_assert_int_eq(run_unprivileged(&without_ids), 1000 + 250);
}
END_TEST

START_TEST(unprivileged_rejects_other_ids)
{
    uid_t uid = geteuid() == 0 ? TEST_ID : geteuid();
    gid_t gid = geteuid() == 0 ? TEST_ID : getegid();
    struct mailbox other_uid = make_mailbox(1, uid - 1, 1, gid);
    struct mailbox other_gid = make_mailbox(1, uid, 1, gid - 1);

    ck_assert_int_eq(run_unprivileged(&other_uid), 451);
    ck_assert_int_eq(run_unprivileged(&other_gid), 451);
}
END_TEST

START_TEST(drop_rejects_uid_zero)
{
    char error[256];

    ck_assert_int_eq(privilege_drop(0, 0, NULL, error, sizeof error), -1);
    ck_assert_str_eq(error,
                     "uid 0 is not allowed: lmtpd never delivers as root");
}
END_TEST

static Suite *
privilege_suite(void)
{
    Suite *suite = suite_create("privilege");
    TCase *root = tcase_create("root");
    TCase *unprivileged = tcase_create("unprivileged");

    tcase_add_test(root, root_child_drops_to_owner);
    tcase_add_loop_test(root, root_rejects_record, 0,
                        sizeof root_rejections / sizeof root_rejections[0]);
    tcase_add_test(root, root_child_killed);
    tcase_add_test(root, drop_rejects_uid_zero);
    suite_add_tcase(suite, root);

    tcase_add_test(unprivileged, unprivileged_own_ids_run_here);
    tcase_add_test(unprivileged, unprivileged_rejects_other_ids);
    suite_add_tcase(suite, unprivileged);
    return suite;
}

int
main(void)
{
    SRunner *runner = srunner_create(privilege_suite());
    int failed;

    srunner_run_all(runner, CK_NORMAL);
    failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
