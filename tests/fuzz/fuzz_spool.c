/*
 * fuzz_spool.c: libFuzzer target for the DATA and BDAT readers of
 * session/spool.c.  The first byte selects DATA or BDAT, bare LF line
 * ends and the packet size in which the client's bytes arrive.  For
 * BDAT, the rest is chunks, each a length byte and that many octets.
 * After a complete message, the spool's buffer must hold exactly the
 * bytes that the spool counted, and so must the spool file once
 * spool_save() has written them there, as it does for an mbox.
 */
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "session/lineio.h"
#include "session/spool.h"
#include "tests/fuzz/feed.h"

/* Small, so that the path past the maximum size is reached too. */
#define MAX_SIZE 2048

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct lineio io;
static struct spool spool;

/*
 * Splits "length byte, octets" records into the chunk lengths and the
 * octets that the client sends.  Returns the number of chunks.
 */
static size_t
split_chunks(const uint8_t *data, size_t size, uint8_t *octets,
             size_t *octets_len, unsigned *lengths)
{
    size_t offset = 0, count = 0;

    *octets_len = 0;
    while (offset < size) {
        size_t len = data[offset++];
        size_t present = size - offset < len ? size - offset : len;

        lengths[count++] = (unsigned)len;
        memcpy(octets + *octets_len, data + offset, present);
        *octets_len += present;
        offset += present;
    }
    return count;
}

/* Reads each chunk; returns LINEIO_OK after the last, or why it stopped. */
static int
read_chunks(const unsigned *lengths, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        int status = spool_read_chunk(&spool, &io, lengths[i]);

        if (status != LINEIO_OK)
            return status;
    }
    spool_end_chunks(&spool);
    return LINEIO_OK;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int bdat, bare_lf, in_fd, out_fd, status;
    size_t packet_size, octets_len, count = 0;
    unsigned *lengths;
    uint8_t *octets;

    if (size == 0)
        return 0;
    bdat = data[0] & 1;
    bare_lf = (data[0] >> 1) & 1;
    packet_size = 1 + (data[0] >> 2) * 8;
    data++;
    size--;

    octets = malloc(size + 1);
    lengths = malloc((size + 1) * sizeof *lengths);
    if (octets == NULL || lengths == NULL)
        abort();
    if (bdat) {
        count = split_chunks(data, size, octets, &octets_len, lengths);
        in_fd = feed_open(octets, octets_len, packet_size);
    } else {
        in_fd = feed_open(data, size, packet_size);
    }
    out_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (in_fd == -1 || out_fd == -1)
        abort();
    spool_open(&spool, "/tmp", MAX_SIZE);
    lineio_init(&io, in_fd, out_fd, 1);

    if (bdat)
        status = read_chunks(lengths, count);
    else
        status = spool_read_data(&spool, &io, bare_lf);

    /* The message is complete only when the reader saw the end.  Under
     * MAX_SIZE it always fits in the buffer. */
    if (status == LINEIO_OK && !spool.too_big && spool.write_errno == 0) {
        if (spool.fd != -1 || (off_t)spool.used != spool.size)
            abort();
        spool_save(&spool);
        if (spool.write_errno == 0 &&
            lseek(spool.fd, 0, SEEK_END) != spool.size)
            abort();
    }
    if (spool.too_big != (spool.size > MAX_SIZE))
        abort();

    spool_close(&spool);
    free(octets);
    free(lengths);
    close(in_fd);
    close(out_fd);
    return 0;
}
