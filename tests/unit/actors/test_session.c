/*
 * Unit tests of the session actor (actors/session.c) on a real runtime,
 * registry and history (SQLite behind the fault-injecting store), with fake
 * websockets and webhook requests (fake_chat.h) in place of the transport:
 * who gets a turn's replies and with which seq, when a brand-new user is
 * issued its token (only once its claim is durable, and once), wrong tokens,
 * guests, numbering across a freed session and a restart, the rate limit,
 * the replay of missed messages, shutdown, webhook turns, pushed messages
 * and a handoff to a person: what docs/protocol.md says of these, checked
 * frame by frame.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>
#include <yajl/yajl_tree.h>
#include "actors/bot.h"
#include "actors/desk.h"
#include "tests/check.h"
#include "tests/unit/actors/fake_chat.h"

static char dir[] = "/tmp/aw-test-session-XXXXXX";

static const char *db_path(const char *name)
{
    static char path[300];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    return path;
}

/* --- the bot: a few skills whose replies the tests know --- */

static void say_data(aw_turn_t *turn, const aw_message_t *msg, void *data)
{
    aw_turn_say(turn, data);
}

static void on_three(aw_turn_t *turn, const aw_message_t *msg, void *data)
{
    aw_turn_say(turn, "one");
    aw_turn_say(turn, "two");
    aw_turn_say(turn, "three");
}

static void on_later(aw_turn_t *turn, const aw_message_t *msg, void *data)
{
    aw_turn_say(turn, "soon");
    aw_turn_later(turn, "late", 60000);
}

static void on_typed(aw_turn_t *turn, const aw_message_t *msg, void *data)
{
    aw_turn_say_typing(turn, "slow", 60000);
}

static void on_echo(aw_turn_t *turn, const aw_message_t *msg, void *data)
{
    aw_turn_say(turn, msg->text != NULL ? msg->text : "");
}

static void on_person(aw_turn_t *turn, const aw_message_t *msg, void *data)
{
    aw_turn_say(turn, "getting someone");
    aw_turn_handoff(turn, "asked");
    aw_turn_say(turn, "after the request");
}

static aw_bot_t *test_bot(void)
{
    aw_bot_t *bot = aw_bot_new("test");
    aw_bot_hears(bot, AW_HEAR_EXACT, "person", on_person, NULL);
    aw_bot_on(bot, "handoff_end", say_data, "bot again");
    aw_bot_hears(bot, AW_HEAR_EXACT, "three", on_three, NULL);
    aw_bot_hears(bot, AW_HEAR_EXACT, "later", on_later, NULL);
    aw_bot_hears(bot, AW_HEAR_EXACT, "typed", on_typed, NULL);
    aw_bot_on(bot, "hello", say_data, "hi");
    aw_bot_on(bot, "welcome_back", say_data, "welcome back");
    aw_bot_on(bot, "message", on_echo, NULL);
    return bot; /* "reconnect" is not answered */
}

static aw_bot_t *bot;

/* --- checks --- */

/* Checks frame `i` of `c`: its type, text (unless NULL) and seq (-1: none). */
static void expect_frame(fake_conn_t *c, const char *name, size_t i, const char *type, const char *text,
                         int64_t seq, int line)
{
    fake_frame_t f;
    int ok = fake_conn_frame(c, i, &f) && strcmp(f.type, type) == 0 &&
             (text == NULL || strcmp(f.text, text) == 0) && f.seq == seq;
    if (!ok) {
        fprintf(stderr, "line %d: %s frame %zu: want type %s text %s seq %lld\n", line, name, i, type,
                text != NULL ? text : "(any)", (long long)seq);
        fake_conn_dump(c, name);
    }
    CHECK(ok);
}

#define EXPECT(c, i, type, text, seq) expect_frame(c, #c, i, type, text, seq, __LINE__)

/* Checks that frame `i` of `c` is a session frame with `seq` that carries
 * `token` ("" for none). */
static void expect_session(fake_conn_t *c, const char *name, size_t i, int64_t seq, const char *token,
                           int line)
{
    fake_frame_t f;
    expect_frame(c, name, i, "session", NULL, seq, line);
    fake_conn_frame(c, i, &f);
    if (strcmp(f.token, token) != 0)
        fprintf(stderr, "line %d: %s frame %zu: token \"%s\", want \"%s\"\n", line, name, i, f.token, token);
    CHECK(strcmp(f.token, token) == 0);
}

#define EXPECT_SESSION(c, i, seq, token) expect_session(c, #c, i, seq, token, __LINE__)

/* Waits for `c` to have `n` frames and checks it has exactly that many. */
static void expect_count(fake_conn_t *c, const char *name, size_t n, int line)
{
    size_t got = fake_conn_wait(c, n, FAKE_WAIT_MS);
    if (got != n) {
        fprintf(stderr, "line %d: %s has %zu frames, want %zu\n", line, name, got, n);
        fake_conn_dump(c, name);
    }
    CHECK(got == n);
}

#define EXPECT_COUNT(c, n) expect_count(c, #c, n, __LINE__)

/* The answer of a history call the test waits for. */
typedef struct answer {
    uv_mutex_t lock;
    uv_cond_t cond;
    int done, err;
} answer_t;

static void on_answer(int err, void *data)
{
    answer_t *a = data;
    uv_mutex_lock(&a->lock);
    a->err = err;
    a->done = 1;
    uv_cond_signal(&a->cond);
    uv_mutex_unlock(&a->lock);
}

static void wait_answer(answer_t *a)
{
    uv_mutex_lock(&a->lock);
    while (!a->done)
        uv_cond_wait(&a->cond, &a->lock);
    uv_mutex_unlock(&a->lock);
}

/* A page of a user's history (the latest 100 records), as the texts of its
 * records, oldest first, each followed by '|' ("seen|hi|" ...). */
typedef struct page {
    uv_mutex_t lock;
    uv_cond_t cond;
    int done, err;
    char *texts;
} page_t;

static void on_page(int err, const aw_history_page_t *page, void *data)
{
    page_t *p = data; /* history thread: the page is lent for this call only */
    char *texts = NULL;
    if (page != NULL) {
        size_t cap = 1, len = 0;
        texts = calloc(1, cap);
        for (size_t i = 0; i < page->n; i++) {
            yajl_val root = yajl_tree_parse(page->records[i]->data, NULL, 0);
            const char *tp[] = {"text", NULL};
            yajl_val t = root != NULL ? yajl_tree_get(root, tp, yajl_t_string) : NULL;
            const char *s = t != NULL ? YAJL_GET_STRING(t) : "";
            texts = realloc(texts, cap += strlen(s) + 1);
            len += (size_t)sprintf(texts + len, "%s|", s);
            if (root != NULL)
                yajl_tree_free(root);
        }
    }
    uv_mutex_lock(&p->lock);
    p->err = err;
    p->texts = texts;
    p->done = 1;
    uv_cond_signal(&p->cond);
    uv_mutex_unlock(&p->lock);
}

/* Returns the texts of `user`'s stored records, oldest first, each followed
 * by '|' ("seen|hi|" ...), or NULL when the history did not answer. */
static char *stored_texts(aw_history_t *h, const char *user)
{
    page_t p = {.done = 0};
    uv_mutex_init(&p.lock);
    uv_cond_init(&p.cond);
    CHECK(aw_history_page(h, user, strlen(user), INT64_MAX, 100, AW_HISTORY_PAGE_LATEST, on_page, &p) == 0);
    uint64_t deadline = aw_now_ms() + FAKE_WAIT_MS;
    uv_mutex_lock(&p.lock);
    while (!p.done && fake_wait_until(&p.cond, &p.lock, deadline))
        ;
    uv_mutex_unlock(&p.lock);
    uv_cond_destroy(&p.cond);
    uv_mutex_destroy(&p.lock);
    CHECK(p.done && p.err == 0 && p.texts != NULL);
    return p.done ? p.texts : NULL;
}

static void expect_stored(aw_history_t *h, const char *user, const char *want, int line)
{
    char *got = stored_texts(h, user);
    if (got == NULL || strcmp(got, want) != 0)
        fprintf(stderr, "line %d: stored for %s:\n  got  %s\n  want %s\n", line, user,
                got != NULL ? got : "(no answer)", want);
    CHECK(got != NULL && strcmp(got, want) == 0);
    free(got);
}

#define EXPECT_STORED(h, user, want) expect_stored(h, user, want, __LINE__)

/* --- the tests --- */

/* A turn's replies are numbered 1, 2, ... in the user's one stream and go,
 * in order, to the socket the turn came on and to every socket that proved
 * the identity, never to another socket of the same id that did not. Once
 * the id is protected, a socket that names it without the token is a guest:
 * answered alone, without seq, and nothing of its turn is stored. A wrong
 * token is refused and changes nothing. */
static void test_fanout_guests_and_wrong_tokens(void)
{
    fake_world_t w;
    aw_chat_config_t cfg = {.history_auth = 1, .idle_ms = 60000};
    fake_world_open(&w, db_path("fanout.db"), bot, &cfg);
    char tok[AW_TOKEN_LEN + 1], bad[AW_TOKEN_LEN + 1];
    fake_token("alice", tok);
    memcpy(bad, tok, sizeof(bad));
    bad[AW_TOKEN_LEN - 1] = bad[AW_TOKEN_LEN - 1] == '0' ? '1' : '0';
    fake_conn_t *a = fake_conn_new(), *b = fake_conn_new(), *c = fake_conn_new(), *d = fake_conn_new();
    char json[256];

    /* a brand-new user is issued the token, and its socket sees every reply */
    CHECK(fake_send(&w, a, NULL, "{\"type\":\"hello\",\"user\":\"alice\"}") == 0);
    EXPECT_COUNT(a, 2);
    EXPECT_SESSION(a, 0, 0, tok);
    EXPECT(a, 1, "message", "hi", 1);
    fake_frame_t f;
    fake_conn_frame(a, 1, &f);
    CHECK(strcmp(f.user, "alice") == 0 && strcmp(f.channel, "websocket") == 0);

    /* a second greeting of the id: no token; its replies reach it and `a` */
    CHECK(fake_send(&w, c, NULL, "{\"type\":\"hello\",\"user\":\"alice\"}") == 0);
    EXPECT_COUNT(c, 2);
    EXPECT_SESSION(c, 0, 1, "");
    EXPECT(c, 1, "message", "hi", 2);
    EXPECT_COUNT(a, 3);
    EXPECT(a, 2, "message", "hi", 2);

    /* a socket that proves the token sees what follows; `c` does not */
    snprintf(json, sizeof(json), "{\"type\":\"welcome_back\",\"user\":\"alice\",\"token\":\"%s\"}", tok);
    CHECK(fake_send(&w, b, NULL, json) == 0);
    EXPECT_COUNT(b, 2);
    EXPECT_SESSION(b, 0, 2, tok);
    EXPECT(b, 1, "message", "welcome back", 3);
    EXPECT_COUNT(a, 4);
    EXPECT(a, 3, "message", "welcome back", 3);
    CHECK(fake_send(&w, a, NULL, "{\"type\":\"message\",\"user\":\"alice\",\"text\":\"three\"}") == 0);
    EXPECT_COUNT(a, 7);
    EXPECT_COUNT(b, 5);
    for (int i = 0; i < 3; i++) {
        static const char *const texts[] = {"one", "two", "three"};
        EXPECT(a, 4 + i, "message", texts[i], 4 + i);
        EXPECT(b, 2 + i, "message", texts[i], 4 + i);
    }
    EXPECT_COUNT(c, 2); /* every send to `b` is done: `c` would have had them first */

    /* `c` is now a guest: answered alone, unnumbered */
    CHECK(fake_send(&w, c, NULL, "{\"type\":\"message\",\"user\":\"alice\",\"text\":\"psst\"}") == 0);
    EXPECT_COUNT(c, 3);
    EXPECT(c, 2, "message", "psst", -1);
    CHECK(fake_send(&w, a, NULL, "{\"type\":\"message\",\"user\":\"alice\",\"text\":\"x\"}") == 0);
    EXPECT_COUNT(a, 8);
    EXPECT(a, 7, "message", "x", 7);
    EXPECT_COUNT(b, 6);
    EXPECT(b, 5, "message", "x", 7);

    /* wrong tokens: refused, nothing else, nothing stored */
    snprintf(json, sizeof(json), "{\"type\":\"hello\",\"user\":\"alice\",\"token\":\"%s\"}", bad);
    CHECK(fake_send(&w, d, NULL, json) == 0);
    snprintf(json, sizeof(json),
             "{\"type\":\"message\",\"user\":\"alice\",\"text\":\"intruder\",\"token\":\"%s\"}", "abc");
    CHECK(fake_send(&w, d, NULL, json) == 0);
    CHECK(fake_send(&w, a, NULL, "{\"type\":\"message\",\"user\":\"alice\",\"text\":\"y\"}") == 0);
    EXPECT_COUNT(a, 9);
    EXPECT(a, 8, "message", "y", 8);
    EXPECT_COUNT(d, 2);
    for (size_t i = 0; i < 2; i++) {
        EXPECT(d, i, "error", NULL, -1);
        fake_conn_frame(d, i, &f);
        CHECK(strcmp(f.code, "unauthorized") == 0);
    }
    EXPECT_COUNT(b, 7);
    EXPECT_COUNT(c, 3);

    EXPECT_STORED(w.history, "alice", "hi|hi|welcome back|three|one|two|three|x|x|y|y|");
    CHECK(fake_world_close(&w) == 0);
    aw_conn_release(&a->super);
    aw_conn_release(&b->super);
    aw_conn_release(&c->super);
    aw_conn_release(&d->super);
}

/* While the store takes no writes, a brand-new user's greeting waits for the
 * id's claim up to claim_ms, then goes on without a token; the bot's answers
 * wait for the store too, since no seq may be handed out before its
 * reservation is durable; a greeting of the id meanwhile gets no token
 * either; once the store takes writes the answers go out, numbered, and the
 * first socket is sent the token in a later session frame, and sees the
 * user's messages from then on. */
static void test_claim_waits_for_the_store(void)
{
    fake_world_t w;
    aw_chat_config_t cfg = {.history_auth = 1, .idle_ms = 60000, .claim_ms = 300};
    fake_world_open(&w, db_path("claim.db"), bot, &cfg);
    char tok[AW_TOKEN_LEN + 1];
    fake_token("bob", tok);
    fake_conn_t *a = fake_conn_new(), *e = fake_conn_new(), *g = fake_conn_new();
    faulty_set(&w.store->fail_writes, 1);

    uint64_t start = aw_now_ms();
    CHECK(fake_send(&w, a, NULL, "{\"type\":\"hello\",\"user\":\"bob\"}") == 0);
    EXPECT_COUNT(a, 1);
    uint64_t waited = aw_now_ms() - start;
    if (waited < 280 || waited > 3000)
        fprintf(stderr, "the greeting waited %llu ms for claim_ms 300\n", (unsigned long long)waited);
    CHECK(waited >= 280 && waited <= 3000);
    EXPECT_SESSION(a, 0, 0, "");
    CHECK(fake_send(&w, e, NULL, "{\"type\":\"hello\",\"user\":\"bob\"}") == 0);
    usleep(300000);
    EXPECT_COUNT(a, 1); /* "hi" waits for a number */
    EXPECT_COUNT(e, 0); /* and the next turn behind it */

    /* The first block was asked for when the session loaded, before the
     * greeting's claim: they are answered in that order. */
    faulty_set(&w.store->fail_writes, 0);
    EXPECT_COUNT(a, 3);
    EXPECT(a, 1, "message", "hi", 1);
    EXPECT_SESSION(a, 2, 2, tok);
    EXPECT_COUNT(e, 2);
    EXPECT_SESSION(e, 0, 1, "");
    EXPECT(e, 1, "message", "hi", 2);
    CHECK(fake_send(&w, e, NULL, "{\"type\":\"message\",\"user\":\"bob\",\"text\":\"after\"}") == 0);
    EXPECT_COUNT(e, 3);
    EXPECT(e, 2, "message", "after", 3);
    EXPECT_COUNT(a, 4);
    EXPECT(a, 3, "message", "after", 3);

    /* the claim is the first greeting's: never issued again */
    CHECK(fake_send(&w, g, NULL, "{\"type\":\"hello\",\"user\":\"bob\"}") == 0);
    EXPECT_COUNT(g, 2);
    EXPECT_SESSION(g, 0, 3, "");
    EXPECT_COUNT(e, 3);
    EXPECT_SESSION(e, 0, 1, "");

    CHECK(fake_world_close(&w) == 0);
    aw_conn_release(&a->super);
    aw_conn_release(&e->super);
    aw_conn_release(&g->super);
}

/* Numbering goes on where the history says, after the session was freed for
 * being idle and after a restart; the id stays claimed (no token for a
 * greeting without one) and, once proved, protected. */
static void test_numbering_outlives_the_session(void)
{
    fake_world_t w;
    aw_chat_config_t cfg = {.history_auth = 1, .idle_ms = 50};
    fake_world_open(&w, db_path("tail.db"), bot, &cfg);
    char tok[AW_TOKEN_LEN + 1], json[256];
    fake_token("carol", tok);
    snprintf(json, sizeof(json), "{\"type\":\"welcome_back\",\"user\":\"carol\",\"token\":\"%s\"}", tok);
    fake_conn_t *a = fake_conn_new(), *b = fake_conn_new(), *c = fake_conn_new(), *d = fake_conn_new(),
                *e = fake_conn_new();

    CHECK(fake_send(&w, a, NULL, "{\"type\":\"hello\",\"user\":\"carol\"}") == 0);
    CHECK(fake_send(&w, a, NULL, "{\"type\":\"message\",\"user\":\"carol\",\"text\":\"three\"}") == 0);
    EXPECT_COUNT(a, 5);
    EXPECT_SESSION(a, 0, 0, tok);
    EXPECT(a, 4, "message", "three", 4);
    CHECK(fake_detach(&w, "carol", a) == 0);
    CHECK(fake_wait_sessions(&w, 0, FAKE_WAIT_MS));

    /* a new session: numbering from the tail (inside the block this
     * process reserved), and the id is known */
    CHECK(fake_send(&w, c, NULL, "{\"type\":\"hello\",\"user\":\"carol\"}") == 0);
    EXPECT_COUNT(c, 2);
    EXPECT_SESSION(c, 0, 4, "");
    EXPECT(c, 1, "message", "hi", 5);
    CHECK(fake_send(&w, b, NULL, json) == 0);
    EXPECT_COUNT(b, 2);
    EXPECT_SESSION(b, 0, 5, tok);
    EXPECT(b, 1, "message", "welcome back", 6);
    EXPECT_COUNT(c, 2);
    CHECK(fake_world_close(&w) == 0);

    /* A restart: numbering and protection come from the store alone.
     * Numbers up to the reservation (1..64) may have been handed out by the
     * process that stopped: numbering goes on above it. */
    fake_world_open(&w, db_path("tail.db"), bot, &cfg);
    CHECK(fake_send(&w, d, NULL, json) == 0);
    EXPECT_COUNT(d, 2);
    EXPECT_SESSION(d, 0, 64, tok);
    EXPECT(d, 1, "message", "welcome back", 65);
    CHECK(fake_send(&w, e, NULL, "{\"type\":\"hello\",\"user\":\"carol\"}") == 0);
    EXPECT_COUNT(e, 2);
    EXPECT_SESSION(e, 0, 0, ""); /* a guest is told no seq of the user's */
    EXPECT(e, 1, "message", "hi", -1);
    EXPECT_COUNT(d, 2);
    CHECK(fake_world_close(&w) == 0);
    aw_conn_release(&a->super);
    aw_conn_release(&b->super);
    aw_conn_release(&c->super);
    aw_conn_release(&d->super);
    aw_conn_release(&e->super);
}

/* Messages over the burst are refused with rate_limited, and neither
 * answered nor stored. */
static void test_rate_limit(void)
{
    fake_world_t w;
    aw_chat_config_t cfg = {.idle_ms = 60000, .rate = 0.01, .burst = 3};
    fake_world_open(&w, db_path("rate.db"), bot, &cfg);
    fake_conn_t *a = fake_conn_new();
    for (int i = 1; i <= 5; i++) {
        char json[128];
        snprintf(json, sizeof(json), "{\"type\":\"message\",\"user\":\"rl\",\"text\":\"m%d\"}", i);
        CHECK(fake_send(&w, a, NULL, json) == 0);
    }
    EXPECT_COUNT(a, 5);
    int replies = 0, refused = 0;
    for (size_t i = 0; i < 5; i++) {
        fake_frame_t f;
        fake_conn_frame(a, i, &f);
        if (strcmp(f.type, "message") == 0) {
            char want[16];
            snprintf(want, sizeof(want), "m%d", replies + 1);
            CHECK(strcmp(f.text, want) == 0 && f.seq == replies + 1);
            replies++;
        } else {
            CHECK(strcmp(f.type, "error") == 0 && strcmp(f.code, "rate_limited") == 0);
            refused++;
        }
    }
    CHECK(replies == 3 && refused == 2);
    EXPECT_STORED(w.history, "rl", "m1|m1|m2|m2|m3|m3|");
    CHECK(fake_world_close(&w) == 0);
    aw_conn_release(&a->super);
}

/* A greeting with last_seq is first sent every bot message above it: from
 * the ring in memory when it holds them all, else from the history; only a
 * socket that proved the identity gets any. */
static void test_replay_from_last_seq(void)
{
    fake_world_t w;
    aw_chat_config_t cfg = {.history_auth = 1, .idle_ms = 60000, .recent = 2};
    fake_world_open(&w, db_path("replay.db"), bot, &cfg);
    char tok[AW_TOKEN_LEN + 1], json[256];
    fake_token("dave", tok);
    fake_conn_t *a = fake_conn_new(), *b = fake_conn_new(), *c = fake_conn_new(), *d = fake_conn_new(),
                *e = fake_conn_new();

    CHECK(fake_send(&w, a, NULL, "{\"type\":\"hello\",\"user\":\"dave\"}") == 0);
    CHECK(fake_send(&w, a, NULL, "{\"type\":\"message\",\"user\":\"dave\",\"text\":\"three\"}") == 0);
    EXPECT_COUNT(a, 5); /* session, then 1..4 */

    /* the ring holds 3 and 4: enough above 3 */
    snprintf(json, sizeof(json),
             "{\"type\":\"welcome_back\",\"user\":\"dave\",\"token\":\"%s\",\"last_seq\":3}", tok);
    CHECK(fake_send(&w, b, NULL, json) == 0);
    EXPECT_COUNT(b, 3);
    EXPECT_SESSION(b, 0, 4, tok);
    EXPECT(b, 1, "message", "three", 4);
    EXPECT(b, 2, "message", "welcome back", 5);

    /* the ring holds 4 and 5: 2 and 3 come from the history, in order */
    snprintf(json, sizeof(json), "{\"type\":\"reconnect\",\"user\":\"dave\",\"token\":\"%s\",\"last_seq\":1}",
             tok);
    CHECK(fake_send(&w, c, NULL, json) == 0);
    CHECK(fake_send(&w, a, NULL, "{\"type\":\"message\",\"user\":\"dave\",\"text\":\"z\"}") == 0);
    EXPECT_COUNT(c, 6);
    EXPECT_SESSION(c, 0, 5, tok);
    EXPECT(c, 1, "message", "one", 2);
    EXPECT(c, 2, "message", "two", 3);
    EXPECT(c, 3, "message", "three", 4);
    EXPECT(c, 4, "message", "welcome back", 5);
    EXPECT(c, 5, "message", "z", 6);

    /* no token: a guest now, shown nothing of the user's */
    CHECK(fake_send(&w, d, NULL, "{\"type\":\"welcome_back\",\"user\":\"dave\",\"last_seq\":0}") == 0);
    /* up to date: nothing to replay */
    snprintf(json, sizeof(json), "{\"type\":\"reconnect\",\"user\":\"dave\",\"token\":\"%s\",\"last_seq\":6}",
             tok);
    CHECK(fake_send(&w, e, NULL, json) == 0);
    CHECK(fake_send(&w, a, NULL, "{\"type\":\"message\",\"user\":\"dave\",\"text\":\"zz\"}") == 0);
    EXPECT_COUNT(a, 8);
    EXPECT(a, 7, "message", "zz", 7);
    EXPECT_COUNT(d, 2);
    EXPECT_SESSION(d, 0, 0, "");
    EXPECT(d, 1, "message", "welcome back", -1);
    EXPECT_COUNT(e, 2);
    EXPECT_SESSION(e, 0, 6, tok);
    EXPECT(e, 1, "message", "zz", 7);

    CHECK(fake_world_close(&w) == 0);
    aw_conn_release(&a->super);
    aw_conn_release(&b->super);
    aw_conn_release(&c->super);
    aw_conn_release(&d->super);
    aw_conn_release(&e->super);
}

/* At shutdown, a message the bot said it would send later, and a reply
 * behind a typing pause, go out at once. */
static void test_shutdown_sends_what_waits(void)
{
    fake_world_t w;
    aw_chat_config_t cfg = {.idle_ms = 60000};
    fake_world_open(&w, NULL, bot, &cfg);
    fake_conn_t *a = fake_conn_new(), *b = fake_conn_new();
    CHECK(fake_send(&w, a, NULL, "{\"type\":\"message\",\"user\":\"erin\",\"text\":\"later\"}") == 0);
    CHECK(fake_send(&w, b, NULL, "{\"type\":\"message\",\"user\":\"frank\",\"text\":\"typed\"}") == 0);
    EXPECT_COUNT(a, 1);
    EXPECT(a, 0, "message", "soon", 1);
    EXPECT_COUNT(b, 1);
    EXPECT(b, 0, "typing", NULL, -1);

    uint64_t start = aw_now_ms();
    aw_registry_shutdown(w.reg);
    EXPECT_COUNT(a, 2);
    EXPECT(a, 1, "message", "late", 2);
    EXPECT_COUNT(b, 2);
    EXPECT(b, 1, "message", "slow", 1);
    CHECK(aw_now_ms() - start < 5000);
    CHECK(fake_send(&w, a, NULL, "{\"type\":\"message\",\"user\":\"erin\",\"text\":\"x\"}") != 0);

    CHECK(fake_world_close(&w) == 0);
    aw_conn_release(&a->super);
    aw_conn_release(&b->super);
}

/* Webhook turns: the token of a brand-new user comes with the answer, a
 * botkit request is answered with the first reply, an API one with all,
 * each answered once, and a wrong token is an error. */
static void test_webhooks(void)
{
    fake_world_t w;
    aw_chat_config_t cfg = {.history_auth = 1, .idle_ms = 60000};
    fake_world_open(&w, db_path("webhook.db"), bot, &cfg);
    char tok[AW_TOKEN_LEN + 1];
    fake_token("gina", tok);
    fake_sink_t *s[5];
    static const int modes[5] = {AW_SINK_ALL, AW_SINK_FIRST, AW_SINK_ALL, AW_SINK_ALL, AW_SINK_ALL};
    static const char *const msgs[5] = {
        "{\"type\":\"hello\",\"user\":\"gina\"}",
        "{\"type\":\"message\",\"user\":\"gina\",\"text\":\"three\"}",
        "{\"type\":\"message\",\"user\":\"gina\",\"text\":\"three\"}",
        "{\"type\":\"hello\",\"user\":\"gina\"}",
        "{\"type\":\"message\",\"user\":\"gina\",\"text\":\"no\",\"token\":\"0000\"}",
    };
    for (int i = 0; i < 5; i++) {
        s[i] = fake_sink_new(modes[i]);
        CHECK(fake_send(&w, NULL, s[i], msgs[i]) == 0);
        CHECK(fake_sink_wait(s[i], FAKE_WAIT_MS) == 1);
    }
    fake_frame_t f;
    CHECK(s[0]->err == 0 && s[0]->n == 1 && strcmp(s[0]->token, tok) == 0);
    CHECK(fake_sink_frame(s[0], 0, &f) && strcmp(f.text, "hi") == 0 && f.seq == 1);
    CHECK(strcmp(f.channel, "webhook") == 0);
    CHECK(s[1]->err == 0 && s[1]->n == 1 && s[1]->token[0] == '\0');
    CHECK(fake_sink_frame(s[1], 0, &f) && strcmp(f.text, "one") == 0 && f.seq == 2);
    CHECK(s[2]->err == 0 && s[2]->n == 3);
    for (size_t i = 0; i < 3; i++)
        CHECK(fake_sink_frame(s[2], i, &f) && f.seq == 5 + (int64_t)i);
    CHECK(s[3]->err == 0 && s[3]->n == 1 && s[3]->token[0] == '\0');
    CHECK(fake_sink_frame(s[3], 0, &f) && strcmp(f.text, "hi") == 0 && f.seq == 8);
    CHECK(s[4]->err < 0 && s[4]->n == 0);

    CHECK(fake_world_close(&w) == 0);
    for (int i = 0; i < 5; i++) {
        CHECK(s[i]->completed == 1);
        aw_sink_release(&s[i]->super);
    }
}

/* A message pushed to the user (POST /api/send) is numbered in the user's
 * stream, kept, and sent to every verified socket only; the request is
 * answered with its seq and the number of sockets. */
static void test_push(void)
{
    fake_world_t w;
    aw_chat_config_t cfg = {.history_auth = 1, .idle_ms = 60000};
    fake_world_open(&w, db_path("push.db"), bot, &cfg);
    fake_conn_t *a = fake_conn_new(), *c = fake_conn_new();
    CHECK(fake_send(&w, a, NULL, "{\"type\":\"hello\",\"user\":\"hank\"}") == 0);
    EXPECT_COUNT(a, 2);
    CHECK(fake_send(&w, c, NULL, "{\"type\":\"hello\",\"user\":\"hank\"}") == 0);
    EXPECT_COUNT(c, 2);
    EXPECT_COUNT(a, 3);

    static const char *const users[2] = {"hank", "ivy"};
    static const char *const want[2] = {"{\"seq\":3,\"sockets\":1}", "{\"seq\":1,\"sockets\":0}"};
    for (int i = 0; i < 2; i++) {
        fake_sink_t *s = fake_sink_new(AW_SINK_PUSH);
        aw_inbound_t *in = aw_push_new(aw_reply_new("pushed"), &s->super);
        int err = aw_registry_send(w.reg, users[i], strlen(users[i]), &in->super, 1);
        CHECK(err == 0);
        if (err != 0)
            aw_msg_release(&in->super);
        CHECK(fake_sink_wait(s, FAKE_WAIT_MS) == 1);
        CHECK(s->err == 0 && s->n == 1 && strcmp(s->frames[0], want[i]) == 0);
        aw_sink_release(&s->super);
    }
    EXPECT_COUNT(a, 4);
    EXPECT(a, 3, "message", "pushed", 3);
    EXPECT_COUNT(c, 2);
    EXPECT_STORED(w.history, "hank", "hi|hi|pushed|");
    EXPECT_STORED(w.history, "ivy", "pushed|");
    CHECK(fake_world_close(&w) == 0);
    aw_conn_release(&a->super);
    aw_conn_release(&c->super);
}

/* Checks that frame `i` of `c` is the ack of `mid`, a duplicate's or not. */
static void expect_ack(fake_conn_t *c, const char *name, size_t i, const char *mid, int duplicate, int line)
{
    fake_frame_t f;
    int ok = fake_conn_frame(c, i, &f) && strcmp(f.type, "ack") == 0 && strcmp(f.mid, mid) == 0 &&
             f.duplicate == duplicate;
    if (!ok) {
        fprintf(stderr, "line %d: %s frame %zu: want the ack of %s%s\n", line, name, i, mid,
                duplicate ? " (duplicate)" : "");
        fake_conn_dump(c, name);
    }
    CHECK(ok);
}

#define EXPECT_ACK(c, i, mid, dup) expect_ack(c, #c, i, mid, dup, __LINE__)

/* A client's message ids (docs/protocol.md, Delivery): a message is
 * acknowledged once taken; sent again with the same mid it is acknowledged
 * as a duplicate and neither run nor stored again, also after a restart
 * (the window comes back from the person's stored records); a guest's ids
 * are not kept. */
static void test_mids_taken_once(void)
{
    fake_world_t w;
    aw_chat_config_t cfg = {.history_auth = 1, .idle_ms = 60000};
    fake_world_open(&w, db_path("mids.db"), bot, &cfg);
    char tok[AW_TOKEN_LEN + 1], json[256];
    fake_token("mo", tok);
    fake_conn_t *a = fake_conn_new(), *b = fake_conn_new(), *g = fake_conn_new();
    CHECK(fake_send(&w, a, NULL, "{\"type\":\"hello\",\"user\":\"mo\"}") == 0);
    EXPECT_COUNT(a, 2);
    const char *x = "{\"type\":\"message\",\"user\":\"mo\",\"text\":\"x\",\"mid\":\"k1\"}";
    CHECK(fake_send(&w, a, NULL, x) == 0);
    EXPECT_COUNT(a, 4);
    EXPECT_ACK(a, 2, "k1", 0);
    EXPECT(a, 3, "message", "x", 2);
    CHECK(fake_send(&w, a, NULL, x) == 0);
    EXPECT_COUNT(a, 5);
    EXPECT_ACK(a, 4, "k1", 1);
    CHECK(fake_send(&w, a, NULL, "{\"type\":\"message\",\"user\":\"mo\",\"text\":\"y\",\"mid\":\"k2\"}") ==
          0);
    EXPECT_COUNT(a, 7);
    EXPECT_ACK(a, 5, "k2", 0);
    EXPECT(a, 6, "message", "y", 3);
    EXPECT_STORED(w.history, "mo", "hi|x|x|y|y|");
    CHECK(fake_world_close(&w) == 0);

    fake_world_open(&w, db_path("mids.db"), bot, &cfg);
    snprintf(json, sizeof(json), "{\"type\":\"welcome_back\",\"user\":\"mo\",\"token\":\"%s\"}", tok);
    CHECK(fake_send(&w, b, NULL, json) == 0);
    EXPECT_COUNT(b, 2);
    CHECK(fake_send(&w, b, NULL, x) == 0);
    EXPECT_COUNT(b, 3);
    EXPECT_ACK(b, 2, "k1", 1); /* taken before the restart */
    /* a guest (no token, the id is protected) may use any id: it is not kept */
    CHECK(fake_send(&w, g, NULL, "{\"type\":\"message\",\"user\":\"mo\",\"text\":\"z\",\"mid\":\"k3\"}") ==
          0);
    CHECK(fake_send(&w, g, NULL, "{\"type\":\"message\",\"user\":\"mo\",\"text\":\"z\",\"mid\":\"k3\"}") ==
          0);
    EXPECT_COUNT(g, 4);
    EXPECT_ACK(g, 2, "k3", 0);
    EXPECT(g, 3, "message", "z", -1);
    CHECK(fake_send(&w, b, NULL, "{\"type\":\"message\",\"user\":\"mo\",\"text\":\"w\",\"mid\":\"k3\"}") ==
          0);
    EXPECT_COUNT(b, 5);
    EXPECT_ACK(b, 3, "k3", 0); /* the user's own k3 is new */
    EXPECT_STORED(w.history, "mo", "hi|x|x|y|y|welcome back|w|w|");
    CHECK(fake_world_close(&w) == 0);
    aw_conn_release(&a->super);
    aw_conn_release(&b->super);
    aw_conn_release(&g->super);
}

/* With --durable-delivery an ack and a bot message wait until their records
 * are durable: not while the store refuses writes, once after a write that
 * succeeded was reported failed (the retry writes nothing twice), and a
 * webhook's answer waits the same way and carries the ack. */
static void test_durable_delivery(void)
{
    fake_world_t w;
    aw_chat_config_t cfg = {.history_auth = 1, .idle_ms = 60000, .durable = 1};
    fake_world_open(&w, db_path("durable.db"), bot, &cfg);
    fake_conn_t *a = fake_conn_new();
    CHECK(fake_send(&w, a, NULL, "{\"type\":\"hello\",\"user\":\"dee\"}") == 0);
    EXPECT_COUNT(a, 2);
    EXPECT(a, 1, "message", "hi", 1);

    faulty_set(&w.store->fail_writes, 1);
    CHECK(fake_send(&w, a, NULL, "{\"type\":\"message\",\"user\":\"dee\",\"text\":\"x\",\"mid\":\"d1\"}") ==
          0);
    usleep(200000);
    EXPECT_COUNT(a, 2); /* neither the ack nor the reply: nothing is durable */
    faulty_set(&w.store->lie_writes, 1);
    faulty_set(&w.store->fail_writes, 0);
    EXPECT_COUNT(a, 4);
    EXPECT_ACK(a, 2, "d1", 0);
    EXPECT(a, 3, "message", "x", 2);
    usleep(100000);
    EXPECT_COUNT(a, 4);
    EXPECT_STORED(w.history, "dee", "hi|x|x|");

    faulty_set(&w.store->fail_writes, 1);
    fake_sink_t *s = fake_sink_new(AW_SINK_ALL);
    CHECK(fake_send(&w, NULL, s, "{\"type\":\"message\",\"user\":\"dee\",\"text\":\"y\",\"mid\":\"d2\"}") ==
          0);
    CHECK(fake_sink_wait(s, 200) == 0);
    faulty_set(&w.store->fail_writes, 0);
    CHECK(fake_sink_wait(s, FAKE_WAIT_MS) == 1);
    fake_frame_t f;
    CHECK(s->err == 0 && s->n == 1 && strcmp(s->ack, "d2") == 0);
    CHECK(fake_sink_frame(s, 0, &f) && strcmp(f.text, "y") == 0 && f.seq == 3);
    EXPECT_COUNT(a, 5); /* the verified socket sees the webhook turn's reply, once durable too */
    EXPECT(a, 4, "message", "y", 3);
    CHECK(fake_world_close(&w) == 0);
    aw_sink_release(&s->super);
    aw_conn_release(&a->super);
}

/* Two writers of one user (another server on the same store took the user
 * over): the block this session asks for next is taken, so it reads where
 * numbering goes on and numbers above the other's block; no seq in the
 * other's block is ever handed out here. */
static void test_reservation_taken(void)
{
    fake_world_t w;
    aw_chat_config_t cfg = {.history_auth = 1, .idle_ms = 60000, .rate = 0};
    fake_world_open(&w, db_path("taken.db"), bot, &cfg);
    fake_conn_t *a = fake_conn_new();
    CHECK(fake_send(&w, a, NULL, "{\"type\":\"hello\",\"user\":\"tk\"}") == 0);
    EXPECT_COUNT(a, 2);
    char uri[512];
    aw_store_t *store;
    snprintf(uri, sizeof(uri), "sqlite:%s", db_path("taken.db"));
    CHECK(aw_store_open(&store, uri, NULL) == 0);
    aw_history_config_t hc = {.flush_ms = 1};
    aw_history_t *other = aw_history_start(store, &hc);
    answer_t r = {0};
    uv_mutex_init(&r.lock);
    uv_cond_init(&r.cond);
    CHECK(aw_history_reserve(other, "tk", 2, 128, 0, on_answer, &r) == 0);
    wait_answer(&r);
    CHECK(r.err == 0);
    for (int i = 0; i < 70; i++)
        CHECK(fake_send(&w, a, NULL, "{\"type\":\"message\",\"user\":\"tk\",\"text\":\"n\"}") == 0);
    EXPECT_COUNT(a, 72);
    int64_t last = 1;
    for (size_t i = 2; i < 72; i++) {
        fake_frame_t f;
        CHECK(fake_conn_frame(a, i, &f) && f.seq > last && (f.seq <= 64 || f.seq > 128));
        last = f.seq;
    }
    CHECK(last > 128); /* the next block after the other's */
    CHECK(aw_history_stop(other, 1000) == 0);
    CHECK(fake_world_close(&w) == 0);
    aw_conn_release(&a->super);
}

/* Sends a console's request to the session of `user`. */
static void to_session(fake_world_t *w, const char *user, int op, const char *name, fake_conn_t *console,
                       const char *text)
{
    aw_handoff_msg_t *m = aw_handoff_msg_new(op, name, console != NULL ? &console->super : NULL, text);
    int err = aw_registry_send(w->reg, user, strlen(user), &m->super, 1);
    CHECK(err == 0);
    if (err != 0)
        aw_msg_release(&m->super);
}

/* The frames of console `c` of `type` so far. */
static int count_type(fake_conn_t *c, const char *type, const char *code)
{
    int n = 0;
    fake_frame_t f;
    for (size_t i = 0; fake_conn_frame(c, i, &f); i++)
        n += strcmp(f.type, type) == 0 && (code == NULL || strcmp(f.code, code) == 0);
    return n;
}

/* A handoff in the session (actors/handoff.h): the bot's request goes in its
 * place among its replies; of two operators who take it at once one wins;
 * the bot hears nothing while a person has it; an operator's message is
 * numbered, sent to the user and the consoles watching, and kept; hand back
 * runs the bot's handoff_end; and a restart finds the state in the store. */
static void test_handoff(void)
{
    fake_world_t w;
    aw_chat_config_t cfg = {
        .history_auth = 1, .idle_ms = 60000, .handoff_joined = "joined", .handoff_ended = "ended"};
    cfg.desk = aw_desk_create();
    fake_world_open(&w, db_path("handoff.db"), bot, &cfg);
    fake_conn_t *a = fake_conn_new(), *k1 = fake_conn_new(), *k2 = fake_conn_new();
    CHECK(fake_send(&w, a, NULL, "{\"type\":\"hello\",\"user\":\"hal\"}") == 0);
    EXPECT_COUNT(a, 2);
    CHECK(fake_send(&w, a, NULL, "{\"type\":\"message\",\"user\":\"hal\",\"text\":\"person\"}") == 0);
    EXPECT_COUNT(a, 4);
    EXPECT(a, 2, "message", "getting someone", 2);
    EXPECT(a, 3, "message", "after the request", 3);
    aw_handoff_t h;
    CHECK(aw_desk_get(cfg.desk, "hal", 3, &h) && h.state == AW_HANDOFF_WAITING &&
          strcmp(h.reason, "asked") == 0);

    to_session(&w, "hal", AW_HANDOFF_OP_TAKE, "ann", k1, NULL);
    to_session(&w, "hal", AW_HANDOFF_OP_TAKE, "bob", k2, NULL);
    fake_conn_wait(k1, 1, FAKE_WAIT_MS);
    fake_conn_wait(k2, 1, FAKE_WAIT_MS);
    CHECK(count_type(k1, "taken", NULL) == 1 && count_type(k2, "error", "taken") == 1);
    EXPECT_COUNT(a, 5);
    EXPECT(a, 4, "message", "joined", 4);

    /* the bot hears nothing; the console watching sees the message */
    CHECK(fake_send(&w, a, NULL, "{\"type\":\"message\",\"user\":\"hal\",\"text\":\"anyone?\"}") == 0);
    to_session(&w, "hal", AW_HANDOFF_OP_SEND, "bob", k2, "not mine to say");
    to_session(&w, "hal", AW_HANDOFF_OP_SEND, "ann", k1, "ann here");
    EXPECT_COUNT(a, 6);
    EXPECT(a, 5, "message", "ann here", 5);
    fake_conn_wait(k2, 2, FAKE_WAIT_MS);
    CHECK(count_type(k2, "error", "not_owner") == 1);
    /* the console that took it watches: its answer, the notice, the user's message, its own */
    CHECK(fake_conn_wait(k1, 4, FAKE_WAIT_MS) == 4);
    EXPECT(k1, 0, "taken", NULL, -1);
    EXPECT(k1, 1, "message", "joined", 4);
    EXPECT(k1, 2, "message_received", "anyone?", -1);
    EXPECT(k1, 3, "message", "ann here", 5);
    EXPECT_STORED(w.history, "hal", "hi|person|getting someone|after the request|joined|anyone?|ann here|");

    /* a restart: the session reads who answers from the store when it loads,
     * whatever the desk (empty here: not read at start) says */
    CHECK(fake_world_close(&w) == 0);
    aw_desk_destroy(cfg.desk);
    cfg.desk = aw_desk_create();
    fake_world_open(&w, db_path("handoff.db"), bot, &cfg);
    fake_conn_t *b = fake_conn_new();
    char hello[256], token[AW_TOKEN_LEN + 1];
    fake_token("hal", token);
    snprintf(hello, sizeof(hello), "{\"type\":\"welcome_back\",\"user\":\"hal\",\"token\":\"%s\"}", token);
    CHECK(fake_send(&w, b, NULL, hello) == 0);
    CHECK(fake_send(&w, b, NULL, "{\"type\":\"message\",\"user\":\"hal\",\"text\":\"still?\"}") == 0);
    EXPECT_COUNT(b, 1); /* the session frame, and nothing of the bot */
    CHECK(aw_desk_get(cfg.desk, "hal", 3, &h) && h.state == AW_HANDOFF_OWNED &&
          strcmp(h.operator_name, "ann") == 0 && h.answered);
    to_session(&w, "hal", AW_HANDOFF_OP_RELEASE, "ann", NULL, NULL);
    EXPECT_COUNT(b, 3);
    EXPECT(b, 1, "message", "ended", 65);
    EXPECT(b, 2, "message", "bot again", 66);
    EXPECT_STORED(
        w.history, "hal",
        "hi|person|getting someone|after the request|joined|anyone?|ann here|still?|ended|bot again|");
    CHECK(fake_send(&w, b, NULL, "{\"type\":\"message\",\"user\":\"hal\",\"text\":\"echo me\"}") == 0);
    EXPECT_COUNT(b, 4);
    EXPECT(b, 3, "message", "echo me", 67);
    CHECK(aw_desk_get(cfg.desk, "hal", 3, &h) == 0);
    CHECK(fake_world_close(&w) == 0);
    aw_desk_destroy(cfg.desk);
    aw_conn_release(&a->super);
    aw_conn_release(&b->super);
    aw_conn_release(&k1->super);
    aw_conn_release(&k2->super);
}

int main(void)
{
    if (mkdtemp(dir) == NULL)
        return 1;
    bot = test_bot();
    test_fanout_guests_and_wrong_tokens();
    test_claim_waits_for_the_store();
    test_numbering_outlives_the_session();
    test_rate_limit();
    test_replay_from_last_seq();
    test_shutdown_sends_what_waits();
    test_webhooks();
    test_push();
    test_mids_taken_once();
    test_durable_delivery();
    test_reservation_taken();
    test_handoff();
    aw_bot_free(bot);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return check_exit("test_session");
}
