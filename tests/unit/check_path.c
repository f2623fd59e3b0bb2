/*
 * check_path.c: RFC 5321 path syntax, a table of valid and invalid
 * reverse-paths and forward-paths.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "session/path.h"

struct path_case {
    const char *input;
    int flags;
    int result;
    const char *address; /* expected address, or the error substring */
    size_t consumed;
};

#define NULL_OK PATH_ALLOW_NULL
#define PM_OK PATH_ALLOW_POSTMASTER
#define UTF8_OK PATH_ALLOW_UTF8

static const struct path_case cases[] = {
    {"<alice@example.com>", 0, PATH_OK, "alice@example.com", 19},
    {"<alice@example.com> SIZE=10", 0, PATH_OK, "alice@example.com", 19},
    {"<Alice.B+tag@Mail.Example.COM>", 0, PATH_OK,
     "Alice.B+tag@Mail.Example.COM", 30},
    {"<>", NULL_OK, PATH_OK, "", 2},
    {"<>", 0, PATH_INVALID, "invalid local part", 0},
    {"<postmaster>", PM_OK, PATH_OK, "postmaster", 12},
    {"<PostMaster>", PM_OK, PATH_OK, "PostMaster", 12},
    {"<postmaster>", 0, PATH_INVALID, "missing domain", 0},
    {"<\"john doe\"@example.com>", 0, PATH_OK, "\"john doe\"@example.com",
     24},
    {"<\"a\\\"b\"@example.com>", 0, PATH_OK, "\"a\\\"b\"@example.com", 20},
    {"<@relay.example,@r2.example:bob@example.com>", 0, PATH_OK,
     "bob@example.com", 44},
    {"<@relay.example:bob@example.com>", 0, PATH_OK, "bob@example.com", 32},
    {"<bob@[192.0.2.1]>", 0, PATH_OK, "bob@[192.0.2.1]", 17},
    {"<bob@[IPv6:2001:db8::1]>", 0, PATH_OK, "bob@[IPv6:2001:db8::1]", 24},
    {"<bob@[x-tag:stuff]>", 0, PATH_OK, "bob@[x-tag:stuff]", 19},
    {"<bob@[300.1.1.1]>", 0, PATH_INVALID, "address literal", 0},
    {"<bob@[IPv6:zz]>", 0, PATH_INVALID, "address literal", 0},
    {"alice@example.com", 0, PATH_INVALID, "enclosed in <>", 0},
    {"<alice@example.com", 0, PATH_INVALID, "invalid character", 0},
    {"<alice@@example.com>", 0, PATH_INVALID, "invalid domain", 0},
    {"<alice@-example.com>", 0, PATH_INVALID, "invalid domain", 0},
    {"<alice@example-.com>", 0, PATH_INVALID, "invalid domain", 0},
    {"<alice@example..com>", 0, PATH_INVALID, "invalid domain", 0},
    {"<alice..b@example.com>", 0, PATH_INVALID, "invalid local part", 0},
    {"<.alice@example.com>", 0, PATH_INVALID, "invalid local part", 0},
    {"<alice b@example.com>", 0, PATH_INVALID, "character in local", 0},
    {"<alice@exa mple.com>", 0, PATH_INVALID, "invalid character", 0},
    {"<al\001ce@example.com>", 0, PATH_INVALID, "character in local", 0},
    {"<\"unterminated@example.com>", 0, PATH_INVALID, "quoted", 0},
    {"<@relay.example bob@example.com>", 0, PATH_INVALID, "source route",
     0},
    {"<j\xc3\xb6rg@example.com>", 0, PATH_NEEDS_UTF8, "SMTPUTF8", 0},
    {"<j\xc3\xb6rg@example.com>", UTF8_OK, PATH_OK,
     "j\xc3\xb6rg@example.com", 19},
    {"<bob@b\xc3\xbc\x63her.example>", UTF8_OK, PATH_OK,
     "bob@b\xc3\xbc\x63her.example", 21},
    {"<j\xc3rg@example.com>", UTF8_OK, PATH_INVALID, "local part", 0},
    {"<j\xc0\xafrg@example.com>", UTF8_OK, PATH_INVALID, "local part", 0},
    {"<j\xed\xa0\x80rg@example.com>", UTF8_OK, PATH_INVALID, "local part",
     0},
};

START_TEST(path_parse_table)
{
    const struct path_case *c = &cases[_i];
    char address[PATH_MAX_LENGTH];
    const char *error = NULL;
    size_t consumed = 0;
    int result;

    result = path_parse(c->input, c->flags, address, sizeof(address),
                        &consumed, &error);
    ck_assert_msg(result == c->result, "\"%s\": result %d, expected %d (%s)",
                  c->input, result, c->result, error ? error : "");
    if (c->result == PATH_OK) {
        ck_assert_str_eq(address, c->address);
        ck_assert_uint_eq(consumed, c->consumed);
    } else {
        ck_assert_ptr_nonnull(error);
        ck_assert_msg(strstr(error, c->address) != NULL,
                      "\"%s\": error \"%s\" lacks \"%s\"", c->input, error,
                      c->address);
    }
}
END_TEST

START_TEST(path_length_limits)
{
    char input[400], address[PATH_MAX_LENGTH];
    const char *error;
    size_t consumed;
    char local[70];

    /* A 64-octet local part is the maximum of RFC 5321 4.5.3.1.1. */
    memset(local, 'a', 64);
    local[64] = '\0';
    snprintf(input, sizeof(input), "<%s@example.com>", local);
    ck_assert_int_eq(path_parse(input, 0, address, sizeof(address),
                                &consumed, &error),
                     PATH_OK);

    memset(local, 'a', 65);
    local[65] = '\0';
    snprintf(input, sizeof(input), "<%s@example.com>", local);
    ck_assert_int_eq(path_parse(input, 0, address, sizeof(address),
                                &consumed, &error),
                     PATH_INVALID);
    ck_assert_ptr_nonnull(strstr(error, "64"));

    /* A path over 256 octets with a long domain. */
    strcpy(input, "<a@");
    for (int i = 0; i < 30; i++)
        strcat(input, "abcdefghi.");
    strcat(input, "example>");
    ck_assert_int_eq(path_parse(input, 0, address, sizeof(address),
                                &consumed, &error),
                     PATH_INVALID);
    ck_assert_ptr_nonnull(strstr(error, "256"));
}
END_TEST

static Suite *
path_suite(void)
{
    Suite *suite = suite_create("path");
    TCase *tc = tcase_create("parse");

    tcase_add_loop_test(tc, path_parse_table, 0,
                        sizeof(cases) / sizeof(cases[0]));
    tcase_add_test(tc, path_length_limits);
    suite_add_tcase(suite, tc);
    return suite;
}

int
main(void)
{
    SRunner *runner = srunner_create(path_suite());
    int failed;

    srunner_run_all(runner, CK_NORMAL);
    failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
