/*
 * lineio.c: the client's byte stream.  Replies are buffered and sent
 * before every read that would block, so pipelined commands (RFC 2920)
 * get their replies in order with few writes.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "session/lineio.h"

void
lineio_init(struct lineio *io, int in_fd, int out_fd, unsigned int timeout)
{
    io->in_fd = in_fd;
    io->out_fd = out_fd;
    io->timeout = timeout;
    io->start = 0;
    io->end = 0;
    io->out_len = 0;
    io->write_failed = 0;
    io->deadline_ms = 0;
    io->deadline_passed = 0;
}

static long long
now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Limits the whole session to seconds from now; 0 removes the limit. */
void
lineio_set_deadline(struct lineio *io, unsigned int seconds)
{
    io->deadline_ms = seconds > 0 ? now_ms() + (long long)seconds * 1000 : 0;
}

/* Returns the poll() wait: the idle timeout, cut short by the deadline. */
static int
wait_ms(struct lineio *io)
{
    long long wait = io->timeout > 0 ? (long long)io->timeout * 1000 : -1;

    if (io->deadline_ms > 0) {
        long long left = io->deadline_ms - now_ms();

        if (left < 0)
            left = 0;
        if (wait < 0 || left < wait)
            wait = left;
    }
    return (int)wait;
}

int
lineio_flush(struct lineio *io)
{
    size_t done = 0;

    while (done < io->out_len && !io->write_failed) {
        ssize_t n = write(io->out_fd, io->output + done, io->out_len - done);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            io->write_failed = 1;
        else
            done += (size_t)n;
    }
    io->out_len = 0;
    return io->write_failed ? -1 : 0;
}

void
lineio_printf(struct lineio *io, const char *format, ...)
{
    va_list ap;
    int n;

    for (int attempt = 0; attempt < 2; attempt++) {
        size_t room = sizeof(io->output) - io->out_len;

        va_start(ap, format);
        n = vsnprintf(io->output + io->out_len, room, format, ap);
        va_end(ap);
        if (n >= 0 && (size_t)n < room) {
            io->out_len += (size_t)n;
            return;
        }
        lineio_flush(io);
    }
    /* A single reply never comes near the buffer size; cut it if it does. */
    io->out_len = sizeof(io->output) - 3;
    memcpy(io->output + io->out_len, "\r\n", 2);
    io->out_len += 2;
}

/*
 * Reads more input after the unread bytes, flushing pending replies
 * first.  Returns LINEIO_OK, LINEIO_EOF, LINEIO_TIMEOUT or LINEIO_ERROR.
 */
int
lineio_fill(struct lineio *io)
{
    struct pollfd pfd = {.fd = io->in_fd, .events = POLLIN};
    ssize_t n;

    if (lineio_flush(io) < 0)
        return LINEIO_ERROR;
    if (io->start > 0) {
        memmove(io->input, io->input + io->start, io->end - io->start);
        io->end -= io->start;
        io->start = 0;
    }
    if (io->end == sizeof(io->input))
        return LINEIO_OK;

    for (;;) {
        int ready = poll(&pfd, 1, wait_ms(io));

        if (ready < 0 && errno == EINTR)
            continue;
        if (ready < 0)
            return LINEIO_ERROR;
        if (ready == 0) {
            io->deadline_passed =
                io->deadline_ms > 0 && now_ms() >= io->deadline_ms;
            return LINEIO_TIMEOUT;
        }
        n = read(io->in_fd, io->input + io->end, sizeof(io->input) - io->end);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n < 0)
            return errno == ECONNRESET ? LINEIO_EOF : LINEIO_ERROR;
        if (n == 0)
            return LINEIO_EOF;
        io->end += (size_t)n;
        return LINEIO_OK;
    }
}

/*
 * Reads one command line into line, without its CRLF or LF, as a C
 * string of *length bytes (the line may contain NUL bytes).  A longer line than size - 1 is read to its end and dropped,
 * returning LINEIO_TOO_LONG so that the session stays in step.
 */
int
lineio_read_line(struct lineio *io, char *line, size_t size, size_t *length)
{
    size_t len = 0;
    int too_long = 0;

    for (;;) {
        char *lf = memchr(io->input + io->start, '\n', io->end - io->start);
        size_t take = lf != NULL ? (size_t)(lf - (io->input + io->start))
                                 : io->end - io->start;

        if (!too_long && len + take < size) {
            memcpy(line + len, io->input + io->start, take);
            len += take;
        } else {
            too_long = 1;
        }
        io->start += take;
        if (lf != NULL) {
            io->start++;
            break;
        }

        int status = lineio_fill(io);
        if (status != LINEIO_OK)
            return status;
    }

    if (too_long)
        return LINEIO_TOO_LONG;
    if (len > 0 && line[len - 1] == '\r')
        len--;
    line[len] = '\0';
    *length = len;
    return LINEIO_OK;
}

/* Reads and drops count bytes, for a chunk that is rejected. */
int
lineio_skip(struct lineio *io, unsigned long long count)
{
    while (count > 0) {
        size_t available = io->end - io->start;

        if (available == 0) {
            int status = lineio_fill(io);

            if (status != LINEIO_OK)
                return status;
            continue;
        }
        if (available > count)
            available = (size_t)count;
        io->start += available;
        count -= available;
    }
    return LINEIO_OK;
}
