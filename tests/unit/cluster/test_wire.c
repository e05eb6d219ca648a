/*
 * Unit tests of cluster/wire.c: a message built is read back field for
 * field; one changed byte, another key or another subject makes it
 * unauthorized; a signed message of the wrong shape is refused; lists of
 * items are read back and a cut list is refused. Also the push's round trip
 * through aw_push_write and aw_push_parse, which is how a push travels to
 * the user's home.
 */
#include <string.h>
#include "actors/reply.h"
#include "cluster/wire.h"
#include "runtime/error.h"
#include "tests/check.h"

static const unsigned char key[AW_WIRE_KEY_LEN] = "0123456789abcdef0123456789abcde";

static aw_buf_t *build(const char *subject, const char *kind, const char *node, int64_t a, const char *user,
                       const char *body)
{
    aw_bytes_t out;
    aw_bytes_init(&out, 0);
    aw_wire_build(&out, key, subject, kind, node, 77, a, -2, 3, user, strlen(user), body, strlen(body));
    return aw_bytes_finish(&out);
}

static void test_round_trip(void)
{
    aw_buf_t *m =
        build("c.node.b", AW_WIRE_INBOUND, "node-a", 12345678901234LL, "alice", "{\"type\":\"hello\"}");
    aw_wire_msg_t w;
    CHECK(aw_wire_parse(key, "c.node.b", m->data, m->len, &w) == 0);
    CHECK(strcmp(w.kind, "in") == 0 && strcmp(w.node, "node-a") == 0);
    CHECK(w.incarnation == 77 && w.a == 12345678901234LL && w.b == -2 && w.c == 3);
    CHECK(w.user_len == 5 && memcmp(w.user, "alice", 5) == 0);
    CHECK(w.body_len == 16 && memcmp(w.body, "{\"type\":\"hello\"}", 16) == 0);
    CHECK(aw_wire_parse(key, "c.node.c", m->data, m->len, &w) == AW_EUNAUTHORIZED); /* replayed elsewhere */
    unsigned char other[AW_WIRE_KEY_LEN];
    memcpy(other, key, sizeof(other));
    other[0] ^= 1;
    CHECK(aw_wire_parse(other, "c.node.b", m->data, m->len, &w) == AW_EUNAUTHORIZED);
    for (size_t i = 0; i < m->len; i += 7) {
        m->data[i] ^= 0x20;
        CHECK(aw_wire_parse(key, "c.node.b", m->data, m->len, &w) == AW_EUNAUTHORIZED);
        m->data[i] ^= 0x20;
    }
    CHECK(aw_wire_parse(key, "c.node.b", m->data, m->len - 1, &w) == AW_EUNAUTHORIZED);
    CHECK(aw_wire_parse(key, "c.node.b", m->data, 10, &w) == AW_EBADMSG);
    aw_buf_release(m);
}

static void test_shapes(void)
{
    aw_wire_msg_t w;
    aw_buf_t *m = build("s", "hb", "bad node", 1, "", "");
    CHECK(aw_wire_parse(key, "s", m->data, m->len, &w) == AW_EBADMSG); /* a node id with a space */
    aw_buf_release(m);
    m = build("s", "toolongkind", "n", 1, "", "");
    CHECK(aw_wire_parse(key, "s", m->data, m->len, &w) == AW_EBADMSG);
    aw_buf_release(m);
    m = build("s", "hb", "n", 1, "", "host sqlite");
    CHECK(aw_wire_parse(key, "s", m->data, m->len, &w) == 0 && w.user_len == 0 && w.body_len == 11);
    aw_buf_release(m);
    CHECK(aw_wire_node_ok("node-1_A", 8));
    CHECK(!aw_wire_node_ok("a.b", 3) && !aw_wire_node_ok("", 0) && !aw_wire_node_ok("a*", 2));
    char long_id[AW_WIRE_MAX_NODE + 2];
    memset(long_id, 'x', sizeof(long_id));
    CHECK(aw_wire_node_ok(long_id, AW_WIRE_MAX_NODE) && !aw_wire_node_ok(long_id, AW_WIRE_MAX_NODE + 1));
}

static void test_items(void)
{
    aw_bytes_t out;
    aw_bytes_init(&out, 0);
    aw_wire_put_item(&out, "token", 5);
    aw_wire_put_item(&out, "", 0);
    aw_wire_put_item(&out, "{\"a\":\"\\n\"}", 10);
    aw_buf_t *b = aw_bytes_finish(&out);
    const char *p = b->data, *item;
    size_t left = b->len, n;
    CHECK(aw_wire_next_item(&p, &left, &item, &n) == 0 && n == 5 && memcmp(item, "token", 5) == 0);
    CHECK(aw_wire_next_item(&p, &left, &item, &n) == 0 && n == 0);
    CHECK(aw_wire_next_item(&p, &left, &item, &n) == 0 && n == 10 && left == 0);
    CHECK(aw_wire_next_item(&p, &left, &item, &n) == AW_EBADMSG);
    p = b->data;
    left = b->len - 1; /* cut */
    CHECK(aw_wire_next_item(&p, &left, &item, &n) == 0 && aw_wire_next_item(&p, &left, &item, &n) == 0);
    CHECK(aw_wire_next_item(&p, &left, &item, &n) == AW_EBADMSG);
    const char *neg = "-1\nx";
    p = neg;
    left = 4;
    CHECK(aw_wire_next_item(&p, &left, &item, &n) == AW_EBADMSG);
    aw_buf_release(b);
}

static void test_push_round_trip(void)
{
    const char *body =
        "{\"user\":\"bob\",\"text\":\"hi\",\"typing\":250,\"quick_replies\":[{\"title\":\"Yes\"}],"
        "\"custom\":{\"k\":[1,2]}}";
    char user[AW_MAX_USER_LEN];
    size_t user_len;
    aw_reply_t *r = NULL, *again = NULL;
    CHECK(aw_push_parse(body, strlen(body), user, &user_len, &r) == 0);
    aw_buf_t *w = aw_push_write(r, user, user_len);
    CHECK(aw_push_parse(w->data, w->len, user, &user_len, &again) == 0);
    CHECK(user_len == 3 && memcmp(user, "bob", 3) == 0);
    if (again != NULL) {
        CHECK(again->typing_ms == 250);
        aw_buf_t *f1 = aw_reply_write(r, "bob", 3, "websocket", 4, 5),
                 *f2 = aw_reply_write(again, "bob", 3, "websocket", 4, 5);
        CHECK(f1->len == f2->len && memcmp(f1->data, f2->data, f1->len) == 0);
        aw_buf_release(f1);
        aw_buf_release(f2);
    }
    aw_buf_release(w);
    aw_reply_free(r);
    aw_reply_free(again);
}

int main(void)
{
    test_round_trip();
    test_shapes();
    test_items();
    test_push_round_trip();
    return check_exit("test_wire");
}
