/*
 * mapcheck.c: checks every record of a user map, compiled (cdb) or as the
 * text that "cdb -c -m" reads, and reports each record that a lookup
 * would reject or never find, for lmtpd --check-map.
 */
#include <cdb.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/store.h"

/* Buckets of the table of keys seen, for finding duplicates. */
#define SEEN_BUCKETS 16384

/* Size of a key quoted in a report line, cut with "..." beyond. */
#define QUOTED_SIZE 100

struct seen_key {
    struct seen_key *next;
    unsigned long line; /* line in the text file, or record number */
    size_t len;
    char key[];
};

struct map_check {
    const char *path;
    const char *this_host; /* --map-host name, or NULL */
    FILE *report;
    int is_text;
    struct seen_key *seen[SEEN_BUCKETS];
    struct mapcheck_result *result;
};

/* Writes text as a double-quoted string, control bytes as \xNN. */
static void
quote_key(char *out, size_t size, const char *text, size_t len)
{
    size_t used = 0;

    out[used++] = '"';
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)text[i];

        if (used + 4 + 5 > size) {
            memcpy(out + used, "...", 3);
            used += 3;
            break;
        }
        if (c < 0x20 || c == 0x7f || c == '"' || c == '\\')
            used += (size_t)snprintf(out + used, size - used, "\\x%02x", c);
        else
            out[used++] = (char)c;
    }
    out[used++] = '"';
    out[used] = '\0';
}

/* Writes one report line: where, the key, and the problem. */
static void
report(struct map_check *check, unsigned long line, const char *key,
       size_t key_len, const char *format, ...)
    __attribute__((format(printf, 5, 6)));

static void
report(struct map_check *check, unsigned long line, const char *key,
       size_t key_len, const char *format, ...)
{
    char quoted[QUOTED_SIZE];
    va_list ap;

    quote_key(quoted, sizeof(quoted), key, key_len);
    if (check->is_text)
        fprintf(check->report, "%s:%lu: key %s: ", check->path, line,
                quoted);
    else
        fprintf(check->report, "%s: key %s: ", check->path, quoted);
    va_start(ap, format);
    vfprintf(check->report, format, ap);
    va_end(ap);
    fputc('\n', check->report);
}

static unsigned long
hash_key(const char *key, size_t len)
{
    unsigned long hash = 5381;

    for (size_t i = 0; i < len; i++)
        hash = hash * 33 + (unsigned char)key[i];
    return hash % SEEN_BUCKETS;
}

/*
 * Remembers the key.  Returns the line or record number where it was
 * first seen, 0 when it is new, or -1 with errno when out of memory.
 */
static long
remember_key(struct map_check *check, const char *key, size_t len,
             unsigned long line)
{
    unsigned long bucket = hash_key(key, len);
    struct seen_key *entry;

    for (entry = check->seen[bucket]; entry != NULL; entry = entry->next) {
        if (entry->len == len && memcmp(entry->key, key, len) == 0)
            return (long)entry->line;
    }
    entry = malloc(sizeof(*entry) + len);
    if (entry == NULL)
        return -1;
    entry->line = line;
    entry->len = len;
    memcpy(entry->key, key, len);
    entry->next = check->seen[bucket];
    check->seen[bucket] = entry;
    return 0;
}

static void
forget_keys(struct map_check *check)
{
    for (size_t i = 0; i < SEEN_BUCKETS; i++) {
        while (check->seen[i] != NULL) {
            struct seen_key *next = check->seen[i]->next;

            free(check->seen[i]);
            check->seen[i] = next;
        }
    }
}

/*
 * Checks a key against what users_lookup() can find: the domain after
 * the last '@' is always folded to lower case before the lookup, so a
 * key with an upper-case domain is never matched.  Returns the problem,
 * or NULL.
 */
static const char *
key_problem(const char *key, size_t len)
{
    const char *at = NULL;

    if (len == 0)
        return "empty key";
    if (len >= sizeof(((struct mailbox *)0)->key))
        return "key too long, lookups never match it";
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)key[i];

        /* The session rejects addresses with control bytes. */
        if (c < 0x20 || c == 0x7f)
            return "control character in key, lookups never match it";
        if (c == '@')
            at = key + i;
    }
    if (at == key + len - 1)
        return "no domain after \"@\"";
    for (const char *c = at != NULL ? at : key + len; c < key + len; c++) {
        if (*c >= 'A' && *c <= 'Z')
            return "domain not in lower case, lookups never match it";
    }
    return NULL;
}

/* Reports a mailbox whose parent folder does not exist. */
static int
check_parent(struct map_check *check, unsigned long line, const char *key,
             size_t key_len, const struct mailbox *mb)
{
    char parent[sizeof(mb->path)];
    struct stat st;
    char *slash;
    size_t len;

    snprintf(parent, sizeof(parent), "%s", mb->path);
    len = strlen(parent);
    while (len > 1 && parent[len - 1] == '/')
        parent[--len] = '\0';
    slash = strrchr(parent, '/');
    if (slash == NULL)
        return 0;
    slash[slash == parent ? 1 : 0] = '\0';

    if (stat(parent, &st) < 0) {
        if (errno == ENOENT)
            report(check, line, key, key_len, "mailbox %s: parent folder "
                   "%s does not exist", mb->path, parent);
        else
            report(check, line, key, key_len, "mailbox %s: parent folder "
                   "%s: %s", mb->path, parent, strerror(errno));
        return -1;
    }
    if (!S_ISDIR(st.st_mode)) {
        report(check, line, key, key_len, "mailbox %s: parent %s is not a "
               "folder", mb->path, parent);
        return -1;
    }
    return 0;
}

/*
 * Returns whether the mailbox's host= field names a host other than
 * this_host, so that this host need not have the mailbox's folder.
 */
static int
is_on_other_host(const struct map_check *check, const struct mailbox *mb)
{
    struct store_reply reply;

    if (check->this_host == NULL)
        return 0;
    return users_check_home(mb, check->this_host, &reply) < 0;
}

/* Checks one record.  Returns 0 when valid, -1 after reporting it. */
static int
check_record(struct map_check *check, unsigned long line, const char *key,
             size_t key_len, const char *value, size_t value_len)
{
    const char *problem = key_problem(key, key_len);
    char error[256];
    struct mailbox mb;
    long first;
    int valid = 1;

    check->result->records++;
    if (problem != NULL) {
        report(check, line, key, key_len, "%s", problem);
        valid = 0;
    }
    first = remember_key(check, key, key_len, line);
    if (first > 0) {
        if (check->is_text)
            report(check, line, key, key_len, "duplicate of line %ld, "
                   "lookups use the first record only", first);
        else
            report(check, line, key, key_len, "duplicate of record %ld, "
                   "lookups use the first record only", first);
        valid = 0;
    }
    if (users_parse_record(value, value_len, &mb, error, sizeof(error)) < 0) {
        report(check, line, key, key_len, "%s", error);
        valid = 0;
    } else if (!is_on_other_host(check, &mb) &&
               check_parent(check, line, key, key_len, &mb) < 0) {
        valid = 0;
    }
    if (!valid)
        check->result->invalid++;
    return valid ? 0 : -1;
}

static void
report_summary(const struct map_check *check)
{
    const struct mapcheck_result *result = check->result;

    if (result->invalid == 0)
        fprintf(check->report, "%s: %lu records, all valid\n", check->path,
                result->records);
    else
        fprintf(check->report, "%s: %lu records, %lu invalid\n",
                check->path, result->records, result->invalid);
}

static struct map_check *
start_check(const char *path, const char *this_host, FILE *out, int is_text,
            struct mapcheck_result *result)
{
    struct map_check *check = calloc(1, sizeof(*check));

    if (check == NULL)
        return NULL;
    check->path = path;
    check->this_host = this_host;
    check->report = out;
    check->is_text = is_text;
    check->result = result;
    result->records = 0;
    result->invalid = 0;
    return check;
}

static void
end_check(struct map_check *check)
{
    forget_keys(check);
    free(check);
}

/*
 * Checks every record of a tinycdb map, in file order, and writes a line
 * to out for each problem and a summary line at the end.  Returns 0 when
 * the whole map was read (result->invalid counts the bad records), or -1
 * with errno when it cannot be read: EPROTO when it is not a cdb file.
 */
int
mapcheck_cdb(const char *path, const char *this_host, FILE *out,
             struct mapcheck_result *result)
{
    struct map_check *check;
    unsigned position;
    struct cdb cdb;
    int fd, found, saved;
    unsigned long number = 0;

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    check = start_check(path, this_host, out, 0, result);
    if (check == NULL || cdb_init(&cdb, fd) < 0) {
        saved = errno;
        free(check);
        close(fd);
        errno = saved;
        return -1;
    }

    cdb_seqinit(&position, &cdb);
    while ((found = cdb_seqnext(&position, &cdb)) > 0) {
        const char *key = cdb_getkey(&cdb);
        const char *value = cdb_getdata(&cdb);

        if (key == NULL || value == NULL) {
            found = -1;
            break;
        }
        check_record(check, ++number, key, cdb_keylen(&cdb), value,
                     cdb_datalen(&cdb));
    }
    saved = 0;
    if (found < 0)
        saved = errno != 0 ? errno : EPROTO;
    else
        report_summary(check);
    cdb_free(&cdb);
    close(fd);
    end_check(check);
    errno = saved;
    return found < 0 ? -1 : 0;
}

/*
 * Splits one line of the text map as "cdb -c -m" does: optional blanks,
 * the key up to the next blank, blanks, then the value to the end of
 * the line.  Returns 0 for a comment or an empty line.
 */
static int
split_line(char *line, size_t len, const char **key, size_t *key_len,
           const char **value, size_t *value_len)
{
    size_t start = 0;
    size_t end;

    if (len > 0 && line[len - 1] == '\n')
        len--;
    while (start < len && (line[start] == ' ' || line[start] == '\t'))
        start++;
    if (start == len || line[start] == '#')
        return 0;
    end = start;
    while (end < len && line[end] != ' ' && line[end] != '\t')
        end++;
    *key = line + start;
    *key_len = end - start;
    while (end < len && (line[end] == ' ' || line[end] == '\t'))
        end++;
    *value = line + end;
    *value_len = len - end;
    return 1;
}

/*
 * Checks every record of the text source of a map, the input of
 * "cdb -c -m", with the line number of each problem.  Returns as
 * mapcheck_cdb() does.
 */
int
mapcheck_text(const char *path, const char *this_host, FILE *out,
              struct mapcheck_result *result)
{
    struct map_check *check;
    unsigned long number = 0;
    char *line = NULL;
    size_t size = 0;
    ssize_t len;
    FILE *in;
    int saved;

    in = fopen(path, "re");
    if (in == NULL)
        return -1;
    check = start_check(path, this_host, out, 1, result);
    if (check == NULL) {
        fclose(in);
        errno = ENOMEM;
        return -1;
    }

    while ((len = getline(&line, &size, in)) >= 0) {
        const char *key, *value;
        size_t key_len, value_len;

        number++;
        if (split_line(line, (size_t)len, &key, &key_len, &value,
                       &value_len))
            check_record(check, number, key, key_len, value, value_len);
    }
    saved = ferror(in) ? errno : 0;
    if (saved == 0)
        report_summary(check);
    free(line);
    fclose(in);
    end_check(check);
    errno = saved;
    return saved != 0 ? -1 : 0;
}
