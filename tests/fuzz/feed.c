/*
 * feed.c: see feed.h.  Writes never block: input that the socket buffer
 * cannot take is dropped, which depends only on the input and the
 * packet size, so a run is reproducible.
 */
#include <sys/socket.h>
#include <unistd.h>

#include "tests/fuzz/feed.h"

/*
 * Returns the reading end of a socket pair that contains the input and
 * then reports end of file, or -1 when no socket pair can be made.
 */
int
feed_open(const uint8_t *data, size_t size, size_t packet_size)
{
    int fds[2];
    size_t offset = 0;

    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds) == -1)
        return -1;
    if (packet_size == 0)
        packet_size = 1;
    while (offset < size) {
        size_t len = size - offset < packet_size ? size - offset
                                                   : packet_size;

        if (send(fds[1], data + offset, len, MSG_DONTWAIT) != (ssize_t)len)
            break;
        offset += len;
    }
    close(fds[1]);
    return fds[0];
}
