/*
 * common.h: what the load generator and the floor program share: option
 * parsing, the test message, timing and the summary line that bench/run.py
 * reads.
 */
#ifndef LMTPD_BENCH_COMMON_H
#define LMTPD_BENCH_COMMON_H

#include <stddef.h>

/* Maximum number of connections or writers at once. */
#define BENCH_MAX_CONNECTIONS 64

/* Deliveries and their latencies, for the summary line. */
struct bench_result {
    unsigned long delivered;
    unsigned long failed;
    double seconds;    /* wall time of the whole run */
    double *latencies; /* seconds, one per delivered message */
    size_t latency_count;
};

double bench_now(void);
unsigned long bench_parse_number(const char *option, const char *text,
                                 unsigned long min, unsigned long max);
unsigned long bench_parse_size(const char *option, const char *text);
int bench_write_all(int fd, const char *buffer, size_t len);
char *bench_make_message(size_t size, const char *line_end);
double *bench_alloc_latencies(size_t count);
void bench_add_latencies(struct bench_result *, const double *latencies,
                         size_t count);
void bench_print_result(struct bench_result *);

#endif
