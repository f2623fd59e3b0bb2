/*
 * session.c: the LMTP state machine of RFC 2033.  One call serves one
 * connection: greeting, LHLO, then transactions of MAIL, RCPT and DATA,
 * each ending with one reply per accepted recipient.  transfer.c reads
 * the message of DATA and BDAT and delivers it.
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
#include "session/session_internal.h"
#include "session/spool.h"
#include "store/store.h"

/* Maximum number of bytes of one line that the protocol trace shows. */
#define TRACE_MAX 512

/*
 * Logs one protocol line for --verbose, with control bytes as \xNN.
 * Message text never comes here: DATA and BDAT content goes from the
 * line reader straight into the spool.
 */
static void
trace_line(const char *direction, const char *line, size_t length)
{
    char text[TRACE_MAX * 4 + 4];
    size_t used = 0;

    for (size_t i = 0; i < length && i < TRACE_MAX; i++) {
        unsigned char c = (unsigned char)line[i];

        if (c < 0x20 || c == 0x7f)
            used += (size_t)snprintf(text + used, sizeof(text) - used,
                                     "\\x%02x", c);
        else
            text[used++] = (char)c;
    }
    text[used] = '\0';
    log_debug("%s %s%s", direction, text, length > TRACE_MAX ? "..." : "");
}

/* Sends one reply line, CRLF added, and traces it under --verbose. */
void
send_line(struct session *s, const char *format, ...)
{
    char text[600];
    va_list ap;

    va_start(ap, format);
    vsnprintf(text, sizeof(text), format, ap);
    va_end(ap);
    lineio_printf(&s->io, "%s\r\n", text);
    if (log_verbose())
        trace_line(">", text, strlen(text));
}

static void
send_reply(struct session *s, int code, const char *status,
           const char *format, va_list ap) __attribute__((format(printf, 4, 0)));

static void
send_reply(struct session *s, int code, const char *status,
           const char *format, va_list ap)
{
    char text[512];

    vsnprintf(text, sizeof(text), format, ap);
    send_line(s, "%d %s %s", code, status, text);
}

/* Sends a reply to a command.  4xx and 5xx count toward --max-errors. */
void
reply(struct session *s, int code, const char *status, const char *format,
      ...)
{
    va_list ap;

    if (code >= 400)
        s->errors++;
    va_start(ap, format);
    send_reply(s, code, status, format, ap);
    va_end(ap);
}

/* Sends one recipient's delivery result, which is not a command error. */
void
reply_result(struct session *s, int code, const char *status,
             const char *format, ...)
{
    va_list ap;

    va_start(ap, format);
    send_reply(s, code, status, format, ap);
    va_end(ap);
}

void
reset_transaction(struct session *s)
{
    for (size_t i = 0; i < s->recipient_count; i++)
        free(s->recipients[i]);
    free(s->recipients);
    s->recipients = NULL;
    s->recipient_count = 0;
    s->in_transaction = 0;
    if (s->draft != NULL) {
        maildir_draft_discard(s->draft);
        s->draft = NULL;
    }
    if (s->spool != NULL) {
        spool_close(s->spool);
        s->spool = NULL;
    }
    s->chunking = 0;
    s->chunk_failed = 0;
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

    send_line(s, "250-%s", config->hostname);
    send_line(s, "250-PIPELINING");
    send_line(s, "250-ENHANCEDSTATUSCODES");
    send_line(s, "250-8BITMIME");
    send_line(s, "250-CHUNKING");
    send_line(s, "250-BINARYMIME");
    send_line(s, "250-SMTPUTF8");
    if (config->max_size > 0)
        send_line(s, "250 SIZE %llu", config->max_size);
    else
        send_line(s, "250 SIZE");
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
    if (s->in_transaction && !s->chunk_failed) {
        reply(s, 503, "5.5.1", "nested MAIL command");
        return CONTINUE;
    }
    reset_transaction(s);
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

/*
 * Rejects a recipient whose mailbox is full, or would be with the MAIL
 * SIZE= value (RFC 1870), before the client sends the data.  The check
 * runs as the mailbox's owner, and store_deliver() repeats it with the
 * size as stored.  Returns -1 after replying.
 */
static int
check_quota(struct session *s, const char *address,
            const struct mailbox *mailbox)
{
    struct store_reply result;
    char detail[sizeof(result.detail) * 2 + 3];

    if (store_check_quota(mailbox, s->mail.size, &result) == 0)
        return 0;
    log_quote(detail, sizeof(detail), result.detail);
    log_warning("to=<%s> mailbox=%s reply=%d status=%s detail=%s", address,
                mailbox->path, result.code, result.status, detail);
    /* Like an unknown user, not a command error for --max-errors. */
    reply_result(s, result.code, result.status, "<%s> %s", address,
                 result.text);
    return -1;
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
    if (s->chunking) {
        reply(s, 503, "5.5.1", "RCPT after BDAT");
        return CONTINUE;
    }
    if (command_parse_rcpt(argument, s->mail.smtputf8, &rcpt, &error) < 0) {
        reply(s, error.code, error.status, "%s", error.text);
        return CONTINUE;
    }
    if (s->recipient_count >= s->config->max_recipients) {
        reply_result(s, 452, "4.5.3", "<%s> too many recipients",
                     rcpt.forward_path);
        return CONTINUE;
    }
    if (users_lookup(s->config->map_path, rcpt.forward_path,
                     s->config->delimiters, &mailbox, &result) < 0 ||
        users_check_home(&mailbox, s->config->map_host, &result) < 0) {
        if (result.detail[0] != '\0') {
            char detail[sizeof(result.detail) * 2 + 3];

            log_quote(detail, sizeof(detail), result.detail);
            log_warning("to=<%s> reply=%d status=%s detail=%s",
                        rcpt.forward_path, result.code, result.status,
                        detail);
        }
        /* Unknown and misrouted recipients are not command errors, so
         * they do not count toward --max-errors and a large misrouted
         * batch gets no 421. */
        reply_result(s, result.code, result.status, "<%s> %s",
                     rcpt.forward_path, result.text);
        return CONTINUE;
    }
    if (check_quota(s, rcpt.forward_path, &mailbox) < 0)
        return CONTINUE;
    if (add_recipient(s, rcpt.forward_path, &mailbox) < 0) {
        log_error("to=<%s> out of memory", rcpt.forward_path);
        reply(s, 452, "4.3.1", "<%s> insufficient system resources",
              rcpt.forward_path);
        return CONTINUE;
    }
    reply(s, 250, "2.1.5", "<%s> recipient ok", rcpt.forward_path);
    return CONTINUE;
}

/* Returns the milliseconds elapsed since start, on the monotonic clock. */
unsigned long
elapsed_ms(const struct timespec *start)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return (unsigned long)((now.tv_sec - start->tv_sec) * 1000 +
                           (now.tv_nsec - start->tv_nsec) / 1000000);
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
          "commands: LHLO MAIL RCPT DATA BDAT RSET NOOP VRFY QUIT");
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
    [VERB_BDAT] = do_bdat,
    [VERB_RSET] = do_rset,
    [VERB_NOOP] = do_noop,
    [VERB_VRFY] = do_vrfy,
    [VERB_QUIT] = do_quit,
    [VERB_HELO] = do_helo,
    [VERB_EHLO] = do_helo,
    [VERB_HELP] = do_help,
};

/* Reads one command and replies.  Returns CLOSE when the session ends. */
static int
serve_command(struct session *s)
{
    const char *argument;
    size_t length;
    int status;

    /* Room for the line, its CR and a NUL: the CR is removed before
     * the length is compared with the maximum. */
    status = lineio_read_line(&s->io, s->line,
                              s->config->max_line_length + 2, &length);
    if (status == LINEIO_OK && length > s->config->max_line_length)
        status = LINEIO_TOO_LONG;
    switch (status) {
    case LINEIO_OK:
        break;
    case LINEIO_TOO_LONG:
        reply(s, 500, "5.5.2", "line too long");
        return CONTINUE;
    case LINEIO_TIMEOUT:
        if (s->io.deadline_passed) {
            log_warning("session longer than %u seconds",
                        s->config->session_timeout);
            reply(s, 421, "4.4.2", "%s session time limit reached, "
                  "closing connection", s->config->hostname);
            return CLOSE;
        }
        log_warning("timeout after %u seconds idle", s->config->timeout);
        reply(s, 421, "4.4.2", "%s timeout, closing connection",
              s->config->hostname);
        return CLOSE;
    case LINEIO_EOF:
        log_info("client closed the connection");
        return CLOSE;
    default:
        if (errno == EPIPE || errno == ECONNRESET)
            log_info("client closed the connection");
        else
            log_warning("%s failed: %s",
                        s->io.write_failed ? "write" : "read",
                        strerror(errno));
        return CLOSE;
    }

    if (log_verbose())
        trace_line("<", s->line, length);
    if (memchr(s->line, '\0', length) != NULL) {
        reply(s, 500, "5.5.2", "NUL byte in command");
        return CONTINUE;
    }
    return handlers[command_verb(s->line, &argument)](s, argument);
}

/* Writes to each page of memory, so that the kernel provides it now. */
static void
touch_pages(void *memory, size_t size)
{
    volatile char *bytes = memory;

    for (size_t i = 0; i < size; i += 4096)
        bytes[i] = 0;
    if (size > 0)
        bytes[size - 1] = 0;
}

/*
 * Creates and drops a spool file in dir, as DATA and BDAT will for a
 * message over the spool's buffer or for an mbox recipient, so that a
 * missing or read-only spool folder is found at start.  Returns 0, or
 * -1 with errno.
 */
int
session_check_spool(const char *dir)
{
    return spool_check_dir(dir);
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
    struct timespec start;
    struct session *s;
    int broken;

    s = calloc(1, sizeof(*s));
    if (s == NULL || (s->line = malloc(config->max_line_length + 2)) == NULL ||
        (s->spool_memory = malloc(sizeof(*s->spool_memory))) == NULL ||
        (s->draft_memory = malloc(sizeof(*s->draft_memory))) == NULL) {
        if (s != NULL) {
            free(s->spool_memory);
            free(s->line);
        }
        free(s);
        return -1;
    }
    /*
     * A byte of each page of the read buffer, the spool and the draft is
     * written now, so that every page the session will use is in memory
     * from its start.  The process then has the same size whatever the
     * size of the messages that follow, and its peak shows from the
     * greeting on.
     */
    touch_pages(s->io.input, sizeof(s->io.input));
    touch_pages(s->spool_memory, sizeof(*s->spool_memory));
    touch_pages(s->draft_memory, sizeof(*s->draft_memory));
    clock_gettime(CLOCK_MONOTONIC, &start);
    s->config = config;
    s->client = client;
    make_session_id(s->id, sizeof(s->id));
    log_set_session(s->id);
    log_info("connect from %s", client[0] != '\0' ? client : "local");

    lineio_init(&s->io, in_fd, out_fd, config->timeout);
    lineio_set_deadline(&s->io, config->session_timeout);
    send_line(s, "220 %s LMTP lmtpd ready", config->hostname);
    while (serve_command(s) == CONTINUE && !s->io.write_failed) {
        if (config->max_errors > 0 && s->errors >= config->max_errors) {
            log_warning("%u errors, closing the session", s->errors);
            reply(s, 421, "4.7.0", "%s too many errors, closing connection",
                  config->hostname);
            break;
        }
    }
    lineio_flush(&s->io);

    broken = s->io.write_failed;
    log_info("disconnect from %s: %u transactions, %lu recipients "
             "delivered, %lu failed, %lu ms%s",
             client[0] != '\0' ? client : "local", s->transactions,
             s->delivered, s->failed, elapsed_ms(&start),
             broken ? ", connection broken" : "");
    reset_transaction(s);
    free(s->draft_memory);
    free(s->spool_memory);
    free(s->line);
    free(s);
    log_set_session(NULL);
    return broken ? -1 : 0;
}
