/*
 * lineio.h: buffered reading and writing on the client's descriptors,
 * with an idle timeout.  Internal to session/.
 */
#ifndef LMTPD_LINEIO_H
#define LMTPD_LINEIO_H

#include <stdarg.h>
#include <stddef.h>

#define LINEIO_BUFFER_SIZE 65536

struct lineio {
    int in_fd;
    int out_fd;
    unsigned int timeout; /* seconds a read may wait, 0 for none */
    long long deadline_ms; /* CLOCK_MONOTONIC end of the session, or 0 */
    int deadline_passed;
    size_t start;         /* first unread byte in input */
    size_t end;           /* one past the last byte read into input */
    size_t out_len;
    int write_failed;
    char input[LINEIO_BUFFER_SIZE];
    char output[8192];
};

enum lineio_status {
    LINEIO_OK = 1,
    LINEIO_EOF = 0,
    LINEIO_ERROR = -1,
    LINEIO_TIMEOUT = -2,
    LINEIO_TOO_LONG = -3
};

void lineio_init(struct lineio *, int in_fd, int out_fd,
                 unsigned int timeout);
void lineio_set_deadline(struct lineio *, unsigned int seconds);
int lineio_fill(struct lineio *);
int lineio_read_line(struct lineio *, char *line, size_t size,
                     size_t *length);
int lineio_skip(struct lineio *, unsigned long long count);
void lineio_printf(struct lineio *, const char *format, ...)
    __attribute__((format(printf, 2, 3)));
int lineio_flush(struct lineio *);

#endif
