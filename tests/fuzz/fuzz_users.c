/*
 * fuzz_users.c: libFuzzer target for the user map record parser of
 * store/users.c.  The input is a map value as cdb returns it, not
 * NUL-terminated; the size parser gets the same bytes as a string.
 */
#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct mailbox mb;
    char error[256];
    unsigned long long value;
    char *copy, *text;

    /* An exact-size copy lets AddressSanitizer see a read past the end. */
    copy = malloc(size > 0 ? size : 1);
    if (copy == NULL)
        return 0;
    memcpy(copy, data, size);

    error[0] = '\0';
    if (users_parse_record(copy, size, &mb, error, sizeof error) == 0) {
        if (mb.path[0] != '/' || strlen(mb.path) >= sizeof mb.path ||
            mb.is_maildir != (mb.path[strlen(mb.path) - 1] == '/') ||
            strstr(mb.path, "/../") != NULL)
            abort();
    } else if (error[0] == '\0' || strlen(error) >= sizeof error) {
        abort();
    }
    free(copy);

    text = malloc(size + 1);
    if (text == NULL)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    users_parse_size(text, &value);
    free(text);
    return 0;
}
