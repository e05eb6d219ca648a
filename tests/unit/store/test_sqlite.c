/*
 * What only the SQLite backend does, over real files (conformance.c holds it
 * to the contract every backend keeps): batches longer than its multi-row
 * INSERT, a file from before records had flags, and the URIs and paths it
 * cannot open.
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

/* Batches longer than one multi-row statement (and not a multiple of it),
 * retried over rows already stored: every row once, in order. */
static void test_long_batches(const char *uri, const aw_store_options_t *opts)
{
    aw_store_t *s;
    CHECK(aw_store_open(&s, uri, opts) == 0);
    CHECK(strcmp(aw_store_backend(s), "sqlite") == 0);
    enum { BIG = 77 };
    static char texts[BIG][24];
    aw_record_t big[BIG];
    for (int i = 0; i < BIG; i++) {
        snprintf(texts[i], sizeof(texts[i]), "{\"n\":%d}", i);
        big[i] = rec("cat", i + 1, 0, texts[i]);
    }
    CHECK(aw_store_append(s, big, 40) == 0);
    CHECK(aw_store_append(s, big, BIG) == 0); /* the first 40 again, then the rest */
    int more = -1;
    got_t g = page(s, "cat", INT64_MAX, INT64_MAX, 1, &more);
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
}

/* A file from before records had flags: opened, it gains the column, its
 * records read with none, and new ones keep theirs. */
static void test_old_file(const char *dir, const aw_store_options_t *opts)
{
    char path[160], uri[192];
    snprintf(path, sizeof(path), "%s/old.db", dir);
    snprintf(uri, sizeof(uri), "sqlite:%s", path);
    sqlite3 *raw;
    CHECK(sqlite3_open(path, &raw) == SQLITE_OK);
    CHECK(
        sqlite3_exec(
            raw,
            "CREATE TABLE history (id INTEGER PRIMARY KEY, user TEXT NOT NULL, seq INTEGER NOT NULL,"
            " sub INTEGER NOT NULL, ts INTEGER NOT NULL, dir INTEGER NOT NULL, json TEXT NOT NULL);"
            "CREATE UNIQUE INDEX history_key ON history (user, seq, sub);"
            "INSERT INTO history (user, seq, sub, ts, dir, json) VALUES ('eve', 1, 0, 1, 1, '{\"old\":1}');",
            NULL, NULL, NULL) == SQLITE_OK);
    sqlite3_close(raw);
    aw_store_t *s;
    CHECK(aw_store_open(&s, uri, opts) == 0);
    aw_record_t newer = rec("eve", 2, 0, "{\"new\":1}");
    newer.flags = AW_RECORD_PROTECTED;
    CHECK(aw_store_append(s, &newer, 1) == 0);
    int more;
    got_t g = page(s, "eve", INT64_MAX, INT64_MAX, 10, &more);
    CHECK(g.n == 2 && strcmp(g.json[0], "{\"old\":1}") == 0 && g.flags[0] == 0 &&
          g.flags[1] == AW_RECORD_PROTECTED);
    aw_store_close(s);
    CHECK(aw_store_open(&s, uri, opts) == 0); /* and opens again as it is */
    aw_store_close(s);
}

int main(void)
{
    char dir[] = "/tmp/aw-test-sqlite-XXXXXX", uri[160];
    if (mkdtemp(dir) == NULL)
        return 1;
    snprintf(uri, sizeof(uri), "sqlite:%s/h.db", dir);
    aw_store_options_t opts = {.timeout_ms = 100};
    test_long_batches(uri, &opts);
    test_old_file(dir, &opts);

    aw_store_t *s;
    CHECK(aw_store_open(&s, "sqlite:/nonexistent-dir/x/h.db", &opts) == AW_EUNAVAILABLE);
    CHECK(aw_store_open(&s, "sqlite:", &opts) == AW_EINVAL);
    char cmd[160];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0)
        return 1;
    return check_exit("test_sqlite");
}
