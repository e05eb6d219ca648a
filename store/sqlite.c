/*
 * The SQLite backend, the default: one file, nothing to start. WAL mode lets
 * readers run beside the writer; each batch is one transaction with
 * statements prepared once. Records live in a rowid table, so a batch appends
 * its rows at the end of the file, and a unique index on (user, seq, sub)
 * makes "the latest N of a user" and "before (seq, sub)" index range scans and
 * a retried batch a no-op (INSERT OR IGNORE).
 *
 * synchronous=FULL: a batch the store acknowledged survives a power loss
 * too, since the WAL is synced at each commit. Batching is what pays for it:
 * one sync per batch instead of one per message (bench/README.md, "History
 * benchmark", measures both).
 */
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include "runtime/log.h"
#include "runtime/buf.h"
#include "runtime/error.h"
#include "store/internal.h"

#define SCHEME "sqlite:"

typedef struct sqlite_store {
    aw_store_t super;
    sqlite3 *db;
    sqlite3_stmt *insert, *insert_rows, *page, *begin, *commit, *rollback;
} sqlite_store_t;

/* Records per multi-row INSERT. SQLite's cost per statement run (starting,
 * opening the table's and the index's cursors, halting) was a third of a
 * batch's instructions with one INSERT per record; a batch now runs one
 * statement per ROWS records and single INSERTs for the rest. */
#define ROWS 32
#define INSERT_SQL "INSERT OR IGNORE INTO history (user, seq, sub, ts, dir, json, flags) VALUES "
#define VALUES_SQL "(?,?,?,?,?,?,?)"
#define PARAMS 7 /* per record */

/* The cache (32 MiB) holds the index pages a busy chat touches (the newest
 * leaf of each active user's range) and the table's tail; at SQLite's default
 * of 2 MiB they were read back from the WAL at every transaction once the
 * index outgrew it. The checkpoint interval stays at SQLite's 1,000 pages: a
 * longer one helped large batches by a tenth but made a one-record commit
 * nearly twice as dear while the WAL file grows (each sync then also writes
 * the file's new size), and a quiet server commits small batches. */
static const char schema[] =
    "PRAGMA journal_mode=WAL;"
    "PRAGMA synchronous=FULL;"
    "PRAGMA cache_size=-32768;"
    "CREATE TABLE IF NOT EXISTS history ("
    " id INTEGER PRIMARY KEY, user TEXT NOT NULL, seq INTEGER NOT NULL, sub INTEGER NOT NULL,"
    " ts INTEGER NOT NULL, dir INTEGER NOT NULL, json TEXT NOT NULL, flags INTEGER NOT NULL DEFAULT 0);"
    "CREATE UNIQUE INDEX IF NOT EXISTS history_key ON history (user, seq, sub);";

/* The records that say who answers a user (AW_RECORD_HANDOFF), which a
 * session reads when it loads (sq_latest_of); made once the file has the
 * flags column. */
static const char handoff_index[] =
    "CREATE INDEX IF NOT EXISTS history_handoff ON history (user, seq, sub) WHERE (flags & 8) != 0;";

/* A file made before records had flags gets the column (0 for the records
 * it holds: nothing was protected then). */
static int add_flags_column(sqlite3 *db)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(db, "SELECT 1 FROM pragma_table_info('history') WHERE name = 'flags'", -1,
                                &st, NULL);
    if (rc != SQLITE_OK)
        return rc;
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc == SQLITE_ROW)
        return SQLITE_OK;
    if (rc != SQLITE_DONE)
        return rc;
    return sqlite3_exec(db, "ALTER TABLE history ADD COLUMN flags INTEGER NOT NULL DEFAULT 0", NULL, NULL,
                        NULL);
}

/* Busy, locked, read-only, full, I/O: the caller may retry later. */
static int map(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_OK:
    case SQLITE_DONE:
    case SQLITE_ROW:
        return 0;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_CANTOPEN:
    case SQLITE_READONLY:
    case SQLITE_IOERR:
    case SQLITE_FULL:
    case SQLITE_PROTOCOL:
        return AW_EUNAVAILABLE;
    case SQLITE_NOMEM:
        fprintf(stderr, "anywhere: out of memory (sqlite)\n");
        abort();
    default:
        return AW_ESTORE;
    }
}

static int step_reset(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : map(rc);
}

/* Binds record `r` to the PARAMS parameters after `first`. */
static void bind_record(sqlite3_stmt *st, int first, const aw_record_t *r)
{
    sqlite3_bind_text(st, first + 1, r->user, (int)r->user_len, SQLITE_STATIC);
    sqlite3_bind_int64(st, first + 2, r->seq);
    sqlite3_bind_int64(st, first + 3, r->sub);
    sqlite3_bind_int64(st, first + 4, r->ts_ms);
    sqlite3_bind_int(st, first + 5, r->direction);
    sqlite3_bind_text(st, first + 6, r->json, (int)r->json_len, SQLITE_STATIC);
    sqlite3_bind_int(st, first + 7, r->flags);
}

static int sq_append(aw_store_t *store, const aw_record_t *r, size_t n)
{
    sqlite_store_t *s = (sqlite_store_t *)store;
    int err = step_reset(s->begin);
    size_t i = 0;
    for (; i + ROWS <= n && err == 0; i += ROWS) {
        for (int k = 0; k < ROWS; k++)
            bind_record(s->insert_rows, PARAMS * k, &r[i + k]);
        err = step_reset(s->insert_rows);
    }
    for (; i < n && err == 0; i++) {
        bind_record(s->insert, 0, &r[i]);
        err = step_reset(s->insert);
    }
    /* once per batch, not per record (every record binds all its parameters
     * again): no pointer into the caller's records stays bound */
    sqlite3_clear_bindings(s->insert_rows);
    sqlite3_clear_bindings(s->insert);
    if (err == 0)
        err = step_reset(s->commit);
    if (err != 0 && !sqlite3_get_autocommit(s->db))
        step_reset(s->rollback); /* nothing of a failed batch stays */
    return err;
}

static int sq_read(aw_store_t *store, const char *user, size_t user_len, int64_t before_seq,
                   int64_t before_sub, size_t limit, aw_store_record_cb cb, void *data, int *more)
{
    sqlite_store_t *s = (sqlite_store_t *)store;
    sqlite3_stmt *st = s->page;
    sqlite3_bind_text(st, 1, user, (int)user_len, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, before_seq);
    sqlite3_bind_int64(st, 3, before_sub);
    sqlite3_bind_int64(st, 4, (sqlite3_int64)limit + 1);
    /* newest first from the index; collected, then given oldest first */
    aw_record_t *recs = aw_calloc(limit + 1, sizeof(*recs));
    size_t n = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (n == limit) {
            *more = 1;
            break;
        }
        aw_record_t *r = &recs[n++];
        r->user = user;
        r->user_len = user_len;
        r->seq = sqlite3_column_int64(st, 0);
        r->sub = sqlite3_column_int64(st, 1);
        r->ts_ms = sqlite3_column_int64(st, 2);
        r->direction = sqlite3_column_int(st, 3);
        r->json_len = (size_t)sqlite3_column_bytes(st, 4);
        r->json = aw_strndup((const char *)sqlite3_column_text(st, 4), r->json_len);
        r->flags = sqlite3_column_int(st, 5);
    }
    int err = rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : map(rc);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    for (size_t i = n; i-- > 0;) {
        if (err == 0)
            cb(&recs[i], data);
        free((char *)recs[i].json);
    }
    free(recs);
    return err;
}

/* For each user, the newest record with `flag`: the records of the kind
 * that no record of the kind of the same user is above. A scan of the
 * table, each record checked against its user's range of the index: for a
 * start only. */
static int sq_latest(aw_store_t *store, int flag, aw_store_record_cb cb, void *data)
{
    sqlite_store_t *s = (sqlite_store_t *)store;
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(s->db,
                                "SELECT user, seq, sub, ts, dir, json, flags FROM history h"
                                " WHERE (flags & ?1) = ?1 AND NOT EXISTS (SELECT 1 FROM history g"
                                " WHERE g.user = h.user AND (g.flags & ?1) = ?1"
                                " AND (g.seq > h.seq OR (g.seq = h.seq AND g.sub > h.sub)))",
                                -1, &st, NULL);
    if (rc != SQLITE_OK)
        return map(rc);
    sqlite3_bind_int(st, 1, flag);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        aw_record_t r = {.user = (const char *)sqlite3_column_text(st, 0),
                         .user_len = (size_t)sqlite3_column_bytes(st, 0),
                         .seq = sqlite3_column_int64(st, 1),
                         .sub = sqlite3_column_int64(st, 2),
                         .ts_ms = sqlite3_column_int64(st, 3),
                         .direction = sqlite3_column_int(st, 4),
                         .json = (const char *)sqlite3_column_text(st, 5),
                         .json_len = (size_t)sqlite3_column_bytes(st, 5),
                         .flags = sqlite3_column_int(st, 6)};
        cb(&r, data);
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : map(rc);
}

/* The partial index history_handoff serves the one flag sessions ask for
 * at each load (AW_RECORD_HANDOFF, 8): its condition must be the query's,
 * word for word, so the flag goes in as a literal. */
static int sq_latest_of(aw_store_t *store, const char *user, size_t user_len, int flag, aw_store_record_cb cb,
                        void *data)
{
    sqlite_store_t *s = (sqlite_store_t *)store;
    char sql[256];
    snprintf(sql, sizeof(sql),
             "SELECT seq, sub, ts, dir, json, flags FROM history WHERE user = ?1 AND (flags & %d) != 0%s"
             " ORDER BY seq DESC, sub DESC LIMIT 1",
             flag, (flag & (flag - 1)) == 0 ? "" : " AND (flags & ?2) = ?2");
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK)
        return map(rc);
    sqlite3_bind_text(st, 1, user, (int)user_len, SQLITE_STATIC);
    if ((flag & (flag - 1)) != 0)
        sqlite3_bind_int(st, 2, flag);
    if ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        aw_record_t r = {.user = user,
                         .user_len = user_len,
                         .seq = sqlite3_column_int64(st, 0),
                         .sub = sqlite3_column_int64(st, 1),
                         .ts_ms = sqlite3_column_int64(st, 2),
                         .direction = sqlite3_column_int(st, 3),
                         .json = (const char *)sqlite3_column_text(st, 4),
                         .json_len = (size_t)sqlite3_column_bytes(st, 4),
                         .flags = sqlite3_column_int(st, 5)};
        cb(&r, data);
    }
    sqlite3_finalize(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : map(rc);
}

static void sq_close(aw_store_t *store)
{
    sqlite_store_t *s = (sqlite_store_t *)store;
    sqlite3_stmt *all[] = {s->insert, s->insert_rows, s->page, s->begin, s->commit, s->rollback};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        sqlite3_finalize(all[i]);
    sqlite3_close(s->db);
    free(s);
}

static int prepare(sqlite_store_t *s)
{
    char rows[sizeof(INSERT_SQL) + ROWS * sizeof("," VALUES_SQL)] = INSERT_SQL VALUES_SQL;
    for (int k = 1; k < ROWS; k++)
        strcat(rows, "," VALUES_SQL);
    const char *const sql[] = {INSERT_SQL VALUES_SQL,
                               rows,
                               "SELECT seq, sub, ts, dir, json, flags FROM history WHERE user = ?1 AND (seq "
                               "< ?2 OR (seq = ?2 AND sub < "
                               "?3))"
                               " ORDER BY seq DESC, sub DESC LIMIT ?4",
                               "BEGIN IMMEDIATE",
                               "COMMIT",
                               "ROLLBACK"};
    sqlite3_stmt **out[] = {&s->insert, &s->insert_rows, &s->page, &s->begin, &s->commit, &s->rollback};
    for (size_t i = 0; i < sizeof(sql) / sizeof(sql[0]); i++)
        if (sqlite3_prepare_v3(s->db, sql[i], -1, SQLITE_PREPARE_PERSISTENT, out[i], NULL) != SQLITE_OK)
            return -1;
    return 0;
}

/* "sqlite:PATH": PATH is a file name as sqlite3_open_v2 takes it. */
static int sq_open(aw_store_t **out, const char *uri, const aw_store_options_t *options)
{
    const char *path = uri + strlen(SCHEME);
    if (*path == '\0')
        return AW_EINVAL;
    sqlite_store_t *s = aw_calloc(1, sizeof(*s));
    s->super.backend = &aw_store__sqlite;
    int rc =
        sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    int timeout_ms = options->timeout_ms > 0 ? options->timeout_ms : 5000;
    if (rc == SQLITE_OK) {
        sqlite3_busy_timeout(s->db, timeout_ms);
        /* Several processes may open one file at once (a cluster's nodes on
         * one machine): switching to WAL can be refused while another does
         * the same, without the busy handler, so that is retried here. */
        for (int waited = 0;; waited += 20) {
            rc = sqlite3_exec(s->db, schema, NULL, NULL, NULL);
            if ((rc != SQLITE_BUSY && rc != SQLITE_LOCKED) || waited >= timeout_ms)
                break;
            sqlite3_sleep(20);
        }
    }
    if (rc == SQLITE_OK)
        rc = add_flags_column(s->db);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(s->db, handoff_index, NULL, NULL, NULL);
    if (rc == SQLITE_OK && prepare(s) != 0)
        rc = sqlite3_errcode(s->db);
    if (rc != SQLITE_OK) {
        aw_log(AW_LOG_ERROR, "store", "sqlite %s: %s", path,
               s->db != NULL ? sqlite3_errmsg(s->db) : "cannot open");
        int err = map(rc) != 0 ? map(rc) : AW_ESTORE;
        sq_close(&s->super);
        return err;
    }
    *out = &s->super;
    return 0;
}

static const char *const schemes[] = {SCHEME, NULL};

const aw_store_backend_t aw_store__sqlite = {
    .name = "sqlite",
    .schemes = schemes,
    .open = sq_open,
    .append = sq_append,
    .read = sq_read,
    .latest = sq_latest,
    .latest_of = sq_latest_of,
    .close = sq_close,
};
