/*
 * The SQLite backend over a real file: both directions read back in order,
 * pages and `more`, paging to the beginning, idempotent batches, reopening,
 * a locked database (the batch fails whole, then succeeds), record flags (and
 * a file from before them), and a path that cannot be opened.
 */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "runtime/error.h"
#include "store/store.h"
#include "tests/check.h"

typedef struct got {
    int64_t seq[64], sub[64];
    int flags[64];
    char json[64][64];
    int n;
} got_t;

static void on_record(const aw_record_t *r, void *data)
{
    got_t *g = data;
    if (g->n < 64) {
        g->seq[g->n] = r->seq;
        g->sub[g->n] = r->sub;
        g->flags[g->n] = r->flags;
        snprintf(g->json[g->n], sizeof(g->json[0]), "%.*s", (int)r->json_len, r->json);
        g->n++;
    }
}

static aw_record_t rec(const char *user, int64_t seq, int64_t sub, const char *json)
{
    return (aw_record_t){.user = user,
                         .user_len = strlen(user),
                         .seq = seq,
                         .sub = sub,
                         .ts_ms = 1,
                         .direction = sub == 0 ? AW_RECORD_OUT : AW_RECORD_IN,
                         .json = json,
                         .json_len = strlen(json)};
}

static got_t page(aw_store_t *s, const char *user, int64_t bs, int64_t bb, size_t limit, int *more)
{
    got_t g = {0};
    CHECK(aw_store_read(s, user, strlen(user), bs, bb, limit, on_record, &g, more) == 0);
    return g;
}

int main(void)
{
    char dir[] = "/tmp/aw-test-sqlite-XXXXXX", uri[160], path[128];
    if (mkdtemp(dir) == NULL)
        return 1;
    snprintf(path, sizeof(path), "%s/h.db", dir);
    snprintf(uri, sizeof(uri), "sqlite:%s", path);
    aw_store_options_t opts = {.timeout_ms = 100};
    aw_store_t *s;
    CHECK(aw_store_open(&s, uri, &opts) == 0);
    CHECK(strcmp(aw_store_backend(s), "sqlite") == 0);

    aw_record_t b[] = {rec("ann", 0, 1, "{\"p\":0}"),     rec("ann", 1, 0, "{\"b\":1}"),
                       rec("ann", 1, 1, "{\"p\":1}"),     rec("ann", 2, 0, "{\"b\":2}"),
                       rec("bob", 1, 0, "{\"other\":1}"), rec("é\"'", 1, 0, "{\"unicode\":true}")};
    CHECK(aw_store_append(s, b, 6) == 0);
    CHECK(aw_store_append(s, b, 6) == 0); /* the same batch again: stored once */
    int more = -1;
    got_t g = page(s, "ann", INT64_MAX, INT64_MAX, 10, &more);
    CHECK(g.n == 4 && more == 0);
    CHECK(g.n == 4 && strcmp(g.json[0], "{\"p\":0}") == 0 && strcmp(g.json[3], "{\"b\":2}") == 0);
    g = page(s, "ann", INT64_MAX, INT64_MAX, 2, &more);
    CHECK(g.n == 2 && more == 1 && g.seq[0] == 1 && g.sub[0] == 1 && g.seq[1] == 2);
    /* backwards from there to the beginning: no gap, no repeat */
    g = page(s, "ann", 1, 1, 2, &more);
    CHECK(g.n == 2 && more == 0 && g.seq[0] == 0 && g.sub[0] == 1 && g.seq[1] == 1 && g.sub[1] == 0);
    g = page(s, "é\"'", INT64_MAX, INT64_MAX, 10, &more);
    CHECK(g.n == 1 && strcmp(g.json[0], "{\"unicode\":true}") == 0);
    g = page(s, "nobody", INT64_MAX, INT64_MAX, 10, &more);
    CHECK(g.n == 0 && more == 0);

    /* another connection holds the write lock: the batch fails whole */
    sqlite3 *other;
    sqlite3_open(path, &other);
    sqlite3_exec(other, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    aw_record_t more_recs[] = {rec("ann", 3, 0, "{\"b\":3}"), rec("ann", 3, 1, "{\"p\":3}")};
    CHECK(aw_store_append(s, more_recs, 2) == AW_EUNAVAILABLE);
    sqlite3_exec(other, "ROLLBACK", NULL, NULL, NULL);
    g = page(s, "ann", INT64_MAX, INT64_MAX, 10, &more);
    CHECK(g.n == 4);                              /* nothing of it was kept */
    CHECK(aw_store_append(s, more_recs, 2) == 0); /* and the retry goes through */
    sqlite3_close(other);
    aw_store_close(s);

    CHECK(aw_store_open(&s, uri, &opts) == 0); /* reopened: all still there */
    g = page(s, "ann", INT64_MAX, INT64_MAX, 10, &more);
    CHECK(g.n == 6 && g.seq[5] == 3 && g.sub[5] == 1);
    aw_store_close(s);

    /* Batches longer than one multi-row statement (and not a multiple of
     * it), retried over rows already stored: every row once, in order. */
    CHECK(aw_store_open(&s, uri, &opts) == 0);
    enum { BIG = 77 };
    static char texts[BIG][24];
    aw_record_t big[BIG];
    for (int i = 0; i < BIG; i++) {
        snprintf(texts[i], sizeof(texts[i]), "{\"n\":%d}", i);
        big[i] = rec("cat", i + 1, 0, texts[i]);
    }
    CHECK(aw_store_append(s, big, 40) == 0);
    CHECK(aw_store_append(s, big, BIG) == 0); /* the first 40 again, then the rest */
    g = page(s, "cat", INT64_MAX, INT64_MAX, 1, &more);
    CHECK(g.n == 1 && g.seq[0] == BIG && more == 1);
    int64_t before = INT64_MAX;
    int n = 0, in_order = 1;
    do {
        g = page(s, "cat", before, 0, 30, &more);
        for (int i = 0; i < g.n; i++) {
            char want[24];
            snprintf(want, sizeof(want), "{\"n\":%d}", (int)g.seq[i] - 1);
            in_order &= strcmp(g.json[i], want) == 0 && (i == 0 || g.seq[i] == g.seq[i - 1] + 1);
        }
        n += g.n;
        if (g.n != 0)
            before = g.seq[0];
    } while (more && g.n != 0);
    CHECK(n == BIG && in_order);
    aw_store_close(s);

    /* Flags come back as written. */
    CHECK(aw_store_open(&s, uri, &opts) == 0);
    aw_record_t flagged[] = {rec("dan", 1, 0, "{\"b\":1}"), rec("dan", 1, 1, "{\"p\":1}")};
    flagged[1].flags = AW_RECORD_PROTECTED;
    CHECK(aw_store_append(s, flagged, 2) == 0);
    g = page(s, "dan", INT64_MAX, INT64_MAX, 10, &more);
    CHECK(g.n == 2 && g.flags[0] == 0 && g.flags[1] == AW_RECORD_PROTECTED);
    aw_store_close(s);

    /* A file from before records had flags: opened, it gains the column,
     * its records read with none, and new ones keep theirs. */
    char old_path[160], old_uri[192];
    snprintf(old_path, sizeof(old_path), "%s/old.db", dir);
    snprintf(old_uri, sizeof(old_uri), "sqlite:%s", old_path);
    sqlite3 *raw;
    CHECK(sqlite3_open(old_path, &raw) == SQLITE_OK);
    CHECK(
        sqlite3_exec(
            raw,
            "CREATE TABLE history (id INTEGER PRIMARY KEY, user TEXT NOT NULL, seq INTEGER NOT NULL,"
            " sub INTEGER NOT NULL, ts INTEGER NOT NULL, dir INTEGER NOT NULL, json TEXT NOT NULL);"
            "CREATE UNIQUE INDEX history_key ON history (user, seq, sub);"
            "INSERT INTO history (user, seq, sub, ts, dir, json) VALUES ('eve', 1, 0, 1, 1, '{\"old\":1}');",
            NULL, NULL, NULL) == SQLITE_OK);
    sqlite3_close(raw);
    CHECK(aw_store_open(&s, old_uri, &opts) == 0);
    aw_record_t newer = rec("eve", 2, 0, "{\"new\":1}");
    newer.flags = AW_RECORD_PROTECTED;
    CHECK(aw_store_append(s, &newer, 1) == 0);
    g = page(s, "eve", INT64_MAX, INT64_MAX, 10, &more);
    CHECK(g.n == 2 && strcmp(g.json[0], "{\"old\":1}") == 0 && g.flags[0] == 0 &&
          g.flags[1] == AW_RECORD_PROTECTED);
    aw_store_close(s);
    CHECK(aw_store_open(&s, old_uri, &opts) == 0); /* and opens again as it is */
    aw_store_close(s);

    CHECK(aw_store_open(&s, "sqlite:/nonexistent-dir/x/h.db", &opts) == AW_EUNAVAILABLE);
    CHECK(aw_store_open(&s, "redis://nope", &opts) == AW_EINVAL);
    CHECK(aw_store_open(&s, "sqlite:", &opts) == AW_EINVAL);
    char cmd[160];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0)
        return 1;
    return check_exit("test_sqlite");
}
