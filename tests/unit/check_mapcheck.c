/*
 * check_mapcheck.c: unit tests for store/mapcheck.c, the checks behind
 * lmtpd --check-map, on text maps and on cdb maps built by "cdb -c -m".
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "store/store.h"

static char dir[] = "/tmp/check_mapcheck.XXXXXX";
static char text_path[256];
static char cdb_path[256];

static void
write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");

    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fputs(text, f) >= 0, 1);
    ck_assert_int_eq(fclose(f), 0);
}

static void
make_dir(void)
{
    char mail[300];

    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(text_path, sizeof(text_path), "%s/users.txt", dir);
    snprintf(cdb_path, sizeof(cdb_path), "%s/users.cdb", dir);
    snprintf(mail, sizeof(mail), "%s/mail", dir);
    ck_assert_int_eq(mkdir(mail, 0700), 0);
}

static void
remove_dir(void)
{
    char command[400];

    snprintf(command, sizeof(command), "rm -rf '%s'", dir);
    ck_assert_int_eq(system(command), 0);
}

/* Writes users.txt from lines in which "@D@" stands for the folder. */
static void
write_map(const char *lines)
{
    char text[4096];
    size_t used = 0;

    for (const char *p = lines; *p != '\0';) {
        if (strncmp(p, "@D@", 3) == 0) {
            used += (size_t)snprintf(text + used, sizeof(text) - used, "%s",
                                     dir);
            p += 3;
        } else {
            text[used++] = *p++;
        }
        ck_assert_uint_lt(used, sizeof(text) - 1);
    }
    text[used] = '\0';
    write_file(text_path, text);
}

static void
compile_map(void)
{
    pid_t pid = fork();
    int status;

    ck_assert_int_ne(pid, -1);
    if (pid == 0) {
        execlp("cdb", "cdb", "-c", "-m", cdb_path, text_path, (char *)NULL);
        _exit(127);
    }
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "cdb -c -m failed with status %d", status);
}

/*
 * Runs one check and returns its report with the folder's path replaced
 * by "@D@".  The caller frees it.
 */
static char *
run_check(int (*check)(const char *, const char *, FILE *,
                       struct mapcheck_result *),
          const char *path, const char *this_host,
          struct mapcheck_result *result, int *status)
{
    char *report = NULL;
    size_t size = 0;
    FILE *out = open_memstream(&report, &size);
    char *found, *clean;
    size_t used = 0;

    ck_assert_ptr_nonnull(out);
    *status = check(path, this_host, out, result);
    ck_assert_int_eq(fclose(out), 0);

    clean = malloc(size + 1);
    ck_assert_ptr_nonnull(clean);
    for (const char *p = report; *p != '\0';) {
        found = strstr(p, dir);
        if (found == NULL) {
            strcpy(clean + used, p);
            used += strlen(p);
            break;
        }
        memcpy(clean + used, p, (size_t)(found - p));
        used += (size_t)(found - p);
        memcpy(clean + used, "@D@", 3);
        used += 3;
        p = found + strlen(dir);
    }
    clean[used] = '\0';
    free(report);
    return clean;
}

static const char good_map[] =
    "# A comment, then an empty line.\n"
    "\n"
    "alice@example.com mailbox=@D@/mail/alice/ quota=1G messages=100\n"
    "  bob@example.com\t mailbox=@D@/mail/bob uid=1000 gid=1000\n"
    "@example.org mailbox=@D@/mail/catchall/\n"
    "postmaster mailbox=@D@/mail/postmaster\n";

START_TEST(text_good_map)
{
    struct mapcheck_result result;
    int status;
    char *report;

    write_map(good_map);
    report = run_check(mapcheck_text, text_path, NULL, &result, &status);
    ck_assert_int_eq(status, 0);
    ck_assert_uint_eq(result.records, 4);
    ck_assert_uint_eq(result.invalid, 0);
    ck_assert_str_eq(report, "@D@/users.txt: 4 records, all valid\n");
    free(report);
}
END_TEST

START_TEST(cdb_good_map)
{
    struct mapcheck_result result;
    int status;
    char *report;

    write_map(good_map);
    compile_map();
    report = run_check(mapcheck_cdb, cdb_path, NULL, &result, &status);
    ck_assert_int_eq(status, 0);
    ck_assert_uint_eq(result.records, 4);
    ck_assert_uint_eq(result.invalid, 0);
    ck_assert_str_eq(report, "@D@/users.cdb: 4 records, all valid\n");
    free(report);
}
END_TEST

static const char bad_map[] =
    "good@example.com mailbox=@D@/mail/good/\n"
    "quota@example.com mailbox=@D@/mail/q/ quota=12X\n"
    "relative@example.com mailbox=mail/relative/\n"
    "nobox@example.com quota=1G\n"
    "orphan@example.com mailbox=@D@/missing/orphan/\n"
    "orphan-mbox@example.com mailbox=@D@/missing/orphan.mbox\n"
    "Upper@Example.COM mailbox=@D@/mail/upper/\n"
    "good@example.com mailbox=@D@/mail/again/\n"
    "dos@example.com mailbox=@D@/mail/dos/\r\n"
    "unknown@example.com mailbox=@D@/mail/u/ colour=blue\n"
    "nodomain@ mailbox=@D@/mail/nodomain/\n"
    "empty@example.com\n";

static const char bad_text_report[] =
    "@D@/users.txt:2: key \"quota@example.com\": field \"quota\": invalid "
    "size \"12X\"\n"
    "@D@/users.txt:3: key \"relative@example.com\": field \"mailbox\": not "
    "an absolute path \"mail/relative/\"\n"
    "@D@/users.txt:4: key \"nobox@example.com\": field \"mailbox\": "
    "missing\n"
    "@D@/users.txt:5: key \"orphan@example.com\": mailbox "
    "@D@/missing/orphan/: parent folder @D@/missing does not exist\n"
    "@D@/users.txt:6: key \"orphan-mbox@example.com\": mailbox "
    "@D@/missing/orphan.mbox: parent folder @D@/missing does not exist\n"
    "@D@/users.txt:7: key \"Upper@Example.COM\": domain not in lower case, "
    "lookups never match it\n"
    "@D@/users.txt:8: key \"good@example.com\": duplicate of line 1, "
    "lookups use the first record only\n"
    "@D@/users.txt:9: key \"dos@example.com\": field \"mailbox\": control "
    "character in \"@D@/mail/dos/\\x0d\"\n"
    "@D@/users.txt:10: key \"unknown@example.com\": unknown field "
    "\"colour\"\n"
    "@D@/users.txt:11: key \"nodomain@\": no domain after \"@\"\n"
    "@D@/users.txt:12: key \"empty@example.com\": field \"mailbox\": "
    "missing\n"
    "@D@/users.txt: 12 records, 11 invalid\n";

START_TEST(text_bad_records)
{
    struct mapcheck_result result;
    int status;
    char *report;

    write_map(bad_map);
    report = run_check(mapcheck_text, text_path, NULL, &result, &status);
    ck_assert_int_eq(status, 0);
    ck_assert_uint_eq(result.records, 12);
    ck_assert_uint_eq(result.invalid, 11);
    ck_assert_str_eq(report, bad_text_report);
    free(report);
}
END_TEST

/* The same records from the cdb, in file order, without line numbers. */
static const char bad_cdb_report[] =
    "@D@/users.cdb: key \"quota@example.com\": field \"quota\": invalid "
    "size \"12X\"\n"
    "@D@/users.cdb: key \"relative@example.com\": field \"mailbox\": not "
    "an absolute path \"mail/relative/\"\n"
    "@D@/users.cdb: key \"nobox@example.com\": field \"mailbox\": "
    "missing\n"
    "@D@/users.cdb: key \"orphan@example.com\": mailbox "
    "@D@/missing/orphan/: parent folder @D@/missing does not exist\n"
    "@D@/users.cdb: key \"orphan-mbox@example.com\": mailbox "
    "@D@/missing/orphan.mbox: parent folder @D@/missing does not exist\n"
    "@D@/users.cdb: key \"Upper@Example.COM\": domain not in lower case, "
    "lookups never match it\n"
    "@D@/users.cdb: key \"good@example.com\": duplicate of record 1, "
    "lookups use the first record only\n"
    "@D@/users.cdb: key \"dos@example.com\": field \"mailbox\": control "
    "character in \"@D@/mail/dos/\\x0d\"\n"
    "@D@/users.cdb: key \"unknown@example.com\": unknown field "
    "\"colour\"\n"
    "@D@/users.cdb: key \"nodomain@\": no domain after \"@\"\n"
    "@D@/users.cdb: key \"empty@example.com\": field \"mailbox\": "
    "missing\n"
    "@D@/users.cdb: 12 records, 11 invalid\n";

START_TEST(cdb_bad_records)
{
    struct mapcheck_result result;
    int status;
    char *report;

    write_map(bad_map);
    compile_map();
    report = run_check(mapcheck_cdb, cdb_path, NULL, &result, &status);
    ck_assert_int_eq(status, 0);
    ck_assert_uint_eq(result.records, 12);
    ck_assert_uint_eq(result.invalid, 11);
    ck_assert_str_eq(report, bad_cdb_report);
    free(report);
}
END_TEST

/*
 * A shared map checked on store1: the folders of store2's mailboxes are
 * not looked for, those of store1's and of records without host= are.
 */
static const char host_map[] =
    "here@example.com mailbox=@D@/mail/here/ host=store1.example.com\n"
    "there@example.com mailbox=@D@/store2/there/ host=store2.example.com\n"
    "case@example.com mailbox=@D@/store1/case/ host=Store1.Example.COM\n"
    "anywhere@example.com mailbox=@D@/shared/anywhere/\n"
    "bad@example.com mailbox=@D@/mail/bad/ host=store_2.example.com\n";

static const char host_text_report[] =
    "@D@/users.txt:3: key \"case@example.com\": mailbox "
    "@D@/store1/case/: parent folder @D@/store1 does not exist\n"
    "@D@/users.txt:4: key \"anywhere@example.com\": mailbox "
    "@D@/shared/anywhere/: parent folder @D@/shared does not exist\n"
    "@D@/users.txt:5: key \"bad@example.com\": field \"host\": invalid "
    "host name \"store_2.example.com\"\n"
    "@D@/users.txt: 5 records, 3 invalid\n";

static const char host_cdb_report[] =
    "@D@/users.cdb: key \"case@example.com\": mailbox "
    "@D@/store1/case/: parent folder @D@/store1 does not exist\n"
    "@D@/users.cdb: key \"anywhere@example.com\": mailbox "
    "@D@/shared/anywhere/: parent folder @D@/shared does not exist\n"
    "@D@/users.cdb: key \"bad@example.com\": field \"host\": invalid "
    "host name \"store_2.example.com\"\n"
    "@D@/users.cdb: 5 records, 3 invalid\n";

START_TEST(text_host_records)
{
    struct mapcheck_result result;
    int status;
    char *report;

    write_map(host_map);
    report = run_check(mapcheck_text, text_path, "store1.example.com", &result,
                       &status);
    ck_assert_int_eq(status, 0);
    ck_assert_uint_eq(result.records, 5);
    ck_assert_uint_eq(result.invalid, 3);
    ck_assert_str_eq(report, host_text_report);
    free(report);
}
END_TEST

START_TEST(cdb_host_records)
{
    struct mapcheck_result result;
    int status;
    char *report;

    write_map(host_map);
    compile_map();
    report = run_check(mapcheck_cdb, cdb_path, "store1.example.com", &result,
                       &status);
    ck_assert_int_eq(status, 0);
    ck_assert_uint_eq(result.records, 5);
    ck_assert_uint_eq(result.invalid, 3);
    ck_assert_str_eq(report, host_cdb_report);
    free(report);
}
END_TEST

/* Without a host name every mailbox folder is looked for. */
START_TEST(text_host_records_no_host)
{
    struct mapcheck_result result;
    int status;
    char *report;

    write_map(host_map);
    report = run_check(mapcheck_text, text_path, NULL, &result, &status);
    ck_assert_int_eq(status, 0);
    ck_assert_uint_eq(result.records, 5);
    ck_assert_uint_eq(result.invalid, 4);
    ck_assert_ptr_nonnull(strstr(report, "@D@/users.txt:2: key "
                                         "\"there@example.com\": mailbox "
                                         "@D@/store2/there/: parent folder "
                                         "@D@/store2 does not exist\n"));
    free(report);
}
END_TEST

START_TEST(missing_file)
{
    struct mapcheck_result result;
    int status;
    char *report;
    char path[300];

    snprintf(path, sizeof(path), "%s/none.cdb", dir);
    report = run_check(mapcheck_cdb, path, NULL, &result, &status);
    ck_assert_int_eq(status, -1);
    ck_assert_int_eq(errno, ENOENT);
    ck_assert_str_eq(report, "");
    free(report);

    report = run_check(mapcheck_text, path, NULL, &result, &status);
    ck_assert_int_eq(status, -1);
    ck_assert_int_eq(errno, ENOENT);
    ck_assert_str_eq(report, "");
    free(report);
}
END_TEST

START_TEST(text_file_as_cdb)
{
    struct mapcheck_result result;
    int status;
    char *report;

    write_map(good_map);
    report = run_check(mapcheck_cdb, text_path, NULL, &result, &status);
    ck_assert_int_eq(status, -1);
    ck_assert_int_eq(errno, EPROTO);
    ck_assert_str_eq(report, "");
    free(report);
}
END_TEST

static Suite *
mapcheck_suite(void)
{
    Suite *suite = suite_create("mapcheck");
    TCase *check = tcase_create("check");

    tcase_add_checked_fixture(check, make_dir, remove_dir);
    tcase_add_test(check, text_good_map);
    tcase_add_test(check, cdb_good_map);
    tcase_add_test(check, text_bad_records);
    tcase_add_test(check, cdb_bad_records);
    tcase_add_test(check, text_host_records);
    tcase_add_test(check, cdb_host_records);
    tcase_add_test(check, text_host_records_no_host);
    tcase_add_test(check, missing_file);
    tcase_add_test(check, text_file_as_cdb);
    suite_add_tcase(suite, check);
    return suite;
}

int
main(void)
{
    SRunner *runner = srunner_create(mapcheck_suite());
    int failed;

    srunner_run_all(runner, CK_NORMAL);
    failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
