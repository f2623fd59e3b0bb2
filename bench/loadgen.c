/*
 * loadgen.c: an LMTP load generator (RFC 2033) for benchmarks.  Each
 * connection sends MAIL, RCPT and DATA as one pipelined group (RFC 2920),
 * then the message, and checks every reply: only a 250 after the data
 * counts as a delivery.  With --bdat, and a server that announces
 * CHUNKING (RFC 3030), MAIL, RCPT, BDAT LAST and the message go as one
 * group instead.  Prints deliveries per second and the time from the end
 * of the data to the last reply.
 */
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

#include "bench/common.h"

/* Longest reply line read, and the most reply errors printed. */
#define REPLY_LINE_MAX 4096
#define ERRORS_PRINTED 5

struct options {
    const char *unix_path; /* or NULL for TCP */
    const char *host;
    const char *port;
    unsigned long connections; /* at once */
    unsigned long sequential;  /* connections each one makes in turn */
    unsigned long messages;    /* per connection */
    unsigned long recipients;  /* per message */
    unsigned long size;        /* message bytes before dot-stuffing */
    unsigned long timeout;     /* seconds a socket read or write may wait */
    pid_t server_parent;       /* report peak RSS of its children, or 0 */
    int bdat;                  /* send with BDAT where CHUNKING is offered */
};

/* The client side of one connection, with its reply buffer. */
struct connection {
    int fd;
    size_t start, end;
    char buffer[65536];
};

struct worker {
    const struct options *options;
    unsigned index;
    const char *wire; /* the message dot-stuffed, with the final dot */
    size_t wire_len;
    const char *message; /* the message as BDAT sends it */
    size_t message_len;
    double *latencies;
    size_t latency_count;
    unsigned long delivered;
    unsigned long failed;
    unsigned long sent_with_data; /* messages sent with DATA */
    unsigned long sent_with_bdat; /* messages sent with BDAT */
    unsigned errors_printed;
    long peak_rss_kib; /* -1 when not measured or not found */
    struct connection connection;
};

static void
usage(FILE *out)
{
    fprintf(out,
        "usage: loadgen [options] (-u PATH | -t HOST:PORT)\n"
        "Delivers generated messages over LMTP with pipelining, checks\n"
        "every reply, and prints deliveries per second and latencies.\n"
        "\n"
        "  -u, --unix PATH         connect to the unix socket PATH\n"
        "  -t, --tcp HOST:PORT     connect over TCP\n"
        "  -c, --connections N     connections at once (default 1)\n"
        "  -k, --sequential N      connections each of them makes one\n"
        "                          after another (default 1)\n"
        "  -n, --messages N        messages per connection (default 1)\n"
        "  -r, --recipients N      recipients per message (default 1):\n"
        "                          connection C sends to userI@bench.example\n"
        "                          for I from C*N to C*N+N-1\n"
        "  -s, --size BYTES        message size before dot-stuffing, with\n"
        "                          K or M suffix (default 4K)\n"
        "  -T, --timeout SECONDS   limit on one socket read or write\n"
        "                          (default 60)\n"
        "  -P, --server-parent PID before each QUIT, read the peak RSS\n"
        "                          (VmHWM) of PID's child processes, which\n"
        "                          serve the connections, and print the\n"
        "                          largest\n"
        "  -b, --bdat              if the server announces CHUNKING, send\n"
        "                          each message as MAIL, the RCPTs, BDAT\n"
        "                          SIZE LAST and the message as it is, in\n"
        "                          one write; else say so and use DATA\n"
        "  -h, --help              show this help and exit\n");
}

/* Reports a failed reply or socket call, the first few times only. */
static void
report(struct worker *w, const char *format, ...)
    __attribute__((format(printf, 2, 3)));

static void
report(struct worker *w, const char *format, ...)
{
    va_list ap;

    if (w->errors_printed++ >= ERRORS_PRINTED)
        return;
    fprintf(stderr, "loadgen: connection %u: ", w->index);
    va_start(ap, format);
    vfprintf(stderr, format, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static int
connect_unix(const char *path)
{
    struct sockaddr_un address = {.sun_family = AF_UNIX};
    int fd;

    if (strlen(path) >= sizeof address.sun_path) {
        errno = ENAMETOOLONG;
        return -1;
    }
    strcpy(address.sun_path, path);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0 &&
        connect(fd, (struct sockaddr *)&address, sizeof address) == -1) {
        close(fd);
        return -1;
    }
    return fd;
}

static int
connect_tcp(const char *host, const char *port)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *list, *ai;
    int fd = -1;

    if (getaddrinfo(host, port, &hints, &list) != 0) {
        errno = EHOSTUNREACH;
        return -1;
    }
    for (ai = list; ai != NULL && fd == -1; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
                    ai->ai_protocol);
        if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) == -1) {
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(list);
    return fd;
}

/* Connects, with the timeout set on reads and writes. */
static int
open_connection(const struct options *o, struct connection *c)
{
    struct timeval limit = {.tv_sec = (time_t)o->timeout};

    c->start = c->end = 0;
    c->fd = o->unix_path != NULL ? connect_unix(o->unix_path)
                                 : connect_tcp(o->host, o->port);
    if (c->fd == -1)
        return -1;
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
    setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof limit);
    return 0;
}

/* Reads one line without its CRLF into line.  Returns -1 at EOF. */
static int
read_line(struct connection *c, char *line, size_t size)
{
    size_t len = 0;

    for (;;) {
        while (c->start < c->end) {
            char ch = c->buffer[c->start++];

            if (ch == '\n') {
                if (len > 0 && line[len - 1] == '\r')
                    len--;
                line[len] = '\0';
                return 0;
            }
            if (len + 1 < size)
                line[len++] = ch;
        }
        ssize_t n = read(c->fd, c->buffer, sizeof c->buffer);

        if (n == -1 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (n == 0)
                errno = ECONNRESET;
            return -1;
        }
        c->start = 0;
        c->end = (size_t)n;
    }
}

/*
 * Reads one reply, multi-line or not, and returns its code, or -1 when
 * the connection ended or the reply is malformed.  line keeps the last
 * line for error messages.  When chunking is not NULL, it is set to 1 if
 * a line of the reply names the CHUNKING extension.
 */
static int
read_reply(struct connection *c, char *line, size_t size, int *chunking)
{
    for (;;) {
        if (read_line(c, line, size) == -1) {
            snprintf(line, size, "no reply: %s", strerror(errno));
            return -1;
        }
        if (strlen(line) < 3 || line[0] < '2' || line[0] > '5' ||
            line[1] < '0' || line[1] > '9' || line[2] < '0' ||
            line[2] > '9' || (line[3] != '\0' && line[3] != ' ' &&
                              line[3] != '-'))
            return -1;
        if (chunking != NULL && line[3] != '\0' &&
            strncasecmp(line + 4, "CHUNKING", 8) == 0 &&
            (line[12] == '\0' || line[12] == ' '))
            *chunking = 1;
        if (line[3] != '-')
            return atoi(line);
    }
}

/*
 * Reads a reply and returns 0 if its code is expected, else -1.
 * chunking is as for read_reply.
 */
static int
expect_reply_extensions(struct worker *w, struct connection *c,
                        int expected, const char *after, int *chunking)
{
    char line[REPLY_LINE_MAX];
    int code = read_reply(c, line, sizeof line, chunking);

    if (code == expected)
        return 0;
    report(w, "after %s, expected %d, got \"%s\"", after, expected, line);
    return -1;
}

static int
expect_reply(struct worker *w, struct connection *c, int expected,
             const char *after)
{
    return expect_reply_extensions(w, c, expected, after, NULL);
}

/* Writes all of the buffers, going on after short writes and EINTR. */
static int
writev_all(int fd, struct iovec *iov, int count)
{
    while (count > 0) {
        ssize_t written = writev(fd, iov, count);

        if (written == -1 && errno == EINTR)
            continue;
        if (written <= 0)
            return -1;
        while (count > 0 && (size_t)written >= iov->iov_len) {
            written -= (ssize_t)iov->iov_len;
            iov++;
            count--;
        }
        if (count > 0) {
            iov->iov_base = (char *)iov->iov_base + written;
            iov->iov_len -= (size_t)written;
        }
    }
    return 0;
}

/*
 * Builds MAIL, the RCPTs and data_command ("DATA\r\n" or "BDAT ...
 * LAST\r\n") as one pipelined group of commands.  Returns its length,
 * or 0 when it does not fit.
 */
static size_t
format_commands(const struct worker *w, const char *data_command, char *out,
                size_t size)
{
    unsigned long r = w->options->recipients;
    size_t len = (size_t)snprintf(out, size,
                                  "MAIL FROM:<sender@client.example>\r\n");

    for (unsigned long i = 0; i < r && len < size; i++)
        len += (size_t)snprintf(out + len, size - len,
                                "RCPT TO:<user%lu@bench.example>\r\n",
                                w->index * r + i);
    if (len < size)
        len += (size_t)snprintf(out + len, size - len, "%s", data_command);
    return len < size ? len : 0;
}

/*
 * Sends one message and reads its replies: one for MAIL, one per RCPT,
 * 354 for DATA and then one per recipient.  Returns -1 when the session
 * cannot go on; failed deliveries are counted in the worker.
 */
static int
send_message(struct worker *w, struct connection *c, char *commands,
             size_t commands_len)
{
    unsigned long recipients = w->options->recipients;
    double start;

    if (bench_write_all(c->fd, commands, commands_len) == -1) {
        report(w, "write of MAIL, RCPT and DATA failed: %s", strerror(errno));
        return -1;
    }
    if (expect_reply(w, c, 250, "MAIL") == -1)
        return -1;
    for (unsigned long i = 0; i < recipients; i++)
        if (expect_reply(w, c, 250, "RCPT") == -1)
            return -1;
    if (expect_reply(w, c, 354, "DATA") == -1)
        return -1;

    if (bench_write_all(c->fd, w->wire, w->wire_len) == -1) {
        report(w, "write of the message failed: %s", strerror(errno));
        return -1;
    }
    start = bench_now();
    w->sent_with_data++;
    for (unsigned long i = 0; i < recipients; i++) {
        if (expect_reply(w, c, 250, "the final dot") == -1)
            return -1;
        w->delivered++;
    }
    w->latencies[w->latency_count++] = bench_now() - start;
    return 0;
}

/*
 * Sends one message as MAIL, the RCPTs, BDAT LAST and the message in one
 * write, and reads its replies: one for MAIL, one per RCPT, then one per
 * recipient for BDAT LAST (RFC 2033 section 4.3).  Returns -1 when the
 * session cannot go on; failed deliveries are counted in the worker.
 */
static int
send_message_bdat(struct worker *w, struct connection *c, char *commands,
                  size_t commands_len)
{
    unsigned long recipients = w->options->recipients;
    struct iovec iov[2] = {
        {.iov_base = commands, .iov_len = commands_len},
        {.iov_base = (char *)w->message, .iov_len = w->message_len},
    };
    double start;

    if (writev_all(c->fd, iov, 2) == -1) {
        report(w, "write of MAIL, RCPT, BDAT and the message failed: %s",
               strerror(errno));
        return -1;
    }
    start = bench_now();
    w->sent_with_bdat++;
    if (expect_reply(w, c, 250, "MAIL") == -1)
        return -1;
    for (unsigned long i = 0; i < recipients; i++)
        if (expect_reply(w, c, 250, "RCPT") == -1)
            return -1;
    for (unsigned long i = 0; i < recipients; i++) {
        if (expect_reply(w, c, 250, "BDAT LAST") == -1)
            return -1;
        w->delivered++;
    }
    w->latencies[w->latency_count++] = bench_now() - start;
    return 0;
}

/* Prints that the server lacks CHUNKING, once for all connections. */
static void
say_no_chunking(void)
{
    fprintf(stderr, "loadgen: the server does not announce CHUNKING: "
            "sending the messages with DATA instead of BDAT\n");
}

/* Returns the largest VmHWM in KiB among the children of parent, or -1. */
static long
children_peak_rss(pid_t parent)
{
    char path[64], line[256];
    long largest = -1;
    FILE *children, *status;
    long child;

    snprintf(path, sizeof path, "/proc/%ld/task/%ld/children", (long)parent,
             (long)parent);
    children = fopen(path, "r");
    if (children == NULL)
        return -1;
    while (fscanf(children, "%ld", &child) == 1) {
        snprintf(path, sizeof path, "/proc/%ld/status", child);
        status = fopen(path, "r");
        if (status == NULL)
            continue;
        while (fgets(line, sizeof line, status) != NULL) {
            long kib;

            if (sscanf(line, "VmHWM: %ld kB", &kib) == 1 && kib > largest)
                largest = kib;
        }
        fclose(status);
    }
    fclose(children);
    return largest;
}

/*
 * Serves one connection: greeting, LHLO, the messages, QUIT.  The
 * messages go with BDAT when --bdat was given and the server announces
 * CHUNKING, else with DATA.
 */
static int
run_session(struct worker *w, char *data_commands, size_t data_len,
            char *bdat_commands, size_t bdat_len)
{
    static pthread_once_t no_chunking_reported = PTHREAD_ONCE_INIT;
    const struct options *o = w->options;
    struct connection *c = &w->connection;
    unsigned long delivered_before = w->delivered;
    int chunking = 0, result = -1;

    if (open_connection(o, c) == -1) {
        report(w, "connect failed: %s", strerror(errno));
        goto done;
    }
    if (expect_reply(w, c, 220, "connect") == -1 ||
        bench_write_all(c->fd, "LHLO client.example\r\n", 21) == -1 ||
        expect_reply_extensions(w, c, 250, "LHLO", &chunking) == -1)
        goto done;
    if (o->bdat && !chunking)
        pthread_once(&no_chunking_reported, say_no_chunking);
    for (unsigned long i = 0; i < o->messages; i++) {
        int sent = o->bdat && chunking
                       ? send_message_bdat(w, c, bdat_commands, bdat_len)
                       : send_message(w, c, data_commands, data_len);

        if (sent == -1)
            goto done;
    }
    if (o->server_parent > 0) {
        long rss = children_peak_rss(o->server_parent);

        if (rss > w->peak_rss_kib)
            w->peak_rss_kib = rss;
    }
    if (bench_write_all(c->fd, "QUIT\r\n", 6) == 0 &&
        expect_reply(w, c, 221, "QUIT") == 0)
        result = 0;

done:
    /* Every delivery that no 250 confirmed is a failure. */
    w->failed += o->messages * o->recipients - (w->delivered -
                                                delivered_before);
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    return result;
}

static void *
run_worker(void *argument)
{
    struct worker *w = argument;
    char data[65536], bdat[65536], bdat_command[64];
    size_t data_len, bdat_len;

    snprintf(bdat_command, sizeof bdat_command, "BDAT %zu LAST\r\n",
             w->message_len);
    data_len = format_commands(w, "DATA\r\n", data, sizeof data);
    bdat_len = format_commands(w, bdat_command, bdat, sizeof bdat);
    for (unsigned long i = 0; i < w->options->sequential; i++) {
        if (data_len == 0 || bdat_len == 0) {
            w->failed += w->options->messages * w->options->recipients;
            continue;
        }
        run_session(w, data, data_len, bdat, bdat_len);
    }
    return NULL;
}

/* Returns the message as DATA sends it: dot-stuffed, with the final dot. */
static char *
make_wire(const char *message, size_t size, size_t *wire_len)
{
    size_t dots = message[0] == '.';
    char *wire, *out;

    for (size_t i = 1; i < size; i++)
        dots += message[i] == '.' && message[i - 1] == '\n';
    wire = malloc(size + dots + 4);
    if (wire == NULL) {
        fprintf(stderr, "loadgen: out of memory for the message\n");
        exit(1);
    }
    out = wire;
    for (size_t i = 0; i < size; i++) {
        if (message[i] == '.' && (i == 0 || message[i - 1] == '\n'))
            *out++ = '.';
        *out++ = message[i];
    }
    memcpy(out, ".\r\n", 3);
    *wire_len = (size_t)(out - wire) + 3;
    return wire;
}

/* Splits HOST:PORT, or [HOST]:PORT for IPv6, in place. */
static void
split_host_port(char *text, struct options *o)
{
    char *colon = strrchr(text, ':');

    if (colon == NULL || colon[1] == '\0') {
        fprintf(stderr, "loadgen: invalid address \"%s\": expected "
                "HOST:PORT\n", text);
        exit(2);
    }
    *colon = '\0';
    o->port = colon + 1;
    o->host = text;
    if (text[0] == '[' && colon[-1] == ']') {
        colon[-1] = '\0';
        o->host = text + 1;
    }
}

static void
parse_options(int argc, char **argv, struct options *o)
{
    static const struct option options[] = {
        {"unix", required_argument, NULL, 'u'},
        {"tcp", required_argument, NULL, 't'},
        {"connections", required_argument, NULL, 'c'},
        {"sequential", required_argument, NULL, 'k'},
        {"messages", required_argument, NULL, 'n'},
        {"recipients", required_argument, NULL, 'r'},
        {"size", required_argument, NULL, 's'},
        {"timeout", required_argument, NULL, 'T'},
        {"server-parent", required_argument, NULL, 'P'},
        {"bdat", no_argument, NULL, 'b'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;

    while ((c = getopt_long(argc, argv, "u:t:c:k:n:r:s:T:P:bh", options,
                            NULL)) != -1) {
        switch (c) {
        case 'u':
            o->unix_path = optarg;
            break;
        case 't':
            split_host_port(optarg, o);
            break;
        case 'c':
            o->connections = bench_parse_number("--connections", optarg, 1,
                                                BENCH_MAX_CONNECTIONS);
            break;
        case 'k':
            o->sequential = bench_parse_number("--sequential", optarg, 1,
                                               1000000);
            break;
        case 'n':
            o->messages = bench_parse_number("--messages", optarg, 1,
                                             10000000);
            break;
        case 'r':
            o->recipients = bench_parse_number("--recipients", optarg, 1,
                                               1000);
            break;
        case 's':
            o->size = bench_parse_size("--size", optarg);
            break;
        case 'T':
            o->timeout = bench_parse_number("--timeout", optarg, 1, 86400);
            break;
        case 'P':
            o->server_parent = (pid_t)bench_parse_number(
                "--server-parent", optarg, 1, 4194304);
            break;
        case 'b':
            o->bdat = 1;
            break;
        case 'h':
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            exit(2);
        }
    }
    if (optind != argc || (o->unix_path == NULL) == (o->host == NULL)) {
        fprintf(stderr, "loadgen: give either --unix or --tcp\n");
        usage(stderr);
        exit(2);
    }
}

/*
 * Starts the workers, waits for them and prints the summary line, then
 * how many messages went with DATA and with BDAT.
 */
static int
run_workers(struct worker *workers, unsigned count, pid_t server_parent)
{
    static pthread_t threads[BENCH_MAX_CONNECTIONS];
    struct bench_result result = {0};
    unsigned long sent_with_data = 0, sent_with_bdat = 0;
    long peak_rss_kib = -1;
    double start = bench_now();
    unsigned i;

    for (i = 0; i < count; i++)
        if (pthread_create(&threads[i], NULL, run_worker, &workers[i]) != 0)
            break;
    for (unsigned j = i; j < count; j++)
        workers[j].failed = workers[j].options->sequential *
                            workers[j].options->messages *
                            workers[j].options->recipients;
    count = i;
    for (i = 0; i < count; i++)
        pthread_join(threads[i], NULL);
    result.seconds = bench_now() - start;

    for (i = 0; i < count; i++) {
        result.delivered += workers[i].delivered;
        result.failed += workers[i].failed;
        sent_with_data += workers[i].sent_with_data;
        sent_with_bdat += workers[i].sent_with_bdat;
        bench_add_latencies(&result, workers[i].latencies,
                            workers[i].latency_count);
        if (workers[i].peak_rss_kib > peak_rss_kib)
            peak_rss_kib = workers[i].peak_rss_kib;
    }
    bench_print_result(&result);
    printf("sent_with_data=%lu sent_with_bdat=%lu\n", sent_with_data,
           sent_with_bdat);
    if (server_parent > 0) {
        printf("server_peak_rss_kib=%ld\n", peak_rss_kib);
        if (peak_rss_kib < 0)
            fprintf(stderr, "loadgen: no child of process %ld found\n",
                    (long)server_parent);
    }
    return result.failed == 0 && (server_parent == 0 || peak_rss_kib >= 0)
               ? 0
               : 1;
}

int
main(int argc, char **argv)
{
    static struct worker workers[BENCH_MAX_CONNECTIONS];
    struct options o = {
        .connections = 1, .sequential = 1, .messages = 1, .recipients = 1,
        .size = 4096, .timeout = 60,
    };
    char *message;
    const char *wire;
    size_t wire_len;

    parse_options(argc, argv, &o);
    /* A server that closes the connection makes a write fail, which is
     * reported and counted, rather than end the process. */
    signal(SIGPIPE, SIG_IGN);
    message = bench_make_message(o.size, "\r\n");
    wire = make_wire(message, o.size, &wire_len);

    for (unsigned i = 0; i < o.connections; i++) {
        size_t count = o.sequential * o.messages;

        workers[i] = (struct worker){
            .options = &o, .index = i, .wire = wire, .wire_len = wire_len,
            .message = message, .message_len = o.size,
            .latencies = bench_alloc_latencies(count), .peak_rss_kib = -1,
            .connection = {.fd = -1},
        };
    }
    return run_workers(workers, (unsigned)o.connections, o.server_parent);
}
