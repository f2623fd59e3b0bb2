/*
 * path.c: parses "<local@domain>" as RFC 5321 section 4.1.2 defines it.
 * Source routes are read and dropped (section 4.1.1.3 says to ignore
 * them), and the address is returned as local part "@" domain.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "session/path.h"

struct parser {
    const char *p;
    int flags;
    int utf8_seen;
    const char *error;
};

/* Returns the length of one well-formed UTF-8 sequence at p, or 0. */
static size_t
utf8_length(const unsigned char *p)
{
    size_t len;
    unsigned int c = p[0];

    if (c >= 0xC2 && c <= 0xDF)
        len = 2;
    else if (c >= 0xE0 && c <= 0xEF)
        len = 3;
    else if (c >= 0xF0 && c <= 0xF4)
        len = 4;
    else
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xC0) != 0x80)
            return 0;
    }
    /* Overlong forms, surrogates and code points past U+10FFFF. */
    if ((c == 0xE0 && p[1] < 0xA0) || (c == 0xED && p[1] > 0x9F) ||
        (c == 0xF0 && p[1] < 0x90) || (c == 0xF4 && p[1] > 0x8F))
        return 0;
    return len;
}

/* Skips one non-ASCII character if it is valid UTF-8; 0 if none was. */
static int
skip_utf8(struct parser *ps)
{
    size_t len = utf8_length((const unsigned char *)ps->p);

    if (len == 0)
        return 0;
    ps->utf8_seen = 1;
    ps->p += len;
    return 1;
}

static int
is_atext(int c)
{
    return isalnum(c) || (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c));
}

static int
parse_dot_string(struct parser *ps)
{
    for (;;) {
        const char *atom = ps->p;

        for (;;) {
            unsigned char c = (unsigned char)*ps->p;

            if (is_atext(c))
                ps->p++;
            else if (c < 0x80 || !skip_utf8(ps))
                break;
        }
        if (ps->p == atom) {
            ps->error = "invalid local part";
            return -1;
        }
        if (*ps->p != '.')
            return 0;
        ps->p++;
    }
}

static int
parse_quoted_string(struct parser *ps)
{
    ps->p++;
    for (;;) {
        unsigned char c = (unsigned char)*ps->p;

        if (c == '"') {
            ps->p++;
            return 0;
        }
        if (c == '\\' && ps->p[1] >= 32 && ps->p[1] <= 126) {
            ps->p += 2;
        } else if (c >= 32 && c <= 126 && c != '\\') {
            ps->p++;
        } else if (c < 0x80 || !skip_utf8(ps)) {
            ps->error = "invalid quoted local part";
            return -1;
        }
    }
}

/* sub-domain = Let-dig [Ldh-str], or a U-label under SMTPUTF8. */
static int
parse_domain(struct parser *ps)
{
    for (;;) {
        const char *label = ps->p;
        char last = '\0';

        for (;;) {
            unsigned char c = (unsigned char)*ps->p;

            if (isalnum(c) || c == '-') {
                last = (char)c;
                ps->p++;
            } else if (c >= 0x80 && skip_utf8(ps)) {
                last = 'x';
            } else {
                break;
            }
        }
        if (ps->p == label || *label == '-' || last == '-') {
            ps->error = "invalid domain";
            return -1;
        }
        if (*ps->p != '.')
            return 0;
        ps->p++;
    }
}

/* address-literal: IPv4, "IPv6:" and a General-address-literal. */
static int
parse_address_literal(struct parser *ps)
{
    const char *close = strchr(ps->p, ']');
    char literal[PATH_MAX_LENGTH];
    unsigned char binary[16];
    size_t len;

    if (close == NULL || (len = (size_t)(close - ps->p - 1)) == 0 ||
        len >= sizeof(literal)) {
        ps->error = "invalid address literal";
        return -1;
    }
    memcpy(literal, ps->p + 1, len);
    literal[len] = '\0';
    ps->p = close + 1;

    if (strncasecmp(literal, "IPv6:", 5) == 0 &&
        inet_pton(AF_INET6, literal + 5, binary) == 1)
        return 0;
    if (inet_pton(AF_INET, literal, binary) == 1)
        return 0;

    /* General-address-literal = Standardized-tag ":" 1*dcontent */
    const char *colon = strchr(literal, ':');
    if (colon != NULL && colon > literal && colon[1] != '\0' &&
        strncasecmp(literal, "IPv6:", 5) != 0) {
        const char *c;

        for (c = literal; c < colon; c++) {
            if (!isalnum((unsigned char)*c) && *c != '-')
                break;
        }
        for (c = c == colon ? colon + 1 : c; *c != '\0'; c++) {
            if (*c < 33 || *c > 126 || *c == '[' || *c == '\\')
                break;
        }
        if (*c == '\0')
            return 0;
    }
    ps->error = "invalid address literal";
    return -1;
}

/* A-d-l = At-domain *( "," At-domain ) ":" */
static int
skip_source_route(struct parser *ps)
{
    if (*ps->p != '@')
        return 0;
    for (;;) {
        ps->p++;
        if (parse_domain(ps) < 0) {
            ps->error = "invalid source route";
            return -1;
        }
        if (*ps->p == ':') {
            ps->p++;
            return 0;
        }
        if (*ps->p != ',' || ps->p[1] != '@') {
            ps->error = "invalid source route";
            return -1;
        }
        ps->p++;
    }
}

static int
parse_mailbox(struct parser *ps)
{
    const char *local = ps->p;

    if (*ps->p == '"' ? parse_quoted_string(ps) < 0
                      : parse_dot_string(ps) < 0)
        return -1;
    if (ps->p - local > 64) {
        ps->error = "local part longer than 64 octets";
        return -1;
    }
    if (*ps->p != '@') {
        ps->error = *ps->p == '>' || *ps->p == '\0'
                        ? "missing domain"
                        : "invalid character in local part";
        return -1;
    }
    ps->p++;
    if (*ps->p == '[')
        return parse_address_literal(ps);
    return parse_domain(ps);
}

/*
 * Parses the path at text, which must start with '<', into address
 * (local@domain, "" for the null path).  On success *consumed is the
 * length of the path in text, through its '>'.
 */
int
path_parse(const char *text, int flags, char *address, size_t size,
           size_t *consumed, const char **error)
{
    struct parser ps = {.p = text, .flags = flags};
    const char *start;
    size_t len;

    *error = NULL;
    if (*ps.p != '<') {
        *error = "path must be enclosed in <>";
        return PATH_INVALID;
    }
    ps.p++;

    if (*ps.p == '>' && (flags & PATH_ALLOW_NULL)) {
        address[0] = '\0';
        *consumed = 2;
        return PATH_OK;
    }
    if ((flags & PATH_ALLOW_POSTMASTER) &&
        strncasecmp(ps.p, "postmaster>", 11) == 0) {
        start = ps.p;
        ps.p += 10;
    } else {
        if (skip_source_route(&ps) < 0)
            goto invalid;
        start = ps.p;
        if (parse_mailbox(&ps) < 0)
            goto invalid;
    }

    if (*ps.p != '>') {
        ps.error = "invalid character in path";
        goto invalid;
    }
    len = (size_t)(ps.p - start);
    if (len + 2 > PATH_MAX_LENGTH || len >= size) {
        ps.error = "path longer than 256 octets";
        goto invalid;
    }
    if (ps.utf8_seen && !(flags & PATH_ALLOW_UTF8)) {
        *error = "non-ASCII address requires SMTPUTF8";
        return PATH_NEEDS_UTF8;
    }
    memcpy(address, start, len);
    address[len] = '\0';
    *consumed = (size_t)(ps.p + 1 - text);
    return PATH_OK;

invalid:
    *error = ps.error != NULL ? ps.error : "invalid path";
    return PATH_INVALID;
}
