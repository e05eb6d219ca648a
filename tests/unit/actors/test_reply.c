/*
 * Unit tests of actors/reply.c: bot messages and the protocol's frames are
 * written exactly; a bot's JSON object becomes a reply whose frame carries
 * each field once, never the client's own; the one validator reads a bot's
 * and a script's messages, each as it should, and says why it refuses; and
 * the setters keep the same limits.
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
    CHECK(aw_reply_from_object(obj, AW_REPLY_FROM_BOT, &r, NULL) == 0);
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

/* Reads `json` as `from` says; returns the error (0 when accepted) and fills
 * `why`. */
static int read_reply(const char *json, int from, aw_reply_t **r, aw_reply_error_t *why)
{
    char errbuf[64];
    yajl_val obj = yajl_tree_parse(json, errbuf, sizeof(errbuf));
    memset(why, 0, sizeof(*why));
    *r = NULL;
    int err = aw_reply_from_object(obj, from, r, why);
    /* a bot's reply takes its object over; a script's stays the caller's */
    if (err != 0 || from == AW_REPLY_FROM_SCRIPT)
        yajl_tree_free(obj);
    return err;
}

/* Whether a bot's object `json` is refused, and leaves nothing behind. */
static int bot_refuses(const char *json)
{
    aw_reply_t *r;
    aw_reply_error_t why;
    int err = read_reply(json, AW_REPLY_FROM_BOT, &r, &why);
    aw_reply_free(r);
    return err == AW_EBADMSG && r == NULL && why.what[0] != '\0';
}

/* What a bot may send: the known fields, null for an absent string, any
 * other field kept as it is; and what it may not. */
static void test_from_bot(void)
{
    aw_reply_t *r;
    aw_reply_error_t why;
    CHECK(
        read_reply(
            "{\"type\":\"message\",\"text\":\"hi\",\"quick_replies\":[{\"title\":\"A\"},{\"title\":\"B\","
            "\"payload\":\"b\",\"x\":1}],\"files\":[{\"url\":\"/f\"},{\"url\":\"/i\",\"image\":true}],"
            "\"open_link\":null,\"goto_link\":\"/g\",\"disable_input\":true,\"typing\":60000,\"custom\":[1]}",
            AW_REPLY_FROM_BOT, &r, &why) == 0);
    CHECK(r != NULL && strcmp(r->text, "hi") == 0 && r->open_link == NULL && strcmp(r->goto_link, "/g") == 0);
    CHECK(r != NULL && r->n_quick_replies == 2 && strcmp(r->quick_replies[0].payload, "A") == 0 &&
          strcmp(r->quick_replies[1].payload, "b") == 0);
    CHECK(r != NULL && r->n_files == 2 && !r->files[0].image && r->files[1].image);
    CHECK(r != NULL && r->disable_input && r->typing_ms == 60000 && r->extra != NULL);
    aw_reply_free(r);
    CHECK(read_reply("{}", AW_REPLY_FROM_BOT, &r, &why) == 0 &&
          r->text == NULL); /* an empty message is fine */
    aw_reply_free(r);

    CHECK(bot_refuses("[]"));
    CHECK(bot_refuses("{\"type\":\"typing\"}"));
    CHECK(bot_refuses("{\"type\":1}"));
    CHECK(bot_refuses("{\"text\":5}"));
    CHECK(bot_refuses("{\"goto_link\":[]}"));
    CHECK(bot_refuses("{\"typing\":-1}"));
    CHECK(bot_refuses("{\"typing\":60001}"));
    CHECK(bot_refuses("{\"typing\":\"slow\"}"));
    CHECK(bot_refuses("{\"typing\":null}"));
    CHECK(bot_refuses("{\"typing\":1.5}"));
    CHECK(bot_refuses("{\"disable_input\":1}"));
    CHECK(bot_refuses("{\"quick_replies\":{}}"));
    CHECK(bot_refuses("{\"quick_replies\":null}"));
    CHECK(bot_refuses("{\"quick_replies\":[\"A\"]}"));
    CHECK(bot_refuses("{\"quick_replies\":[{\"payload\":\"p\"}]}"));
    CHECK(bot_refuses("{\"quick_replies\":[{\"title\":null}]}"));
    CHECK(bot_refuses("{\"quick_replies\":[{\"title\":\"A\",\"payload\":2}]}"));
    CHECK(bot_refuses("{\"files\":[{}]}"));
    CHECK(bot_refuses("{\"files\":[{\"url\":\"/f\",\"image\":\"yes\"}]}"));
}

/* Checks that a script's message `json` is refused at `where` with `what`. */
static void script_refuses(const char *json, const char *where, const char *what)
{
    aw_reply_t *r;
    aw_reply_error_t why;
    CHECK(read_reply(json, AW_REPLY_FROM_SCRIPT, &r, &why) == AW_EBADMSG && r == NULL);
    if (strcmp(why.where, where) != 0 || strcmp(why.what, what) != 0)
        fprintf(stderr, "%s\n  got  %s: %s\n  want %s: %s\n", json, why.where, why.what, where, what);
    CHECK(strcmp(why.where, where) == 0 && strcmp(why.what, what) == 0);
}

/* A script's messages are read by the same code, more strictly, and each
 * refusal says where and why. */
static void test_from_script(void)
{
    aw_reply_t *r;
    aw_reply_error_t why;
    CHECK(read_reply("{\"text\":\"hi {{user}}\",\"quick_replies\":[{\"title\":\"A\"}],\"typing\":400}",
                     AW_REPLY_FROM_SCRIPT, &r, &why) == 0);
    CHECK(r != NULL && strcmp(r->text, "hi {{user}}") == 0 && r->typing_ms == 400 && r->extra == NULL);
    aw_reply_free(r);
    CHECK(read_reply("{\"files\":[{\"url\":\"/f\"}]}", AW_REPLY_FROM_SCRIPT, &r, &why) == 0);
    aw_reply_free(r);

    script_refuses("{\"text\":\"x\",\"txt\":1}", "", "unknown field \"txt\"");
    script_refuses("{\"text\":\"x\",\"goto_link\":\"/g\"}", "", "unknown field \"goto_link\"");
    script_refuses("{\"text\":null}", "text", "expected a string");
    script_refuses("{\"text\":\"x\",\"open_link\":1}", "open_link", "expected a string");
    script_refuses("{\"text\":\"x\",\"quick_replies\":{}}", "quick_replies",
                   "expected an array of {\"title\", \"payload\"}");
    script_refuses("{\"text\":\"x\",\"quick_replies\":[1]}", "quick_replies[0]",
                   "expected {\"title\", \"payload\"}");
    script_refuses("{\"text\":\"x\",\"quick_replies\":[{\"title\":\"a\",\"p\":1}]}", "quick_replies[0]",
                   "unknown field \"p\"");
    script_refuses("{\"text\":\"x\",\"quick_replies\":[{\"title\":\"a\"},{\"title\":2}]}",
                   "quick_replies[1].title", "expected a string");
    script_refuses("{\"text\":\"x\",\"quick_replies\":[{\"payload\":\"p\"}]}", "quick_replies[0]",
                   "a quick reply needs a \"title\"");
    script_refuses("{\"text\":\"x\",\"files\":[{\"image\":true}]}", "files[0]", "a file needs a \"url\"");
    script_refuses("{\"text\":\"x\",\"files\":[{\"url\":\"/f\",\"image\":0}]}", "files[0]",
                   "\"image\" must be true or false");
    script_refuses("{\"text\":\"x\",\"typing\":60001}", "typing",
                   "\"typing\" must be milliseconds from 0 to 60000");
    script_refuses("{\"open_link\":\"/o\"}", "", "a message needs \"text\" or \"files\"");
}

/* A C skill's setters keep the limits a bot's JSON is held to. */
static void test_setters_keep_the_limits(void)
{
    aw_reply_t *r = aw_reply_new("x");
    CHECK(aw_reply_set_typing(r, 60000) == 0 && r->typing_ms == 60000);
    CHECK(aw_reply_set_typing(r, 60001) == AW_EINVAL && r->typing_ms == 60000);
    CHECK(aw_reply_set_typing(r, -1) == AW_EINVAL && r->typing_ms == 60000);
    CHECK(aw_reply_add_quick_reply(r, NULL, "p") == AW_EINVAL && r->n_quick_replies == 0);
    CHECK(aw_reply_add_quick_reply(r, "t", NULL) == 0 && strcmp(r->quick_replies[0].payload, "t") == 0);
    CHECK(aw_reply_add_file(r, NULL, 1) == AW_EINVAL && r->n_files == 0);
    CHECK(aw_reply_add_file(r, "/f", 1) == 0 && r->n_files == 1);
    aw_reply_free(r);
}

int main(void)
{
    test_reply_write();
    test_reply_disable_input_written_once();
    test_reply_drops_client_fields();
    test_writer_integers();
    test_push_parse();
    test_from_bot();
    test_from_script();
    test_setters_keep_the_limits();
    return check_exit("test_reply");
}
