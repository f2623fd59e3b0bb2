/*
 * spool.c: reads DATA into the spool, undoing dot-stuffing and turning
 * CRLF into LF.  A message that fits in the buffer stays there, which
 * saves creating and removing a file for most mail.  A larger one goes
 * to an unnamed file, so memory stays fixed whatever the message size.
 *
 * On a socket the data ends only at CRLF "." CRLF (RFC 5321 section
 * 4.1.1.4).  A bare LF is stored as a line end but never starts an end
 * of data, so "LF . LF" and its mixes cannot end a message early and
 * smuggle a second one past the MTA.  A bare CR is stored as it is.
 * BDAT chunks (RFC 3030) are taken as they come, with CRLF made LF.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "session/spool.h"

/*
 * Opens the spool for a message.  No file is created until the message
 * outgrows the buffer.
 */
void
spool_open(struct spool *spool, const char *dir, unsigned long long max_size)
{
    spool->fd = -1;
    spool->dir = dir;
    spool->size = 0;
    spool->max_size = max_size;
    spool->too_big = 0;
    spool->write_errno = 0;
    spool->pending_cr = 0;
    spool->used = 0;
    spool->opener = NULL;
    spool->opener_arg = NULL;
    spool->borrowed = 0;
    spool->synced = 0;
    spool->unsynced = 0;
}

/*
 * Lets opener make the file for a message that outgrows the buffer: it
 * returns a descriptor open for appending, or -1, and the spool makes
 * its own file.  The spool writes to the opener's file and starts its
 * writeback as it goes, because that file is to be fsynced, but never
 * closes it.  The message must then be read from where opener put it.
 */
void
spool_set_opener(struct spool *spool, int (*opener)(void *), void *arg)
{
    spool->opener = opener;
    spool->opener_arg = arg;
}

/*
 * Creates an unnamed spool file in dir: O_TMPFILE where the file system
 * has it, otherwise a temp file unlinked at once.  Nothing is left in
 * dir after the process ends, whatever the way it ends.  Returns the
 * descriptor, or -1 with errno.
 */
static int
create_file(const char *dir)
{
    char path[4096];
    int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);

    if (fd >= 0)
        return fd;
    if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL)
        return -1;

    if ((size_t)snprintf(path, sizeof(path), "%s/lmtpd.XXXXXX", dir) >=
        sizeof(path)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    fd = mkostemp(path, O_CLOEXEC);
    if (fd >= 0)
        unlink(path);
    return fd;
}

/* Creates and closes a spool file in dir.  Returns 0, or -1 with errno. */
int
spool_check_dir(const char *dir)
{
    int fd = create_file(dir);

    if (fd < 0)
        return -1;
    close(fd);
    return 0;
}

void
spool_close(struct spool *spool)
{
    if (spool->fd >= 0 && !spool->borrowed)
        close(spool->fd);
    spool->fd = -1;
    spool->borrowed = 0;
}

/* Moves the buffer into the file, creating the file first if needed. */
static void
spool_flush(struct spool *spool)
{
    size_t done = 0;

    if (spool->fd < 0 && spool->write_errno == 0 && spool->opener != NULL) {
        spool->fd = spool->opener(spool->opener_arg);
        spool->borrowed = spool->fd >= 0;
    }
    if (spool->fd < 0 && spool->write_errno == 0) {
        spool->fd = create_file(spool->dir);
        if (spool->fd < 0)
            spool->write_errno = errno;
    }
    while (done < spool->used && spool->write_errno == 0) {
        ssize_t n = write(spool->fd, spool->buffer + done, spool->used - done);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            spool->write_errno = errno;
        else
            done += (size_t)n;
    }
    if (spool->borrowed && spool->write_errno == 0) {
        spool->unsynced += (off_t)done;
        if (spool->unsynced >= SPOOL_WRITEBACK_STEP) {
            /*
             * The opener's file is fsynced after the data, so its
             * writeback starts now, from the last start to the end of
             * the file, and the disk works while the rest arrives.
             */
            sync_file_range(spool->fd, spool->synced, 0,
                            SYNC_FILE_RANGE_WRITE);
            spool->synced += spool->unsynced;
            spool->unsynced = 0;
        }
    }
    spool->used = 0;
}

/* Completes the message: it stays in the buffer unless a file exists. */
static void
spool_finish(struct spool *spool)
{
    if (spool->fd >= 0)
        spool_flush(spool);
}

/*
 * Writes a message kept in the buffer to the spool file, for a writer
 * that reads the message from a file.  Sets write_errno on failure.
 */
void
spool_save(struct spool *spool)
{
    if (spool->fd < 0 && !spool->too_big)
        spool_flush(spool);
}

/*
 * Appends message bytes.  Past the maximum size, or after a write
 * error, bytes are counted and dropped so the client can still be read
 * to the end of the data and then receive its replies.
 */
static void
spool_put(struct spool *spool, const char *bytes, size_t len)
{
    if (spool->max_size > 0 &&
        (unsigned long long)spool->size + len > spool->max_size)
        spool->too_big = 1;
    spool->size += (off_t)len;
    if (spool->too_big || spool->write_errno != 0)
        return;

    while (len > 0) {
        size_t room = sizeof(spool->buffer) - spool->used;
        size_t take = len < room ? len : room;

        memcpy(spool->buffer + spool->used, bytes, take);
        spool->used += take;
        bytes += take;
        len -= take;
        if (spool->used == sizeof(spool->buffer))
            spool_flush(spool);
    }
}

/*
 * Appends the last text of a line and its LF, with one copy while the
 * buffer has room: the common case of the DATA reader, once per line.
 */
static void
spool_put_line(struct spool *spool, const char *text, size_t len)
{
    size_t room = sizeof(spool->buffer) - spool->used;

    if (len < room && !spool->too_big && spool->write_errno == 0 &&
        (spool->max_size == 0 ||
         (unsigned long long)spool->size + len + 1 <= spool->max_size)) {
        memcpy(spool->buffer + spool->used, text, len);
        spool->buffer[spool->used + len] = '\n';
        spool->used += len + 1;
        spool->size += (off_t)(len + 1);
        return;
    }
    spool_put(spool, text, len);
    spool_put(spool, "\n", 1);
}

enum data_state {
    AT_LINE_START, /* at the first byte of a line */
    IN_LINE,
    AFTER_CR,      /* a CR inside a line, LF or more to come */
    AFTER_DOT,     /* a "." at the start of a line */
    AFTER_DOT_CR   /* "." CR at the start of a line */
};

struct data_reader {
    enum data_state state;
    int after_crlf; /* the last line end was CRLF, or the data just began */
    int bare_lf;    /* LF alone ends lines, for a pipe or terminal */
    struct spool *spool;
};

/* Stores the last len bytes of a line and its LF; a new line starts. */
static void
end_line(struct data_reader *r, const char *text, size_t len, int crlf)
{
    spool_put_line(r->spool, text, len);
    r->after_crlf = crlf || r->bare_lf;
    r->state = AT_LINE_START;
}

/* Takes a byte inside a line, or the first one unless it is a dot. */
static void
line_byte(struct data_reader *r, char c)
{
    if (c == '\r') {
        r->state = AFTER_CR;
    } else if (c == '\n') {
        end_line(r, "", 0, 0);
    } else {
        spool_put(r->spool, &c, 1);
        r->state = IN_LINE;
    }
}

/*
 * Takes one byte of DATA; returns 1 when it completes the end of data.
 * RFC 5321 section 4.5.2 deletes a leading dot only when other
 * characters follow on the line, so a lone "." that does not end the
 * data (after a bare LF) is stored as it came.
 */
static int
data_byte(struct data_reader *r, char c)
{
    switch (r->state) {
    case AT_LINE_START:
        if (c == '.')
            r->state = AFTER_DOT;
        else
            line_byte(r, c);
        return 0;
    case IN_LINE:
        line_byte(r, c);
        return 0;
    case AFTER_CR:
        if (c == '\n') {
            end_line(r, "", 0, 1);
            return 0;
        }
        spool_put(r->spool, "\r", 1); /* a bare CR is kept */
        r->state = c == '\r' ? AFTER_CR : IN_LINE;
        if (c != '\r')
            spool_put(r->spool, &c, 1);
        return 0;
    case AFTER_DOT:
        if (c == '\r') {
            r->state = AFTER_DOT_CR;
        } else if (c == '\n') {
            if (r->bare_lf && r->after_crlf)
                return 1;
            end_line(r, ".", 1, 0);
        } else {
            spool_put(r->spool, &c, 1); /* the stuffed dot is dropped */
            r->state = IN_LINE;
        }
        return 0;
    case AFTER_DOT_CR:
        if (c == '\n') {
            if (r->after_crlf)
                return 1;
            end_line(r, ".", 1, 1);
            return 0;
        }
        spool_put(r->spool, "\r", 1); /* "." CR text: the dot goes */
        r->state = c == '\r' ? AFTER_CR : IN_LINE;
        if (c != '\r')
            spool_put(r->spool, &c, 1);
        return 0;
    }
    return 0;
}

/*
 * Takes the rest of a line, from p inside it, up to and including its
 * LF, or up to end when no LF comes before.  This is the fast path of
 * data_byte(): a CR before the LF is dropped, any other CR is kept, and
 * a CR at end waits in AFTER_CR for the next read.  Returns where the
 * next byte to take is.
 */
static char *
take_line(struct data_reader *r, char *p, char *end)
{
    char *lf = memchr(p, '\n', (size_t)(end - p));

    if (lf == NULL) {
        if (end[-1] == '\r') {
            spool_put(r->spool, p, (size_t)(end - 1 - p));
            r->state = AFTER_CR;
        } else {
            spool_put(r->spool, p, (size_t)(end - p));
        }
        return end;
    }
    if (lf > p && lf[-1] == '\r')
        end_line(r, p, (size_t)(lf - 1 - p), 1);
    else
        end_line(r, p, (size_t)(lf - p), 0);
    return lf + 1;
}

/*
 * Reads the message after the 354 reply up to its end of data.  Returns
 * LINEIO_OK when the end was seen (check too_big and write_errno), or
 * the lineio status that stopped it: EOF, TIMEOUT or ERROR.
 */
int
spool_read_data(struct spool *spool, struct lineio *io, int bare_lf)
{
    struct data_reader r = {
        .state = AT_LINE_START, .after_crlf = 1, .bare_lf = bare_lf,
        .spool = spool,
    };

    for (;;) {
        char *p = io->input + io->start;
        char *end = io->input + io->end;

        while (p < end) {
            /* Only a dot at a line start needs the byte machine. */
            if (r.state == AT_LINE_START && *p != '.')
                r.state = IN_LINE;
            if (r.state == IN_LINE) {
                p = take_line(&r, p, end);
                continue;
            }
            if (data_byte(&r, *p++)) {
                io->start = (size_t)(p - io->input);
                spool_finish(spool);
                return LINEIO_OK;
            }
        }
        io->start = io->end;

        int status = lineio_fill(io);
        if (status != LINEIO_OK)
            return status;
    }
}

/*
 * Reads one BDAT chunk of count octets into the spool.  CRLF becomes LF
 * also when a chunk ends between the CR and the LF.  Returns LINEIO_OK
 * or the lineio status that stopped it.
 */
int
spool_read_chunk(struct spool *spool, struct lineio *io,
                 unsigned long long count)
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

        const char *p = io->input + io->start;
        const char *end = p + available;

        while (p < end) {
            if (spool->pending_cr) {
                spool->pending_cr = 0;
                if (*p == '\n') {
                    spool_put(spool, "\n", 1);
                    p++;
                    continue;
                }
                spool_put(spool, "\r", 1);
            }

            const char *cr = memchr(p, '\r', (size_t)(end - p));

            if (cr == NULL) {
                spool_put(spool, p, (size_t)(end - p));
                break;
            }
            spool_put(spool, p, (size_t)(cr - p));
            spool->pending_cr = 1;
            p = cr + 1;
        }
        io->start += available;
        count -= available;
    }
    return LINEIO_OK;
}

/* Completes a message sent with BDAT: a final lone CR is kept. */
void
spool_end_chunks(struct spool *spool)
{
    if (spool->pending_cr)
        spool_put(spool, "\r", 1);
    spool->pending_cr = 0;
    spool_finish(spool);
}
