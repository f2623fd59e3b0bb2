/*
 * fuzz_path.c: libFuzzer target for the reverse-path and forward-path
 * parser of session/path.c.  The first byte selects the flags; the rest
 * is the path text.  An accepted path must fit its buffer and lie
 * within the input.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "session/path.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char address[PATH_MAX_LENGTH];
    const char *error;
    size_t consumed = 0;
    char *text;
    int flags, result;

    if (size == 0)
        return 0;
    flags = data[0] & (PATH_ALLOW_NULL | PATH_ALLOW_POSTMASTER |
                       PATH_ALLOW_UTF8);
    text = malloc(size);
    if (text == NULL)
        return 0;
    memcpy(text, data + 1, size - 1);
    text[size - 1] = '\0';

    result = path_parse(text, flags, address, sizeof address, &consumed,
                        &error);
    if (result == PATH_OK) {
        if (error != NULL || consumed < 2 || consumed > strlen(text) ||
            text[consumed - 1] != '>' ||
            strlen(address) + 2 > PATH_MAX_LENGTH)
            abort();
    } else if (error == NULL ||
               (result != PATH_INVALID && result != PATH_NEEDS_UTF8)) {
        abort();
    }
    free(text);
    return 0;
}
