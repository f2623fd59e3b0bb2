/*
 * fuzz_session.c: libFuzzer target for a whole LMTP session.  The input
 * is what a client sends.  session_run() reads it from a socket, looks
 * recipients up in a real tinycdb map and delivers into a Maildir and
 * an mbox in a temporary folder, which is emptied after each run.  The
 * first byte selects the packet size, bare LF line ends and
 * --create-folders.
 */
#include <cdb.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "session/log.h"
#include "session/session.h"
#include "store/store.h"
#include "tests/fuzz/feed.h"

/* Run as root, the target drops to this uid and gid, those of "nobody",
 * because root delivers only for records that name an owner. */
#define FUZZ_ID 65534

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char base[] = "/dev/shm/lmtpd-fuzz.XXXXXX";
static char mail[sizeof base + 8];
static char map[sizeof base + 16];
static char spool[sizeof base + 8];

/* Adds key with the record "mailbox=<mail>/<box><fields>". */
static void
add_record(struct cdb_make *maker, const char *key, const char *box,
           const char *fields)
{
    char value[512];

    snprintf(value, sizeof value, "mailbox=%s/%s%s", mail, box, fields);
    if (cdb_make_add(maker, key, (unsigned)strlen(key), value,
                     (unsigned)strlen(value)) != 0)
        abort();
}

/* Writes the map: a Maildir, an mbox, a catch-all and a bad record. */
static void
write_map(void)
{
    struct cdb_make maker;
    int fd = open(map, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

    if (fd == -1 || cdb_make_start(&maker, fd) != 0)
        abort();
    add_record(&maker, "alice@example.com", "alice/", "");
    add_record(&maker, "bob@example.com", "bob.mbox", " quota=1M");
    add_record(&maker, "@example.org", "catchall/", "");
    add_record(&maker, "broken@example.com", "x/", " quota=1X");
    if (cdb_make_finish(&maker) != 0 || close(fd) != 0)
        abort();
}

static int
remove_entry(const char *path, const struct stat *st, int type,
             struct FTW *ftw)
{
    (void)st;
    (void)type;
    (void)ftw;
    return remove(path);
}

static void
remove_base(void)
{
    nftw(base, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char error[256];

    (void)argc;
    (void)argv;
    if (geteuid() == 0 &&
        privilege_drop(FUZZ_ID, FUZZ_ID, NULL, error, sizeof error) != 0) {
        fprintf(stderr, "fuzz_session: %s\n", error);
        abort();
    }
    if (access("/dev/shm", W_OK) != 0)
        memcpy(base, "/tmp/", 5);
    if (mkdtemp(base) == NULL)
        abort();
    atexit(remove_base);
    snprintf(mail, sizeof mail, "%s/mail", base);
    snprintf(map, sizeof map, "%s/users.cdb", base);
    snprintf(spool, sizeof spool, "%s/spool", base);
    if (mkdir(spool, 0700) != 0)
        abort();
    write_map();
    umask(077);
    log_open(LOG_TARGET_NONE, 0);
    mbox_set_lock_timeout(1);
    return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct session_config config = {
        .map_path = map,
        .hostname = "mx.fuzz.example",
        .delimiters = "+",
        .spool_dir = spool,
        .max_size = 4096,
        .timeout = 1,
        .session_timeout = 0,
        .max_errors = 50,
        .max_recipients = 100,
        .max_line_length = 512,
    };
    int in_fd, out_fd;

    if (size == 0)
        return 0;
    config.bare_lf = data[0] & 1;
    config.create_folders = (data[0] >> 1) & 1;

    if (mkdir(mail, 0700) != 0 && errno != EEXIST)
        abort();
    in_fd = feed_open(data + 1, size - 1, 1 + (size_t)(data[0] >> 2) * 16);
    out_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (in_fd == -1 || out_fd == -1)
        abort();

    session_run(&config, in_fd, out_fd, "");

    close(in_fd);
    close(out_fd);
    nftw(mail, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    return 0;
}
