/*
 * fuzz_command.c: libFuzzer target for the command parser of
 * session/command.c.  The input is one command line without its CRLF;
 * the verb is found, then the MAIL, RCPT and BDAT arguments are parsed.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "session/command.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Checks a reply for a rejected command: a 4xx or 5xx code and text. */
static void
check_error(const struct command_error *error)
{
    if (error->code < 400 || error->code > 599 || error->status == NULL ||
        error->text == NULL)
        abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *line = malloc(size + 1);
    const char *argument;
    struct mail_request mail;
    struct rcpt_request rcpt;
    struct command_error error;
    unsigned long long chunk_size;
    int last;

    if (line == NULL)
        return 0;
    memcpy(line, data, size);
    line[size] = '\0';

    command_verb(line, &argument);
    if (argument < line || argument > line + size)
        abort();

    /* Each parser takes the whole line as its argument too. */
    if (command_parse_mail(line, size % 2 ? 1000 : 0, &mail, &error) < 0)
        check_error(&error);
    else if (strlen(mail.reverse_path) >= sizeof mail.reverse_path)
        abort();
    if (command_parse_rcpt(line, (int)(size % 3 == 0), &rcpt, &error) < 0)
        check_error(&error);
    else if (strlen(rcpt.forward_path) >= sizeof rcpt.forward_path)
        abort();
    command_parse_bdat(line, &chunk_size, &last);

    free(line);
    return 0;
}
