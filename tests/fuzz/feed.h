/*
 * feed.h: hands a fuzz input to code that reads a client's descriptor.
 * The input goes into a SOCK_SEQPACKET socket pair as packets of a
 * chosen size, so each read() returns at most one packet and a line end
 * split between two reads is reproduced the same way on every run.
 */
#ifndef LMTPD_FUZZ_FEED_H
#define LMTPD_FUZZ_FEED_H

#include <stddef.h>
#include <stdint.h>

int feed_open(const uint8_t *data, size_t size, size_t packet_size);

#endif
