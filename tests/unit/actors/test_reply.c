/*
 * Unit tests of actors/reply.c: bot messages and the protocol's frames are
 * written exactly, and a bot's JSON object becomes a reply whose frame
 * carries each field once, never the client's own.
 */
#include <stdio.h>
#include <string.h>
#include "actors/reply.h"
#include "runtime/error.h"
#include "tests/check.h"

static void test_reply_write(void)
{
    aw_reply_t *r = aw_reply_new("Pick <one>");
    aw_reply_add_quick_reply(r, "Yes", "yes");
    aw_reply_add_file(r, "/a.png", 1);
    aw_reply_set_link(r, "https://example.org/", "More");
    aw_buf_t *b = aw_reply_write(r, "u\"1", 3, "websocket", 9, -1);
    const char *want = "{\"type\":\"message\",\"text\":\"Pick <one>\",\"quick_replies\":[{\"title\":\"Yes\","
                       "\"payload\":\"yes\"}],\"files\":[{\"url\":\"/a.png\",\"image\":true}],"
                       "\"open_link\":\"https://example.org/\",\"link_title\":\"More\",\"user\":\"u\\\"1\","
                       "\"channel\":\"websocket\",\"seq\":9}";
    if (strcmp(b->data, want) != 0)
        fprintf(stderr, "got  %s\nwant %s\n", b->data, want);
    CHECK(strcmp(b->data, want) == 0);
    aw_buf_release(b);
    aw_reply_free(r);

    b = aw_frame_error(AW_EBADJSON);
    CHECK(strstr(b->data, "\"code\":\"bad_json\"") != NULL);
    aw_buf_release(b);
    b = aw_frame_session("u", 1, NULL, 0);
    CHECK(strcmp(b->data, "{\"type\":\"session\",\"user\":\"u\",\"seq\":0}") == 0);
    aw_buf_release(b);
}

/* Builds a reply from the bot's object `json`, writes its frame for user "u"
 * and checks it is `want` and parses back as a client message. */
static void check_reply_frame(const char *json, const char *channel, int64_t seq, const char *want)
{
    char errbuf[64];
    yajl_val obj = yajl_tree_parse(json, errbuf, sizeof(errbuf));
    aw_reply_t *r = NULL;
    CHECK(aw_reply_from_object(obj, &r) == 0);
    aw_buf_t *b = aw_reply_write(r, "u", 1, channel, seq, -1);
    if (strcmp(b->data, want) != 0)
        fprintf(stderr, "got  %s\nwant %s\n", b->data, want);
    CHECK(strcmp(b->data, want) == 0);
    aw_message_t m;
    CHECK(aw_message_parse(&m, b->data, b->len) == 0);
    aw_message_dispose(&m);
    aw_buf_release(b);
    aw_reply_free(r);
}

/* A bot's {"disable_input": true} is a known field and sits in `extra` too:
 * the frame once carried it twice. */
static void test_reply_disable_input_written_once(void)
{
    check_reply_frame(
        "{\"text\":\"x\",\"disable_input\":true,\"custom\":1}", NULL, -1,
        "{\"type\":\"message\",\"text\":\"x\",\"disable_input\":true,\"custom\":1,\"user\":\"u\"}");
}

/* `token` and `last_seq` are the client's fields: a bot that sets them (a
 * string or not) must not get them into a user's frame, where a client
 * would take them for its own and the frame would no longer parse as one. */
static void test_reply_drops_client_fields(void)
{
    check_reply_frame("{\"text\":\"x\",\"token\":5,\"last_seq\":\"9\",\"custom\":1}", "websocket", 3,
                      "{\"type\":\"message\",\"text\":\"x\",\"custom\":1,\"user\":\"u\",\"channel\":"
                      "\"websocket\",\"seq\":3}");
}

/* seq and ts are written as yajl writes integers, at any size. */
static void test_writer_integers(void)
{
    aw_reply_t *r = aw_reply_new(NULL);
    aw_buf_t *b = aw_reply_write(r, "u", 1, NULL, 0, INT64_MAX);
    CHECK(strcmp(b->data, "{\"type\":\"message\",\"user\":\"u\",\"seq\":0,\"ts\":9223372036854775807}") == 0);
    aw_buf_release(b);
    b = aw_reply_write(r, "u", 1, NULL, 1234567890123, 1);
    CHECK(strcmp(b->data, "{\"type\":\"message\",\"user\":\"u\",\"seq\":1234567890123,\"ts\":1}") == 0);
    aw_buf_release(b);
    aw_reply_free(r);
}
/* The body of POST /api/send: a user and a bot message, or refused whole. */
static void test_push_parse(void)
{
    char user[AW_MAX_USER_LEN];
    size_t user_len = 0;
    aw_reply_t *r = NULL;
    const char *ok = "{\"user\":\"ann\",\"text\":\"hi\",\"custom\":1}";
    CHECK(aw_push_parse(ok, strlen(ok), user, &user_len, &r) == 0);
    CHECK(user_len == 3 && memcmp(user, "ann", 3) == 0 && r != NULL && strcmp(r->text, "hi") == 0);
    aw_reply_free(r);
    const char *bad_json[] = {"", "[]", "{\"user\":\"a\"", "\"x\""};
    for (size_t i = 0; i < sizeof(bad_json) / sizeof(bad_json[0]); i++) {
        r = NULL;
        CHECK(aw_push_parse(bad_json[i], strlen(bad_json[i]), user, &user_len, &r) == AW_EBADJSON &&
              r == NULL);
    }
    char longuser[400];
    snprintf(longuser, sizeof(longuser), "{\"user\":\"%0257d\"}", 0);
    const char *bad_msg[] = {"{}", "{\"user\":\"\"}", "{\"user\":5}", "{\"user\":\"a\",\"typing\":-1}",
                             longuser};
    for (size_t i = 0; i < sizeof(bad_msg) / sizeof(bad_msg[0]); i++) {
        r = NULL;
        CHECK(aw_push_parse(bad_msg[i], strlen(bad_msg[i]), user, &user_len, &r) == AW_EBADMSG && r == NULL);
    }
}

int main(void)
{
    test_reply_write();
    test_reply_disable_input_written_once();
    test_reply_drops_client_fields();
    test_writer_integers();
    test_push_parse();
    return check_exit("test_reply");
}
