/*
 * The history journal (journal.h): encoding, the whole-file replacement
 * that keeps it all-or-nothing on disk, and a parser that checks the whole
 * image before it reports a record, so a damaged journal adds nothing.
 */
#include "actors/journal.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "runtime/bytes.h"
#include "runtime/error.h"
#include "runtime/log.h"

#define MAGIC "AWJ1"
#define END "END1"
#define HEAD_LEN 8                               /* magic, count */
#define REC_HEAD_LEN (2 + 4 + 8 + 8 + 8 + 1 + 1) /* before the user id */
#define MAX_USER 256

/* --- encoding --- */

static void put_le(aw_bytes_t *o, uint64_t v, size_t bytes)
{
    unsigned char b[8];
    for (size_t i = 0; i < bytes; i++)
        b[i] = (unsigned char)(v >> (8 * i));
    aw_bytes_append(o, b, bytes);
}

static uint64_t get_le(const unsigned char *p, size_t bytes)
{
    uint64_t v = 0;
    for (size_t i = 0; i < bytes; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* --- parsing --- */

/* Walks the image; with `cb` NULL it only checks. */
static int walk(const unsigned char *p, size_t len, aw_journal_record_cb cb, void *data, size_t *count)
{
    if (len < HEAD_LEN + 4 || memcmp(p, MAGIC, 4) != 0 || memcmp(p + len - 4, END, 4) != 0)
        return AW_EBADMSG;
    uint64_t n = get_le(p + 4, 4);
    size_t at = HEAD_LEN, end = len - 4;
    for (uint64_t i = 0; i < n; i++) {
        if (end - at < REC_HEAD_LEN)
            return AW_EBADMSG;
        const unsigned char *h = p + at;
        aw_record_t r = {0};
        r.user_len = (size_t)get_le(h, 2);
        r.json_len = (size_t)get_le(h + 2, 4);
        r.seq = (int64_t)get_le(h + 6, 8);
        r.sub = (int64_t)get_le(h + 14, 8);
        r.ts_ms = (int64_t)get_le(h + 22, 8);
        r.direction = h[30];
        r.flags = h[31];
        at += REC_HEAD_LEN;
        if (r.user_len == 0 || r.user_len > MAX_USER || r.json_len == 0 || r.json_len > AW_JOURNAL_MAX_JSON ||
            (r.direction != AW_RECORD_IN && r.direction != AW_RECORD_OUT) || r.seq < 0 ||
            r.sub < ((r.flags & AW_RECORD_RESERVE) ? -1 : 0) ||
            (r.flags & ~(AW_RECORD_PROTECTED | AW_RECORD_CLAIM | AW_RECORD_RESERVE | AW_RECORD_HANDOFF)) !=
                0 ||
            end - at < r.user_len + r.json_len)
            return AW_EBADMSG;
        r.user = (const char *)p + at;
        r.json = (const char *)p + at + r.user_len;
        at += r.user_len + r.json_len;
        if (cb != NULL)
            cb(&r, data);
    }
    if (at != end)
        return AW_EBADMSG;
    *count = (size_t)n;
    return 0;
}

int aw_journal_parse(const char *buf, size_t len, aw_journal_record_cb cb, void *data, size_t *count)
{
    *count = 0;
    int err = walk((const unsigned char *)buf, len, NULL, data, count);
    if (err == 0 && cb != NULL)
        err = walk((const unsigned char *)buf, len, cb, data, count);
    return err;
}

/* --- files --- */

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Syncs the folder holding `path`, so that a rename in it is durable. */
static int sync_dir(const char *path)
{
    char copy[PATH_MAX];
    snprintf(copy, sizeof(copy), "%s", path);
    int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY);
    if (fd < 0)
        return -1;
    int r = fsync(fd);
    close(fd);
    return r;
}

int aw_journal_write(const char *path, const aw_record_t *recs, size_t n)
{
    aw_bytes_t o = {0};
    aw_bytes_append(&o, MAGIC, 4);
    put_le(&o, n, 4);
    for (size_t i = 0; i < n; i++) {
        const aw_record_t *r = &recs[i];
        put_le(&o, r->user_len, 2);
        put_le(&o, r->json_len, 4);
        put_le(&o, (uint64_t)r->seq, 8);
        put_le(&o, (uint64_t)r->sub, 8);
        put_le(&o, (uint64_t)r->ts_ms, 8);
        put_le(&o, (uint64_t)r->direction, 1);
        put_le(&o, (uint64_t)r->flags, 1);
        aw_bytes_append(&o, r->user, r->user_len);
        aw_bytes_append(&o, r->json, r->json_len);
    }
    aw_bytes_append(&o, END, 4);
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    int err = 0, fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || write_all(fd, o.buf->data, o.len) != 0 || fsync(fd) != 0)
        err = errno != 0 ? errno : EIO;
    if (fd >= 0)
        close(fd);
    if (err == 0 && (rename(tmp, path) != 0 || sync_dir(path) != 0))
        err = errno != 0 ? errno : EIO;
    aw_bytes_dispose(&o);
    if (err != 0) {
        unlink(tmp);
        aw_log(AW_LOG_ERROR, "history_journal", "cannot write the history journal %s: %s", path,
               strerror(err));
        return AW_EIO;
    }
    return 0;
}

int aw_journal_load(const char *path, char **buf, size_t *len)
{
    *buf = NULL;
    *len = 0;
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return errno == ENOENT ? AW_ENOTFOUND : AW_EIO;
    struct stat st;
    if (fstat(fd, &st) != 0 || st.st_size < 0) {
        close(fd);
        return AW_EIO;
    }
    size_t size = (size_t)st.st_size, got = 0;
    char *b = aw_alloc(size + 1);
    while (got < size) {
        ssize_t r = read(fd, b + got, size - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    if (got != size) {
        free(b);
        return AW_EIO;
    }
    *buf = b;
    *len = size;
    return 0;
}
