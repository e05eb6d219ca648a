/*
 * Unit tests of the history actor (actors/history.c) over a real SQLite file:
 * batches are written by size and by deadline, reads see earlier appends,
 * the tail and missed-message reads, pages cut at bot messages, stop writes
 * everything it holds, and the reads a session waits on answer while the
 * store refuses writes or reads, and identity claims: durable before they
 * are answered, first-writer-wins, never shown; and a full batch the store
 * refuses sleeps until its retry.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>
#include <uv.h>
#include "actors/history.h"
#include "runtime/actor.h"
#include "runtime/error.h"
#include "tests/check.h"
#include "tests/unit/actors/faulty_store.h"

static char dir[] = "/tmp/aw-test-history-XXXXXX";

/* A callback's answer, waited for by the test thread. */
typedef struct answer {
    uv_mutex_t lock;
    uv_cond_t cond;
    int done, err;
    int64_t seq, sub;
    int protected_id, known;
    int64_t reserved; /* a tail's */
    size_t n_recent;
    char *recent0; /* the newest of the tail's person's messages */
    int cut;       /* a page's */
    char *page;    /* a page, as on_page writes it */
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

static void on_tail(int err, const aw_history_tail_t *tail, void *data)
{
    answer_t *a = data;
    a->err = err;
    if (tail != NULL) {
        a->seq = tail->seq;
        a->sub = tail->sub;
        a->reserved = tail->reserved;
        a->protected_id = (tail->flags & AW_TAIL_PROTECTED) != 0;
        a->known = (tail->flags & AW_TAIL_KNOWN) != 0;
        a->n_recent = tail->n_recent;
        a->recent0 = tail->n_recent != 0 ? strndup(tail->recent[0]->data, tail->recent[0]->len) : NULL;
    }
    answer_done(a);
}

static void on_done(int err, void *data)
{
    answer_t *a = data;
    a->err = err;
    answer_done(a);
}

static int answered(answer_t *a)
{
    uv_mutex_lock(&a->lock);
    int done = a->done;
    uv_mutex_unlock(&a->lock);
    return done;
}

/* A page as the test compares it: its records in brackets, and with
 * AW_HISTORY_PAGE_BEFORE whether there are more and where the next starts:
 * [{"t":"b1"},{"t":"p1"}] more=true before=1. */
static void on_page(int err, const aw_history_page_t *page, void *data)
{
    answer_t *a = data;
    a->err = err;
    a->page = NULL;
    if (page != NULL) {
        size_t len = 64;
        for (size_t i = 0; i < page->n; i++)
            len += page->records[i]->len + 1;
        a->page = calloc(1, len);
        strcat(a->page, "[");
        for (size_t i = 0; i < page->n; i++) {
            if (i != 0)
                strcat(a->page, ",");
            strcat(a->page, page->records[i]->data);
        }
        strcat(a->page, "]");
        if (a->cut == AW_HISTORY_PAGE_BEFORE)
            snprintf(a->page + strlen(a->page), 64, " more=%s before=%lld", page->more ? "true" : "false",
                     (long long)page->before);
    }
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

/* Appends one record whose JSON is {"t":"TEXT"}, with `flags`. */
static void add_flagged(aw_history_t *h, const char *user, int64_t seq, int64_t sub, const char *text,
                        int flags)
{
    char json[128];
    int n = snprintf(json, sizeof(json), "{\"t\":\"%s\"}", text);
    aw_buf_t *b = aw_buf_new(json, (size_t)n);
    CHECK(aw_history_append(h, user, strlen(user), seq, sub, 1, sub == 0 ? AW_RECORD_OUT : AW_RECORD_IN,
                            flags, b) == 0);
    aw_buf_release(b);
}

static void add(aw_history_t *h, const char *user, int64_t seq, int64_t sub, const char *text)
{
    add_flagged(h, user, seq, sub, text, 0);
}

static char *page(aw_history_t *h, const char *user, int64_t before, size_t limit, int cut)
{
    answer_t a;
    answer_init(&a);
    a.cut = cut;
    CHECK(aw_history_page(h, user, strlen(user), before, limit, cut, on_page, &a) == 0);
    answer_wait(&a);
    CHECK(a.err == 0);
    return a.page != NULL ? a.page : strdup("");
}

static void expect_page(aw_history_t *h, const char *user, int64_t before, size_t limit, int cut,
                        const char *want)
{
    char *got = page(h, user, before, limit, cut);
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

    expect_page(h, "u", INT64_MAX, 3, AW_HISTORY_PAGE_LATEST,
                "[{\"t\":\"b2\"},{\"t\":\"b3\"},{\"t\":\"p3\"}]");
    /* pages cut at bot messages: the next page starts where this one ends */
    expect_page(h, "u", INT64_MAX, 3, AW_HISTORY_PAGE_BEFORE,
                "[{\"t\":\"b2\"},{\"t\":\"b3\"},{\"t\":\"p3\"}] more=true before=2");
    expect_page(h, "u", 3, 3, AW_HISTORY_PAGE_BEFORE, "[{\"t\":\"b2\"}] more=true before=2");
    expect_page(h, "u", 2, 3, AW_HISTORY_PAGE_BEFORE,
                "[{\"t\":\"b1\"},{\"t\":\"p1a\"},{\"t\":\"p1b\"}] more=true before=1");
    expect_page(h, "u", 1, 3, AW_HISTORY_PAGE_BEFORE, "[{\"t\":\"p0\"}] more=false before=0");
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
    expect_page(h, "g", 2, 2, AW_HISTORY_PAGE_BEFORE,
                "[{\"t\":\"b1\"},{\"t\":\"p1\"},{\"t\":\"p2\"},{\"t\":\"p3\"},{\"t\":\"p4\"},"
                "{\"t\":\"p5\"}] more=false before=1");
    expect_page(h, "g", 1, 10, AW_HISTORY_PAGE_BEFORE, "[] more=false before=0");
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

static aw_history_t *open_faulty_journal(const char *name, faulty_t **out, const char *journal, int fail)
{
    char uri[256];
    snprintf(uri, sizeof(uri), "sqlite:%s/%s", dir, name);
    faulty_t *f = faulty_open(uri, fail);
    *out = f;
    aw_history_config_t cfg = {.batch = 512, .flush_ms = 1, .journal = journal};
    return aw_history_start(&f->super, &cfg);
}

static aw_history_t *open_faulty_batch(const char *name, faulty_t **out, size_t batch)
{
    char uri[256];
    snprintf(uri, sizeof(uri), "sqlite:%s/%s", dir, name);
    faulty_t *f = faulty_open(uri, 0);
    *out = f;
    aw_history_config_t cfg = {.batch = batch, .flush_ms = 1};
    return aw_history_start(&f->super, &cfg);
}

static aw_history_t *open_faulty(const char *name, faulty_t **out)
{
    return open_faulty_batch(name, out, 512);
}

static void tail(aw_history_t *h, const char *user, answer_t *a)
{
    answer_init(a);
    CHECK(aw_history_tail(h, user, strlen(user), on_tail, a) == 0);
    answer_wait(a);
}

static void wait_written(aw_history_t *h, uint64_t n)
{
    aw_history_stats_t st;
    for (int i = 0; i < 400; i++) {
        aw_history_get_stats(h, &st);
        if (st.written >= n)
            return;
        usleep(5000);
    }
    CHECK(st.written >= n);
}

/* A store that refuses writes held up every first turn: the last key was read
 * only after the batch was written. Now it is read as the store is, plus what
 * is held; and with reads refused too, a user this process numbered is still
 * answered exactly, from memory, while one it never saw is "unavailable". */
static void test_tail_does_not_wait_for_a_failing_write(void)
{
    faulty_t *f;
    aw_history_t *h = open_faulty("faulty.db", &f);
    add(h, "old", 1, 0, "o1");
    add(h, "old", 2, 0, "o2");
    wait_written(h, 2);
    __atomic_store_n(&f->fail_writes, 1, __ATOMIC_SEQ_CST);
    add(h, "old", 3, 0, "o3");
    add(h, "old", 3, 1, "o3p");
    add(h, "u", 1, 0, "u1");
    answer_t a;
    tail(h, "old", &a); /* the store says 2, the batch holds (3, 1) */
    CHECK(a.err == 0 && a.seq == 3 && a.sub == 1);
    tail(h, "new", &a); /* readable store, nothing stored or held: a new user */
    CHECK(a.err == 0 && a.seq == 0 && a.sub == 0);
    answer_init(&a);
    CHECK(aw_history_missed(h, "old", 3, 1, 100, on_frames, &a) == 0);
    answer_wait(&a);
    CHECK(a.err == 0 && a.n == 2); /* o2 from the store, o3 from the batch */
    CHECK(a.n == 2 && strcmp(a.frames[0]->data, "{\"t\":\"o2\"}") == 0 &&
          strcmp(a.frames[1]->data, "{\"t\":\"o3\"}") == 0);
    for (size_t i = 0; i < a.n; i++)
        aw_buf_release(a.frames[i]);
    free(a.frames);

    __atomic_store_n(&f->fail_reads, 1, __ATOMIC_SEQ_CST);
    tail(h, "u", &a);
    CHECK(a.err == 0 && a.seq == 1 && a.sub == 0);
    tail(h, "old", &a);
    CHECK(a.err == 0 && a.seq == 3 && a.sub == 1);
    tail(h, "stranger", &a); /* may have a stored history nobody can see now */
    CHECK(a.err == AW_EUNAVAILABLE && a.seq == 0 && a.sub == 0);

    /* the store returns: everything held is written once, and keys go on */
    __atomic_store_n(&f->fail_reads, 0, __ATOMIC_SEQ_CST);
    __atomic_store_n(&f->fail_writes, 0, __ATOMIC_SEQ_CST);
    wait_written(h, 5);
    tail(h, "old", &a);
    CHECK(a.err == 0 && a.seq == 3 && a.sub == 1);
    CHECK(aw_history_stop(h, 1000) == 0);
}

static void tail_of(aw_history_t *h, const char *user, answer_t *a)
{
    answer_init(a);
    CHECK(aw_history_tail(h, user, strlen(user), on_tail, a) == 0);
    answer_wait(a);
}

/* Whether a user's id is protected comes back with the tail, from the
 * newest record, whether it is still held or stored, and after a restart. */
static void test_tail_says_protected(void)
{
    aw_history_t *h = open_history("protected.db", 1000, 10000); /* holds everything until a read or stop */
    add(h, "p", 1, 0, "before proof");
    add_flagged(h, "p", 1, 1, "proved", AW_RECORD_PROTECTED);
    add(h, "q", 1, 0, "never proved");
    answer_t a;
    tail_of(h, "p", &a);
    CHECK(a.err == 0 && a.seq == 1 && a.sub == 1 && a.protected_id == 1);
    tail_of(h, "q", &a);
    CHECK(a.err == 0 && a.seq == 1 && a.protected_id == 0);
    tail_of(h, "nobody", &a);
    CHECK(a.err == 0 && a.seq == 0 && a.protected_id == 0);
    CHECK(aw_history_stop(h, 1000) == 0);

    h = open_history("protected.db", 1000, 10000); /* a restart: only the store knows */
    tail_of(h, "p", &a);
    CHECK(a.err == 0 && a.seq == 1 && a.sub == 1 && a.protected_id == 1);
    tail_of(h, "q", &a);
    CHECK(a.err == 0 && a.seq == 1 && a.protected_id == 0);
    add_flagged(h, "q", 2, 0, "proved now", AW_RECORD_PROTECTED); /* held, newer than the store */
    tail_of(h, "q", &a);
    CHECK(a.err == 0 && a.seq == 2 && a.protected_id == 1);
    CHECK(aw_history_stop(h, 1000) == 0);
}

static int claim_of(aw_history_t *h, const char *user)
{
    answer_t a;
    answer_init(&a);
    CHECK(aw_history_claim(h, user, strlen(user), on_done, &a) == 0);
    answer_wait(&a);
    return a.err;
}

/* A claim is answered once durable; the first one of an id wins, in this
 * process, after a restart, and against another process on the same store;
 * it makes the id known to the tail and is never shown in history. */
static void test_claims(void)
{
    aw_history_t *h = open_history("claims.db", 512, 5);
    answer_t a;
    tail_of(h, "c", &a);
    CHECK(a.err == 0 && !a.known);
    CHECK(claim_of(h, "c") == 0);
    tail_of(h, "c", &a);
    CHECK(a.err == 0 && a.known && a.seq == 0 && a.sub == 0 && !a.protected_id);
    CHECK(claim_of(h, "c") == AW_EEXIST);
    add(h, "c", 0, 1, "p0");
    add(h, "c", 1, 0, "b1");
    expect_page(h, "c", INT64_MAX, 10, AW_HISTORY_PAGE_LATEST, "[{\"t\":\"p0\"},{\"t\":\"b1\"}]");
    expect_page(h, "c", INT64_MAX, 10, AW_HISTORY_PAGE_BEFORE, "[{\"t\":\"b1\"}] more=true before=1");
    expect_page(h, "c", 1, 10, AW_HISTORY_PAGE_BEFORE, "[{\"t\":\"p0\"}] more=false before=0");
    answer_init(&a);
    CHECK(aw_history_missed(h, "c", 1, 0, 100, on_frames, &a) == 0);
    answer_wait(&a);
    CHECK(a.err == 0 && a.n == 1 && strcmp(a.frames[0]->data, "{\"t\":\"b1\"}") == 0);
    for (size_t i = 0; i < a.n; i++)
        aw_buf_release(a.frames[i]);
    free(a.frames);

    /* another process on the same store: its claim of the id loses */
    aw_history_t *other = open_history("claims.db", 512, 5);
    CHECK(claim_of(other, "c") == AW_EEXIST);
    CHECK(claim_of(other, "d") == 0);
    CHECK(claim_of(h, "d") == AW_EEXIST);
    CHECK(aw_history_stop(other, 1000) == 0);
    CHECK(aw_history_stop(h, 1000) == 0);

    h = open_history("claims.db", 512, 5); /* a restart: only the store knows */
    tail_of(h, "d", &a);
    CHECK(a.err == 0 && a.known && a.seq == 0);
    tail_of(h, "e", &a);
    CHECK(a.err == 0 && !a.known);
    CHECK(claim_of(h, "d") == AW_EEXIST);
    CHECK(aw_history_stop(h, 1000) == 0);
}

/* A claim waits while the store refuses it, is counted as a read meanwhile,
 * and is answered 0 once written, even when a write that succeeded was
 * reported failed (the retry finds its own claim stored); a stop answers a
 * claim that could not be written AW_ESTOPPED, and drops it (no token was
 * issued for it): it is no history lost. */
static void test_claim_faults(void)
{
    faulty_t *f;
    aw_history_t *h = open_faulty("claimfaults.db", &f);
    __atomic_store_n(&f->fail_writes, 1, __ATOMIC_SEQ_CST);
    answer_t a;
    answer_init(&a);
    CHECK(aw_history_claim(h, "w", 1, on_done, &a) == 0);
    usleep(100000);
    CHECK(!answered(&a));
    aw_history_stats_t st;
    aw_history_get_stats(h, &st);
    CHECK(st.reads == 1 && st.queued == 1);
    __atomic_store_n(&f->fail_writes, 0, __ATOMIC_SEQ_CST);
    answer_wait(&a);
    CHECK(a.err == 0);
    /* counted until the callback has returned, a moment after it answered */
    for (int i = 0; i < 400; i++) {
        aw_history_get_stats(h, &st);
        if (st.reads == 0)
            break;
        usleep(5000);
    }
    CHECK(st.reads == 0);

    __atomic_store_n(&f->lie_writes, 1, __ATOMIC_SEQ_CST);
    CHECK(claim_of(h, "l") == 0);
    CHECK(__atomic_load_n(&f->lie_writes, __ATOMIC_SEQ_CST) == 0);
    CHECK(claim_of(h, "l") == AW_EEXIST);

    __atomic_store_n(&f->fail_writes, 1, __ATOMIC_SEQ_CST);
    answer_init(&a);
    CHECK(aw_history_claim(h, "s", 1, on_done, &a) == 0);
    CHECK(aw_history_stop(h, 100) == 0);
    CHECK(answered(&a) && a.err == AW_ESTOPPED);
}

static int exists(const char *path)
{
    return access(path, F_OK) == 0;
}

/* A stop while the store takes no writes keeps what it holds in the
 * journal; the next start writes it to the store before it returns, or
 * holds it (visible to the reads) until the store takes it, and removes the
 * journal only then. Claims are not journaled. */
static void test_journal(void)
{
    char journal[300];
    snprintf(journal, sizeof(journal), "%s/history.journal", dir);
    faulty_t *f;
    aw_history_t *h = open_faulty_journal("journal.db", &f, journal, 0);
    add(h, "j", 1, 0, "stored");
    wait_written(h, 1);
    __atomic_store_n(&f->fail_writes, 1, __ATOMIC_SEQ_CST);
    add(h, "j", 1, 1, "held p");
    add(h, "j", 2, 0, "held b");
    add(h, "k", 1, 0, "other");
    answer_t a;
    answer_init(&a);
    CHECK(aw_history_claim(h, "new", 3, on_done, &a) == 0);
    CHECK(aw_history_stop(h, 50) == 0); /* nothing lost: journaled */
    CHECK(answered(&a) && a.err == AW_ESTOPPED);
    CHECK(exists(journal));

    /* a start while the store still refuses: held, readable, journal kept */
    h = open_faulty_journal("journal.db", &f, journal, 1);
    answer_t t;
    tail_of(h, "j", &t);
    CHECK(t.err == 0 && t.seq == 2 && t.sub == 0);
    CHECK(exists(journal));
    __atomic_store_n(&f->fail_writes, 0, __ATOMIC_SEQ_CST);
    wait_written(h, 3);
    for (int i = 0; i < 200 && exists(journal); i++)
        usleep(5000);
    CHECK(!exists(journal));
    expect_page(h, "j", INT64_MAX, 10, AW_HISTORY_PAGE_LATEST,
                "[{\"t\":\"stored\"},{\"t\":\"held p\"},{\"t\":\"held b\"}]");
    tail_of(h, "new", &t);
    CHECK(t.err == 0 && !t.known); /* the claim was dropped, not journaled */
    /* and again: stop while down, start while up: written before the start returns */
    __atomic_store_n(&f->fail_writes, 1, __ATOMIC_SEQ_CST);
    add(h, "k", 2, 0, "later");
    CHECK(aw_history_stop(h, 50) == 0);
    CHECK(exists(journal));
    h = open_faulty_journal("journal.db", &f, journal, 0);
    CHECK(!exists(journal));
    expect_page(h, "k", INT64_MAX, 10, AW_HISTORY_PAGE_LATEST, "[{\"t\":\"other\"},{\"t\":\"later\"}]");
    CHECK(aw_history_stop(h, 1000) == 0);

    /* a damaged journal is set aside, and nothing of it is written */
    FILE *fp = fopen(journal, "w");
    CHECK(fp != NULL);
    fputs("AWJ1 not a journal", fp);
    fclose(fp);
    h = open_faulty_journal("journal.db", &f, journal, 0);
    char bad[320];
    snprintf(bad, sizeof(bad), "%s.bad", journal);
    CHECK(!exists(journal) && exists(bad));
    CHECK(aw_history_stop(h, 1000) == 0);
}

static double cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/* With a whole batch held and the store refusing writes, the history thread
 * spun until each retry (up to 5 s apart), a core's worth of CPU for as long
 * as the store was down: it did not sleep while the batch was full, and
 * appends could not make it any fuller. It sleeps until the retry now. */
static void test_full_batch_sleeps_until_the_retry(void)
{
    faulty_t *f;
    aw_history_t *h = open_faulty_batch("spin.db", &f, 8);
    __atomic_store_n(&f->fail_writes, 1, __ATOMIC_SEQ_CST);
    for (int i = 1; i <= 20; i++)
        add(h, "u", i, 0, "m");
    aw_history_stats_t st;
    for (int i = 0; i < 400; i++) {
        aw_history_get_stats(h, &st);
        if (st.failures != 0)
            break;
        usleep(5000);
    }
    CHECK(st.failures != 0);
    /* This thread sleeps: the process's CPU time is the history thread's.
     * Spinning, it took a core, or its share of a loaded machine's; asleep,
     * a few retries take a few ms. */
    double cpu = cpu_seconds();
    usleep(1000000);
    cpu = cpu_seconds() - cpu;
    CHECK(cpu < 0.1);
    __atomic_store_n(&f->fail_writes, 0, __ATOMIC_SEQ_CST);
    wait_written(h, 20);
    CHECK(aw_history_stop(h, 1000) == 0);
}

static int reserve_of(aw_history_t *h, const char *user, int64_t top)
{
    answer_t a;
    answer_init(&a);
    CHECK(aw_history_reserve(h, user, strlen(user), top, 0, on_done, &a) == 0);
    answer_wait(&a);
    return a.err;
}

/* Seq reservations: the first writer of a block wins, in this process and
 * against another on the same store; the tail lets a session number inside
 * a block only while the block is this process's own and nobody reserved
 * above it, and otherwise numbers above the newest reservation; after a
 * restart (a crash between reserving and using included) numbering goes on
 * above every reservation; reservations are never shown. */
static void test_reservations(void)
{
    aw_history_t *h = open_history("reserve.db", 512, 5);
    answer_t a;
    tail_of(h, "r", &a); /* a session reads the tail first */
    CHECK(a.err == 0 && a.seq == 0 && a.reserved == 0);
    CHECK(reserve_of(h, "r", 64) == 0);
    tail_of(h, "r", &a);
    CHECK(a.err == 0 && a.seq == 0 && a.reserved == 64);
    add(h, "r", 1, 0, "b1");
    add(h, "r", 1, 1, "p1");
    tail_of(h, "r", &a);
    CHECK(a.err == 0 && a.seq == 1 && a.sub == 1 && a.reserved == 64);
    CHECK(reserve_of(h, "r", 64) == AW_EEXIST); /* a block is reserved once */

    aw_history_t *other = open_history("reserve.db", 512, 5);
    tail_of(other, "r", &a); /* not its block: above it */
    CHECK(a.err == 0 && a.seq == 64 && a.sub == 0 && a.reserved == 0);
    CHECK(reserve_of(other, "r", 128) == 0);
    tail_of(h, "r", &a); /* someone reserved above this process's block */
    CHECK(a.err == 0 && a.seq == 128 && a.sub == 0 && a.reserved == 0);
    CHECK(reserve_of(h, "r", 128) == AW_EEXIST);
    CHECK(aw_history_stop(other, 1000) == 0);

    expect_page(h, "r", INT64_MAX, 10, AW_HISTORY_PAGE_LATEST, "[{\"t\":\"b1\"},{\"t\":\"p1\"}]");
    expect_page(h, "r", INT64_MAX, 1, AW_HISTORY_PAGE_LATEST, "[{\"t\":\"p1\"}]");
    expect_page(h, "r", INT64_MAX, 10, AW_HISTORY_PAGE_BEFORE,
                "[{\"t\":\"b1\"},{\"t\":\"p1\"}] more=false before=1");
    answer_init(&a);
    CHECK(aw_history_missed(h, "r", 1, 0, 100, on_frames, &a) == 0);
    answer_wait(&a);
    CHECK(a.err == 0 && a.n == 1 && strcmp(a.frames[0]->data, "{\"t\":\"b1\"}") == 0);
    for (size_t i = 0; i < a.n; i++)
        aw_buf_release(a.frames[i]);
    free(a.frames);
    CHECK(reserve_of(h, "q", 64) == 0); /* reserved, never used, then a crash */
    CHECK(aw_history_stop(h, 1000) == 0);

    h = open_history("reserve.db", 512, 5);
    tail_of(h, "r", &a);
    CHECK(a.err == 0 && a.seq == 128 && a.reserved == 0);
    tail_of(h, "q", &a);
    CHECK(a.err == 0 && a.seq == 64 && a.reserved == 0);
    CHECK(aw_history_stop(h, 1000) == 0);
}

/* A reservation waits while the store refuses writes (with no local file),
 * is answered 0 after a write that succeeded was reported failed (reading it
 * back finds it ours); with a local file it is answered at once while the
 * store is down, written to the store when it is back (the file is emptied
 * then), and a file a crash left makes a restarted history number above it. */
static void test_reservation_faults(void)
{
    faulty_t *f;
    aw_history_t *h = open_faulty("reservefaults.db", &f);
    faulty_set(&f->fail_writes, 1);
    answer_t a;
    answer_init(&a);
    CHECK(aw_history_reserve(h, "x", 1, 64, 0, on_done, &a) == 0);
    usleep(100000);
    CHECK(!answered(&a));
    faulty_set(&f->lie_writes, 1);
    faulty_set(&f->fail_writes, 0);
    answer_wait(&a);
    CHECK(a.err == 0);
    CHECK(aw_history_stop(h, 1000) == 0);

    char uri[256], file[256];
    snprintf(uri, sizeof(uri), "sqlite:%s/reservefaults.db", dir);
    snprintf(file, sizeof(file), "%s/seq.reservations", dir);
    f = faulty_open(uri, 1);
    aw_history_config_t cfg = {.batch = 512, .flush_ms = 1, .reservations = file};
    h = aw_history_start(&f->super, &cfg);
    add(h, "x", 1, 0, "b1"); /* the write that tells the history the store is down */
    usleep(50000);
    CHECK(reserve_of(h, "x", 128) == 0); /* answered from the local file */
    CHECK(access(file, F_OK) == 0);
    faulty_set(&f->fail_writes, 0);
    wait_written(h, 2);
    for (int i = 0; i < 100 && access(file, F_OK) == 0; i++)
        usleep(10000);
    CHECK(access(file, F_OK) != 0); /* in the store now */
    faulty_set(&f->fail_writes, 1);
    add(h, "y", 1, 0, "b1");
    usleep(50000);
    CHECK(reserve_of(h, "y", 64) == 0);
    /* the store never took it: the file keeps it, as after a crash (the
     * message, with no journal, is lost) */
    CHECK(aw_history_stop(h, 100) == 1);
    CHECK(access(file, F_OK) == 0);

    f = faulty_open(uri, 0);
    h = aw_history_start(&f->super, &cfg);
    tail_of(h, "y", &a);
    CHECK(a.err == 0 && a.seq == 64 && a.reserved == 0);
    tail_of(h, "x", &a);
    CHECK(a.err == 0 && a.seq == 128 && a.reserved == 0);
    wait_written(h, 1);
    for (int i = 0; i < 100 && access(file, F_OK) == 0; i++)
        usleep(10000);
    CHECK(access(file, F_OK) != 0);
    CHECK(aw_history_stop(h, 1000) == 0);
}

/* Records appended as a group are answered once all of them are durable,
 * and the tail hands back the person's newest messages, newest first. */
static void test_groups_and_recent(void)
{
    faulty_t *f;
    aw_history_t *h = open_faulty("group.db", &f);
    faulty_set(&f->fail_writes, 1);
    aw_buf_t *in = aw_buf_new("{\"t\":\"p\",\"mid\":\"m1\"}", 20);
    aw_buf_t *out = aw_buf_new("{\"t\":\"b\"}", 9);
    aw_history_item_t items[2] = {{0, 1, 1, AW_RECORD_IN, 0, in}, {1, 0, 1, AW_RECORD_OUT, 0, out}};
    answer_t a;
    answer_init(&a);
    CHECK(aw_history_append_group(h, "g", 1, items, 2, on_done, &a) == 0);
    usleep(100000);
    CHECK(!answered(&a));
    aw_history_stats_t st;
    aw_history_get_stats(h, &st);
    CHECK(st.reads == 1); /* a wait on durability counts as a read, for the stop */
    answer_t t;
    tail_of(h, "g", &t); /* held, not written: the tail sees them */
    CHECK(t.err == 0 && t.seq == 1 && t.sub == 0 && t.n_recent == 1 &&
          strcmp(t.recent0, "{\"t\":\"p\",\"mid\":\"m1\"}") == 0);
    free(t.recent0);
    faulty_set(&f->fail_writes, 0);
    answer_wait(&a);
    CHECK(a.err == 0);
    expect_page(h, "g", INT64_MAX, 10, AW_HISTORY_PAGE_LATEST,
                "[{\"t\":\"p\",\"mid\":\"m1\"},{\"t\":\"b\"}]");
    tail_of(h, "g", &t);
    CHECK(t.err == 0 && t.n_recent == 1 && strcmp(t.recent0, "{\"t\":\"p\",\"mid\":\"m1\"}") == 0);
    free(t.recent0);
    aw_buf_release(in);
    aw_buf_release(out);
    CHECK(aw_history_stop(h, 1000) == 0);
}

int main(void)
{
    if (mkdtemp(dir) == NULL)
        return 1;
    test_deadline_flush();
    test_reads();
    test_page_groups();
    test_stop_writes_everything();
    test_tail_does_not_wait_for_a_failing_write();
    test_tail_says_protected();
    test_claims();
    test_claim_faults();
    test_journal();
    test_full_batch_sleeps_until_the_retry();
    test_reservations();
    test_reservation_faults();
    test_groups_and_recent();
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return check_exit("test_history");
}
