/*
 * check_log.c: unit tests for session/log.c.  The journal case binds
 * journald's socket path in a child's own mount namespace, over a fresh
 * /run, and reads the datagram that lmtpd sends.
 */
#include <check.h>
#include <errno.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "session/log.h"

/* Exit status of a child that may not create a mount namespace. */
#define SKIPPED 77

/*
 * In a new mount namespace, mounts a tmpfs on /run and binds a datagram
 * socket at journald's path.  Returns the socket, or -1.
 */
static int
bind_private_journal(void)
{
    struct sockaddr_un address = {.sun_family = AF_UNIX,
                                  .sun_path = "/run/systemd/journal/socket"};
    int fd;

    if (unshare(CLONE_NEWNS) == -1 ||
        mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == -1 ||
        mount("tmpfs", "/run", "tmpfs", 0, "mode=0755") == -1 ||
        mkdir("/run/systemd", 0755) == -1 ||
        mkdir("/run/systemd/journal", 0755) == -1)
        return -1;
    fd = socket(AF_UNIX, SOCK_DGRAM, 0);
    if (fd == -1 ||
        bind(fd, (struct sockaddr *)&address, sizeof(address)) == -1)
        return -1;
    return fd;
}

/*
 * Logs one line to the journal target in a child and returns the
 * datagram journald would receive, through a pipe, in entry.  Returns
 * its length, or -1 when the child could not make the namespace.
 */
static ssize_t
log_to_private_journal(char *entry, size_t size)
{
    int fds[2], status;
    ssize_t len, total = 0;
    pid_t pid;

    ck_assert_int_eq(pipe(fds), 0);
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        char datagram[4096];
        int journal = bind_private_journal();

        if (journal == -1)
            _exit(SKIPPED);
        log_open(LOG_TARGET_JOURNAL, 0);
        log_set_session("0A1B2C3D4E5F");
        log_warning("first line\nsecond line %d", 42);
        len = recv(journal, datagram, sizeof(datagram), MSG_DONTWAIT);
        if (len <= 0 || write(fds[1], datagram, (size_t)len) != len)
            _exit(1);
        _exit(0);
    }
    close(fds[1]);
    while ((len = read(fds[0], entry + total, size - (size_t)total)) > 0)
        total += len;
    close(fds[0]);
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status));
    if (WEXITSTATUS(status) == SKIPPED)
        return -1;
    ck_assert_int_eq(WEXITSTATUS(status), 0);
    return total;
}

START_TEST(journal_entry_fields)
{
    static const char fields[] = "PRIORITY=4\nSYSLOG_FACILITY=2\n"
                                 "SYSLOG_IDENTIFIER=lmtpd\n"
                                 "LMTPD_SESSION=0A1B2C3D4E5F\nMESSAGE\n";
    static const char message[] = "0A1B2C3D4E5F: first line\nsecond line 42";
    char entry[4096];
    uint64_t length = 0;
    ssize_t len = log_to_private_journal(entry, sizeof(entry));

    if (len == -1) {
        fprintf(stderr, "journal_entry_fields: no mount namespace, case "
                        "skipped\n");
        return;
    }
    ck_assert_int_eq(len, (ssize_t)(strlen(fields) + 8 + strlen(message) +
                                    1));
    ck_assert_int_eq(memcmp(entry, fields, strlen(fields)), 0);

    /* MESSAGE in the binary form: 64-bit little-endian length first. */
    for (int i = 7; i >= 0; i--)
        length = length << 8 | (unsigned char)entry[strlen(fields) + i];
    ck_assert_uint_eq(length, strlen(message));
    ck_assert_int_eq(memcmp(entry + strlen(fields) + 8, message,
                            strlen(message)),
                     0);
    ck_assert_int_eq(entry[len - 1], '\n');
}
END_TEST

START_TEST(parse_target_names)
{
    static const struct {
        const char *name;
        int result;
        enum log_target target;
    } cases[] = {
        {"auto", 0, LOG_TARGET_AUTO},
        {"journal", 0, LOG_TARGET_JOURNAL},
        {"syslog", 0, LOG_TARGET_SYSLOG},
        {"stderr", 0, LOG_TARGET_STDERR},
        {"file", -1, LOG_TARGET_AUTO},
        {"", -1, LOG_TARGET_AUTO},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        enum log_target target = LOG_TARGET_AUTO;

        ck_assert_int_eq(log_parse_target(cases[i].name, &target),
                         cases[i].result);
        ck_assert_int_eq(target, cases[i].target);
    }
}
END_TEST

static Suite *
log_suite(void)
{
    Suite *suite = suite_create("log");
    TCase *journal = tcase_create("journal");
    TCase *target = tcase_create("target");

    tcase_add_test(journal, journal_entry_fields);
    suite_add_tcase(suite, journal);
    tcase_add_test(target, parse_target_names);
    suite_add_tcase(suite, target);
    return suite;
}

int
main(void)
{
    SRunner *runner = srunner_create(log_suite());
    int failed;

    srunner_run_all(runner, CK_NORMAL);
    failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
