/*
 * common.c: helpers of the load generator and the floor program: option
 * values, the test message, the clock and the summary line.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "bench/common.h"

/* Characters of a body line without its line end; RFC 5322 section
 * 2.1.1 recommends at most 78. */
#define LINE_TEXT 72

/* Body line that starts with a dot, so that DATA carries one stuffed dot. */
#define DOT_LINE 10

/* Smallest message: the header fields and a few body lines. */
#define MESSAGE_MIN 512

static const char header_fields[] =
    "From: Bench Sender <sender@client.example>%s"
    "To: <user0@bench.example>%s"
    "Subject: lmtpd benchmark message%s"
    "Message-ID: <bench-%zu@client.example>%s"
    "Date: Thu, 01 Jan 2026 00:00:00 +0000%s"
    "MIME-Version: 1.0%s"
    "Content-Type: text/plain; charset=us-ascii%s"
    "%s";

/* Returns the CLOCK_MONOTONIC time in seconds. */
double
bench_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Parses a whole number from min to max, or exits with status 2. */
unsigned long
bench_parse_number(const char *option, const char *text, unsigned long min,
                   unsigned long max)
{
    char *end;
    unsigned long value;

    errno = 0;
    value = strtoul(text, &end, 10);
    if (text[0] < '0' || text[0] > '9' || *end != '\0' || errno != 0 ||
        value < min || value > max) {
        fprintf(stderr, "invalid value \"%s\" for %s: expected a whole "
                "number from %lu to %lu\n", text, option, min, max);
        exit(2);
    }
    return value;
}

/* Parses a message size in bytes with an optional K or M suffix. */
unsigned long
bench_parse_size(const char *option, const char *text)
{
    const unsigned long max = 1024UL * 1024 * 1024;
    char *end;
    unsigned long value;

    errno = 0;
    value = strtoul(text, &end, 10);
    if (*end == 'K' && value <= max / 1024) {
        value *= 1024;
        end++;
    } else if (*end == 'M' && value <= max / (1024 * 1024)) {
        value *= 1024 * 1024;
        end++;
    }
    if (text[0] < '0' || text[0] > '9' || *end != '\0' || errno != 0 ||
        value < MESSAGE_MIN || value > max) {
        fprintf(stderr, "invalid size \"%s\" for %s: expected bytes from %d"
                " to 1G, with an optional K or M suffix\n", text, option,
                MESSAGE_MIN);
        exit(2);
    }
    return value;
}

/* Writes all of buffer, going on after short writes and EINTR. */
int
bench_write_all(int fd, const char *buffer, size_t len)
{
    while (len > 0) {
        ssize_t written = write(fd, buffer, len);

        if (written == -1 && errno == EINTR)
            continue;
        if (written <= 0)
            return -1;
        buffer += written;
        len -= (size_t)written;
    }
    return 0;
}

static void *
allocate(size_t size)
{
    void *memory = malloc(size);

    if (memory == NULL) {
        fprintf(stderr, "out of memory for %zu bytes\n", size);
        exit(1);
    }
    return memory;
}

/*
 * Makes a plain-text message of exactly size bytes with line_end ("\n"
 * or "\r\n") after every line, and a NUL after it.  The last body line
 * takes up the bytes that a whole line does not fill.
 */
char *
bench_make_message(size_t size, const char *line_end)
{
    const char *e = line_end;
    size_t eol = strlen(line_end);
    char *message = allocate(size + 1);
    int used = snprintf(message, size + 1, header_fields, e, e, e, size, e,
                        e, e, e, e);
    size_t at = (size_t)used;

    for (unsigned line = 1; at < size; line++) {
        size_t left = size - at;
        size_t text = left < 2 * (LINE_TEXT + eol) ? left - eol : LINE_TEXT;

        for (size_t i = 0; i < text; i++)
            message[at + i] = (char)('a' + (line + i) % 26);
        if (line == DOT_LINE)
            message[at] = '.';
        memcpy(message + at + text, line_end, eol);
        at += text + eol;
    }
    message[size] = '\0';
    return message;
}

double *
bench_alloc_latencies(size_t count)
{
    return allocate((count > 0 ? count : 1) * sizeof(double));
}

/* Adds count latencies to the result, growing its array. */
void
bench_add_latencies(struct bench_result *result, const double *latencies,
                    size_t count)
{
    size_t total = result->latency_count + count;
    double *grown = realloc(result->latencies,
                            (total > 0 ? total : 1) * sizeof(double));

    if (grown == NULL) {
        fprintf(stderr, "out of memory for %zu latencies\n", total);
        exit(1);
    }
    memcpy(grown + result->latency_count, latencies, count * sizeof(double));
    result->latencies = grown;
    result->latency_count = total;
}

static int
compare_doubles(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

/* Returns the nearest-rank percentile of sorted values, 0 when empty. */
static double
percentile(const double *sorted, size_t count, unsigned percent)
{
    size_t rank = (count * percent + 99) / 100;

    if (count == 0)
        return 0;
    return sorted[rank > 0 ? rank - 1 : 0];
}

/*
 * Prints the summary line: deliveries, failures, wall time, deliveries
 * per second, the 50th and 99th percentile latency in milliseconds, and
 * the CPU time this process used, which shows whether it was the
 * bottleneck.
 */
void
bench_print_result(struct bench_result *result)
{
    struct rusage usage;
    double cpu = 0;
    double *lat = result->latencies;
    size_t n = result->latency_count;

    if (n > 0)
        qsort(lat, n, sizeof(double), compare_doubles);
    if (getrusage(RUSAGE_SELF, &usage) == 0)
        cpu = (double)usage.ru_utime.tv_sec + usage.ru_utime.tv_usec / 1e6 +
              (double)usage.ru_stime.tv_sec + usage.ru_stime.tv_usec / 1e6;
    printf("delivered=%lu failed=%lu seconds=%.4f rate=%.1f p50_ms=%.3f "
           "p99_ms=%.3f cpu_seconds=%.3f\n",
           result->delivered, result->failed, result->seconds,
           result->seconds > 0 ? (double)result->delivered / result->seconds
                               : 0,
           percentile(lat, n, 50) * 1000, percentile(lat, n, 99) * 1000, cpu);
    fflush(stdout);
}
