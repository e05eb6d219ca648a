/*
 * History benchmark: records per second into SQLite through the history actor
 * (batched transactions) against one transaction per record, in the same run
 * on the same machine, and the ratio between them.
 *
 *     history_bench [-r RUNS] [-m both|batched|single] [-s SECONDS] [RECORDS] [DIR]
 *
 * Each batched run writes RECORDS records (default 200,000) of ~200 bytes
 * for 1,000 users, interleaved as a busy server sees them, through
 * aw_history_append into a fresh database file in DIR (default: a new folder
 * under /tmp, removed after), timed from the first append until the store has
 * acknowledged the last record: the producer outpaces the store, so this is
 * the actor's capacity, with transactions of up to 64 batches of 512 (the
 * backlog path of actors/history.c). Each single run writes records one
 * transaction each straight into the store, for at most RECORDS / 10 records
 * or SECONDS seconds (default 1), whichever comes first. The runs of the two
 * modes alternate (RUNS each, default 5), so that a change in the machine's
 * load touches both; the best and the median of each mode are printed, with
 * the process's CPU time per record, which other loads on the machine hardly
 * change. The ratio and the verdicts use the best run of each mode.
 *
 * Payloads and user ids are built before the clock starts: what is timed is
 * the server's path (the actor's queue, the batch, SQLite), not the producer.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>
#include "actors/history.h"
#include "runtime/error.h"
#include "store/store.h"

#define USERS 1000
#define RUNS_MAX 15

typedef struct workload {
    size_t n;
    aw_buf_t **json;
    char user[USERS][16];
    size_t user_len[USERS];
} workload_t;

typedef struct result {
    double rate;    /* records/s */
    double cpu_us;  /* process CPU (user + system) per record, µs */
    size_t records; /* written in this run */
} result_t;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/* Opens DIR/NAME afresh: a run never finds the rows of an earlier one. */
static aw_store_t *open_db(const char *dir, const char *name)
{
    char path[4200], uri[4300];
    static const char *const suffix[] = {"", "-wal", "-shm"};
    for (size_t i = 0; i < 3; i++) {
        snprintf(path, sizeof(path), "%s/%s%s", dir, name, suffix[i]);
        unlink(path);
    }
    snprintf(uri, sizeof(uri), "sqlite:%s/%s", dir, name);
    aw_store_t *s;
    if (aw_store_open(&s, uri, NULL) != 0) {
        fprintf(stderr, "history_bench: cannot open %s\n", uri);
        exit(1);
    }
    return s;
}

static void workload_init(workload_t *w, size_t n)
{
    w->n = n;
    w->json = malloc(n * sizeof(*w->json));
    if (w->json == NULL) {
        fprintf(stderr, "history_bench: out of memory\n");
        exit(1);
    }
    for (size_t u = 0; u < USERS; u++)
        w->user_len[u] = (size_t)snprintf(w->user[u], sizeof(w->user[u]), "user-%zu", u);
    for (size_t i = 0; i < n; i++) {
        char json[256];
        int len = snprintf(
            json, sizeof(json),
            "{\"type\":\"message\",\"text\":\"benchmark message number %zu, long enough to be typical\","
            "\"user\":\"user-%zu\",\"channel\":\"websocket\",\"seq\":%zu,\"ts\":1700000000000}",
            i, i % USERS, i / USERS + 1);
        w->json[i] = aw_buf_new(json, (size_t)len);
    }
}

static void workload_free(workload_t *w)
{
    for (size_t i = 0; i < w->n; i++)
        aw_buf_release(w->json[i]);
    free(w->json);
}

static result_t run_batched(const workload_t *w, const char *dir)
{
    aw_history_config_t cfg = {0};
    aw_history_t *h = aw_history_start(open_db(dir, "batched.db"), &cfg);
    double c0 = cpu_s(), t0 = now_s();
    for (size_t i = 0; i < w->n; i++) {
        size_t u = i % USERS;
        while (aw_history_append(h, w->user[u], w->user_len[u], (int64_t)(i / USERS + 1), 0, 1700000000000,
                                 AW_RECORD_OUT, 0, w->json[i]) == AW_EFULL)
            usleep(100);
    }
    aw_history_stats_t st;
    do {
        usleep(200);
        aw_history_get_stats(h, &st);
    } while (st.written < w->n);
    result_t r = {(double)w->n / (now_s() - t0), (cpu_s() - c0) * 1e6 / (double)w->n, w->n};
    aw_history_stop(h, 1000);
    return r;
}

static result_t run_single(const workload_t *w, const char *dir, size_t max, double seconds)
{
    aw_store_t *s = open_db(dir, "single.db");
    double c0 = cpu_s(), t0 = now_s(), t = 0;
    size_t i;
    for (i = 0; i < max && (i % 64 != 0 || (t = now_s() - t0) < seconds); i++) {
        size_t u = i % USERS;
        aw_record_t r = {.user = w->user[u],
                         .user_len = w->user_len[u],
                         .seq = (int64_t)(i / USERS + 1),
                         .ts_ms = 1700000000000,
                         .direction = AW_RECORD_OUT,
                         .json = w->json[i]->data,
                         .json_len = w->json[i]->len};
        if (aw_store_append(s, &r, 1) != 0) {
            fprintf(stderr, "history_bench: a single write failed\n");
            exit(1);
        }
    }
    t = now_s() - t0;
    result_t r = {(double)i / t, (cpu_s() - c0) * 1e6 / (double)i, i};
    aw_store_close(s);
    return r;
}

static int by_rate(const void *a, const void *b)
{
    double x = ((const result_t *)a)->rate, y = ((const result_t *)b)->rate;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* Sorts `r` best first and prints the best and the median. */
static void report(const char *what, result_t *r, size_t runs)
{
    qsort(r, runs, sizeof(*r), by_rate);
    printf("history_bench:   %-8s best %8.0f records/s, median %8.0f records/s, %5.1f us CPU/record (best "
           "run), %zu run(s) of %zu records\n",
           what, r[0].rate, r[runs / 2].rate, r[0].cpu_us, runs, r[0].records);
}

static void usage(void)
{
    fprintf(stderr, "usage: history_bench [-r RUNS] [-m both|batched|single] [-s SECONDS] [RECORDS] [DIR]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    size_t runs = 5;
    double seconds = 1;
    int batched = 1, single = 1, c;
    while ((c = getopt(argc, argv, "r:m:s:")) != -1) {
        if (c == 'r')
            runs = strtoul(optarg, NULL, 10);
        else if (c == 's')
            seconds = strtod(optarg, NULL);
        else if (c == 'm' && strcmp(optarg, "both") != 0) {
            batched = strcmp(optarg, "batched") == 0;
            single = strcmp(optarg, "single") == 0;
        } else if (c != 'm')
            usage();
    }
    size_t n = optind < argc ? strtoull(argv[optind], NULL, 10) : 200000;
    char tmpl[] = "/tmp/aw-history-bench-XXXXXX";
    const char *dir = optind + 1 < argc ? argv[optind + 1] : mkdtemp(tmpl);
    if (n == 0 || dir == NULL || runs == 0 || runs > RUNS_MAX || seconds <= 0 || (!batched && !single))
        usage();

    workload_t w;
    workload_init(&w, n);
    size_t n_single = n / 10 > 1000 ? n / 10 : n;
    result_t rb[RUNS_MAX], rs[RUNS_MAX];
    for (size_t i = 0; i < runs; i++) {
        if (batched)
            rb[i] = run_batched(&w, dir);
        if (single)
            rs[i] = run_single(&w, dir, n_single, seconds);
    }
    workload_free(&w);

    printf("history_bench: SQLite, synchronous=FULL, %zu users, payloads built before timing\n",
           (size_t)USERS);
    if (batched)
        report("batched", rb, runs);
    if (single)
        report("single", rs, runs);
    if (batched)
        printf(
            "history_bench: %zu records batched through the history actor: %.0f records/s (%s: >= 200000)\n",
            n, rb[0].rate, rb[0].rate >= 200000 ? "met" : "NOT met");
    if (single)
        printf("history_bench: %zu records, one transaction each:              %.0f records/s\n",
               rs[0].records, rs[0].rate);
    if (batched && single) {
        double ratio = rb[0].rate / rs[0].rate;
        printf("history_bench: ratio batched / per-message: %.1fx (%s: >= 50x; median runs: %.1fx)\n", ratio,
               ratio >= 50 ? "met" : "NOT met", rb[runs / 2].rate / rs[runs / 2].rate);
    }
    if (optind + 1 >= argc) {
        char cmd[256];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        if (system(cmd) != 0)
            fprintf(stderr, "history_bench: could not remove %s\n", dir);
    }
    return 0;
}
