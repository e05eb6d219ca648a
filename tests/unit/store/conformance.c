/*
 * The contract of store/store.h, held against every backend: ctest runs this
 * program once per backend with a URI of it, a SQLite file in a temporary
 * folder, and MongoDB's wire-level mock server (mongo_mock.py database runs
 * it with the mock's URI). The cases run in order on one store, each with
 * users of its own. What only one backend does (SQLite's migration of an old
 * file, MongoDB's documents and write concern) is tested beside its backend
 * in test_sqlite.c and test_mongo.c.
 *
 * A "{tmp}" in the URI stands for a new temporary folder, removed at the
 * end: the SQLite test starts from an empty file each time.
 *
 * An outage is made the way each backend has one: SQLite's file is locked by
 * another connection; the mock MongoDB server is stopped, by asking the
 * script that runs this program (a line on stdout, the answer on stdin).
 */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "runtime/error.h"
#include "store/store.h"
#include "tests/check.h"

enum { MAX_GOT = 16 };

/* Records of a page, copied out of the callback. */
typedef struct got {
    aw_record_t rec[MAX_GOT];
    char user[MAX_GOT][32], json[MAX_GOT][256];
    int n;
} got_t;

static const char *uri;
static const aw_store_options_t options = {.timeout_ms = 1000};

static void on_record(const aw_record_t *r, void *data)
{
    got_t *g = data;
    if (g->n == MAX_GOT)
        return;
    g->rec[g->n] = *r;
    snprintf(g->user[g->n], sizeof(g->user[0]), "%.*s", (int)r->user_len, r->user);
    snprintf(g->json[g->n], sizeof(g->json[0]), "%.*s", (int)r->json_len, r->json);
    g->rec[g->n].user = g->user[g->n];
    g->rec[g->n].json = g->json[g->n];
    g->n++;
}

static got_t page(aw_store_t *s, const char *user, int64_t before_seq, int64_t before_sub, size_t limit,
                  int *more)
{
    got_t g = {0};
    CHECK(aw_store_read(s, user, strlen(user), before_seq, before_sub, limit, on_record, &g, more) == 0);
    return g;
}

static got_t all(aw_store_t *s, const char *user)
{
    int more;
    got_t g = page(s, user, INT64_MAX, INT64_MAX, MAX_GOT, &more);
    CHECK(more == 0);
    return g;
}

static aw_record_t rec(const char *user, int64_t seq, int64_t sub, const char *json)
{
    return (aw_record_t){.user = user,
                         .user_len = strlen(user),
                         .seq = seq,
                         .sub = sub,
                         .ts_ms = 1700000000000 + seq * 1000 + sub,
                         .direction = sub == 0 ? AW_RECORD_OUT : AW_RECORD_IN,
                         .json = json,
                         .json_len = strlen(json)};
}

/* The same JSON text but for the spacing between tokens: a backend that
 * keeps the object rather than its text may space it its own way. */
static int same_json(const char *a, const char *b)
{
    int in_string = 0;
    for (;;) {
        if (!in_string) {
            a += strspn(a, " \t\r\n");
            b += strspn(b, " \t\r\n");
        }
        if (*a != *b)
            return 0;
        if (*a == '\0')
            return 1;
        if (in_string && *a == '\\') {
            if (a[1] != b[1])
                return 0;
            if (a[1] == '\0')
                return 1;
            a++;
            b++;
        } else if (*a == '"') {
            in_string = !in_string;
        }
        a++;
        b++;
    }
}

/* Every field of `got` is the one of `want`. */
static int same_record(const aw_record_t *got, const aw_record_t *want)
{
    return got->user_len == want->user_len && memcmp(got->user, want->user, want->user_len) == 0 &&
           got->seq == want->seq && got->sub == want->sub && got->ts_ms == want->ts_ms &&
           got->direction == want->direction && got->flags == want->flags && same_json(got->json, want->json);
}

/* An unknown scheme, or a param of this backend with a key it does not
 * know, is refused before anything is opened; a param of another backend
 * is none of its business. */
static void test_open(aw_store_t *s)
{
    aw_store_t *other;
    CHECK(aw_store_open(&other, "nosuchdb://x", &options) == AW_EINVAL);
    aw_store_param_t typo = {aw_store_backend(s), "no_such_option", "1"};
    aw_store_options_t o = {.timeout_ms = 1000, .params = &typo, .n_params = 1};
    CHECK(aw_store_open(&other, uri, &o) == AW_EINVAL);
    typo.backend = "nosuchdb";
    CHECK(aw_store_open(&other, uri, &o) == 0);
    aw_store_close(other);
}

/* Both directions and both users come back oldest first, every field as it
 * was written. */
static void test_read_back(aw_store_t *s)
{
    aw_record_t b[] = {
        rec("ann", 0, 1, "{\"type\":\"message_received\",\"text\":\"first\"}"),
        rec("ann", 1, 0, "{\"type\":\"message\",\"text\":\"say \\\"hi\\\" \",\"seq\":1,\"n\":12345678901}"),
        rec("ann", 1, 1, "{\"text\":\"héllo ✓\",\"nested\":{\"a\":[1,true,null,{}]},\"empty\":\"\"}"),
        rec("ann", 2, 0, "{\"type\":\"message\",\"text\":\"last\",\"seq\":2}"),
        rec("é\"'", 1, 0, "{\"unicode\":true}"),
    };
    CHECK(aw_store_append(s, b, 5) == 0);
    got_t g = all(s, "ann");
    CHECK(g.n == 4);
    for (int i = 0; i < 4 && i < g.n; i++)
        CHECK(same_record(&g.rec[i], &b[i]));
    g = all(s, "é\"'");
    CHECK(g.n == 1 && same_record(&g.rec[0], &b[4]));
    g = all(s, "nobody");
    CHECK(g.n == 0);
    CHECK(aw_store_append(s, b, 0) == 0); /* an empty batch is written at once */
}

/* A batch written twice is stored once, and the second time succeeds; so
 * does one that overlaps what is stored. */
static void test_retry(aw_store_t *s)
{
    aw_record_t b[] = {rec("bob", 1, 0, "{\"b\":1}"), rec("bob", 1, 1, "{\"p\":1}"),
                       rec("bob", 2, 0, "{\"b\":2}")};
    CHECK(aw_store_append(s, b, 2) == 0);
    CHECK(aw_store_append(s, b, 2) == 0);
    CHECK(aw_store_append(s, b, 3) == 0);
    got_t g = all(s, "bob");
    CHECK(g.n == 3);
    for (int i = 0; i < 3 && i < g.n; i++)
        CHECK(same_record(&g.rec[i], &b[i]));
    /* the same key with other contents: what was stored first stays */
    aw_record_t changed = rec("bob", 2, 0, "{\"b\":\"changed\"}");
    CHECK(aw_store_append(s, &changed, 1) == 0);
    g = all(s, "bob");
    CHECK(g.n == 3 && same_json(g.rec[2].json, "{\"b\":2}"));
}

/* Pages below a key, newest first across pages and oldest first within
 * one, with `more` telling whether older records remain. */
static void test_paging(aw_store_t *s)
{
    aw_record_t b[] = {rec("cat", 0, 1, "{\"i\":0}"), rec("cat", 1, 0, "{\"i\":1}"),
                       rec("cat", 1, 1, "{\"i\":2}"), rec("cat", 1, 2, "{\"i\":3}"),
                       rec("cat", 2, 0, "{\"i\":4}"), rec("cat", 3, 0, "{\"i\":5}")};
    CHECK(aw_store_append(s, b, 6) == 0);
    int more = -1;
    got_t g = page(s, "cat", INT64_MAX, INT64_MAX, 2, &more);
    CHECK(g.n == 2 && more == 1 && same_record(&g.rec[0], &b[4]) && same_record(&g.rec[1], &b[5]));
    /* below (1, 2): the same seq with a lower sub, then lower seqs */
    g = page(s, "cat", 1, 2, 2, &more);
    CHECK(g.n == 2 && more == 1 && same_record(&g.rec[0], &b[1]) && same_record(&g.rec[1], &b[2]));
    g = page(s, "cat", 1, 0, 2, &more);
    CHECK(g.n == 1 && more == 0 && same_record(&g.rec[0], &b[0]));
    /* a page that ends exactly at the first record has nothing more */
    g = page(s, "cat", 1, 1, 2, &more);
    CHECK(g.n == 2 && more == 0 && same_record(&g.rec[0], &b[0]) && same_record(&g.rec[1], &b[1]));
    g = page(s, "cat", 0, 1, 5, &more);
    CHECK(g.n == 0 && more == 0);
    /* walking back a page at a time visits each record once, in order */
    int64_t bseq = INT64_MAX, bsub = INT64_MAX;
    int seen = 0, in_order = 1;
    do {
        g = page(s, "cat", bseq, bsub, 4, &more);
        for (int i = 0; i < g.n; i++)
            in_order &= 6 - seen - g.n + i >= 0 && same_record(&g.rec[i], &b[6 - seen - g.n + i]);
        seen += g.n;
        if (g.n != 0) {
            bseq = g.rec[0].seq;
            bsub = g.rec[0].sub;
        }
    } while (more && g.n != 0);
    CHECK(seen == 6 && in_order);
}

/* The tail, as the history actor reads it: the latest record alone. */
static void test_tail(aw_store_t *s)
{
    aw_record_t b[] = {rec("dan", 4, 0, "{\"b\":4}"), rec("dan", 4, 3, "{\"p\":3}")};
    CHECK(aw_store_append(s, b, 2) == 0);
    int more = -1;
    got_t g = page(s, "dan", INT64_MAX, INT64_MAX, 1, &more);
    CHECK(g.n == 1 && more == 1 && same_record(&g.rec[0], &b[1]));
    g = page(s, "nobody", INT64_MAX, INT64_MAX, 1, &more);
    CHECK(g.n == 0 && more == 0);
}

/* AW_RECORD_PROTECTED comes back on the records written with it, and on
 * no other. */
static void test_protected(aw_store_t *s)
{
    aw_record_t b[] = {rec("eve", 1, 0, "{\"b\":1}"), rec("eve", 1, 1, "{\"p\":1}"),
                       rec("eve", 2, 0, "{\"b\":2}")};
    b[1].flags = AW_RECORD_PROTECTED;
    b[2].flags = AW_RECORD_PROTECTED;
    CHECK(aw_store_append(s, b, 3) == 0);
    got_t g = all(s, "eve");
    CHECK(g.n == 3 && g.rec[0].flags == 0 && g.rec[1].flags == AW_RECORD_PROTECTED &&
          g.rec[2].flags == AW_RECORD_PROTECTED);
    int more;
    g = page(s, "eve", INT64_MAX, INT64_MAX, 1, &more);
    CHECK(g.n == 1 && g.rec[0].flags == AW_RECORD_PROTECTED); /* what a restarted server reads */
}

/* The identity claim at (0, 0): the first writer wins, and the history
 * actor reads it back below (0, 1) and compares it with its own byte for
 * byte, so it must come back exactly as written. */
static void test_claim(aw_store_t *s)
{
    const char *first = "{\"type\":\"identity_claim\",\"nonce\":\"0123abcd\"}";
    const char *second = "{\"type\":\"identity_claim\",\"nonce\":\"4567ef00\"}";
    aw_record_t claim = rec("fay", 0, 0, first);
    claim.flags = AW_RECORD_CLAIM;
    CHECK(aw_store_append(s, &claim, 1) == 0);
    aw_record_t message = rec("fay", 0, 1, "{\"text\":\"hi\"}");
    CHECK(aw_store_append(s, &message, 1) == 0);
    aw_record_t late = rec("fay", 0, 0, second);
    late.flags = AW_RECORD_CLAIM;
    CHECK(aw_store_append(s, &late, 1) == 0); /* taken: kept as it was, and no error */
    int more = -1;
    got_t g = page(s, "fay", 0, 1, 1, &more);
    CHECK(g.n == 1 && more == 0 && g.rec[0].seq == 0 && g.rec[0].sub == 0 &&
          g.rec[0].flags == AW_RECORD_CLAIM);
    CHECK(g.n == 1 && g.rec[0].json_len == strlen(first) && strcmp(g.json[0], first) == 0);
    g = all(s, "fay");
    CHECK(g.n == 2 && same_record(&g.rec[0], &claim) && same_record(&g.rec[1], &message));
    g = page(s, "gus", 0, 1, 1, &more); /* nobody claimed this id */
    CHECK(g.n == 0 && more == 0);
}

/* A seq reservation at (top, -1): below the bot message `top` and above
 * every message before it, first writer wins, read back byte for byte. */
static void test_reservation(aw_store_t *s)
{
    const char *mine = "{\"type\":\"seq_reservation\",\"nonce\":\"aa\"}";
    aw_record_t before = rec("jay", 63, 2, "{\"text\":\"typed\"}");
    aw_record_t res = rec("jay", 64, -1, mine);
    res.flags = AW_RECORD_RESERVE;
    res.direction = AW_RECORD_OUT;
    aw_record_t other = res;
    other.json = "{\"type\":\"seq_reservation\",\"nonce\":\"bb\"}";
    other.json_len = strlen(other.json);
    aw_record_t top = rec("jay", 64, 0, "{\"text\":\"sixty-four\"}");
    CHECK(aw_store_append(s, &before, 1) == 0);
    CHECK(aw_store_append(s, &res, 1) == 0);
    CHECK(aw_store_append(s, &other, 1) == 0); /* taken: kept as it was */
    int more = -1;
    got_t g = page(s, "jay", INT64_MAX, INT64_MAX, 1, &more);
    CHECK(g.n == 1 && more == 1 && g.rec[0].seq == 64 && g.rec[0].sub == -1 &&
          g.rec[0].flags == AW_RECORD_RESERVE && strcmp(g.json[0], mine) == 0);
    CHECK(aw_store_append(s, &top, 1) == 0);
    g = page(s, "jay", 64, 0, 1, &more); /* how the history reads it back */
    CHECK(g.n == 1 && g.rec[0].sub == -1 && strcmp(g.json[0], mine) == 0);
    g = all(s, "jay");
    CHECK(g.n == 3 && same_record(&g.rec[0], &before) && same_record(&g.rec[1], &res) &&
          same_record(&g.rec[2], &top));
}

/* Records outlive the store that wrote them. */
static void test_reopen(aw_store_t *s)
{
    aw_record_t r = rec("hal", 7, 0, "{\"kept\":true}");
    CHECK(aw_store_append(s, &r, 1) == 0);
    aw_store_t *again;
    CHECK(aw_store_open(&again, uri, &options) == 0);
    if (again == NULL)
        return;
    got_t g = all(again, "hal");
    CHECK(g.n == 1 && same_record(&g.rec[0], &r));
    aw_store_close(again);
}

/* How each backend goes down and comes back. */
typedef struct outage {
    const char *scheme;
    void (*begin)(void);
    void (*end)(void);
} outage_t;

static sqlite3 *locker;

/* Another connection takes the write lock and keeps it. */
static void sqlite_lock(void)
{
    CHECK(sqlite3_open(uri + strlen("sqlite:"), &locker) == SQLITE_OK);
    CHECK(sqlite3_exec(locker, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK);
}

static void sqlite_unlock(void)
{
    sqlite3_exec(locker, "ROLLBACK", NULL, NULL, NULL);
    sqlite3_close(locker);
}

/* Asks mongo_mock.py to stop or start its server, and waits until it has. */
static void ask_mock(const char *what)
{
    char line[16];
    printf("mock: %s\n", what);
    fflush(stdout);
    CHECK(fgets(line, sizeof(line), stdin) != NULL && strcmp(line, "done\n") == 0);
}

static void mongo_stop(void)
{
    ask_mock("stop");
}

static void mongo_start(void)
{
    ask_mock("start");
}

static const outage_t outages[] = {
    {"sqlite:", sqlite_lock, sqlite_unlock},
    {"mongodb://", mongo_stop, mongo_start},
};

/* While the store is down a batch is refused with AW_EUNAVAILABLE and
 * nothing of it is kept; once it is back, the same batch is written. A
 * backend may take a moment to notice it is back: the retry is given a few
 * seconds, as the history actor would retry. */
static void test_unavailable(aw_store_t *s)
{
    const outage_t *o = NULL;
    for (size_t i = 0; i < sizeof(outages) / sizeof(outages[0]); i++)
        if (strncmp(uri, outages[i].scheme, strlen(outages[i].scheme)) == 0)
            o = &outages[i];
    CHECK(o != NULL);
    if (o == NULL)
        return;
    aw_record_t b[] = {rec("ivy", 1, 0, "{\"b\":1}"), rec("ivy", 1, 1, "{\"p\":1}")};
    o->begin();
    CHECK(aw_store_append(s, b, 2) == AW_EUNAVAILABLE);
    o->end();
    int err = AW_EUNAVAILABLE;
    for (int i = 0; i < 40 && err == AW_EUNAVAILABLE; i++)
        if ((err = aw_store_append(s, b, 2)) == AW_EUNAVAILABLE)
            usleep(250 * 1000);
    CHECK(err == 0);
    got_t g = all(s, "ivy");
    CHECK(g.n == 2 && same_record(&g.rec[0], &b[0]) && same_record(&g.rec[1], &b[1]));
}

/* For each user, the newest record of a kind, whatever came after it; a
 * user without one is not listed. */
static void test_latest(aw_store_t *s)
{
    aw_record_t b[] = {rec("lat1", 1, 1, "{\"state\":\"waiting\"}"), rec("lat1", 1, 2, "{\"text\":\"hi\"}"),
                       rec("lat1", 1, 3, "{\"state\":\"owned\"}"),   rec("lat1", 2, 0, "{\"text\":\"ok\"}"),
                       rec("lat2", 0, 1, "{\"state\":\"none\"}"),    rec("lat3", 1, 0, "{\"text\":\"x\"}")};
    b[0].flags = b[2].flags = b[4].flags = AW_RECORD_HANDOFF;
    b[4].flags |= AW_RECORD_PROTECTED;
    CHECK(aw_store_append(s, b, 6) == 0);
    got_t g = {0};
    CHECK(aw_store_latest(s, AW_RECORD_HANDOFF, on_record, &g) == 0);
    CHECK(g.n == 2);
    int seen = 0;
    for (int i = 0; i < g.n; i++) {
        if (strcmp(g.user[i], "lat1") == 0) {
            CHECK(same_record(&g.rec[i], &b[2]));
            seen |= 1;
        } else if (strcmp(g.user[i], "lat2") == 0) {
            CHECK(same_record(&g.rec[i], &b[4]));
            seen |= 2;
        }
    }
    CHECK(seen == 3);
    CHECK(aw_store_latest(s, 0, on_record, &g) == AW_EINVAL);
    /* one user's newest, whatever came after it; none for a user without one */
    got_t one = {0};
    CHECK(aw_store_latest_of(s, "lat1", 4, AW_RECORD_HANDOFF, on_record, &one) == 0);
    CHECK(one.n == 1 && same_record(&one.rec[0], &b[2]));
    got_t both = {0};
    CHECK(aw_store_latest_of(s, "lat2", 4, AW_RECORD_HANDOFF | AW_RECORD_PROTECTED, on_record, &both) == 0);
    CHECK(both.n == 1 && same_record(&both.rec[0], &b[4]));
    got_t none = {0};
    CHECK(aw_store_latest_of(s, "lat3", 4, AW_RECORD_HANDOFF, on_record, &none) == 0 && none.n == 0);
    CHECK(aw_store_latest_of(s, "lat1", 4, AW_RECORD_HANDOFF | AW_RECORD_PROTECTED, on_record, &none) == 0 &&
          none.n == 0);
}

static const struct {
    const char *name;
    void (*run)(aw_store_t *s);
} tests[] = {
    {"open", test_open},
    {"read_back", test_read_back},
    {"retry", test_retry},
    {"paging", test_paging},
    {"tail", test_tail},
    {"protected", test_protected},
    {"claim", test_claim},
    {"reservation", test_reservation},
    {"reopen", test_reopen},
    {"latest", test_latest},
    {"unavailable", test_unavailable},
};

/* Runs every case in order on one store; returns the exit code. */
static int run_all(void)
{
    aw_store_t *s;
    CHECK(aw_store_open(&s, uri, &options) == 0);
    if (check_failures != 0)
        return check_exit("store_conformance");
    for (size_t i = 0; i < sizeof(tests) / sizeof(tests[0]); i++) {
        int before = check_failures;
        tests[i].run(s);
        fprintf(stderr, "conformance %s %s: %s\n", aw_store_backend(s), tests[i].name,
                check_failures == before ? "ok" : "FAILED");
    }
    aw_store_close(s);
    return check_exit("store_conformance");
}

/* `arg` with its "{tmp}" (if any) replaced by `dir`, a new folder. */
static char *expand(const char *arg, char *dir)
{
    const char *tmp = strstr(arg, "{tmp}");
    if (tmp == NULL)
        return strdup(arg);
    if (mkdtemp(dir) == NULL)
        return NULL;
    size_t len = strlen(arg) + strlen(dir);
    char *out = malloc(len);
    snprintf(out, len, "%.*s%s%s", (int)(tmp - arg), arg, dir, tmp + strlen("{tmp}"));
    return out;
}

static void remove_dir(const char *dir)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "conformance: cannot remove %s\n", dir);
}

int main(int argc, char **argv)
{
    char dir[] = "/tmp/aw-test-store-XXXXXX";
    if (argc != 2) {
        fprintf(stderr, "usage: store_conformance STORE_URI\n");
        return 2;
    }
    char *expanded = expand(argv[1], dir);
    if (expanded == NULL)
        return 1;
    uri = expanded;
    int code = run_all();
    if (strstr(argv[1], "{tmp}") != NULL)
        remove_dir(dir);
    free(expanded);
    return code;
}
