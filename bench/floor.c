/*
 * floor.c: the least a durable Maildir delivery can cost on a disk.  For
 * each message and each of its recipients' Maildirs: open tmp/NAME with
 * O_EXCL, write, fsync, rename into new/, fsync new/.  Prints the same
 * summary line as the load generator.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bench/common.h"

/* This host's name, for the unique file names. */
static char host_name[64] = "localhost";

/*
 * Trace fields that every delivery adds at the top of the message (RFC
 * 5321 section 4.4 requires Return-Path and Received), as long as the
 * ones lmtpd writes for the load generator's envelope.
 */
static const char trace_fields[] =
    "Return-Path: <sender@client.example>\n"
    "Delivered-To: user0@bench.example\n"
    "Received: from client.example\n"
    "\tby mx.bench.example (lmtpd) with LMTP id 0123456789AB.1\n"
    "\tfor <user0@bench.example>; Thu, 01 Jan 2026 00:00:00 +0000\n";

/* Most Maildirs that one writer writes each message into. */
#define FLOOR_MAX_RECIPIENTS 100

struct writer {
    char (*maildirs)[PATH_MAX]; /* recipients entries, each ending in '/' */
    unsigned recipients;
    unsigned index;
    unsigned long messages; /* files: messages times recipients */
    const char *message;
    size_t size;
    double *latencies; /* seconds per message, messages entries */
    unsigned long done;
    int failed_errno;
    const char *failed_call;
};

static void
usage(FILE *out)
{
    fprintf(out,
        "usage: floor [options] DIR\n"
        "Writes messages into the Maildirs DIR/user0/ ... the way a\n"
        "durable delivery must, and prints deliveries per second.\n"
        "\n"
        "  -j, --writers N     writers at once, one thread each (default 1)\n"
        "  -n, --messages N    messages each writer writes (default 100)\n"
        "  -r, --recipients N  Maildirs of each writer: each message is\n"
        "                      written into each of them, one after the\n"
        "                      other, as for that many recipients; writer\n"
        "                      W has userW*N/ to userW*N+N-1/ (default 1)\n"
        "  -s, --size BYTES    message size as the load generator sends\n"
        "                      it, with K or M suffix (default 4K); the\n"
        "                      file holds it as a delivery stores it,\n"
        "                      with trace fields and LF line ends\n"
        "  -h, --help          show this help and exit\n");
}

/*
 * Writes one message into tmp/ and moves it into new/, both durable.
 * The name has the form and length of lmtpd's, as the Maildir spec
 * suggests: <seconds>.M<microseconds>P<pid>Q<count>.<host>.
 */
static int
write_one(struct writer *w, unsigned long number, const char *maildir,
          int new_fd)
{
    char tmp_path[PATH_MAX], new_path[PATH_MAX], name[NAME_MAX + 1];
    struct timespec now;
    int fd;

    clock_gettime(CLOCK_REALTIME, &now);
    snprintf(name, sizeof name, "%lld.M%06ldP%ldQ%lu.%s",
             (long long)now.tv_sec, now.tv_nsec / 1000,
             (long)getpid() + w->index, number + 1, host_name);
    snprintf(tmp_path, sizeof tmp_path, "%stmp/%s", maildir, name);
    snprintf(new_path, sizeof new_path, "%snew/%s,S=%zu", maildir, name,
             w->size);

    fd = open(tmp_path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
              0600);
    if (fd == -1) {
        w->failed_call = "open";
        return -1;
    }
    if (bench_write_all(fd, w->message, w->size) == -1) {
        w->failed_call = "write";
        goto fail;
    }
    if (fsync(fd) == -1) {
        w->failed_call = "fsync";
        goto fail;
    }
    if (close(fd) == -1) {
        w->failed_call = "close";
        return -1;
    }
    if (rename(tmp_path, new_path) == -1) {
        w->failed_call = "rename";
        return -1;
    }
    if (fsync(new_fd) == -1) {
        w->failed_call = "fsync new/";
        return -1;
    }
    return 0;

fail:
    close(fd);
    return -1;
}

static void *
run_writer(void *argument)
{
    struct writer *w = argument;
    char new_dir[PATH_MAX];
    int new_fds[FLOOR_MAX_RECIPIENTS];
    unsigned opened;

    for (opened = 0; opened < w->recipients; opened++) {
        snprintf(new_dir, sizeof new_dir, "%snew", w->maildirs[opened]);
        new_fds[opened] = open(new_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (new_fds[opened] == -1) {
            w->failed_call = "open new/";
            w->failed_errno = errno;
            goto done;
        }
    }
    for (w->done = 0; w->done < w->messages; w->done++) {
        unsigned r = (unsigned)(w->done % w->recipients);
        double start = bench_now();

        if (write_one(w, w->done, w->maildirs[r], new_fds[r]) == -1) {
            w->failed_errno = errno;
            break;
        }
        w->latencies[w->done] = bench_now() - start;
    }
done:
    while (opened > 0)
        close(new_fds[--opened]);
    return NULL;
}

/* Creates DIR/userN/ with tmp/, new/ and cur/, and DIR, where missing. */
static int
make_maildir(const char *dir, unsigned index, char *path, size_t size)
{
    static const char *const subdirs[] = {"", "tmp", "new", "cur"};
    char sub[PATH_MAX];

    if (mkdir(dir, 0700) == -1 && errno != EEXIST) {
        fprintf(stderr, "floor: cannot create %s: %s\n", dir,
                strerror(errno));
        return -1;
    }
    snprintf(path, size, "%s/user%u/", dir, index);
    for (size_t i = 0; i < sizeof subdirs / sizeof subdirs[0]; i++) {
        snprintf(sub, sizeof sub, "%s%s", path, subdirs[i]);
        if (mkdir(sub, 0700) == -1 && errno != EEXIST) {
            fprintf(stderr, "floor: cannot create %s: %s\n", sub,
                    strerror(errno));
            return -1;
        }
    }
    return 0;
}

/*
 * Returns the load generator's message of size bytes as a delivery
 * stores it: the trace fields, then the text with LF line ends.  Sets
 * *stored_size to its length.
 */
static char *
make_stored_message(size_t size, unsigned long *stored_size)
{
    char *sent = bench_make_message(size, "\r\n");
    char *stored = malloc(sizeof trace_fields + size);
    size_t len = sizeof trace_fields - 1;

    if (stored == NULL) {
        fprintf(stderr, "floor: out of memory for the message\n");
        exit(1);
    }
    memcpy(stored, trace_fields, len);
    for (size_t i = 0; i < size; i++)
        if (sent[i] != '\r' || sent[i + 1] != '\n')
            stored[len++] = sent[i];
    free(sent);
    *stored_size = len;
    return stored;
}

/* Starts the writers, waits for them and prints the summary line. */
static int
run_writers(struct writer *writers, unsigned count)
{
    pthread_t threads[BENCH_MAX_CONNECTIONS];
    struct bench_result result = {0};
    double start = bench_now();
    unsigned i;

    for (i = 0; i < count; i++)
        if (pthread_create(&threads[i], NULL, run_writer, &writers[i]) != 0)
            break;
    count = i;
    for (i = 0; i < count; i++)
        pthread_join(threads[i], NULL);
    result.seconds = bench_now() - start;

    for (i = 0; i < count; i++) {
        struct writer *w = &writers[i];

        if (w->failed_call != NULL)
            fprintf(stderr, "floor: %s in %s failed: %s\n", w->failed_call,
                    w->maildirs[w->done % w->recipients],
                    strerror(w->failed_errno));
        bench_add_latencies(&result, w->latencies, w->done);
        result.delivered += w->done;
        result.failed += w->messages - w->done;
    }
    bench_print_result(&result);
    return result.failed == 0 ? 0 : 1;
}

int
main(int argc, char **argv)
{
    static const struct option options[] = {
        {"writers", required_argument, NULL, 'j'},
        {"messages", required_argument, NULL, 'n'},
        {"recipients", required_argument, NULL, 'r'},
        {"size", required_argument, NULL, 's'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    static struct writer writers[BENCH_MAX_CONNECTIONS];
    char (*maildirs)[PATH_MAX];
    unsigned long count = 1, messages = 100, size = 4096, recipients = 1;
    char *message;
    int c;

    while ((c = getopt_long(argc, argv, "j:n:r:s:h", options, NULL)) != -1) {
        switch (c) {
        case 'j':
            count = bench_parse_number("--writers", optarg, 1,
                                       BENCH_MAX_CONNECTIONS);
            break;
        case 'n':
            messages = bench_parse_number("--messages", optarg, 1, 10000000);
            break;
        case 'r':
            recipients = bench_parse_number("--recipients", optarg, 1,
                                            FLOOR_MAX_RECIPIENTS);
            break;
        case 's':
            size = bench_parse_size("--size", optarg);
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind != argc - 1) {
        usage(stderr);
        return 2;
    }

    gethostname(host_name, sizeof host_name - 1);
    message = make_stored_message(size, &size);
    maildirs = calloc(count * recipients, sizeof *maildirs);
    if (maildirs == NULL) {
        fprintf(stderr, "floor: out of memory for the Maildir names\n");
        return 1;
    }
    for (unsigned i = 0; i < count; i++) {
        for (unsigned r = 0; r < recipients; r++)
            if (make_maildir(argv[optind], i * (unsigned)recipients + r,
                             maildirs[i * recipients + r], PATH_MAX) == -1)
                return 1;
        writers[i] = (struct writer){
            .maildirs = &maildirs[i * recipients],
            .recipients = (unsigned)recipients, .index = i,
            .messages = messages * recipients, .message = message,
            .size = size,
            .latencies = bench_alloc_latencies(messages * recipients),
        };
    }
    return run_writers(writers, (unsigned)count);
}
