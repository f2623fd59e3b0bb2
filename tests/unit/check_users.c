/*
 * check_users.c: unit tests for the user map in store/users.c, from size
 * and record parsing to lookups in a map built by the real "cdb -c -m".
 */
#include <check.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "store/store.h"

/* users_parse_size */

struct size_case {
    const char *text;
    int result;
    unsigned long long value;
};

static const struct size_case size_cases[] = {
    {"0", 0, 0},
    {"123", 0, 123},
    {"10K", 0, 10ULL << 10},
    {"10k", 0, 10ULL << 10},
    {"5M", 0, 5ULL << 20},
    {"5m", 0, 5ULL << 20},
    {"1G", 0, 1ULL << 30},
    {"1g", 0, 1ULL << 30},
    {"0K", 0, 0},
    {"18446744073709551615", 0, ULLONG_MAX},
    {"17179869183G", 0, 17179869183ULL << 30},
    {"", -1, 0},
    {"K", -1, 0},
    {"-1", -1, 0},
    {"+1", -1, 0},
    {" 1", -1, 0},
    {"1 ", -1, 0},
    {"12X", -1, 0},
    {"1KB", -1, 0},
    {"1T", -1, 0},
    {"1.5M", -1, 0},
    {"0x10", -1, 0},
    {"18446744073709551616", -1, 0},
    {"17179869184G", -1, 0},
    {"18014398509481984K", -1, 0},
};

START_TEST(parse_size_table)
{
    const struct size_case *c = &size_cases[_i];
    unsigned long long value = 42;
    int result = users_parse_size(c->text, &value);

    ck_assert_msg(result == c->result, "\"%s\": result %d, expected %d",
                  c->text, result, c->result);
    if (c->result == 0)
        ck_assert_msg(value == c->value, "\"%s\": value %llu, expected %llu",
                      c->text, value, c->value);
    else
        ck_assert_msg(value == 42, "\"%s\": value changed on failure", c->text);
}
END_TEST

/* users_parse_record */

struct record_case {
    const char *value;
    size_t len;        /* 0: strlen(value) */
    const char *error; /* expected substring, NULL for a valid record */
    const char *path;
    int is_maildir;
    unsigned long long quota_bytes;
    unsigned long long quota_messages;
    int has_quota;
    int has_uid;
    unsigned uid;
    int has_gid;
    unsigned gid;
    const char *host; /* NULL: no host= field */
};

static const struct record_case record_cases[] = {
    {.value = "mailbox=/var/mail/alice/",
     .path = "/var/mail/alice/",
     .is_maildir = 1},
    {.value = "mailbox=/var/mail/bob", .path = "/var/mail/bob"},
    {.value = "mailbox=/m/a/ quota=1G messages=50000 uid=1000 gid=100",
     .path = "/m/a/",
     .is_maildir = 1,
     .quota_bytes = 1ULL << 30,
     .quota_messages = 50000,
     .has_quota = 1,
     .has_uid = 1,
     .uid = 1000,
     .has_gid = 1,
     .gid = 100},
    {.value = "  quota=10K\tmailbox=/m/b  ",
     .path = "/m/b",
     .quota_bytes = 10240,
     .has_quota = 1},
    {.value = "mailbox=/m/c quota=0 messages=0 uid=0 gid=0",
     .path = "/m/c",
     .has_quota = 1,
     .has_uid = 1,
     .has_gid = 1},
    {.value = "mailbox=/m/..a/", .path = "/m/..a/", .is_maildir = 1},
    {.value = "mailbox=/m/a.../b", .path = "/m/a.../b"},
    {.value = "mailbox=/m/h/ host=store2.example.com",
     .path = "/m/h/",
     .is_maildir = 1,
     .host = "store2.example.com"},
    {.value = "host=Store-2.Example.COM\tmailbox=/m/h",
     .path = "/m/h",
     .host = "Store-2.Example.COM"},
    {.value = "mailbox=/m/h host=192.0.2.10",
     .path = "/m/h",
     .host = "192.0.2.10"},
    {.value = "host=store2.example.com",
     .error = "field \"mailbox\": missing"},
    {.value = "mailbox=/m/h host=",
     .error = "field \"host\": empty value"},
    {.value = "mailbox=/m/h host=a host=b",
     .error = "field \"host\": duplicate"},
    {.value = "mailbox=/m/h host=store_2.example.com",
     .error = "field \"host\": invalid host name \"store_2.example.com\""},
    {.value = "mailbox=/m/h host=store2.example.com.",
     .error = "field \"host\": invalid host name \"store2.example.com.\""},
    {.value = "mailbox=/m/h host=store2\r",
     .error = "field \"host\": invalid host name \"store2\\x0d\""},
    {.value = "", .error = "field \"mailbox\": missing"},
    {.value = "   ", .error = "field \"mailbox\": missing"},
    {.value = "quota=1G", .error = "field \"mailbox\": missing"},
    {.value = "mailbox=/m/a color=red", .error = "unknown field \"color\""},
    {.value = "Mailbox=/m/a", .error = "unknown field \"Mailbox\""},
    {.value = "mailbox=/m/a mailbox=/m/b",
     .error = "field \"mailbox\": duplicate"},
    {.value = "mailbox=/m/a quota=1G quota=2G",
     .error = "field \"quota\": duplicate"},
    {.value = "mailbox=", .error = "field \"mailbox\": empty value"},
    {.value = "mailbox=/m/a quota=", .error = "field \"quota\": empty value"},
    {.value = "mailbox=/m/a quota",
     .error = "field \"quota\": expected name=value"},
    {.value = "mailbox=relative/a/",
     .error = "field \"mailbox\": not an absolute path \"relative/a/\""},
    {.value = "mailbox=/m/../etc/",
     .error = "field \"mailbox\": \"..\" component"},
    {.value = "mailbox=/m/..", .error = "field \"mailbox\": \"..\" component"},
    {.value = "mailbox=/../m", .error = "field \"mailbox\": \"..\" component"},
    {.value = "mailbox=/m/a\r",
     .error = "field \"mailbox\": control character"},
    {.value = "mailbox=/m/a\033b",
     .error = "field \"mailbox\": control character"},
    {.value = "mailbox=/m/a\0/b",
     .len = 15,
     .error = "field \"mailbox\": control character"},
    {.value = "mailbox=/m/a quota=12X",
     .error = "field \"quota\": invalid size \"12X\""},
    {.value = "mailbox=/m/a quota=-1",
     .error = "field \"quota\": invalid size \"-1\""},
    {.value = "mailbox=/m/a quota=99999999999G",
     .error = "field \"quota\": invalid size"},
    {.value = "mailbox=/m/a quota=1G\r",
     .error = "field \"quota\": invalid size \"1G\\x0d\""},
    {.value = "mailbox=/m/a messages=10K",
     .error = "field \"messages\": invalid number \"10K\""},
    {.value = "mailbox=/m/a messages=99999999999999999999",
     .error = "field \"messages\": invalid number"},
    {.value = "mailbox=/m/a uid=abc",
     .error = "field \"uid\": invalid id \"abc\""},
    {.value = "mailbox=/m/a uid=-1",
     .error = "field \"uid\": invalid id \"-1\""},
    {.value = "mailbox=/m/a uid=4294967295",
     .error = "field \"uid\": invalid id"},
    {.value = "mailbox=/m/a gid=4294967296",
     .error = "field \"gid\": invalid id"},
    {.value = "mailbox=/m/a gid=1x",
     .error = "field \"gid\": invalid id \"1x\""},
};

static void
check_parsed(const struct record_case *c, const struct mailbox *mb)
{
    ck_assert_str_eq(mb->path, c->path);
    ck_assert_int_eq(mb->is_maildir, c->is_maildir);
    ck_assert_uint_eq(mb->quota_bytes, c->quota_bytes);
    ck_assert_uint_eq(mb->quota_messages, c->quota_messages);
    ck_assert_int_eq(mb->has_quota, c->has_quota);
    ck_assert_int_eq(mb->has_uid, c->has_uid);
    ck_assert_uint_eq(mb->uid, c->uid);
    ck_assert_int_eq(mb->has_gid, c->has_gid);
    ck_assert_uint_eq(mb->gid, c->gid);
    ck_assert_str_eq(mb->key, "");
    ck_assert_str_eq(mb->detail, "");
    ck_assert_str_eq(mb->host, c->host != NULL ? c->host : "");
}

START_TEST(parse_record_table)
{
    const struct record_case *c = &record_cases[_i];
    size_t len = c->len ? c->len : strlen(c->value);
    static struct mailbox mb, before;
    char error[256] = "";
    int result;

    memset(&mb, 0xa5, sizeof mb);
    before = mb;
    result = users_parse_record(c->value, len, &mb, error, sizeof error);

    if (c->error == NULL) {
        ck_assert_msg(result == 0, "\"%s\": rejected: %s", c->value, error);
        check_parsed(c, &mb);
        return;
    }
    ck_assert_msg(result == -1, "\"%s\": accepted", c->value);
    ck_assert_msg(strstr(error, c->error) != NULL,
                  "\"%s\": error \"%s\" lacks \"%s\"", c->value, error,
                  c->error);
    ck_assert_msg(memcmp(&mb, &before, sizeof mb) == 0,
                  "\"%s\": mailbox changed on failure", c->value);
}
END_TEST

START_TEST(parse_record_path_too_long)
{
    static char value[PATH_MAX + 32];
    static struct mailbox mb;
    char error[256] = "";
    size_t len;

    /* A path of PATH_MAX bytes leaves no room for its NUL. */
    len = (size_t)snprintf(value, sizeof value, "mailbox=/");
    memset(value + len, 'a', PATH_MAX - 1);
    len += PATH_MAX - 1;
    value[len] = '\0';

    ck_assert_int_eq(users_parse_record(value, len, &mb, error, sizeof error),
                     -1);
    ck_assert_msg(strstr(error, "field \"mailbox\": path longer than") != NULL,
                  "error \"%s\"", error);

    /* One byte less fits. */
    ck_assert_int_eq(
        users_parse_record(value, len - 1, &mb, error, sizeof error), 0);
    ck_assert_uint_eq(strlen(mb.path), PATH_MAX - 1);
}
END_TEST

START_TEST(parse_record_error_truncated)
{
    static struct mailbox mb;
    char error[24];

    const char *value = "mailbox=/m quota=12345678901234X";

    ck_assert_int_eq(
        users_parse_record(value, strlen(value), &mb, error, sizeof error), -1);
    ck_assert_uint_eq(strlen(error), sizeof error - 1);
    ck_assert_str_eq(error, "field \"quota\": invalid ");
}
END_TEST

/* users_host_name_is_valid */

struct host_case {
    const char *name;
    int valid;
};

static const struct host_case host_cases[] = {
    {"store2.example.com", 1},
    {"localhost", 1},
    {"a", 1},
    {"A-1.b-2", 1},
    {"xn--bcher-kva.example", 1},
    {"192.0.2.10", 1},
    {"2nd.example", 1},
    {"", 0},
    {".", 0},
    {".example.com", 0},
    {"example.com.", 0},
    {"store..example.com", 0},
    {"-store.example.com", 0},
    {"store-.example.com", 0},
    {"store.-example.com", 0},
    {"store_2.example.com", 0},
    {"store 2", 0},
    {"store2:24", 0},
    {"[192.0.2.10]", 0},
    {"2001:db8::1", 0},
    {"b\xc3\xbc" "cher.example", 0},
    {"store2\n", 0},
};

START_TEST(host_name_table)
{
    const struct host_case *c = &host_cases[_i];

    ck_assert_msg(users_host_name_is_valid(c->name, strlen(c->name)) ==
                      c->valid,
                  "\"%s\": expected %s", c->name,
                  c->valid ? "valid" : "invalid");
}
END_TEST

START_TEST(host_name_lengths)
{
    char name[USERS_HOST_NAME_MAX + 2];
    size_t i;

    /* A label of 63 bytes passes and one of 64 does not. */
    memset(name, 'a', 64);
    ck_assert_int_eq(users_host_name_is_valid(name, 63), 1);
    ck_assert_int_eq(users_host_name_is_valid(name, 64), 0);

    /* 63 + 1 + 63 + 1 + 63 + 1 + 61 = 253 bytes, then one more. */
    memset(name, 'a', sizeof name);
    for (i = 63; i < sizeof name; i += 64)
        name[i] = '.';
    ck_assert_int_eq(users_host_name_is_valid(name, USERS_HOST_NAME_MAX), 1);
    name[USERS_HOST_NAME_MAX] = 'a';
    ck_assert_int_eq(
        users_host_name_is_valid(name, USERS_HOST_NAME_MAX + 1), 0);

    /* The length counts, not a NUL inside it. */
    ck_assert_int_eq(users_host_name_is_valid("ab\0c", 4), 0);
}
END_TEST

/* users_check_home */

struct home_case {
    const char *host;      /* the record's host= value, "" for none */
    const char *this_host; /* --map-host */
    int result;
};

static const struct home_case home_cases[] = {
    {"", "store1.example.com", 0},
    {"store1.example.com", "store1.example.com", 0},
    {"Store1.EXAMPLE.com", "store1.example.com", 0},
    {"store1.example.com", "STORE1.example.COM", 0},
    {"store2.example.com", "store1.example.com", -1},
    {"store1.example.com", "store1.example.com.", -1},
    {"store1.example.com", "store1", -1},
    {"store1", "store1.example.com", -1},
    {"192.0.2.10", "192.0.2.1", -1},
};

START_TEST(check_home_table)
{
    const struct home_case *c = &home_cases[_i];
    static struct mailbox mb;
    struct store_reply reply;
    char expected[512];

    memset(&mb, 0, sizeof mb);
    snprintf(mb.key, sizeof mb.key, "bob@example.com");
    snprintf(mb.host, sizeof mb.host, "%s", c->host);
    memset(&reply, 'x', sizeof reply);
    reply.code = 250;

    ck_assert_int_eq(users_check_home(&mb, c->this_host, &reply), c->result);
    if (c->result == 0) {
        ck_assert_int_eq(reply.code, 250);
        return;
    }
    ck_assert_int_eq(reply.code, 450);
    ck_assert_str_eq(reply.status, "4.4.0");
    snprintf(expected, sizeof expected, "mailbox is on %s", c->host);
    ck_assert_str_eq(reply.text, expected);
    snprintf(expected, sizeof expected,
             "map key \"bob@example.com\" names host %s, not this host %s",
             c->host, c->this_host);
    ck_assert_str_eq(reply.detail, expected);
}
END_TEST

START_TEST(check_home_longest_name)
{
    static struct mailbox mb;
    struct store_reply reply;
    size_t i;

    /* The longest valid host name fits in the reply text whole. */
    memset(mb.host, 'h', USERS_HOST_NAME_MAX);
    for (i = 63; i < USERS_HOST_NAME_MAX; i += 64)
        mb.host[i] = '.';
    mb.host[USERS_HOST_NAME_MAX] = '\0';
    ck_assert_int_eq(users_host_name_is_valid(mb.host, strlen(mb.host)), 1);

    ck_assert_int_eq(users_check_home(&mb, "store1.example.com", &reply), -1);
    ck_assert_uint_eq(strlen(reply.text),
                      strlen("mailbox is on ") + USERS_HOST_NAME_MAX);
    ck_assert_str_eq(reply.text + strlen("mailbox is on "), mb.host);
}
END_TEST

/* users_lookup against a map made by the cdb tool */

static char map_dir[] = "/tmp/check_users.XXXXXX";
static char map_path[sizeof map_dir + 16];
static char text_path[sizeof map_dir + 16];
static char bad_map_path[sizeof map_dir + 16];

static const char map_text[] =
    "# test map\n"
    "alice@example.com mailbox=/var/mail/alice/ quota=1G\n"
    "Bob@example.com mailbox=/var/mail/bob\n"
    "eve@example.com mailbox=/var/mail/eve/\n"
    "eve+exact@example.com mailbox=/var/mail/eve-exact/\n"
    "@example.org mailbox=/var/mail/catchall/ messages=100\n"
    "postmaster mailbox=/var/mail/postmaster\n"
    "broken@example.com mailbox=/var/mail/broken quota=12X\n"
    "carol@example.com mailbox=/var/mail/carol/ host=store2.example.com\n"
    "@example.net mailbox=/var/mail/net/ host=store2.example.com\n"
    "badhost@example.com mailbox=/var/mail/badhost/ host=store2.\n";

static void
write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");

    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fputs(text, f) >= 0, 1);
    ck_assert_int_eq(fclose(f), 0);
}

static void
make_map(void)
{
    pid_t pid;
    int status;

    ck_assert_ptr_nonnull(mkdtemp(map_dir));
    snprintf(map_path, sizeof map_path, "%s/users.cdb", map_dir);
    snprintf(text_path, sizeof text_path, "%s/users.txt", map_dir);
    snprintf(bad_map_path, sizeof bad_map_path, "%s/bad.cdb", map_dir);
    write_file(text_path, map_text);
    write_file(bad_map_path, "alice@example.com mailbox=/x/\n");

    pid = fork();
    ck_assert_int_ne(pid, -1);
    if (pid == 0) {
        execlp("cdb", "cdb", "-c", "-m", map_path, text_path, (char *)NULL);
        _exit(127);
    }
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "cdb -c -m failed with status %d", status);
}

static void
remove_map(void)
{
    unlink(map_path);
    unlink(text_path);
    unlink(bad_map_path);
    rmdir(map_dir);
}

struct lookup_case {
    const char *address;
    const char *delimiters;
    int code;
    const char *path; /* expected mailbox, for code 250 */
    const char *key;
    const char *detail;
};

static const struct lookup_case lookup_cases[] = {
    {"alice@example.com", "+", 250, "/var/mail/alice/", "alice@example.com",
     ""},
    {"alice@EXAMPLE.Com", "+", 250, "/var/mail/alice/", "alice@example.com",
     ""},
    {"ALICE@example.com", "+", 250, "/var/mail/alice/", "alice@example.com",
     ""},
    {"Bob@Example.com", "+", 250, "/var/mail/bob", "Bob@example.com", ""},
    {"bob@example.com", "+", 550, NULL, NULL, NULL},
    {"alice+lists@example.com", "+", 250, "/var/mail/alice/",
     "alice@example.com", "lists"},
    {"Alice+Lists@Example.COM", "+", 250, "/var/mail/alice/",
     "alice@example.com", "Lists"},
    {"alice+a-b@example.com", "+-", 250, "/var/mail/alice/",
     "alice@example.com", "a-b"},
    {"alice-a+b@example.com", "+-", 250, "/var/mail/alice/",
     "alice@example.com", "a+b"},
    {"alice-lists@example.com", "+", 550, NULL, NULL, NULL},
    {"alice+lists@example.com", "", 550, NULL, NULL, NULL},
    {"alice+lists@example.com", NULL, 550, NULL, NULL, NULL},
    {"alice+@example.com", "+", 250, "/var/mail/alice/", "alice@example.com",
     ""},
    {"eve+exact@example.com", "+", 250, "/var/mail/eve-exact/",
     "eve+exact@example.com", ""},
    {"eve+other@example.com", "+", 250, "/var/mail/eve/", "eve@example.com",
     "other"},
    {"anyone@example.org", "+", 250, "/var/mail/catchall/", "@example.org", ""},
    {"Anyone+x@Example.ORG", "+", 250, "/var/mail/catchall/", "@example.org",
     ""},
    {"postmaster", "+", 250, "/var/mail/postmaster", "postmaster", ""},
    {"PostMaster", "+", 250, "/var/mail/postmaster", "postmaster", ""},
    {"nobody@example.com", "+", 550, NULL, NULL, NULL},
    {"+lists@example.com", "+", 550, NULL, NULL, NULL},
    {"alice@example.com.", "+", 550, NULL, NULL, NULL},
    {"alice@", "+", 550, NULL, NULL, NULL},
    {"@example.org", "+", 550, NULL, NULL, NULL},
    {"", "+", 550, NULL, NULL, NULL},
};

START_TEST(lookup_table)
{
    const struct lookup_case *c = &lookup_cases[_i];
    static struct mailbox mb;
    struct store_reply reply;
    int result;

    memset(&mb, 0, sizeof mb);
    result = users_lookup(map_path, c->address, c->delimiters, &mb, &reply);

    ck_assert_msg(reply.code == c->code, "\"%s\": code %d (%s), expected %d",
                  c->address, reply.code, reply.detail, c->code);
    if (c->code != 250) {
        ck_assert_int_eq(result, -1);
        ck_assert_str_eq(reply.status, "5.1.1");
        ck_assert_str_eq(reply.text, "no such user");
        return;
    }
    ck_assert_int_eq(result, 0);
    ck_assert_str_eq(reply.status, "2.0.0");
    ck_assert_str_eq(mb.path, c->path);
    ck_assert_str_eq(mb.key, c->key);
    ck_assert_str_eq(mb.detail, c->detail);
}
END_TEST

START_TEST(lookup_fills_limits)
{
    static struct mailbox mb;
    struct store_reply reply;

    ck_assert_int_eq(
        users_lookup(map_path, "alice@example.com", "+", &mb, &reply), 0);
    ck_assert_int_eq(mb.is_maildir, 1);
    ck_assert_uint_eq(mb.quota_bytes, 1ULL << 30);

    ck_assert_int_eq(users_lookup(map_path, "x@example.org", "+", &mb, &reply),
                     0);
    ck_assert_uint_eq(mb.quota_messages, 100);
    ck_assert_uint_eq(mb.quota_bytes, 0);
}
END_TEST

START_TEST(lookup_fills_host)
{
    static struct mailbox mb;
    struct store_reply reply;

    ck_assert_int_eq(
        users_lookup(map_path, "carol+x@example.com", "+", &mb, &reply), 0);
    ck_assert_str_eq(mb.host, "store2.example.com");
    ck_assert_str_eq(mb.detail, "x");

    ck_assert_int_eq(users_lookup(map_path, "any@example.net", "+", &mb, &reply),
                     0);
    ck_assert_str_eq(mb.host, "store2.example.com");
    ck_assert_str_eq(mb.key, "@example.net");

    ck_assert_int_eq(
        users_lookup(map_path, "alice@example.com", "+", &mb, &reply), 0);
    ck_assert_str_eq(mb.host, "");

    ck_assert_int_eq(
        users_lookup(map_path, "badhost@example.com", "+", &mb, &reply), -1);
    ck_assert_int_eq(reply.code, 451);
    ck_assert_msg(strstr(reply.detail, "field \"host\": invalid host name "
                                       "\"store2.\"") != NULL,
                  "detail \"%s\"", reply.detail);
}
END_TEST

START_TEST(lookup_malformed_record_defers)
{
    static struct mailbox mb;
    struct store_reply reply;
    char expected[256];

    ck_assert_int_eq(
        users_lookup(map_path, "Broken+x@Example.com", "+", &mb, &reply), -1);
    ck_assert_int_eq(reply.code, 451);
    ck_assert_str_eq(reply.status, "4.3.0");
    snprintf(expected, sizeof expected,
             "map %s key \"broken@example.com\": field \"quota\": "
             "invalid size \"12X\"",
             map_path);
    ck_assert_str_eq(reply.detail, expected);
}
END_TEST

START_TEST(lookup_missing_map_defers)
{
    static struct mailbox mb;
    struct store_reply reply;
    char missing[sizeof map_dir + 32];

    snprintf(missing, sizeof missing, "%s/missing.cdb", map_dir);
    ck_assert_int_eq(
        users_lookup(missing, "alice@example.com", "+", &mb, &reply), -1);
    ck_assert_int_eq(reply.code, 451);
    ck_assert_str_eq(reply.status, "4.3.0");
    ck_assert_msg(strstr(reply.detail, missing) != NULL, "detail \"%s\"",
                  reply.detail);
    ck_assert_msg(strstr(reply.detail, "No such file") != NULL, "detail \"%s\"",
                  reply.detail);
}
END_TEST

START_TEST(lookup_invalid_map_defers)
{
    static struct mailbox mb;
    struct store_reply reply;

    /* A text file given where the cdb file belongs. */
    ck_assert_int_eq(
        users_lookup(bad_map_path, "alice@example.com", "+", &mb, &reply), -1);
    ck_assert_int_eq(reply.code, 451);
    ck_assert_str_eq(reply.status, "4.3.0");
    ck_assert_msg(strstr(reply.detail, bad_map_path) != NULL, "detail \"%s\"",
                  reply.detail);
}
END_TEST

START_TEST(lookup_address_too_long)
{
    static char address[400];
    static struct mailbox mb;
    struct store_reply reply;

    memset(address, 'a', sizeof address - 1);
    memcpy(address + sizeof address - 13, "@example.org", 13);
    ck_assert_int_eq(users_lookup(map_path, address, "+", &mb, &reply), -1);
    ck_assert_int_eq(reply.code, 550);
}
END_TEST

static Suite *
users_suite(void)
{
    Suite *suite = suite_create("users");
    TCase *parse = tcase_create("parse");
    TCase *lookup = tcase_create("lookup");

    tcase_add_loop_test(parse, parse_size_table, 0,
                        sizeof size_cases / sizeof size_cases[0]);
    tcase_add_loop_test(parse, parse_record_table, 0,
                        sizeof record_cases / sizeof record_cases[0]);
    tcase_add_test(parse, parse_record_path_too_long);
    tcase_add_test(parse, parse_record_error_truncated);
    tcase_add_loop_test(parse, host_name_table, 0,
                        sizeof host_cases / sizeof host_cases[0]);
    tcase_add_test(parse, host_name_lengths);
    tcase_add_loop_test(parse, check_home_table, 0,
                        sizeof home_cases / sizeof home_cases[0]);
    tcase_add_test(parse, check_home_longest_name);
    suite_add_tcase(suite, parse);

    tcase_add_unchecked_fixture(lookup, make_map, remove_map);
    tcase_add_loop_test(lookup, lookup_table, 0,
                        sizeof lookup_cases / sizeof lookup_cases[0]);
    tcase_add_test(lookup, lookup_fills_limits);
    tcase_add_test(lookup, lookup_fills_host);
    tcase_add_test(lookup, lookup_malformed_record_defers);
    tcase_add_test(lookup, lookup_missing_map_defers);
    tcase_add_test(lookup, lookup_invalid_map_defers);
    tcase_add_test(lookup, lookup_address_too_long);
    suite_add_tcase(suite, lookup);
    return suite;
}

int
main(void)
{
    SRunner *runner = srunner_create(users_suite());
    int failed;

    srunner_run_all(runner, CK_NORMAL);
    failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
