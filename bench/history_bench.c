/*
 * History benchmark: records per second into SQLite through the history actor
 * (batched transactions) against one transaction per record, in the same run
 * on the same machine, and the ratio between them.
 *
 *     history_bench [RECORDS] [DIR]
 *
 * Both runs write RECORDS records of ~200 bytes for 1,000 users into fresh
 * database files in DIR (default: a new folder under /tmp, removed after).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "actors/history.h"
#include "runtime/actor.h"
#include "runtime/error.h"
#include "store/store.h"

static double now_s(void)
{
    return (double)aw_now_ms() / 1000.0;
}

static aw_store_t *open_db(const char *dir, const char *name)
{
    char uri[4200];
    aw_store_t *s;
    snprintf(uri, sizeof(uri), "sqlite:%s/%s", dir, name);
    if (aw_store_open(&s, uri, NULL) != 0) {
        fprintf(stderr, "history_bench: cannot open %s\n", uri);
        exit(1);
    }
    return s;
}

static aw_buf_t *payload(size_t i)
{
    char json[256];
    int n =
        snprintf(json, sizeof(json),
                 "{\"type\":\"message\",\"text\":\"benchmark message number %zu, long enough to be typical\","
                 "\"user\":\"user-%zu\",\"channel\":\"websocket\",\"seq\":%zu,\"ts\":1700000000000}",
                 i, i % 1000, i / 1000 + 1);
    return aw_buf_new(json, (size_t)n);
}

static double run_batched(const char *dir, size_t n)
{
    aw_history_config_t cfg = {0};
    aw_history_t *h = aw_history_start(open_db(dir, "batched.db"), &cfg);
    double t0 = now_s();
    for (size_t i = 0; i < n; i++) {
        char user[32];
        int ulen = snprintf(user, sizeof(user), "user-%zu", i % 1000);
        aw_buf_t *json = payload(i);
        while (aw_history_append(h, user, (size_t)ulen, (int64_t)(i / 1000 + 1), 0, 1700000000000,
                                 AW_RECORD_OUT, json) == AW_EFULL)
            usleep(100);
        aw_buf_release(json);
    }
    aw_history_stats_t st;
    do {
        usleep(200);
        aw_history_get_stats(h, &st);
    } while (st.written < n);
    double t = now_s() - t0;
    aw_history_stop(h, 1000);
    return (double)n / t;
}

static double run_single(const char *dir, size_t n)
{
    aw_store_t *s = open_db(dir, "single.db");
    double t0 = now_s();
    for (size_t i = 0; i < n; i++) {
        char user[32];
        int ulen = snprintf(user, sizeof(user), "user-%zu", i % 1000);
        aw_buf_t *json = payload(i);
        aw_record_t r = {.user = user,
                         .user_len = (size_t)ulen,
                         .seq = (int64_t)(i / 1000 + 1),
                         .ts_ms = 1700000000000,
                         .direction = AW_RECORD_OUT,
                         .json = json->data,
                         .json_len = json->len};
        if (aw_store_append(s, &r, 1) != 0) {
            fprintf(stderr, "history_bench: a single write failed\n");
            exit(1);
        }
        aw_buf_release(json);
    }
    double t = now_s() - t0;
    aw_store_close(s);
    return (double)n / t;
}

int main(int argc, char **argv)
{
    size_t n = argc > 1 ? strtoull(argv[1], NULL, 10) : 200000;
    char tmpl[] = "/tmp/aw-history-bench-XXXXXX";
    const char *dir = argc > 2 ? argv[2] : mkdtemp(tmpl);
    if (n == 0 || dir == NULL) {
        fprintf(stderr, "usage: history_bench [RECORDS] [DIR]\n");
        return 2;
    }
    double batched = run_batched(dir, n);
    /* one transaction per record is slow: a tenth of the records is plenty */
    size_t n_single = n / 10 > 1000 ? n / 10 : n;
    double single = run_single(dir, n_single);
    printf("history_bench: %zu records batched through the history actor: %.0f records/s\n", n, batched);
    printf("history_bench: %zu records, one transaction each:              %.0f records/s\n", n_single,
           single);
    printf("history_bench: ratio batched / per-message: %.1fx (targets: >= 200000 records/s, >= 50x)\n",
           batched / single);
    if (argc <= 2) {
        char cmd[256];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        if (system(cmd) != 0)
            fprintf(stderr, "history_bench: could not remove %s\n", dir);
    }
    return 0;
}
