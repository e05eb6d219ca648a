/*
 * Unit tests of actors/message.c: what a client message must look like, what
 * is refused with which code, and that fields round-trip into history JSON and
 * bot frames exactly.
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "actors/message.h"
#include "runtime/error.h"
#include "tests/check.h"

static int parse(const char *json)
{
    aw_message_t m;
    int r = aw_message_parse(&m, json, strlen(json));
    if (r == 0)
        aw_message_dispose(&m);
    return r;
}

static void test_accepts(void)
{
    aw_message_t m;
    const char *j = "{\"type\":\"hello\",\"user\":\"u1\",\"channel\":\"socket\",\"user_profile\":null,"
                    "\"token\":\"abc\",\"last_seq\":7,\"extra\":[1,{\"b\":true}]}";
    CHECK(aw_message_parse(&m, j, strlen(j)) == 0);
    CHECK(strcmp(m.type, "hello") == 0);
    CHECK(m.user_len == 2 && memcmp(m.user, "u1", 2) == 0);
    CHECK(strcmp(m.channel, "socket") == 0);
    CHECK(strcmp(m.token, "abc") == 0);
    CHECK(m.last_seq == 7);
    CHECK(m.text == NULL);
    aw_message_dispose(&m);
}

static void test_refuses(void)
{
    CHECK(parse("") == AW_EBADJSON);
    CHECK(parse("null") == AW_EBADJSON);
    CHECK(parse("[]") == AW_EBADJSON);
    CHECK(parse("{\"type\":\"message\",\"user\":\"a\"") == AW_EBADJSON);
    CHECK(parse("{\"type\":\"message\",\"user\":\"a\"} {}") == AW_EBADJSON);
    CHECK(parse("{\"type\":\"message\",\"user\":\"\xc3\x28\"}") == AW_EBADJSON);
    CHECK(aw_message_parse(&(aw_message_t){0}, "{\"type\":\"a\",\"user\":\"b\"}\0", 24) == AW_EBADJSON);
    char deep[200];
    memset(deep, '[', 40);
    memset(deep + 40, ']', 40);
    deep[80] = '\0';
    CHECK(parse(deep) == AW_EBADJSON);
    /* brackets inside strings do not count as depth */
    char str[300];
    snprintf(str, sizeof(str), "{\"type\":\"message\",\"user\":\"u\",\"text\":\"%s\"}",
             "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\\\"[[[[[[[[[");
    CHECK(parse(str) == 0);
    CHECK(parse("{\"user\":\"a\"}") == AW_EBADMSG);
    CHECK(parse("{\"type\":\"message\"}") == AW_EBADMSG);
    CHECK(parse("{\"type\":\"\",\"user\":\"a\"}") == AW_EBADMSG);
    CHECK(parse("{\"type\":\"message\",\"user\":\"\"}") == AW_EBADMSG);
    CHECK(parse("{\"type\":1,\"user\":\"a\"}") == AW_EBADMSG);
    CHECK(parse("{\"type\":\"message\",\"user\":\"a\",\"text\":5}") == AW_EBADMSG);
    CHECK(parse("{\"type\":\"message\",\"user\":\"a\",\"last_seq\":-1}") == AW_EBADMSG);
    CHECK(parse("{\"type\":\"message\",\"user\":\"a\",\"last_seq\":1.5}") == AW_EBADMSG);
    char longuser[400];
    snprintf(longuser, sizeof(longuser), "{\"type\":\"m\",\"user\":\"%0257d\"}", 0);
    CHECK(parse(longuser) == AW_EBADMSG);
    snprintf(longuser, sizeof(longuser), "{\"type\":\"m\",\"user\":\"%0256d\"}", 0);
    CHECK(parse(longuser) == 0);
}

static void test_write_keeps_fields(void)
{
    aw_message_t m;
    const char *j = "{\"type\":\"message\",\"user\":\"u\",\"text\":\"h\\u00e9\\\"\",\"token\":\"secret\","
                    "\"n\":123456789012345678901234567890,\"f\":1.50,\"o\":{\"k\":[true,false,null]}}";
    CHECK(aw_message_parse(&m, j, strlen(j)) == 0);
    aw_buf_t *b = aw_message_write(&m, "message_received", 42, -1);
    const char *want =
        "{\"type\":\"message_received\",\"user\":\"u\",\"text\":\"h\xc3\xa9\\\"\","
        "\"n\":123456789012345678901234567890,\"f\":1.50,\"o\":{\"k\":[true,false,null]},\"ts\":42}";
    if (strcmp(b->data, want) != 0)
        fprintf(stderr, "got  %s\nwant %s\n", b->data, want);
    CHECK(strcmp(b->data, want) == 0);
    CHECK(strstr(b->data, "secret") == NULL);
    aw_buf_release(b);
    aw_message_dispose(&m);
}

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

int main(void)
{
    test_accepts();
    test_refuses();
    test_write_keeps_fields();
    test_reply_write();
    test_reply_disable_input_written_once();
    test_reply_drops_client_fields();
    test_writer_integers();
    return check_exit("test_message");
}
