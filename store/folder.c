/*
 * folder.c: the Maildir++ folder for an address's +detail, so that
 * alice+lists@example.com lands in alice's ".lists" folder.  A detail
 * never becomes a path unless it is a plain folder name.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/store.h"

/* Maximum length of a detail used as a folder name; longer ones go to
 * the inbox. */
#define DETAIL_MAX_LENGTH 100

/*
 * Returns 1 when detail can name a Maildir++ folder: not empty, at most
 * 100 bytes, no '/', no control bytes, no leading '.' and no "..", so
 * it can neither leave the Maildir nor name one of its own folders.
 */
int
maildir_detail_is_safe(const char *detail)
{
    size_t len = strlen(detail);

    if (len == 0 || len > DETAIL_MAX_LENGTH || detail[0] == '.' ||
        strstr(detail, "..") != NULL || strchr(detail, '/') != NULL)
        return 0;
    for (size_t i = 0; i < len; i++) {
        if ((unsigned char)detail[i] < 32 || detail[i] == 127)
            return 0;
    }
    return 1;
}

static int
make_folder(const char *path)
{
    return mkdir(path, 0700) == 0 || errno == EEXIST ? 0 : -1;
}

/*
 * Writes the "maildirfolder" file that Maildir++ readers (Courier,
 * Dovecot) use to tell a folder from an inbox.
 */
static int
mark_folder(const char *folder)
{
    char marker[PATH_MAX];
    int fd;

    if ((size_t)snprintf(marker, sizeof(marker), "%s/maildirfolder",
                         folder) >= sizeof(marker))
        return -1;
    fd = open(marker, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
              0600);
    if (fd < 0)
        return errno == EEXIST ? 0 : -1;
    return close(fd);
}

/*
 * Chooses where a message for a Maildir recipient goes: into path the
 * folder "<inbox>.<detail>/" when it is a directory (made first when
 * create is set), otherwise the inbox itself.  The folder is checked
 * with lstat() on its name without a trailing '/', because with one
 * lstat() would follow a symbolic link planted there.
 */
void
maildir_choose_folder(const char *inbox, const char *detail, int create,
                      char *path, size_t size)
{
    char folder[PATH_MAX];
    struct stat st;

    snprintf(path, size, "%s", inbox);
    if (!maildir_detail_is_safe(detail))
        return;
    if ((size_t)snprintf(folder, sizeof(folder), "%s.%s", inbox, detail) >=
        sizeof(folder))
        return;

    if (create && (make_folder(inbox) < 0 || make_folder(folder) < 0))
        return;
    if (lstat(folder, &st) < 0 || !S_ISDIR(st.st_mode))
        return;
    if (create && mark_folder(folder) < 0)
        return;
    snprintf(path, size, "%s/", folder);
}
