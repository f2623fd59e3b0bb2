/*
 * users.c: the user map, a tinycdb file built with "cdb -c -m" that maps
 * a recipient address to its mailbox and limits.  A map the operator got
 * wrong defers mail with 451 4.3.0, because a bounce cannot be undone.
 */
#include <cdb.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "store/store.h"

/* Maximum number of keys one lookup tries, see users_lookup(). */
#define CANDIDATES_MAX 5

/* Size of a value quoted in an error message, cut with "..." beyond. */
#define QUOTED_SIZE 72

struct field {
    const char *name;
    int (*parse)(struct mailbox *, const char *value, size_t len, char *why,
                 size_t why_size);
};

/* An address split for lookup.  The local part is base, delimiter, detail. */
struct address_parts {
    const char *local;
    size_t local_len;
    size_t base_len;    /* local_len when no delimiter occurs */
    const char *domain; /* NULL when the address has no '@' */
    size_t domain_len;
};

struct candidate {
    char key[sizeof((struct mailbox *)0)->key];
    int stripped; /* the key has the +detail removed */
};

static int
is_control(unsigned char c)
{
    return c < 0x20 || c == 0x7f;
}

/* Folds ASCII letters only: keys are bytes, not text in a locale. */
static char
fold_ascii(char c)
{
    if (c >= 'A' && c <= 'Z')
        return (char)(c - 'A' + 'a');
    return c;
}

/*
 * Writes text as a double-quoted string for a message.  Control bytes,
 * '"' and '\' become \xNN, and text that does not fit ends in "...".
 */
static void
quote_text(char *out, size_t size, const char *text, size_t len)
{
    size_t used = 0;
    size_t i;

    out[used++] = '"';
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)text[i];
        int plain = !is_control(c) && c != '"' && c != '\\';

        /* Keep room for this byte as \xNN, then "...", '"' and NUL. */
        if (used + 4 + 5 > size) {
            memcpy(out + used, "...", 3);
            used += 3;
            break;
        }
        if (plain)
            out[used++] = (char)c;
        else
            used += (size_t)snprintf(out + used, size - used, "\\x%02x", c);
    }
    out[used++] = '"';
    out[used] = '\0';
}

/* Parses decimal digits only: no sign, no space, not empty. */
static int
parse_decimal(const char *text, size_t len, unsigned long long *value)
{
    unsigned long long n = 0;
    size_t i;

    if (len == 0)
        return -1;
    for (i = 0; i < len; i++) {
        unsigned digit;

        if (text[i] < '0' || text[i] > '9')
            return -1;
        digit = (unsigned)(text[i] - '0');
        if (n > (ULLONG_MAX - digit) / 10)
            return -1;
        n = n * 10 + digit;
    }
    *value = n;
    return 0;
}

/* Returns the power of two that a size suffix stands for, or 0. */
static unsigned
suffix_shift(char suffix)
{
    switch (suffix) {
    case 'K':
    case 'k':
        return 10;
    case 'M':
    case 'm':
        return 20;
    case 'G':
    case 'g':
        return 30;
    default:
        return 0;
    }
}

/* Parses a byte count with an optional K, M or G suffix (1024 based). */
static int
parse_size(const char *text, size_t len, unsigned long long *value)
{
    unsigned long long n;
    unsigned shift = 0;

    if (len > 0)
        shift = suffix_shift(text[len - 1]);
    if (shift != 0)
        len--;

    if (parse_decimal(text, len, &n) == -1 || n > (ULLONG_MAX >> shift))
        return -1;
    *value = n << shift;
    return 0;
}

/*
 * Parses "123", "10K", "5M" or "1G" (suffixes in either case, multiples
 * of 1024).  Returns -1 for an empty, signed or overflowing number and
 * for anything after the suffix.
 */
int
users_parse_size(const char *text, unsigned long long *value)
{
    return parse_size(text, strlen(text), value);
}

/* Checks that no component of the path is "..". */
static int
has_dot_dot(const char *path, size_t len)
{
    size_t start = 0;
    size_t end;

    while (start < len) {
        end = start;
        while (end < len && path[end] != '/')
            end++;
        if (end - start == 2 && path[start] == '.' && path[start + 1] == '.')
            return 1;
        start = end + 1;
    }
    return 0;
}

static int
parse_mailbox(struct mailbox *mb, const char *value, size_t len, char *why,
              size_t why_size)
{
    char quoted[QUOTED_SIZE];
    size_t i;

    quote_text(quoted, sizeof quoted, value, len);
    for (i = 0; i < len; i++) {
        if (is_control((unsigned char)value[i])) {
            snprintf(why, why_size, "control character in %s", quoted);
            return -1;
        }
    }
    if (value[0] != '/') {
        snprintf(why, why_size, "not an absolute path %s", quoted);
        return -1;
    }
    if (has_dot_dot(value, len)) {
        snprintf(why, why_size, "\"..\" component in %s", quoted);
        return -1;
    }
    if (len >= sizeof mb->path) {
        snprintf(why, why_size, "path longer than %zu bytes",
                 sizeof mb->path - 1);
        return -1;
    }

    memcpy(mb->path, value, len);
    mb->path[len] = '\0';
    mb->is_maildir = value[len - 1] == '/';
    return 0;
}

static int
parse_quota(struct mailbox *mb, const char *value, size_t len, char *why,
            size_t why_size)
{
    char quoted[QUOTED_SIZE];

    if (parse_size(value, len, &mb->quota_bytes) == 0) {
        mb->has_quota = 1;
        return 0;
    }
    quote_text(quoted, sizeof quoted, value, len);
    snprintf(why, why_size, "invalid size %s", quoted);
    return -1;
}

static int
parse_messages(struct mailbox *mb, const char *value, size_t len, char *why,
               size_t why_size)
{
    char quoted[QUOTED_SIZE];

    if (parse_decimal(value, len, &mb->quota_messages) == 0)
        return 0;
    quote_text(quoted, sizeof quoted, value, len);
    snprintf(why, why_size, "invalid number %s", quoted);
    return -1;
}

/*
 * Parses a user or group id.  (uid_t)-1 is rejected because chown() and
 * setresuid() read it as "leave unchanged".
 */
static int
parse_id(const char *value, size_t len, unsigned *id, char *why,
         size_t why_size)
{
    char quoted[QUOTED_SIZE];
    unsigned long long n;

    if (parse_decimal(value, len, &n) == 0 && n < (uid_t)-1) {
        *id = (unsigned)n;
        return 0;
    }
    quote_text(quoted, sizeof quoted, value, len);
    snprintf(why, why_size, "invalid id %s", quoted);
    return -1;
}

static int
parse_uid(struct mailbox *mb, const char *value, size_t len, char *why,
          size_t why_size)
{
    unsigned id;

    if (parse_id(value, len, &id, why, why_size) == -1)
        return -1;
    mb->uid = (uid_t)id;
    mb->has_uid = 1;
    return 0;
}

static int
parse_gid(struct mailbox *mb, const char *value, size_t len, char *why,
          size_t why_size)
{
    unsigned id;

    if (parse_id(value, len, &id, why, why_size) == -1)
        return -1;
    mb->gid = (gid_t)id;
    mb->has_gid = 1;
    return 0;
}

static int
is_label_byte(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '-';
}

/*
 * Checks a host name: dot-separated labels of ASCII letters, digits and
 * hyphens that neither start nor end with a hyphen (RFC 952 as RFC 1123
 * section 2.1 relaxes it), 1 to 63 bytes each (RFC 1035 section 2.3.4),
 * at most USERS_HOST_NAME_MAX bytes in all.  An IPv4 address in dotted
 * form passes too.  A trailing dot is rejected, so that each host has one
 * spelling to compare.  Returns 1 when the name is valid, 0 otherwise.
 */
int
users_host_name_is_valid(const char *name, size_t len)
{
    size_t start = 0;
    size_t end;

    if (len == 0 || len > USERS_HOST_NAME_MAX)
        return 0;
    while (start <= len) {
        end = start;
        while (end < len && name[end] != '.') {
            if (!is_label_byte(name[end]))
                return 0;
            end++;
        }
        if (end == start || end - start > 63 || name[start] == '-' ||
            name[end - 1] == '-')
            return 0;
        start = end + 1;
    }
    return 1;
}

static int
parse_host(struct mailbox *mb, const char *value, size_t len, char *why,
           size_t why_size)
{
    char quoted[QUOTED_SIZE];

    if (users_host_name_is_valid(value, len)) {
        memcpy(mb->host, value, len);
        mb->host[len] = '\0';
        return 0;
    }
    quote_text(quoted, sizeof quoted, value, len);
    snprintf(why, why_size, "invalid host name %s", quoted);
    return -1;
}

static const struct field fields[] = {
    {"mailbox", parse_mailbox},   {"quota", parse_quota},
    {"messages", parse_messages}, {"uid", parse_uid},
    {"gid", parse_gid},           {"host", parse_host},
};

#define FIELD_COUNT (sizeof fields / sizeof fields[0])

/* Parses one "name=value" field.  Bit i of *seen marks fields[i] as seen. */
static int
parse_field(struct mailbox *mb, const char *text, size_t len, unsigned *seen,
            char *error, size_t error_size)
{
    const char *equals = memchr(text, '=', len);
    char quoted[QUOTED_SIZE];
    char why[160];
    size_t name_len, value_len, i;

    quote_text(quoted, sizeof quoted, text,
               equals ? (size_t)(equals - text) : len);
    if (equals == NULL) {
        snprintf(error, error_size, "field %s: expected name=value", quoted);
        return -1;
    }
    name_len = (size_t)(equals - text);

    for (i = 0; i < FIELD_COUNT; i++) {
        if (strlen(fields[i].name) == name_len &&
            memcmp(fields[i].name, text, name_len) == 0)
            break;
    }
    if (i == FIELD_COUNT) {
        snprintf(error, error_size, "unknown field %s", quoted);
        return -1;
    }
    if (*seen & (1u << i)) {
        snprintf(error, error_size, "field %s: duplicate", quoted);
        return -1;
    }
    *seen |= 1u << i;

    if (equals + 1 == text + len) {
        snprintf(error, error_size, "field %s: empty value", quoted);
        return -1;
    }
    value_len = len - name_len - 1;
    if (fields[i].parse(mb, equals + 1, value_len, why, sizeof why) == -1) {
        snprintf(error, error_size, "field %s: %s", quoted, why);
        return -1;
    }
    return 0;
}

/*
 * Parses a map value such as "mailbox=/var/mail/alice/ quota=1G": fields
 * separated by spaces or tabs, each at most once, "mailbox" required.
 * host= is optional, and mb->host is "" without it.
 * Fills mb (key and detail become "") and returns 0, or returns -1 with
 * a message naming the field in error and mb unchanged.
 */
int
users_parse_record(const char *value, size_t len, struct mailbox *mb,
                   char *error, size_t error_size)
{
    struct mailbox parsed;
    unsigned seen = 0;
    size_t start = 0;
    size_t end;

    memset(&parsed, 0, sizeof parsed);
    while (start < len) {
        if (value[start] == ' ' || value[start] == '\t') {
            start++;
            continue;
        }
        end = start;
        while (end < len && value[end] != ' ' && value[end] != '\t')
            end++;
        if (parse_field(&parsed, value + start, end - start, &seen, error,
                        error_size) == -1)
            return -1;
        start = end;
    }

    /* fields[0] is "mailbox". */
    if (!(seen & 1u)) {
        snprintf(error, error_size, "field \"mailbox\": missing");
        return -1;
    }
    *mb = parsed;
    return 0;
}

/* Compares two host names without regard to ASCII case (RFC 4343). */
static int
host_names_equal(const char *a, const char *b)
{
    while (*a != '\0' && fold_ascii(*a) == fold_ascii(*b)) {
        a++;
        b++;
    }
    return *a == *b;
}

/*
 * Checks that the mailbox lives on this host: its record has no host=
 * field, or one that names this_host.  Returns 0 then and leaves reply
 * alone.  Otherwise returns -1 with 450 4.4.0 "mailbox is on <host>", so
 * that the MTA keeps a message that its routing sent to the wrong host.
 */
int
users_check_home(const struct mailbox *mb, const char *this_host,
                 struct store_reply *reply)
{
    if (mb->host[0] == '\0' || host_names_equal(mb->host, this_host))
        return 0;

    store_reply_set(reply, STORE_OTHER_HOST,
                    "map key \"%s\" names host %s, not this host %s",
                    mb->key, mb->host, this_host);
    snprintf(reply->text, sizeof reply->text, "mailbox is on %s", mb->host);
    return -1;
}

/*
 * Splits the address at its last '@', because a quoted local part may
 * contain '@' and a domain cannot.  The base of the local part ends at
 * the first byte that occurs in delimiters.
 */
static int
split_address(const char *address, const char *delimiters,
              struct address_parts *parts)
{
    const char *at = strrchr(address, '@');
    size_t delimiter_count = delimiters ? strlen(delimiters) : 0;
    size_t i;

    parts->local = address;
    parts->local_len = at ? (size_t)(at - address) : strlen(address);
    parts->domain = at ? at + 1 : NULL;
    parts->domain_len = at ? strlen(at + 1) : 0;
    if (parts->local_len == 0 || (at != NULL && parts->domain_len == 0))
        return -1;

    parts->base_len = parts->local_len;
    for (i = 0; delimiter_count > 0 && i < parts->local_len; i++) {
        if (memchr(delimiters, address[i], delimiter_count) != NULL) {
            parts->base_len = i;
            break;
        }
    }
    return 0;
}

/* Adds local@domain, with the domain folded, unless already a candidate. */
static void
add_candidate(struct candidate *candidates, size_t *count,
              const struct address_parts *parts, size_t local_len,
              int fold_local, int stripped)
{
    struct candidate *added = &candidates[*count];
    size_t len = 0;
    size_t i;

    for (i = 0; i < local_len; i++)
        added->key[len++] =
            fold_local ? fold_ascii(parts->local[i]) : parts->local[i];
    if (parts->domain != NULL) {
        added->key[len++] = '@';
        for (i = 0; i < parts->domain_len; i++)
            added->key[len++] = fold_ascii(parts->domain[i]);
    }
    added->key[len] = '\0';
    added->stripped = stripped;

    for (i = 0; i < *count; i++) {
        if (strcmp(candidates[i].key, added->key) == 0)
            return;
    }
    (*count)++;
}

/*
 * Lists the keys to try, in order: the local part as given, then folded,
 * then without its +detail as given and folded, then the @domain
 * catch-all.  The caller has checked that the address fits in a key.
 */
static size_t
list_candidates(const struct address_parts *parts, struct candidate *list)
{
    size_t count = 0;

    add_candidate(list, &count, parts, parts->local_len, 0, 0);
    add_candidate(list, &count, parts, parts->local_len, 1, 0);
    if (parts->base_len > 0 && parts->base_len < parts->local_len) {
        add_candidate(list, &count, parts, parts->base_len, 0, 1);
        add_candidate(list, &count, parts, parts->base_len, 1, 1);
    }
    if (parts->domain != NULL)
        add_candidate(list, &count, parts, 0, 0, 0);
    return count;
}

/*
 * Finds the first candidate in the map.  Returns its index, -1 when none
 * is there, or -2 with the reply set when the map cannot be read.
 */
static int
find_candidate(struct cdb *cdb, const char *map_path,
               const struct candidate *list, size_t count,
               struct store_reply *reply)
{
    size_t i;
    int found;

    for (i = 0; i < count; i++) {
        found = cdb_find(cdb, list[i].key, (unsigned)strlen(list[i].key));
        if (found > 0)
            return (int)i;
        if (found < 0) {
            store_reply_set(reply, STORE_MAP_ERROR, "map %s key \"%s\": %s",
                            map_path, list[i].key, strerror(errno));
            return -2;
        }
    }
    return -1;
}

/* Parses the record that cdb_find() found and fills mb from it. */
static int
read_record(struct cdb *cdb, const char *map_path, const struct candidate *hit,
            const struct address_parts *parts, struct mailbox *mb,
            struct store_reply *reply)
{
    const char *value = cdb_getdata(cdb);
    unsigned len = cdb_datalen(cdb);
    char error[256];

    if (value == NULL) {
        store_reply_set(reply, STORE_MAP_ERROR, "map %s key \"%s\": %s",
                        map_path, hit->key, strerror(errno));
        return -1;
    }
    if (users_parse_record(value, len, mb, error, sizeof error) == -1) {
        store_reply_set(reply, STORE_MAP_ERROR, "map %s key \"%s\": %s",
                        map_path, hit->key, error);
        return -1;
    }

    snprintf(mb->key, sizeof mb->key, "%s", hit->key);
    mb->detail[0] = '\0';
    if (hit->stripped)
        snprintf(mb->detail, sizeof mb->detail, "%.*s",
                 (int)(parts->local_len - parts->base_len - 1),
                 parts->local + parts->base_len + 1);
    store_reply_set(reply, STORE_OK, "map key \"%s\"", hit->key);
    return 0;
}

/*
 * Looks up the mailbox of address, a forward-path without brackets or a
 * bare "postmaster".  The first key found wins, with the domain always in
 * lower case: the local part as given, then in lower case, then without
 * its detail as given and in lower case, then the "@domain" catch-all.
 * The detail starts after the first byte of the local part that occurs in
 * delimiters, and an empty delimiters string disables this step.
 * mb->detail is set only when the key without the detail matched.
 * Returns 0 when found.  Returns -1 with 550 5.1.1 when no key matches,
 * or with 451 4.3.0 when the map cannot be read or the record is
 * malformed, so that an operator's mistake defers mail.
 */
int
users_lookup(const char *map_path, const char *address, const char *delimiters,
             struct mailbox *mb, struct store_reply *reply)
{
    struct candidate list[CANDIDATES_MAX];
    struct address_parts parts;
    struct cdb cdb;
    int fd, hit;
    int result = -1;

    /* Both limits are far above RFC 5321's 64-byte local part. */
    if (strlen(address) >= sizeof list[0].key ||
        split_address(address, delimiters, &parts) == -1 ||
        parts.local_len - parts.base_len > sizeof mb->detail) {
        store_reply_set(reply, STORE_UNKNOWN_USER, "invalid address");
        return -1;
    }

    fd = open(map_path, O_RDONLY | O_CLOEXEC);
    if (fd == -1) {
        store_reply_set(reply, STORE_MAP_ERROR, "map %s: %s", map_path,
                        strerror(errno));
        return -1;
    }
    if (cdb_init(&cdb, fd) == -1) {
        store_reply_set(reply, STORE_MAP_ERROR, "map %s: %s", map_path,
                        strerror(errno));
        close(fd);
        return -1;
    }

    hit = find_candidate(&cdb, map_path, list, list_candidates(&parts, list),
                         reply);
    if (hit == -1)
        store_reply_set(reply, STORE_UNKNOWN_USER, "no key in map %s",
                        map_path);
    else if (hit >= 0)
        result = read_record(&cdb, map_path, &list[hit], &parts, mb, reply);

    cdb_free(&cdb);
    close(fd);
    return result;
}

/*
 * Opens the map as users_lookup() does, so that a map that is missing,
 * unreadable or not a cdb file is found at start.  Returns 0, or -1
 * with errno: EPROTO when the file is not a cdb map.
 */
int
users_check_map(const char *map_path)
{
    struct cdb cdb;
    int fd, saved;

    fd = open(map_path, O_RDONLY | O_CLOEXEC);
    if (fd == -1)
        return -1;
    if (cdb_init(&cdb, fd) == -1) {
        saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    cdb_free(&cdb);
    close(fd);
    return 0;
}
