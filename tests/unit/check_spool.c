/*
 * check_spool.c: the DATA reader.  Each case feeds bytes through a pipe
 * and compares the spooled message, the status and the bytes left for
 * the next command.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "session/lineio.h"
#include "session/spool.h"

struct data_case {
    const char *name;
    const char *input;
    int bare_lf;
    int status;
    const char *stored;
    const char *rest; /* what the next read_line gets, or NULL */
};

static const struct data_case cases[] = {
    {"crlf to lf", "Hello\r\nWorld\r\n.\r\n", 0, LINEIO_OK,
     "Hello\nWorld\n", NULL},
    {"empty message", ".\r\n", 0, LINEIO_OK, "", NULL},
    {"dot unstuffed", "..dot\r\n...\r\n.\r\n", 0, LINEIO_OK,
     ".dot\n..\n", NULL},
    {"lf dot lf kept", "a\n.\nb\r\n.\r\n", 0, LINEIO_OK, "a\n.\nb\n",
     NULL},
    {"cr dot cr kept", "a\r.\rb\r\n.\r\n", 0, LINEIO_OK, "a\r.\rb\n",
     NULL},
    {"lf dot crlf kept", "a\n.\r\nb\r\n.\r\n", 0, LINEIO_OK, "a\n.\nb\n",
     NULL},
    {"crlf dot lf kept", "a\r\n.\nb\r\n.\r\n", 0, LINEIO_OK, "a\n.\nb\n",
     NULL},
    {"bare cr kept", "bare\rcr\r\n.\r\n", 0, LINEIO_OK, "bare\rcr\n",
     NULL},
    {"cr before crlf", "x\r\r\n.\r\n", 0, LINEIO_OK, "x\r\n", NULL},
    {"dot cr text", ".\rX\r\n.\r\n", 0, LINEIO_OK, "\rX\n", NULL},
    {"dot space", ". \r\n.\r\n", 0, LINEIO_OK, " \n", NULL},
    {"from line", "From me\r\n>From you\r\n.\r\n", 0, LINEIO_OK,
     "From me\n>From you\n", NULL},
    {"nul and 8bit", "a\0b \xe9\r\n.\r\n", 0, LINEIO_OK, "a\0b \xe9\n",
     NULL},
    {"next command kept", "a\r\n.\r\nQUIT\r\n", 0, LINEIO_OK, "a\n",
     "QUIT"},
    {"eof before end", "abc\r\n", 0, LINEIO_EOF, NULL, NULL},
    {"eof after dot", "abc\r\n.", 0, LINEIO_EOF, NULL, NULL},
    {"lf ends on terminal", "a\n.\n", 1, LINEIO_OK, "a\n", NULL},
    {"terminal unstuffs", "a\n..b\n.\nNOOP\n", 1, LINEIO_OK, "a\n.b\n",
     "NOOP"},
    {"terminal crlf", "a\r\n.\r\n", 1, LINEIO_OK, "a\n", NULL},
};

/* Input lengths: the strings contain NUL bytes in one case. */
static size_t
input_length(const struct data_case *c)
{
    if (strcmp(c->name, "nul and 8bit") == 0)
        return 10;
    return strlen(c->input);
}

static size_t
stored_length(const struct data_case *c)
{
    if (strcmp(c->name, "nul and 8bit") == 0)
        return 6;
    return strlen(c->stored);
}

/*
 * Reads stored bytes from the spool: from its buffer while the message
 * is kept in memory, else from its file.
 */
static ssize_t
read_stored(const struct spool *spool, char *out, size_t n, off_t offset)
{
    if (spool->fd >= 0)
        return pread(spool->fd, out, n, offset);
    if (offset >= spool->size)
        return 0;
    if ((off_t)n > spool->size - offset)
        n = (size_t)(spool->size - offset);
    memcpy(out, spool->buffer + offset, n);
    return (ssize_t)n;
}

/* Starts a child that writes input in pieces of chunk bytes, then exits. */
static pid_t
start_writer(int fd, const char *input, size_t len, size_t chunk)
{
    pid_t pid = fork();

    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        for (size_t done = 0; done < len; done += chunk) {
            size_t n = len - done < chunk ? len - done : chunk;

            if (write(fd, input + done, n) != (ssize_t)n)
                _exit(1);
        }
        _exit(0);
    }
    return pid;
}

static void
run_case(const struct data_case *c, size_t chunk)
{
    static struct lineio io;
    static struct spool spool;
    int fds[2];
    pid_t writer;
    int status;

    ck_assert_int_eq(pipe(fds), 0);
    writer = start_writer(fds[1], c->input, input_length(c), chunk);
    close(fds[1]);

    lineio_init(&io, fds[0], -1, 10);
    spool_open(&spool, "/tmp", 0);
    status = spool_read_data(&spool, &io, c->bare_lf);
    ck_assert_msg(status == c->status, "%s (chunk %zu): status %d, not %d",
                  c->name, chunk, status, c->status);

    if (c->stored != NULL) {
        char stored[256];
        size_t expected = stored_length(c);

        ck_assert_int_eq(spool.size, (off_t)expected);
        ck_assert_msg(spool.fd == -1, "%s: a small message left memory",
                      c->name);
        ck_assert_int_eq(read_stored(&spool, stored, sizeof(stored), 0),
                         (ssize_t)expected);
        ck_assert_msg(memcmp(stored, c->stored, expected) == 0,
                      "%s (chunk %zu): stored bytes differ", c->name, chunk);
    }
    if (c->rest != NULL) {
        char line[64];
        size_t len;

        ck_assert_int_eq(lineio_read_line(&io, line, sizeof(line), &len),
                         LINEIO_OK);
        ck_assert_str_eq(line, c->rest);
    }

    spool_close(&spool);
    close(fds[0]);
    waitpid(writer, &status, 0);
}

START_TEST(data_table_one_write)
{
    run_case(&cases[_i], 4096);
}
END_TEST

START_TEST(data_table_byte_writes)
{
    run_case(&cases[_i], 1);
    run_case(&cases[_i], 2);
    run_case(&cases[_i], 3);
}
END_TEST

/* A message larger than every buffer, with dots at line starts. */
START_TEST(data_large_message)
{
    static struct lineio io;
    static struct spool spool;
    size_t lines = 20000, len = 0;
    char *input = malloc(lines * 16 + 8), *expected = malloc(lines * 16);
    size_t expected_len = 0;
    char stored[4096];
    int fds[2], status;
    pid_t writer;

    for (size_t i = 0; i < lines; i++) {
        int n = sprintf(input + len, "%s%08zu\r\n", i % 3 == 0 ? ".." : "x",
                        i);
        len += (size_t)n;
        n = sprintf(expected + expected_len, "%s%08zu\n",
                    i % 3 == 0 ? "." : "x", i);
        expected_len += (size_t)n;
    }
    memcpy(input + len, ".\r\n", 3);
    len += 3;

    ck_assert_int_eq(pipe(fds), 0);
    writer = start_writer(fds[1], input, len, 7000);
    close(fds[1]);
    lineio_init(&io, fds[0], -1, 10);
    spool_open(&spool, "/tmp", 0);
    ck_assert_int_eq(spool_read_data(&spool, &io, 0), LINEIO_OK);
    ck_assert_int_eq(spool.size, (off_t)expected_len);
    ck_assert_int_ge(spool.fd, 0);

    for (size_t offset = 0; offset < expected_len; offset += sizeof(stored)) {
        size_t n = expected_len - offset < sizeof(stored)
                       ? expected_len - offset
                       : sizeof(stored);

        ck_assert_int_eq(read_stored(&spool, stored, n, (off_t)offset),
                         (ssize_t)n);
        ck_assert_msg(memcmp(stored, expected + offset, n) == 0,
                      "bytes differ near offset %zu", offset);
    }
    spool_close(&spool);
    close(fds[0]);
    waitpid(writer, &status, 0);
    free(input);
    free(expected);
}
END_TEST

/*
 * Reads a message of size bytes, lines of "x" with CRLF, through a
 * pipe into a spool in dir, and checks the status and the size.
 */
static void
read_message_of_size(struct spool *spool, const char *dir, size_t size)
{
    static struct lineio io;
    char *input = malloc(size + 3);
    int fds[2], status;
    pid_t writer;

    ck_assert_ptr_nonnull(input);
    memset(input, 'x', size);
    for (size_t i = 62; i + 1 < size; i += 64) {
        input[i] = '\r';
        input[i + 1] = '\n';
    }
    memcpy(input + size, ".\r\n", 3);
    ck_assert_int_eq(pipe(fds), 0);
    writer = start_writer(fds[1], input, size + 3, 8192);
    close(fds[1]);
    lineio_init(&io, fds[0], -1, 10);
    spool_open(spool, dir, 0);
    ck_assert_int_eq(spool_read_data(spool, &io, 0), LINEIO_OK);
    ck_assert_int_eq(spool->size, (off_t)(size - size / 64));
    close(fds[0]);
    waitpid(writer, &status, 0);
    free(input);
}

/* Checks that the spool contains size CRLF-to-LF bytes of "x" lines. */
static void
check_x_lines(const struct spool *spool)
{
    char stored[4096];
    off_t offset = 0;
    ssize_t n;

    while ((n = read_stored(spool, stored, sizeof stored, offset)) > 0) {
        for (ssize_t i = 0; i < n; i++) {
            char expected = (offset + i) % 63 == 62 ? '\n' : 'x';

            ck_assert_msg(stored[i] == expected, "byte %lld differs",
                          (long long)(offset + i));
        }
        offset += n;
    }
    ck_assert_int_eq(offset, spool->size);
}

/* A message that fills the buffer short of its size stays in memory. */
START_TEST(data_fits_in_memory)
{
    static struct spool spool;
    size_t size = SPOOL_MEMORY_MAX / 63 * 64;

    read_message_of_size(&spool, "/tmp", size);
    ck_assert_int_lt(spool.size, SPOOL_MEMORY_MAX);
    ck_assert_int_eq(spool.fd, -1);
    check_x_lines(&spool);
    spool_close(&spool);
}
END_TEST

/* A message one line longer than the buffer goes to the spool file. */
START_TEST(data_outgrows_memory)
{
    static struct spool spool;
    size_t size = (SPOOL_MEMORY_MAX / 63 + 1) * 64;

    read_message_of_size(&spool, "/tmp", size);
    ck_assert_int_gt(spool.size, SPOOL_MEMORY_MAX);
    ck_assert_int_ge(spool.fd, 0);
    check_x_lines(&spool);
    spool_close(&spool);
}
END_TEST

/* spool_save() writes a message kept in memory to a file. */
START_TEST(data_saved_to_file)
{
    static struct spool spool;

    read_message_of_size(&spool, "/tmp", 640);
    ck_assert_int_eq(spool.fd, -1);
    spool_save(&spool);
    ck_assert_int_eq(spool.write_errno, 0);
    ck_assert_int_ge(spool.fd, 0);
    check_x_lines(&spool);
    spool_close(&spool);
}
END_TEST

/* An opener that hands the spool the descriptor in *arg. */
static int
open_given(void *arg)
{
    return *(int *)arg;
}

/*
 * A message that outgrows the buffer goes to the opener's file, which
 * spool_close() leaves open; an opener that fails gets the spool's own
 * file instead.
 */
START_TEST(data_opener_file)
{
    static struct spool spool;
    static struct lineio io;
    size_t size = 2 * SPOOL_MEMORY_MAX / 63 * 64;
    char *input = malloc(size + 3);
    char *stored = malloc(size);
    int fds[2], status, target = open("/tmp", O_TMPFILE | O_RDWR, 0600);
    int failing = -1;
    pid_t writer;

    ck_assert_ptr_nonnull(input);
    ck_assert_ptr_nonnull(stored);
    ck_assert_int_ge(target, 0);
    memset(input, 'y', size);
    for (size_t i = 62; i + 1 < size; i += 64) {
        input[i] = '\r';
        input[i + 1] = '\n';
    }
    memcpy(input + size, ".\r\n", 3);

    for (int round = 0; round < 2; round++) {
        int *arg = round == 0 ? &target : &failing;

        ck_assert_int_eq(pipe(fds), 0);
        writer = start_writer(fds[1], input, size + 3, 8192);
        close(fds[1]);
        lineio_init(&io, fds[0], -1, 10);
        spool_open(&spool, "/tmp", 0);
        spool_set_opener(&spool, open_given, arg);
        ck_assert_int_eq(spool_read_data(&spool, &io, 0), LINEIO_OK);
        close(fds[0]);
        waitpid(writer, &status, 0);
        ck_assert_int_eq(spool.write_errno, 0);
        ck_assert_int_eq(spool.borrowed, round == 0);
        if (round == 0)
            ck_assert_int_eq(spool.fd, target);
        else
            ck_assert_int_ne(spool.fd, target);
        ck_assert_int_eq(pread(spool.fd, stored, size, 0), spool.size);
        for (off_t i = 0; i < spool.size; i++)
            ck_assert_int_eq(stored[i], i % 63 == 62 ? '\n' : 'y');
        spool_close(&spool);
    }
    /* Still open: the spool never closes the opener's file. */
    ck_assert_int_ne(fcntl(target, F_GETFD), -1);
    close(target);
    free(input);
    free(stored);
}
END_TEST

/*
 * A missing spool folder fails only a message that needs the file: the
 * error is in write_errno for the session to reply with.
 */
START_TEST(data_spool_folder_missing)
{
    static struct spool spool;
    const char *missing = "/nonexistent/lmtpd-spool";

    read_message_of_size(&spool, missing, 640);
    ck_assert_int_eq(spool.write_errno, 0);
    check_x_lines(&spool);
    spool_save(&spool);
    ck_assert_int_eq(spool.write_errno, ENOENT);
    spool_close(&spool);

    read_message_of_size(&spool, missing, 2 * SPOOL_MEMORY_MAX);
    ck_assert_int_eq(spool.write_errno, ENOENT);
    ck_assert_int_eq(spool.fd, -1);
    spool_close(&spool);
}
END_TEST

/* Past the maximum the data is still read to its end, and flagged. */
START_TEST(data_too_big)
{
    static struct lineio io;
    static struct spool spool;
    const char *input = "0123456789\r\n0123456789\r\n.\r\nNOOP\r\n";
    char line[32];
    size_t len;
    int fds[2], status;
    pid_t writer;

    ck_assert_int_eq(pipe(fds), 0);
    writer = start_writer(fds[1], input, strlen(input), 5);
    close(fds[1]);
    lineio_init(&io, fds[0], -1, 10);
    spool_open(&spool, "/tmp", 15);
    ck_assert_int_eq(spool_read_data(&spool, &io, 0), LINEIO_OK);
    ck_assert_int_eq(spool.too_big, 1);
    ck_assert_int_eq(spool.size, 22);
    ck_assert_int_eq(lineio_read_line(&io, line, sizeof(line), &len),
                     LINEIO_OK);
    ck_assert_str_eq(line, "NOOP");
    spool_close(&spool);
    close(fds[0]);
    waitpid(writer, &status, 0);
}
END_TEST

/* The idle timeout applies inside DATA too. */
START_TEST(data_timeout)
{
    static struct lineio io;
    static struct spool spool;
    int fds[2];

    ck_assert_int_eq(pipe(fds), 0);
    ck_assert_int_eq(write(fds[1], "abc\r\n", 5), 5);
    lineio_init(&io, fds[0], -1, 1);
    spool_open(&spool, "/tmp", 0);
    ck_assert_int_eq(spool_read_data(&spool, &io, 0), LINEIO_TIMEOUT);
    spool_close(&spool);
    close(fds[0]);
    close(fds[1]);
}
END_TEST

struct chunk_case {
    const char *name;
    const char *chunks[3]; /* NULL ends the list */
    const char *stored;
};

static const struct chunk_case chunk_cases[] = {
    {"crlf in one chunk", {"a\r\nb\r\n", NULL}, "a\nb\n"},
    {"crlf split", {"a\r", "\nb", NULL}, "a\nb"},
    {"cr then cr", {"a\r", "\r\n", NULL}, "a\r\n"},
    {"final cr kept", {"a\r", NULL}, "a\r"},
    {"bare cr kept", {"a\rb", NULL}, "a\rb"},
    {"no unstuffing", {".\r\n..x\r\n", NULL}, ".\n..x\n"},
    {"empty chunks", {"", "ab", ""}, "ab"},
    {"bare lf kept", {"a\nb", NULL}, "a\nb"},
};

/* BDAT chunks: read exactly their size, leave the rest for commands. */
START_TEST(chunk_table)
{
    const struct chunk_case *c = &chunk_cases[_i];
    static struct lineio io;
    static struct spool spool;
    char input[128] = "", stored[128], line[32];
    size_t len;
    int fds[2], status;
    pid_t writer;

    for (int i = 0; i < 3 && c->chunks[i] != NULL; i++)
        strcat(input, c->chunks[i]);
    strcat(input, "NOOP\r\n");

    ck_assert_int_eq(pipe(fds), 0);
    writer = start_writer(fds[1], input, strlen(input), 1);
    close(fds[1]);
    lineio_init(&io, fds[0], -1, 10);
    spool_open(&spool, "/tmp", 0);
    for (int i = 0; i < 3 && c->chunks[i] != NULL; i++)
        ck_assert_int_eq(spool_read_chunk(&spool, &io, strlen(c->chunks[i])),
                         LINEIO_OK);
    spool_end_chunks(&spool);

    ck_assert_int_eq(spool.size, (off_t)strlen(c->stored));
    ck_assert_int_eq(read_stored(&spool, stored, sizeof(stored), 0),
                     (ssize_t)strlen(c->stored));
    ck_assert_msg(memcmp(stored, c->stored, strlen(c->stored)) == 0,
                  "%s: stored bytes differ", c->name);
    ck_assert_int_eq(lineio_read_line(&io, line, sizeof(line), &len),
                     LINEIO_OK);
    ck_assert_str_eq(line, "NOOP");

    spool_close(&spool);
    close(fds[0]);
    waitpid(writer, &status, 0);
}
END_TEST

/* A chunk cut short by the end of input is reported, not stored. */
START_TEST(chunk_eof)
{
    static struct lineio io;
    static struct spool spool;
    int fds[2];

    ck_assert_int_eq(pipe(fds), 0);
    ck_assert_int_eq(write(fds[1], "abc", 3), 3);
    close(fds[1]);
    lineio_init(&io, fds[0], -1, 10);
    spool_open(&spool, "/tmp", 0);
    ck_assert_int_eq(spool_read_chunk(&spool, &io, 10), LINEIO_EOF);
    spool_close(&spool);
    close(fds[0]);
}
END_TEST

/* lineio_skip() drops a rejected chunk and keeps the next command. */
START_TEST(skip_chunk)
{
    static struct lineio io;
    char line[32];
    size_t len;
    int fds[2];

    ck_assert_int_eq(pipe(fds), 0);
    ck_assert_int_eq(write(fds[1], "0123456789RSET\r\n", 16), 16);
    close(fds[1]);
    lineio_init(&io, fds[0], -1, 10);
    ck_assert_int_eq(lineio_skip(&io, 10), LINEIO_OK);
    ck_assert_int_eq(lineio_read_line(&io, line, sizeof(line), &len),
                     LINEIO_OK);
    ck_assert_str_eq(line, "RSET");
    ck_assert_int_eq(lineio_skip(&io, 1), LINEIO_EOF);
    close(fds[0]);
}
END_TEST

static Suite *
spool_suite(void)
{
    Suite *suite = suite_create("spool");
    TCase *table = tcase_create("data");
    size_t count = sizeof(cases) / sizeof(cases[0]);

    tcase_set_timeout(table, 30);
    tcase_add_loop_test(table, data_table_one_write, 0, (int)count);
    tcase_add_loop_test(table, data_table_byte_writes, 0, (int)count);
    tcase_add_test(table, data_large_message);
    tcase_add_test(table, data_fits_in_memory);
    tcase_add_test(table, data_outgrows_memory);
    tcase_add_test(table, data_saved_to_file);
    tcase_add_test(table, data_spool_folder_missing);
    tcase_add_test(table, data_opener_file);
    tcase_add_test(table, data_too_big);
    tcase_add_test(table, data_timeout);
    suite_add_tcase(suite, table);

    TCase *chunks = tcase_create("chunk");
    tcase_add_loop_test(chunks, chunk_table, 0,
                        sizeof(chunk_cases) / sizeof(chunk_cases[0]));
    tcase_add_test(chunks, chunk_eof);
    tcase_add_test(chunks, skip_chunk);
    suite_add_tcase(suite, chunks);
    return suite;
}

int
main(void)
{
    SRunner *runner = srunner_create(spool_suite());
    int failed;

    signal(SIGPIPE, SIG_IGN);
    srunner_run_all(runner, CK_NORMAL);
    failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
