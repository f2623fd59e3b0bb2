/*
 * transfer.c: the message transfer of an LMTP session.  DATA and BDAT
 * read the message into the spool, or into the draft of a lone Maildir
 * recipient, and the delivery loop then hands it to each accepted
 * recipient with one reply for each.  Internal to session/.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "session/command.h"
#include "session/lineio.h"
#include "session/log.h"
#include "session/session_internal.h"
#include "session/spool.h"
#include "store/store.h"

static void
log_result(struct session *s, const struct recipient *recipient,
           off_t size, const struct store_reply *result,
           unsigned long delivery_ms)
{
    struct log_delivery entry = {
        .client = s->client,
        .sender = s->mail.reverse_path,
        .recipient = recipient->address,
        .mailbox = recipient->mailbox.path,
        .size = (long long)size,
        .code = result->code,
        .status = result->status,
        .text = result->text,
        .detail = result->detail,
        .delivery_ms = delivery_ms,
    };

    if (result->notice[0] != '\0') {
        char notice[sizeof(result->notice) * 2 + 3];

        log_quote(notice, sizeof(notice), result->notice);
        log_warning("to=<%s> mailbox=%s notice=%s", recipient->address,
                    recipient->mailbox.path, notice);
    }
    if (result->code < 400)
        s->delivered++;
    else
        s->failed++;
    log_delivery(&entry);
}

/* Delivers to one recipient, or sets the reason why it cannot. */
static void
deliver_one(struct session *s, struct spool *spool,
            struct recipient *recipient, struct delivery *delivery,
            struct store_reply *result)
{
    /* mbox_deliver() reads the message from the spool file. */
    if (!recipient->mailbox.is_maildir)
        spool_save(spool);

    if (spool->too_big) {
        store_reply_set(result, STORE_TOO_BIG, "%lld bytes over %llu",
                        (long long)spool->size, spool->max_size);
        /* Gone before the reply, as after any failed delivery. */
        if (spool->borrowed)
            maildir_draft_discard(s->draft);
    } else if (spool->borrowed) {
        delivery->recipient = recipient->address;
        store_draft_deliver(s->draft, delivery, &recipient->mailbox,
                            spool->write_errno, result);
    } else if (spool->write_errno != 0) {
        store_reply_spool_errno(result, spool->write_errno, "write spool in",
                                s->config->spool_dir);
    } else {
        delivery->recipient = recipient->address;
        delivery->spool_fd = spool->fd;
        delivery->spool_data = spool->fd < 0 ? spool->buffer : NULL;
        store_deliver(delivery, &recipient->mailbox, result);
    }
}

/* Fills in what the header block needs to know of this transaction. */
static void
describe_delivery(struct session *s, struct delivery *delivery,
                  char *queue_id, size_t size)
{
    snprintf(queue_id, size, "%s.%u", s->id, s->transactions);
    memset(delivery, 0, sizeof(*delivery));
    delivery->reverse_path = s->mail.reverse_path;
    delivery->hostname = s->config->hostname;
    delivery->lhlo = s->lhlo;
    delivery->client = s->client;
    delivery->id = queue_id;
    delivery->arrival = time(NULL);
    delivery->create_folders = s->config->create_folders;
    delivery->spool_fd = -1;
}

/* Delivers the spooled message to each recipient, replying in order. */
static void
deliver_all(struct session *s, struct spool *spool)
{
    char queue_id[32];
    struct delivery delivery;

    describe_delivery(s, &delivery, queue_id, sizeof(queue_id));
    delivery.spool_size = spool->size;
    for (size_t i = 0; i < s->recipient_count; i++) {
        struct recipient *recipient = s->recipients[i];
        struct store_reply result = {0};
        unsigned long delivery_ms;
        struct timespec start;

        /*
         * The client has gone when a reply cannot be sent, and its MTA
         * will send the message again to each recipient without a reply,
         * so delivering now would only make a second copy.
         */
        if (s->io.write_failed) {
            log_warning("sending a reply failed, so the remaining "
                        "recipients were not delivered: %zu",
                        s->recipient_count - i);
            return;
        }
        clock_gettime(CLOCK_MONOTONIC, &start);
        deliver_one(s, spool, recipient, &delivery, &result);
        delivery_ms = elapsed_ms(&start);
        reply_result(s, result.code, result.status, "<%s> %s",
                     recipient->address, result.text);

        /* Each 250 goes out as soon as it is true, not after the rest,
         * nor after the log line. */
        lineio_flush(&s->io);
        log_result(s, recipient, spool->size, &result, delivery_ms);
    }
}

/*
 * Opens a draft in the lone recipient's Maildir for a message that has
 * outgrown the spool's buffer, as the spool's opener.  Returns the
 * draft's descriptor, or -1 so that the spool makes a file of its own,
 * and the delivery after the data reports the reason if it persists.
 */
static int
open_draft(void *arg)
{
    struct session *s = arg;
    struct recipient *recipient = s->recipients[0];
    struct store_reply failure = {0};
    struct delivery delivery;
    char queue_id[32];

    s->draft = s->draft_memory;
    describe_delivery(s, &delivery, queue_id, sizeof(queue_id));
    delivery.recipient = recipient->address;
    if (store_draft_open(s->draft, &delivery, &recipient->mailbox,
                         &failure) == -1) {
        log_debug("to=<%s> writing the message to the spool: %s",
                  recipient->address, failure.detail);
        s->draft = NULL;
        return -1;
    }
    return s->draft->fd;
}

/* Opens the transaction's spool, in the memory the session set aside. */
static void
open_spool(struct session *s)
{
    if (s->spool != NULL)
        return;
    s->spool = s->spool_memory;
    spool_open(s->spool, s->config->spool_dir, s->config->max_size);
    if (s->recipient_count == 1 && s->recipients[0]->mailbox.is_maildir &&
        geteuid() != 0)
        spool_set_opener(s->spool, open_draft, s);
}

/* Ends the session after input stopped in the middle of a message. */
static int
lost_message(struct session *s, int status, const char *where)
{
    reset_transaction(s);
    if (status == LINEIO_TIMEOUT) {
        log_warning("timeout during %s, nothing delivered", where);
        reply(s, 421, "4.4.2", "%s timeout, closing connection",
              s->config->hostname);
    } else {
        log_warning("connection lost during %s, nothing delivered", where);
    }
    return CLOSE;
}

int
do_data(struct session *s, const char *argument)
{
    int status;

    if (!s->in_transaction || s->chunk_failed) {
        reply(s, 503, "5.5.1", "need MAIL command");
        return CONTINUE;
    }
    if (s->chunking) {
        reply(s, 503, "5.5.1", "DATA after BDAT in one transaction");
        return CONTINUE;
    }
    if (s->mail.body == BODY_BINARYMIME) {
        reply(s, 503, "5.5.1", "BODY=BINARYMIME requires BDAT");
        return CONTINUE;
    }
    if (s->recipient_count == 0) {
        reply(s, 503, "5.5.1", "no valid recipients");
        return CONTINUE;
    }
    if (argument[0] != '\0') {
        reply(s, 501, "5.5.4", "DATA takes no argument");
        return CONTINUE;
    }
    open_spool(s);
    send_line(s, "354 start mail input; end with <CRLF>.<CRLF>");

    status = spool_read_data(s->spool, &s->io, s->config->bare_lf);
    if (status != LINEIO_OK)
        return lost_message(s, status, "DATA");
    deliver_all(s, s->spool);
    reset_transaction(s);
    return CONTINUE;
}

/*
 * Reads a chunk that cannot be taken, so that the session stays in
 * step, and replies to it: with 503 and reason, or with the reply in
 * chunk_failure when reason is NULL.  RFC 2033 section 4.3 gives BDAT
 * LAST one reply per accepted recipient: none when there are none, and
 * the reason for the failure to each one after a rejected chunk.
 */
static int
reject_chunk(struct session *s, unsigned long long size, int last,
             const char *reason)
{
    int status = lineio_skip(&s->io, size);

    if (status != LINEIO_OK)
        return lost_message(s, status, "BDAT");
    if (!s->in_transaction) {
        reply(s, 503, "5.5.1", "%s", reason);
        return CONTINUE;
    }
    if (last) {
        for (size_t i = 0; i < s->recipient_count; i++)
            reply_result(s, s->chunk_failure.code, s->chunk_failure.status,
                         "<%s> %s", s->recipients[i]->address,
                         s->chunk_failure.text);
        reset_transaction(s);
        return CONTINUE;
    }
    if (!s->chunk_failed && reason == NULL) {
        s->chunk_failed = 1;
        reply(s, s->chunk_failure.code, s->chunk_failure.status,
              "%s, send RSET", s->chunk_failure.text);
        return CONTINUE;
    }
    if (!s->chunk_failed) {
        s->chunk_failed = 1;
        reply(s, 503, "5.5.1", "%s", reason);
        return CONTINUE;
    }
    reply(s, 503, "5.5.1", "transaction failed, send RSET");
    return CONTINUE;
}

/* Replies to a chunk that is not the last: 250, or why it failed. */
static void
reply_chunk(struct session *s, unsigned long long size)
{
    struct store_reply *failure = &s->chunk_failure;

    if (s->spool->too_big) {
        store_reply_set(failure, STORE_TOO_BIG, NULL);
    } else if (s->spool->write_errno != 0) {
        if (s->spool->borrowed)
            store_draft_write_failed(s->draft, s->spool->write_errno,
                                     failure);
        else
            store_reply_spool_errno(failure, s->spool->write_errno,
                                    "write spool in", s->config->spool_dir);
        log_warning("%s", failure->detail);
    } else {
        reply(s, 250, "2.0.0", "%llu octets received", size);
        return;
    }
    s->chunk_failed = 1;
    reply(s, failure->code, failure->status, "%s", failure->text);
}

/* BDAT chunk-size [LAST] (RFC 3030), replied to as RFC 2033 section 4.3. */
int
do_bdat(struct session *s, const char *argument)
{
    unsigned long long size;
    int last, status;

    if (command_parse_bdat(argument, &size, &last) < 0) {
        /* The chunk's length is unknown, so the stream cannot be
         * followed any further. */
        log_warning("invalid BDAT arguments \"%.64s\"", argument);
        reply(s, 501, "5.5.4", "invalid BDAT arguments, closing connection");
        return CLOSE;
    }
    if (!s->in_transaction)
        return reject_chunk(s, size, last, "need MAIL command");
    if (s->chunk_failed || s->recipient_count == 0)
        return reject_chunk(s, size, last, "no valid recipients");
    open_spool(s);

    s->chunking = 1;
    status = spool_read_chunk(s->spool, &s->io, size);
    if (status != LINEIO_OK)
        return lost_message(s, status, "BDAT");
    if (!last) {
        reply_chunk(s, size);
        return CONTINUE;
    }
    spool_end_chunks(s->spool);
    deliver_all(s, s->spool);
    reset_transaction(s);
    return CONTINUE;
}
