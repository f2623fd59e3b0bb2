/*
 * command.c: the command grammar of RFC 5321 section 4.1 as LMTP uses
 * it.  Verbs are case-insensitive.  MAIL and RCPT take a path and then
 * space-separated esmtp-keyword[=esmtp-value] parameters.
 */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "session/command.h"

static const struct {
    const char *name;
    enum command_verb verb;
} verbs[] = {
    {"LHLO", VERB_LHLO}, {"MAIL", VERB_MAIL}, {"RCPT", VERB_RCPT},
    {"DATA", VERB_DATA}, {"BDAT", VERB_BDAT}, {"RSET", VERB_RSET},
    {"NOOP", VERB_NOOP},
    {"VRFY", VERB_VRFY}, {"QUIT", VERB_QUIT}, {"HELO", VERB_HELO},
    {"EHLO", VERB_EHLO}, {"HELP", VERB_HELP},
};

/*
 * Returns the verb of line and points *argument at what follows the
 * space after it ("" when nothing does).  A verb must be followed by a
 * space or the end of the line.
 */
enum command_verb
command_verb(const char *line, const char **argument)
{
    for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++) {
        if (strncasecmp(line, verbs[i].name, 4) != 0)
            continue;
        if (line[4] == '\0') {
            *argument = line + 4;
            return verbs[i].verb;
        }
        if (line[4] == ' ') {
            *argument = line + 5;
            return verbs[i].verb;
        }
    }
    *argument = line;
    return VERB_UNKNOWN;
}

static int
fail(struct command_error *error, int code, const char *status,
     const char *text)
{
    error->code = code;
    error->status = status;
    error->text = text;
    return -1;
}

/*
 * Matches "FROM:" or "TO:" case-insensitively and parses the path after
 * it.  One space before the path is tolerated, as most servers do.
 */
static const char *
parse_path_argument(const char *argument, const char *prefix, int flags,
                    char *address, size_t size, const char *status,
                    struct command_error *error)
{
    size_t prefix_len = strlen(prefix);
    const char *reason;
    size_t consumed;
    int result;

    if (strncasecmp(argument, prefix, prefix_len) != 0) {
        fail(error, 501, "5.5.4", "syntax error");
        return NULL;
    }
    argument += prefix_len;
    if (*argument == ' ')
        argument++;

    result = path_parse(argument, flags, address, size, &consumed, &reason);
    if (result == PATH_NEEDS_UTF8) {
        fail(error, 553, "5.6.7", reason);
        return NULL;
    }
    if (result != PATH_OK) {
        fail(error, 501, status, reason);
        return NULL;
    }
    argument += consumed;
    if (*argument != '\0' && *argument != ' ') {
        fail(error, 501, status, "invalid character after path");
        return NULL;
    }
    return argument;
}

/*
 * Splits the next parameter at *cursor into keyword and value (value is
 * NULL without '=').  Returns 0 at the end, 1 for a parameter, -1 for a
 * syntax error.  The buffers hold at most one command line.
 */
static int
next_parameter(const char **cursor, char *keyword, size_t keyword_size,
               char *value, size_t value_size, int *has_value)
{
    const char *p = *cursor;
    size_t n = 0;

    while (*p == ' ')
        p++;
    if (*p == '\0')
        return 0;
    while (isalnum((unsigned char)*p) || (n > 0 && *p == '-')) {
        if (n + 1 >= keyword_size)
            return -1;
        keyword[n++] = *p++;
    }
    keyword[n] = '\0';
    if (n == 0)
        return -1;

    *has_value = *p == '=';
    n = 0;
    if (*has_value) {
        for (p++; *p != '\0' && *p != ' '; p++) {
            if (*p == '=' || (unsigned char)*p < 33 || *p == 127 ||
                n + 1 >= value_size)
                return -1;
            value[n++] = *p;
        }
        if (n == 0)
            return -1;
    }
    value[n] = '\0';
    if (*p != '\0' && *p != ' ')
        return -1;
    *cursor = p;
    return 1;
}

static int
parse_size_value(const char *value, unsigned long long *size)
{
    char *end;

    if (!isdigit((unsigned char)value[0]))
        return -1;
    errno = 0;
    *size = strtoull(value, &end, 10);
    return errno != 0 || *end != '\0' ? -1 : 0;
}

static int
has_non_ascii(const char *text)
{
    for (; *text != '\0'; text++) {
        if ((unsigned char)*text >= 0x80)
            return 1;
    }
    return 0;
}

/* BODY=7BIT, 8BITMIME (RFC 6152) or BINARYMIME (RFC 3030). */
static int
parse_body_value(const char *value, enum body_type *body)
{
    if (strcasecmp(value, "7BIT") == 0)
        *body = BODY_7BIT;
    else if (strcasecmp(value, "8BITMIME") == 0)
        *body = BODY_8BITMIME;
    else if (strcasecmp(value, "BINARYMIME") == 0)
        *body = BODY_BINARYMIME;
    else
        return -1;
    return 0;
}

/*
 * MAIL FROM:<reverse-path> [SIZE=n] [BODY=type] [SMTPUTF8].  The path is
 * read before the parameters, so a non-ASCII path is checked against
 * SMTPUTF8 once all parameters are known.
 */
int
command_parse_mail(const char *argument, unsigned long long max_size,
                   struct mail_request *mail, struct command_error *error)
{
    char keyword[32], value[PATH_MAX_LENGTH];
    int has_value, seen_size = 0, seen_body = 0, status;

    argument = parse_path_argument(argument, "FROM:",
                                   PATH_ALLOW_NULL | PATH_ALLOW_UTF8,
                                   mail->reverse_path,
                                   sizeof(mail->reverse_path), "5.1.7",
                                   error);
    if (argument == NULL)
        return -1;
    mail->size = 0;
    mail->body = BODY_7BIT;
    mail->smtputf8 = 0;

    while ((status = next_parameter(&argument, keyword, sizeof(keyword),
                                    value, sizeof(value), &has_value)) > 0) {
        if (strcasecmp(keyword, "SIZE") == 0) {
            if (seen_size++ || !has_value ||
                parse_size_value(value, &mail->size) < 0)
                return fail(error, 501, "5.5.4", "invalid SIZE parameter");
            if (max_size > 0 && mail->size > max_size)
                return fail(error, 552, "5.3.4",
                            "message size exceeds fixed maximum size");
        } else if (strcasecmp(keyword, "BODY") == 0) {
            if (seen_body++ || !has_value ||
                parse_body_value(value, &mail->body) < 0)
                return fail(error, 501, "5.5.4", "invalid BODY parameter");
        } else if (strcasecmp(keyword, "SMTPUTF8") == 0) {
            if (mail->smtputf8++ || has_value)
                return fail(error, 501, "5.5.4",
                            "invalid SMTPUTF8 parameter");
        } else {
            return fail(error, 555, "5.5.4", "unsupported MAIL parameter");
        }
    }
    if (status < 0)
        return fail(error, 501, "5.5.4", "invalid MAIL parameter syntax");
    if (!mail->smtputf8 && has_non_ascii(mail->reverse_path))
        return fail(error, 553, "5.6.7",
                    "non-ASCII address requires SMTPUTF8");
    return 0;
}

/* RCPT TO:<forward-path>, with no parameters supported. */
int
command_parse_rcpt(const char *argument, int smtputf8,
                   struct rcpt_request *rcpt, struct command_error *error)
{
    char keyword[32], value[PATH_MAX_LENGTH];
    int has_value, status;

    argument = parse_path_argument(argument, "TO:",
                                   PATH_ALLOW_POSTMASTER |
                                       (smtputf8 ? PATH_ALLOW_UTF8 : 0),
                                   rcpt->forward_path,
                                   sizeof(rcpt->forward_path), "5.1.3",
                                   error);
    if (argument == NULL)
        return -1;

    status = next_parameter(&argument, keyword, sizeof(keyword), value,
                            sizeof(value), &has_value);
    if (status > 0)
        return fail(error, 555, "5.5.4", "unsupported RCPT parameter");
    if (status < 0)
        return fail(error, 501, "5.5.4", "invalid RCPT parameter syntax");
    return 0;
}

/* BDAT chunk-size [LAST], RFC 3030 section 2. */
int
command_parse_bdat(const char *argument, unsigned long long *size, int *last)
{
    char *end;

    if (!isdigit((unsigned char)argument[0]))
        return -1;
    errno = 0;
    *size = strtoull(argument, &end, 10);
    if (errno != 0)
        return -1;
    *last = 0;
    if (*end == '\0')
        return 0;
    if (strcasecmp(end, " LAST") == 0) {
        *last = 1;
        return 0;
    }
    return -1;
}
