/*
 * check_command.c: verb recognition and the MAIL and RCPT arguments,
 * with the reply each rejected argument gets.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "session/command.h"

struct verb_case {
    const char *line;
    enum command_verb verb;
    const char *argument;
};

static const struct verb_case verb_cases[] = {
    {"LHLO client.example", VERB_LHLO, "client.example"},
    {"lhlo client.example", VERB_LHLO, "client.example"},
    {"MAIL FROM:<a@b.example>", VERB_MAIL, "FROM:<a@b.example>"},
    {"rcpt TO:<a@b.example>", VERB_RCPT, "TO:<a@b.example>"},
    {"DATA", VERB_DATA, ""},
    {"data", VERB_DATA, ""},
    {"RSET", VERB_RSET, ""},
    {"NOOP anything", VERB_NOOP, "anything"},
    {"VRFY bob", VERB_VRFY, "bob"},
    {"QUIT", VERB_QUIT, ""},
    {"HELO x", VERB_HELO, "x"},
    {"EHLO x", VERB_EHLO, "x"},
    {"HELP", VERB_HELP, ""},
    {"DATAX", VERB_UNKNOWN, "DATAX"},
    {"MAILFROM:<a@b>", VERB_UNKNOWN, "MAILFROM:<a@b>"},
    {"", VERB_UNKNOWN, ""},
    {"BDAT 10", VERB_BDAT, "10"},
    {"STARTTLS", VERB_UNKNOWN, "STARTTLS"},
};

START_TEST(verb_table)
{
    const struct verb_case *c = &verb_cases[_i];
    const char *argument = NULL;

    ck_assert_int_eq(command_verb(c->line, &argument), c->verb);
    ck_assert_str_eq(argument, c->argument);
}
END_TEST

struct mail_case {
    const char *argument;
    int code; /* 0 when accepted */
    const char *status;
    const char *reverse_path;
    unsigned long long size;
    enum body_type body;
};

static const struct mail_case mail_cases[] = {
    {"FROM:<a@b.example>", 0, NULL, "a@b.example", 0, BODY_7BIT},
    {"from:<a@b.example>", 0, NULL, "a@b.example", 0, BODY_7BIT},
    {"FROM: <a@b.example>", 0, NULL, "a@b.example", 0, BODY_7BIT},
    {"FROM:<>", 0, NULL, "", 0, BODY_7BIT},
    {"FROM:<a@b.example> SIZE=1000", 0, NULL, "a@b.example", 1000,
     BODY_7BIT},
    {"FROM:<a@b.example> size=1000 body=8bitmime", 0, NULL, "a@b.example",
     1000, BODY_8BITMIME},
    {"FROM:<a@b.example> BODY=7BIT", 0, NULL, "a@b.example", 0, BODY_7BIT},
    {"FROM:<a@b.example>  SIZE=5", 0, NULL, "a@b.example", 5, BODY_7BIT},
    {"FROM:<a@b.example> SIZE=2000000", 552, "5.3.4", NULL, 0, 0},
    {"FROM:<a@b.example> SIZE=", 501, "5.5.4", NULL, 0, 0},
    {"FROM:<a@b.example> SIZE=12x", 501, "5.5.4", NULL, 0, 0},
    {"FROM:<a@b.example> SIZE=-1", 501, "5.5.4", NULL, 0, 0},
    {"FROM:<a@b.example> SIZE", 501, "5.5.4", NULL, 0, 0},
    {"FROM:<a@b.example> SIZE=1 SIZE=2", 501, "5.5.4", NULL, 0, 0},
    {"FROM:<a@b.example> SIZE=99999999999999999999999", 501, "5.5.4", NULL,
     0, 0},
    {"FROM:<a@b.example> BODY=BINARY", 501, "5.5.4", NULL, 0, 0},
    {"FROM:<a@b.example> BODY=binarymime", 0, NULL, "a@b.example", 0,
     BODY_BINARYMIME},
    {"FROM:<j\xc3\xb6rg@b.example> SMTPUTF8", 0, NULL, "j\xc3\xb6rg@b.example",
     0, BODY_7BIT},
    {"FROM:<a@b.example> SMTPUTF8 SMTPUTF8", 501, "5.5.4", NULL, 0, 0},
    {"FROM:<a@b.example> SMTPUTF8=1", 501, "5.5.4", NULL, 0, 0},
    {"FROM:<a@b.example> BODY=7BIT BODY=7BIT", 501, "5.5.4", NULL, 0, 0},
    {"FROM:<a@b.example> AUTH=<>", 555, "5.5.4", NULL, 0, 0},
    {"FROM:<a@b.example> X-FOO", 555, "5.5.4", NULL, 0, 0},
    {"FROM:<a@b.example> =x", 501, "5.5.4", NULL, 0, 0},
    {"FROM:<a@b.example>SIZE=1", 501, "5.1.7", NULL, 0, 0},
    {"FROM:a@b.example", 501, "5.1.7", NULL, 0, 0},
    {"FROM:<a@@b.example>", 501, "5.1.7", NULL, 0, 0},
    {"TO:<a@b.example>", 501, "5.5.4", NULL, 0, 0},
    {"", 501, "5.5.4", NULL, 0, 0},
    {"FROM:<j\xc3\xb6rg@b.example>", 553, "5.6.7", NULL, 0, 0},
};

START_TEST(mail_table)
{
    const struct mail_case *c = &mail_cases[_i];
    struct mail_request mail;
    struct command_error error = {0};
    int result;

    result = command_parse_mail(c->argument, 1000000, &mail, &error);
    if (c->code == 0) {
        ck_assert_msg(result == 0, "\"%s\" rejected: %d %s %s", c->argument,
                      error.code, error.status, error.text);
        ck_assert_str_eq(mail.reverse_path, c->reverse_path);
        ck_assert_uint_eq(mail.size, c->size);
        ck_assert_int_eq(mail.body, c->body);
    } else {
        ck_assert_msg(result == -1, "\"%s\" accepted", c->argument);
        ck_assert_int_eq(error.code, c->code);
        ck_assert_str_eq(error.status, c->status);
        ck_assert_ptr_nonnull(error.text);
    }
}
END_TEST

START_TEST(mail_size_unlimited)
{
    struct mail_request mail;
    struct command_error error;

    ck_assert_int_eq(command_parse_mail("FROM:<a@b.example> SIZE=99999999999",
                                        0, &mail, &error),
                     0);
    ck_assert_uint_eq(mail.size, 99999999999ULL);
}
END_TEST

struct rcpt_case {
    const char *argument;
    int code;
    const char *status;
    const char *forward_path;
};

static const struct rcpt_case rcpt_cases[] = {
    {"TO:<bob@b.example>", 0, NULL, "bob@b.example"},
    {"to: <bob@b.example>", 0, NULL, "bob@b.example"},
    {"TO:<postmaster>", 0, NULL, "postmaster"},
    {"TO:<@r.example:bob@b.example>", 0, NULL, "bob@b.example"},
    {"TO:<>", 501, "5.1.3", NULL},
    {"TO:<bob>", 501, "5.1.3", NULL},
    {"TO:bob@b.example", 501, "5.1.3", NULL},
    {"TO:<bob@b.example> NOTIFY=SUCCESS", 555, "5.5.4", NULL},
    {"TO:<bob@b.example> ORCPT=rfc822;bob@b.example", 555, "5.5.4", NULL},
    {"TO:<bob@b.example> =", 501, "5.5.4", NULL},
    {"FROM:<bob@b.example>", 501, "5.5.4", NULL},
};

START_TEST(rcpt_table)
{
    const struct rcpt_case *c = &rcpt_cases[_i];
    struct rcpt_request rcpt;
    struct command_error error = {0};
    int result;

    result = command_parse_rcpt(c->argument, 0, &rcpt, &error);
    if (c->code == 0) {
        ck_assert_msg(result == 0, "\"%s\" rejected: %d %s %s", c->argument,
                      error.code, error.status, error.text);
        ck_assert_str_eq(rcpt.forward_path, c->forward_path);
    } else {
        ck_assert_msg(result == -1, "\"%s\" accepted", c->argument);
        ck_assert_int_eq(error.code, c->code);
        ck_assert_str_eq(error.status, c->status);
    }
}
END_TEST

static Suite *
command_suite(void)
{
    Suite *suite = suite_create("command");
    TCase *verbs = tcase_create("verb");
    TCase *mail = tcase_create("mail");
    TCase *rcpt = tcase_create("rcpt");

    tcase_add_loop_test(verbs, verb_table, 0,
                        sizeof(verb_cases) / sizeof(verb_cases[0]));
    tcase_add_loop_test(mail, mail_table, 0,
                        sizeof(mail_cases) / sizeof(mail_cases[0]));
    tcase_add_test(mail, mail_size_unlimited);
    tcase_add_loop_test(rcpt, rcpt_table, 0,
                        sizeof(rcpt_cases) / sizeof(rcpt_cases[0]));
    suite_add_tcase(suite, verbs);
    suite_add_tcase(suite, mail);
    suite_add_tcase(suite, rcpt);
    return suite;
}

int
main(void)
{
    SRunner *runner = srunner_create(command_suite());
    int failed;

    srunner_run_all(runner, CK_NORMAL);
    failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
