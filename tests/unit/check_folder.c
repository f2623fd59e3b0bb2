/*
 * check_folder.c: which +detail may name a Maildir++ folder, and where
 * a message for a Maildir recipient with a detail goes.
 */
#include <check.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/store.h"

struct detail_case {
    const char *detail;
    int safe;
};

static const struct detail_case detail_cases[] = {
    {"lists", 1},
    {"lists.work", 1},
    {"a-b_c", 1},
    {"Caf\xc3\xa9", 1},
    {"", 0},
    {".lists", 0},
    {"..", 0},
    {"a..b", 0},
    {"a/b", 0},
    {"/etc", 0},
    {"a\nb", 0},
    {"a\tb", 0},
    {"a\x7f", 0},
    {"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
     "xxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
     1},
    {"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
     "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
     0},
};

START_TEST(detail_safety_table)
{
    const struct detail_case *c = &detail_cases[_i];

    ck_assert_msg(maildir_detail_is_safe(c->detail) == c->safe,
                  "detail \"%s\" (%zu bytes): expected %d", c->detail,
                  strlen(c->detail), c->safe);
}
END_TEST

static char top[64];
static char inbox[128];

static void
setup(void)
{
    snprintf(top, sizeof(top), "/tmp/check_folder.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(top));
    snprintf(inbox, sizeof(inbox), "%s/alice/", top);
}

static void
teardown(void)
{
    char command[128];

    snprintf(command, sizeof(command), "rm -rf '%s'", top);
    ck_assert_int_eq(system(command), 0);
}

static void
make_dir(const char *path)
{
    ck_assert_int_eq(mkdir(path, 0700), 0);
}

START_TEST(folder_existing_used)
{
    char folder[PATH_MAX], path[PATH_MAX];

    make_dir(inbox);
    snprintf(folder, sizeof(folder), "%s.lists/", inbox);
    make_dir(folder);
    maildir_choose_folder(inbox, "lists", 0, path, sizeof(path));
    ck_assert_str_eq(path, folder);
}
END_TEST

START_TEST(folder_missing_gives_inbox)
{
    char path[PATH_MAX], folder[PATH_MAX];
    struct stat st;

    make_dir(inbox);
    maildir_choose_folder(inbox, "lists", 0, path, sizeof(path));
    ck_assert_str_eq(path, inbox);
    snprintf(folder, sizeof(folder), "%s.lists", inbox);
    ck_assert_int_eq(stat(folder, &st), -1);
}
END_TEST

START_TEST(folder_created_on_request)
{
    char path[PATH_MAX], expected[256], marker[PATH_MAX];
    struct stat st;

    maildir_choose_folder(inbox, "lists", 1, path, sizeof(path));
    snprintf(expected, sizeof(expected), "%s.lists/", inbox);
    ck_assert_str_eq(path, expected);
    ck_assert_int_eq(stat(expected, &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0700);
    snprintf(marker, sizeof(marker), "%smaildirfolder", expected);
    ck_assert_int_eq(stat(marker, &st), 0);
    ck_assert(S_ISREG(st.st_mode));

    /* A second call finds it without an error. */
    maildir_choose_folder(inbox, "lists", 1, path, sizeof(path));
    ck_assert_str_eq(path, expected);
}
END_TEST

START_TEST(folder_symlink_not_followed)
{
    char path[PATH_MAX], link_path[PATH_MAX], target[PATH_MAX];

    make_dir(inbox);
    snprintf(target, sizeof(target), "%s/elsewhere", top);
    make_dir(target);
    snprintf(link_path, sizeof(link_path), "%s.lists", inbox);
    ck_assert_int_eq(symlink(target, link_path), 0);
    maildir_choose_folder(inbox, "lists", 0, path, sizeof(path));
    ck_assert_str_eq(path, inbox);
    maildir_choose_folder(inbox, "lists", 1, path, sizeof(path));
    ck_assert_str_eq(path, inbox);
}
END_TEST

START_TEST(folder_unsafe_detail_gives_inbox)
{
    static const char *details[] = {"../../etc", ".hidden", "a/b", ""};
    char path[PATH_MAX];

    for (size_t i = 0; i < sizeof(details) / sizeof(details[0]); i++) {
        maildir_choose_folder(inbox, details[i], 1, path, sizeof(path));
        ck_assert_str_eq(path, inbox);
    }
}
END_TEST

static Suite *
folder_suite(void)
{
    Suite *suite = suite_create("folder");
    TCase *safety = tcase_create("safety");
    TCase *choice = tcase_create("choice");

    tcase_add_loop_test(safety, detail_safety_table, 0,
                        sizeof(detail_cases) / sizeof(detail_cases[0]));
    tcase_add_checked_fixture(choice, setup, teardown);
    tcase_add_test(choice, folder_existing_used);
    tcase_add_test(choice, folder_missing_gives_inbox);
    tcase_add_test(choice, folder_created_on_request);
    tcase_add_test(choice, folder_symlink_not_followed);
    tcase_add_test(choice, folder_unsafe_detail_gives_inbox);
    suite_add_tcase(suite, safety);
    suite_add_tcase(suite, choice);
    return suite;
}

int
main(void)
{
    SRunner *runner = srunner_create(folder_suite());
    int failed;

    srunner_run_all(runner, CK_NORMAL);
    failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
