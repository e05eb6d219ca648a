/*
 * The handoff state machine (actors/handoff.h), its record, and the desk
 * (actors/desk.h) as consoles see it: every transition and every refusal,
 * a record read back as written, and the list a console is sent.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "actors/desk.h"
#include "actors/handoff.h"
#include "runtime/error.h"
#include "tests/check.h"

static void test_transitions(void)
{
    aw_handoff_t h = {0};
    CHECK(h.state == AW_HANDOFF_BOT);
    CHECK(aw_handoff_release(&h, "ann") == AW_ENOTFOUND);
    CHECK(aw_handoff_request(&h, "asked for a human", 1000) == 1);
    CHECK(h.state == AW_HANDOFF_WAITING && strcmp(h.reason, "asked for a human") == 0 && h.since_ms == 1000);
    CHECK(aw_handoff_request(&h, "again", 2000) == 0); /* asked once: the first wait counts */
    CHECK(h.since_ms == 1000 && strcmp(h.reason, "asked for a human") == 0);
    CHECK(aw_handoff_take(&h, "ann", 3000) == 1);
    CHECK(h.state == AW_HANDOFF_OWNED && strcmp(h.operator_name, "ann") == 0 && h.owned_ms == 3000);
    CHECK(aw_handoff_take(&h, "ann", 3500) == 0); /* hers already */
    CHECK(aw_handoff_take(&h, "bob", 3600) == AW_EEXIST);
    CHECK(strcmp(h.operator_name, "ann") == 0);
    CHECK(aw_handoff_release(&h, "bob") == AW_EEXIST); /* only the owner hands back */
    int64_t waited = 0;
    CHECK(aw_handoff_answered(&h, 4000, &waited) == 1 && waited == 3000);
    CHECK(aw_handoff_answered(&h, 5000, &waited) == 0); /* the first answer only */
    CHECK(aw_handoff_abandon(&h, "bob") == 0);
    CHECK(aw_handoff_abandon(&h, "ann") == 1);
    CHECK(h.state == AW_HANDOFF_WAITING && h.operator_name[0] == '\0' && h.since_ms == 1000 && !h.answered);
    CHECK(aw_handoff_release(&h, "bob") == 0); /* any operator may dismiss a wait */
    CHECK(h.state == AW_HANDOFF_BOT);
    CHECK(aw_handoff_take(&h, "bob", 7000) == 1); /* taken over unasked */
    CHECK(h.reason[0] == '\0' && h.since_ms == 7000);
    CHECK(aw_handoff_release(&h, NULL) == 0); /* the API may always */
    CHECK(h.state == AW_HANDOFF_BOT);
}

static void test_reason_cut(void)
{
    char reason[AW_HANDOFF_REASON_MAX + 8];
    memset(reason, 'a', sizeof(reason) - 1);
    reason[sizeof(reason) - 1] = '\0';
    /* a two-byte character across the limit is left out whole */
    reason[AW_HANDOFF_REASON_MAX - 1] = (char)0xC3;
    reason[AW_HANDOFF_REASON_MAX] = (char)0xA9;
    aw_handoff_t h = {0};
    aw_handoff_request(&h, reason, 1);
    CHECK(strlen(h.reason) == AW_HANDOFF_REASON_MAX - 1);
    aw_handoff_t n = {0};
    aw_handoff_request(&n, NULL, 1);
    CHECK(n.reason[0] == '\0');
}

static void test_names(void)
{
    CHECK(aw_operator_name_valid("ann.o-b_2", 9));
    CHECK(!aw_operator_name_valid("", 0));
    CHECK(!aw_operator_name_valid("a b", 3));
    CHECK(!aw_operator_name_valid("a:b", 3));
    CHECK(!aw_operator_name_valid("\"x", 2));
    char long_name[AW_OPERATOR_NAME_MAX + 1];
    memset(long_name, 'x', sizeof(long_name));
    CHECK(!aw_operator_name_valid(long_name, sizeof(long_name)));
    CHECK(aw_operator_name_valid(long_name, sizeof(long_name) - 1));
}

static void round_trip(const aw_handoff_t *h)
{
    aw_buf_t *b = aw_handoff_write(h);
    aw_handoff_t got;
    CHECK(aw_handoff_parse(&got, b->data, b->len) == 0);
    CHECK(got.state == h->state && strcmp(got.reason, h->reason) == 0 &&
          strcmp(got.operator_name, h->operator_name) == 0 && got.since_ms == h->since_ms &&
          got.owned_ms == h->owned_ms && got.answered == h->answered);
    aw_buf_release(b);
}

static void test_record(void)
{
    aw_handoff_t h = {0};
    round_trip(&h);
    aw_handoff_request(&h, "said \"agent\"\n\xc3\xa9", 1700000000000);
    round_trip(&h);
    aw_handoff_take(&h, "ann", 1700000005000);
    round_trip(&h);
    int64_t w;
    aw_handoff_answered(&h, 1700000009000, &w);
    round_trip(&h);
    static const char *const bad[] = {
        "",
        "[]",
        "{\"state\":\"sleeping\"}",
        "{\"state\":\"owned\"}",
        "{\"state\":\"owned\",\"operator\":\"a b\"}",
        "{\"state\":\"waiting\",\"since\":\"soon\"}",
        "{\"state\":7}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        aw_handoff_t got = {.state = AW_HANDOFF_OWNED};
        CHECK(aw_handoff_parse(&got, bad[i], strlen(bad[i])) != 0);
        CHECK(got.state == AW_HANDOFF_BOT);
    }
}

/* A console stand-in: keeps the last frame. */
typedef struct fake_conn {
    aw_conn_t super;
    char last[1024];
    int frames;
} fake_conn_t;

static void fake_send(aw_conn_t *c, aw_buf_t *frame)
{
    fake_conn_t *f = (fake_conn_t *)c;
    snprintf(f->last, sizeof(f->last), "%.*s", (int)frame->len, frame->data);
    f->frames++;
}

static void fake_close(aw_conn_t *c, int code)
{
    (void)c;
    (void)code;
}

static void fake_dispose(aw_conn_t *c)
{
    (void)c;
}

static void test_desk(void)
{
    aw_desk_t *d = aw_desk_create();
    fake_conn_t a = {.super = {.refcnt = 1, .send = fake_send, .close = fake_close, .dispose = fake_dispose}};
    fake_conn_t a2 = a, b = a;
    aw_desk_join(d, &a.super, "ann");
    CHECK(a.frames == 1 && strstr(a.last, "\"waiting\":[]") != NULL &&
          strstr(a.last, "\"owned\":[]") != NULL);
    aw_desk_join(d, &a2.super, "ann");
    aw_desk_join(d, &b.super, "bob");
    aw_handoff_t late = {0}, early = {0};
    aw_handoff_request(&late, "later", 2000);
    aw_handoff_request(&early, "first", 1000);
    aw_desk_set(d, "u2", 2, &late);
    aw_desk_set(d, "u1", 2, &early);
    /* oldest first, to every console */
    CHECK(strstr(b.last, "\"waiting\":[{\"user\":\"u1\"") != NULL);
    CHECK(strstr(b.last, "{\"user\":\"u2\",\"reason\":\"later\",\"since\":2000}") != NULL);
    CHECK(a.frames == 3 && b.frames == 3);
    aw_handoff_take(&early, "ann", 3000);
    aw_desk_set(d, "u1", 2, &early);
    CHECK(strstr(a.last,
                 "\"owned\":[{\"user\":\"u1\",\"reason\":\"first\",\"since\":1000,\"operator\":\"ann\"") !=
          NULL);
    uint64_t waiting, owned;
    aw_desk_counts(d, &waiting, &owned);
    CHECK(waiting == 1 && owned == 1);
    aw_handoff_t got;
    CHECK(aw_desk_get(d, "u1", 2, &got) == 1 && got.state == AW_HANDOFF_OWNED);
    CHECK(aw_desk_get(d, "u3", 2, &got) == 0);
    CHECK(aw_desk_online(d, "ann") && !aw_desk_online(d, "cat"));
    int last = -1;
    char **users = aw_desk_leave(d, &a.super, &last);
    CHECK(users == NULL && last == 0); /* ann has another console */
    users = aw_desk_leave(d, &a2.super, &last);
    CHECK(last == 1 && users != NULL && strcmp(users[0], "u1") == 0 && users[1] == NULL);
    aw_desk_free_list(users);
    CHECK(!aw_desk_online(d, "ann"));
    aw_handoff_t back = {0};
    aw_desk_set(d, "u1", 2, &back); /* the bot's again: forgotten */
    CHECK(aw_desk_get(d, "u1", 2, &got) == 0);
    aw_desk_counts(d, &waiting, &owned);
    CHECK(waiting == 1 && owned == 0);
    aw_desk_destroy(d);
}

/* The other nodes, as a cluster would be: what they heard, who is online there. */
typedef struct fake_peers {
    int changed, presence;
    char last_user[16];
    int last_state;
    const char *online_there;
} fake_peers_t;

static void peer_changed(void *data, const char *user, size_t user_len, const aw_handoff_t *h)
{
    fake_peers_t *p = data;
    p->changed++;
    snprintf(p->last_user, sizeof(p->last_user), "%.*s", (int)user_len, user);
    p->last_state = h->state;
}

static int peer_online(void *data, const char *op)
{
    fake_peers_t *p = data;
    return p->online_there != NULL && strcmp(p->online_there, op) == 0;
}

static void peer_presence(void *data)
{
    ((fake_peers_t *)data)->presence++;
}

static void test_desk_peers(void)
{
    aw_desk_t *d = aw_desk_create();
    fake_peers_t fp = {.online_there = "bob"};
    aw_desk_peers_t peers = {&fp, peer_changed, peer_online, peer_presence};
    aw_desk_set_peers(d, &peers);
    fake_conn_t a = {.super = {.refcnt = 1, .send = fake_send, .close = fake_close, .dispose = fake_dispose}};
    fake_conn_t a2 = a;
    aw_desk_join(d, &a.super, "ann");
    aw_desk_join(d, &a2.super, "ann"); /* not the first of hers: the others knew */
    CHECK(fp.presence == 1);
    char *ops = aw_desk_operators(d);
    CHECK(strcmp(ops, "ann\n") == 0);
    free(ops);
    aw_handoff_t h = {0};
    aw_handoff_request(&h, "why", 1000);
    aw_desk_set(d, "u1", 2, &h); /* a session here: the others hear it */
    CHECK(fp.changed == 1 && strcmp(fp.last_user, "u1") == 0 && fp.last_state == AW_HANDOFF_WAITING);
    aw_handoff_take(&h, "bob", 2000);
    aw_desk_apply(d, "u2", 2, &h); /* a session elsewhere: only the consoles here hear it */
    CHECK(fp.changed == 1 && a.frames == 3);
    CHECK(strstr(a.last, "\"operator\":\"bob\"") != NULL);
    char **owners = NULL;
    char **users = aw_desk_owned_by(d, NULL, &owners);
    CHECK(users != NULL && strcmp(users[0], "u2") == 0 && users[1] == NULL);
    CHECK(owners != NULL && strcmp(owners[0], "bob") == 0 && owners[1] == NULL);
    aw_desk_free_list(users);
    aw_desk_free_list(owners);
    /* online here, or there */
    CHECK(aw_desk_online(d, "ann") && aw_desk_online(d, "bob") && !aw_desk_online(d, "cat"));
    int last = 0;
    aw_desk_free_list(aw_desk_leave(d, &a.super, &last));
    CHECK(fp.presence == 1);
    aw_desk_free_list(aw_desk_leave(d, &a2.super, &last));
    CHECK(last == 1 && fp.presence == 2);
    ops = aw_desk_operators(d);
    CHECK(strcmp(ops, "") == 0);
    free(ops);
    aw_desk_set_peers(d, NULL);
    aw_desk_destroy(d);
}

int main(void)
{
    test_transitions();
    test_reason_cut();
    test_names();
    test_record();
    test_desk();
    test_desk_peers();
    return check_exit("test_handoff");
}
