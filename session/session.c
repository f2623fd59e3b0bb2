/*
 * session.c: the LMTP state machine of RFC 2033.  One call serves one
 * connection: greeting, LHLO, then transactions of MAIL, RCPT and DATA,
 * each ending with one reply per accepted recipient.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "session/command.h"
#include "session/lineio.h"
#include "session/log.h"
#include "session/session.h"
#include "session/spool.h"
#include "store/store.h"

/* RFC 5321 section 4.5.3.1.8 asks for at least 100 recipients. */
#define MAX_RECIPIENTS 1000

/* Longest command line kept, with room above RFC 5321's 512 octets. */
#define MAX_COMMAND_LINE 2048

struct recipient {
    char address[PATH_MAX_LENGTH];
    struct mailbox mailbox;
};

struct session {
    const struct session_config *config;
    const char *client;
    char id[16];
    char lhlo[256];
    int greeted;
    int in_transaction;
    unsigned int transactions;
    struct mail_request mail;
    struct recipient **recipients;
    size_t recipient_count;
    struct lineio io;
    char line[MAX_COMMAND_LINE + 1];
};

enum { CONTINUE = 0, CLOSE = 1 };

static void
reply(struct session *s, int code, const char *status, const char *format,
      ...) __attribute__((format(printf, 4, 5)));

static void
reply(struct session *s, int code, const char *status, const char *format,
      ...)
{
    char text[512];
    va_list ap;

    va_start(ap, format);
    vsnprintf(text, sizeof(text), format, ap);
    va_end(ap);
    lineio_printf(&s->io, "%d %s %s\r\n", code, status, text);
}

static void
reset_transaction(struct session *s)
{
    for (size_t i = 0; i < s->recipient_count; i++)
        free(s->recipients[i]);
    free(s->recipients);
    s->recipients = NULL;
    s->recipient_count = 0;
    s->in_transaction = 0;
}

/* Makes a session id of 12 hex digits, for the log and Received. */
static void
make_session_id(char *id, size_t size)
{
    unsigned char bytes[6];

    if (getrandom(bytes, sizeof(bytes), 0) != (ssize_t)sizeof(bytes)) {
        unsigned long mix = (unsigned long)time(NULL) ^
                            ((unsigned long)getpid() << 16);
        memcpy(bytes, &mix, sizeof(bytes));
    }
    snprintf(id, size, "%02X%02X%02X%02X%02X%02X", bytes[0], bytes[1],
             bytes[2], bytes[3], bytes[4], bytes[5]);
}

static int
has_control_bytes(const char *text)
{
    for (; *text != '\0'; text++) {
        if ((unsigned char)*text < 32 || *text == 127)
            return 1;
    }
    return 0;
}

static int
do_lhlo(struct session *s, const char *argument)
{
    const struct session_config *config = s->config;

    if (argument[0] == '\0' || strlen(argument) >= sizeof(s->lhlo) ||
        has_control_bytes(argument) || strchr(argument, ' ') != NULL) {
        reply(s, 501, "5.5.4", "LHLO requires a domain or address literal");
        return CONTINUE;
    }
    reset_transaction(s);
    snprintf(s->lhlo, sizeof(s->lhlo), "%s", argument);
    s->greeted = 1;

    lineio_printf(&s->io, "250-%s\r\n", config->hostname);
    lineio_printf(&s->io, "250-PIPELINING\r\n");
    lineio_printf(&s->io, "250-ENHANCEDSTATUSCODES\r\n");
    lineio_printf(&s->io, "250-8BITMIME\r\n");
    if (config->max_size > 0)
        lineio_printf(&s->io, "250 SIZE %llu\r\n", config->max_size);
    else
        lineio_printf(&s->io, "250 SIZE\r\n");
    return CONTINUE;
}

static int
do_mail(struct session *s, const char *argument)
{
    struct command_error error;

    if (!s->greeted) {
        reply(s, 503, "5.5.1", "send LHLO first");
        return CONTINUE;
    }
    if (s->in_transaction) {
        reply(s, 503, "5.5.1", "nested MAIL command");
        return CONTINUE;
    }
    if (command_parse_mail(argument, s->config->max_size, &s->mail,
                           &error) < 0) {
        reply(s, error.code, error.status, "%s", error.text);
        return CONTINUE;
    }
    s->in_transaction = 1;
    s->transactions++;
    reply(s, 250, "2.1.0", "<%s> sender ok", s->mail.reverse_path);
    return CONTINUE;
}

static int
add_recipient(struct session *s, const char *address,
              const struct mailbox *mailbox)
{
    struct recipient **grown, *recipient;

    recipient = malloc(sizeof(*recipient));
    grown = realloc(s->recipients,
                    (s->recipient_count + 1) * sizeof(*s->recipients));
    if (recipient == NULL || grown == NULL) {
        free(recipient);
        if (grown != NULL)
            s->recipients = grown;
        return -1;
    }
    s->recipients = grown;
    snprintf(recipient->address, sizeof(recipient->address), "%s", address);
    recipient->mailbox = *mailbox;
    s->recipients[s->recipient_count++] = recipient;
    return 0;
}

static int
do_rcpt(struct session *s, const char *argument)
{
    struct command_error error;
    struct rcpt_request rcpt;
    struct store_reply result;
    struct mailbox mailbox;

    if (!s->in_transaction) {
        reply(s, 503, "5.5.1", "need MAIL command");
        return CONTINUE;
    }
    if (command_parse_rcpt(argument, &rcpt, &error) < 0) {
        reply(s, error.code, error.status, "%s", error.text);
        return CONTINUE;
    }
    if (s->recipient_count >= MAX_RECIPIENTS) {
        reply(s, 452, "4.5.3", "<%s> too many recipients",
              rcpt.forward_path);
        return CONTINUE;
    }
    if (users_lookup(s->config->map_path, rcpt.forward_path,
                     s->config->delimiters, &mailbox, &result) < 0) {
        if (result.detail[0] != '\0')
            log_warning("to=<%s> reply=%d %s %s", rcpt.forward_path,
                        result.code, result.status, result.detail);
        reply(s, result.code, result.status, "<%s> %s", rcpt.forward_path,
              result.text);
        return CONTINUE;
    }
    if (add_recipient(s, rcpt.forward_path, &mailbox) < 0) {
        log_error("to=<%s> out of memory", rcpt.forward_path);
        reply(s, 452, "4.3.1", "<%s> insufficient system resources",
              rcpt.forward_path);
        return CONTINUE;
    }
    reply(s, 250, "2.1.5", "<%s> recipient ok", rcpt.forward_path);
    return CONTINUE;
}

static void
log_result(struct session *s, const struct recipient *recipient,
           off_t size, const struct store_reply *result)
{
    log_message(result->code < 400 ? LOG_INFO : LOG_WARNING,
                "from=<%s> to=<%s> mailbox=%s size=%lld reply=%d %s %s%s%s",
                s->mail.reverse_path, recipient->address,
                recipient->mailbox.path, (long long)size, result->code,
                result->status, result->text,
                result->detail[0] != '\0' ? ": " : "", result->detail);
}

/* Delivers the spooled message to each recipient, answering in order. */
static void
deliver_all(struct session *s, struct spool *spool)
{
    char queue_id[32];
    struct delivery delivery = {
        .reverse_path = s->mail.reverse_path,
        .hostname = s->config->hostname,
        .lhlo = s->lhlo,
        .client = s->client,
        .id = queue_id,
        .arrival = time(NULL),
        .spool_fd = spool->fd,
        .spool_size = spool->size,
    };

    snprintf(queue_id, sizeof(queue_id), "%s.%u", s->id, s->transactions);
    for (size_t i = 0; i < s->recipient_count; i++) {
        struct recipient *recipient = s->recipients[i];
        struct store_reply result;

        if (spool->too_big) {
            store_reply_set(&result, STORE_TOO_BIG, "%lld bytes over %llu",
                            (long long)spool->size, spool->max_size);
        } else if (spool->write_errno != 0) {
            store_reply_errno(&result, spool->write_errno, "write spool in",
                              s->config->spool_dir);
        } else {
            delivery.recipient = recipient->address;
            store_deliver(&delivery, &recipient->mailbox, &result);
        }
        log_result(s, recipient, spool->size, &result);
        reply(s, result.code, result.status, "<%s> %s", recipient->address,
              result.text);

        /* Each 250 goes out as soon as it is true, not after the rest. */
        lineio_flush(&s->io);
    }
}

static int
do_data(struct session *s, const char *argument)
{
    struct spool *spool;
    int status;

    if (!s->in_transaction) {
        reply(s, 503, "5.5.1", "need MAIL command");
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
    spool = malloc(sizeof(*spool));
    if (spool == NULL ||
        spool_open(spool, s->config->spool_dir, s->config->max_size) < 0) {
        log_error("cannot open spool in %s: %s", s->config->spool_dir,
                  strerror(errno));
        free(spool);
        reply(s, 451, "4.3.0", "local error, try again later");
        return CONTINUE;
    }
    lineio_printf(&s->io, "354 start mail input; end with <CRLF>.<CRLF>\r\n");

    status = spool_read_data(spool, &s->io, s->config->bare_lf);
    if (status == LINEIO_OK)
        deliver_all(s, spool);
    spool_close(spool);
    free(spool);
    reset_transaction(s);

    if (status == LINEIO_TIMEOUT) {
        log_warning("timeout during DATA");
        reply(s, 421, "4.4.2", "%s timeout, closing connection",
              s->config->hostname);
        return CLOSE;
    }
    if (status != LINEIO_OK) {
        log_warning("connection lost during DATA, nothing delivered");
        return CLOSE;
    }
    return CONTINUE;
}

static int
do_rset(struct session *s, const char *argument)
{
    (void)argument;
    reset_transaction(s);
    reply(s, 250, "2.0.0", "ok");
    return CONTINUE;
}

static int
do_noop(struct session *s, const char *argument)
{
    (void)argument;
    reply(s, 250, "2.0.0", "ok");
    return CONTINUE;
}

static int
do_vrfy(struct session *s, const char *argument)
{
    (void)argument;
    reply(s, 252, "2.0.0", "cannot verify, but will try delivery");
    return CONTINUE;
}

static int
do_quit(struct session *s, const char *argument)
{
    (void)argument;
    reply(s, 221, "2.0.0", "%s closing connection", s->config->hostname);
    return CLOSE;
}

static int
do_helo(struct session *s, const char *argument)
{
    (void)argument;
    reply(s, 500, "5.5.1", "this is an LMTP server, use LHLO");
    return CONTINUE;
}

static int
do_help(struct session *s, const char *argument)
{
    (void)argument;
    reply(s, 214, "2.0.0",
          "commands: LHLO MAIL RCPT DATA RSET NOOP VRFY QUIT");
    return CONTINUE;
}

static int
do_unknown(struct session *s, const char *argument)
{
    (void)argument;
    reply(s, 500, "5.5.1", "command not recognized");
    return CONTINUE;
}

static int (*const handlers[])(struct session *, const char *) = {
    [VERB_UNKNOWN] = do_unknown,
    [VERB_LHLO] = do_lhlo,
    [VERB_MAIL] = do_mail,
    [VERB_RCPT] = do_rcpt,
    [VERB_DATA] = do_data,
    [VERB_RSET] = do_rset,
    [VERB_NOOP] = do_noop,
    [VERB_VRFY] = do_vrfy,
    [VERB_QUIT] = do_quit,
    [VERB_HELO] = do_helo,
    [VERB_EHLO] = do_helo,
    [VERB_HELP] = do_help,
};

/* Reads and answers one command; returns CLOSE when the session ends. */
static int
serve_command(struct session *s)
{
    const char *argument;
    size_t length;
    int status;

    status = lineio_read_line(&s->io, s->line, sizeof(s->line), &length);
    switch (status) {
    case LINEIO_OK:
        break;
    case LINEIO_TOO_LONG:
        reply(s, 500, "5.5.2", "line too long");
        return CONTINUE;
    case LINEIO_TIMEOUT:
        log_warning("timeout after %u seconds idle", s->config->timeout);
        reply(s, 421, "4.4.2", "%s timeout, closing connection",
              s->config->hostname);
        return CLOSE;
    case LINEIO_EOF:
        log_info("client closed the connection");
        return CLOSE;
    default:
        log_warning("read failed: %s", strerror(errno));
        return CLOSE;
    }

    if (memchr(s->line, '\0', length) != NULL) {
        reply(s, 500, "5.5.2", "NUL byte in command");
        return CONTINUE;
    }
    return handlers[command_verb(s->line, &argument)](s, argument);
}

/*
 * Serves one connection on in_fd and out_fd until QUIT, end of input or
 * timeout.  client describes the peer for Received ("" for local).
 * Returns 0, or -1 when the connection broke.
 */
int
session_run(const struct session_config *config, int in_fd, int out_fd,
            const char *client)
{
    struct session *s;
    int broken;

    s = calloc(1, sizeof(*s));
    if (s == NULL)
        return -1;
    s->config = config;
    s->client = client;
    make_session_id(s->id, sizeof(s->id));
    log_set_session(s->id);
    log_info("connect from %s", client[0] != '\0' ? client : "local");

    lineio_init(&s->io, in_fd, out_fd, config->timeout);
    lineio_printf(&s->io, "220 %s LMTP lmtpd ready\r\n", config->hostname);
    while (serve_command(s) == CONTINUE && !s->io.write_failed)
        ;
    lineio_flush(&s->io);

    broken = s->io.write_failed;
    log_info("disconnect, %u transactions", s->transactions);
    reset_transaction(s);
    free(s);
    log_set_session(NULL);
    return broken ? -1 : 0;
}
