/*
 * Unit tests of the history actor (actors/history.c) over a real SQLite file:
 * batches are written by size and by deadline, reads see earlier appends,
 * the tail and missed-message reads, pages cut at bot messages, and stop
 * writes everything it holds.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>
#include "actors/history.h"
#include "runtime/actor.h"
#include "runtime/error.h"
#include "tests/check.h"

static char dir[] = "/tmp/aw-test-history-XXXXXX";

/* A callback's answer, waited for by the test thread. */
typedef struct answer {
    uv_mutex_t lock;
    uv_cond_t cond;
    int done, err;
    int64_t seq, sub;
    aw_buf_t *body;
    aw_buf_t **frames;
    size_t n;
} answer_t;

static void answer_init(answer_t *a)
{
    memset(a, 0, sizeof(*a));
    uv_mutex_init(&a->lock);
    uv_cond_init(&a->cond);
}

static void answer_wait(answer_t *a)
{
    uv_mutex_lock(&a->lock);
    while (!a->done)
        uv_cond_wait(&a->cond, &a->lock);
    uv_mutex_unlock(&a->lock);
}

static void answer_done(answer_t *a)
{
    uv_mutex_lock(&a->lock);
    a->done = 1;
    uv_cond_signal(&a->cond);
    uv_mutex_unlock(&a->lock);
}

static void on_tail(int err, int64_t seq, int64_t sub, void *data)
{
    answer_t *a = data;
    a->err = err;
    a->seq = seq;
    a->sub = sub;
    answer_done(a);
}

static void on_body(int err, aw_buf_t *body, void *data)
{
    answer_t *a = data;
    a->err = err;
    a->body = body;
    answer_done(a);
}

static void on_frames(int err, aw_buf_t **frames, size_t n, void *data)
{
    answer_t *a = data;
    a->err = err;
    a->frames = frames;
    a->n = n;
    answer_done(a);
}

static aw_history_t *open_history(const char *name, size_t batch, unsigned flush_ms)
{
    char uri[256];
    aw_store_t *store;
    snprintf(uri, sizeof(uri), "sqlite:%s/%s", dir, name);
    if (aw_store_open(&store, uri, NULL) != 0) {
        fprintf(stderr, "cannot open %s\n", uri);
        exit(1);
    }
    aw_history_config_t cfg = {.batch = batch, .flush_ms = flush_ms};
    return aw_history_start(store, &cfg);
}

/* Appends one record whose JSON is {"t":"TEXT"}. */
static void add(aw_history_t *h, const char *user, int64_t seq, int64_t sub, const char *text)
{
    char json[128];
    int n = snprintf(json, sizeof(json), "{\"t\":\"%s\"}", text);
    aw_buf_t *b = aw_buf_new(json, (size_t)n);
    CHECK(aw_history_append(h, user, strlen(user), seq, sub, 1, sub == 0 ? AW_RECORD_OUT : AW_RECORD_IN, b) ==
          0);
    aw_buf_release(b);
}

static char *page(aw_history_t *h, const char *user, int64_t before, size_t limit, int botkit)
{
    answer_t a;
    answer_init(&a);
    CHECK(aw_history_page(h, user, strlen(user), before, limit, botkit, on_body, &a) == 0);
    answer_wait(&a);
    CHECK(a.err == 0);
    char *s = a.body != NULL ? strdup(a.body->data) : strdup("");
    aw_buf_release(a.body);
    return s;
}

static void expect_page(aw_history_t *h, const char *user, int64_t before, size_t limit, int botkit,
                        const char *want)
{
    char *got = page(h, user, before, limit, botkit);
    if (strcmp(got, want) != 0)
        fprintf(stderr, "page(%s, before %lld, limit %zu):\n  got  %s\n  want %s\n", user, (long long)before,
                limit, got, want);
    CHECK(strcmp(got, want) == 0);
    free(got);
}

static void test_deadline_flush(void)
{
    aw_history_t *h = open_history("deadline.db", 512, 5);
    add(h, "u", 1, 0, "a");
    aw_history_stats_t st;
    for (int i = 0; i < 200; i++) {
        aw_history_get_stats(h, &st);
        if (st.written == 1)
            break;
        usleep(5000);
    }
    CHECK(st.written == 1 && st.batches == 1); /* a lone record is written by its deadline */
    CHECK(aw_history_stop(h, 1000) == 0);
}

static void test_reads(void)
{
    aw_history_t *h = open_history("reads.db", 4, 10000); /* writes only when full or before a read */
    add(h, "u", 0, 1, "p0");
    add(h, "u", 1, 0, "b1");
    add(h, "u", 1, 1, "p1a");
    add(h, "u", 1, 2, "p1b");
    add(h, "u", 2, 0, "b2");
    add(h, "u", 3, 0, "b3");
    add(h, "u", 3, 1, "p3");
    add(h, "other", 9, 0, "x");
    answer_t a;
    answer_init(&a);
    CHECK(aw_history_tail(h, "u", 1, on_tail, &a) == 0);
    answer_wait(&a);
    CHECK(a.err == 0 && a.seq == 3 && a.sub == 1);
    answer_init(&a);
    CHECK(aw_history_tail(h, "nobody", 6, on_tail, &a) == 0);
    answer_wait(&a);
    CHECK(a.err == 0 && a.seq == 0 && a.sub == 0);

    answer_init(&a);
    CHECK(aw_history_missed(h, "u", 1, 1, 100, on_frames, &a) == 0);
    answer_wait(&a);
    CHECK(a.err == 0 && a.n == 2);
    CHECK(a.n == 2 && strcmp(a.frames[0]->data, "{\"t\":\"b2\"}") == 0 &&
          strcmp(a.frames[1]->data, "{\"t\":\"b3\"}") == 0);
    for (size_t i = 0; i < a.n; i++)
        aw_buf_release(a.frames[i]);
    free(a.frames);

    expect_page(h, "u", INT64_MAX, 3, 1,
                "{\"success\":true,\"history\":[{\"t\":\"b2\"},{\"t\":\"b3\"},{\"t\":\"p3\"}]}");
    /* pages cut at bot messages: the next page starts where this one ends */
    expect_page(h, "u", INT64_MAX, 3, 0,
                "{\"history\":[{\"t\":\"b2\"},{\"t\":\"b3\"},{\"t\":\"p3\"}],\"more\":true,\"before\":2}");
    expect_page(h, "u", 3, 3, 0, "{\"history\":[{\"t\":\"b2\"}],\"more\":true,\"before\":2}");
    expect_page(h, "u", 2, 3, 0,
                "{\"history\":[{\"t\":\"b1\"},{\"t\":\"p1a\"},{\"t\":\"p1b\"}],\"more\":true,\"before\":1}");
    expect_page(h, "u", 1, 3, 0, "{\"history\":[{\"t\":\"p0\"}],\"more\":false,\"before\":0}");
    CHECK(aw_history_stop(h, 1000) == 0);
}

static void test_page_groups(void)
{
    aw_history_t *h = open_history("groups.db", 512, 5);
    add(h, "g", 1, 0, "b1");
    for (int i = 1; i <= 5; i++) {
        char t[8];
        snprintf(t, sizeof(t), "p%d", i);
        add(h, "g", 1, i, t);
    }
    add(h, "g", 2, 0, "b2");
    /* before b2 with limit 2: only person messages fit, so the whole group comes */
    expect_page(h, "g", 2, 2, 0,
                "{\"history\":[{\"t\":\"b1\"},{\"t\":\"p1\"},{\"t\":\"p2\"},{\"t\":\"p3\"},{\"t\":\"p4\"},"
                "{\"t\":\"p5\"}],\"more\":false,\"before\":1}");
    expect_page(h, "g", 1, 10, 0, "{\"history\":[],\"more\":false,\"before\":0}");
    CHECK(aw_history_stop(h, 1000) == 0);
}

static void test_stop_writes_everything(void)
{
    aw_history_t *h = open_history("stop.db", 512, 10000);
    for (int i = 1; i <= 1000; i++)
        add(h, "s", i, 0, "m");
    CHECK(aw_history_stop(h, 5000) == 0);
    h = open_history("stop.db", 512, 5);
    answer_t a;
    answer_init(&a);
    CHECK(aw_history_tail(h, "s", 1, on_tail, &a) == 0);
    answer_wait(&a);
    CHECK(a.err == 0 && a.seq == 1000);
    aw_history_stats_t st;
    aw_history_get_stats(h, &st);
    CHECK(st.queued == 0);
    CHECK(aw_history_stop(h, 1000) == 0);
    /* after stop nothing more is accepted */
}

int main(void)
{
    if (mkdtemp(dir) == NULL)
        return 1;
    test_deadline_flush();
    test_reads();
    test_page_groups();
    test_stop_writes_everything();
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return check_exit("test_history");
}
