/*
 * The check the fuzz targets of bot messages share: a frame written by
 * aw_reply_write must be one JSON object that parses again as a client
 * message of type "message" for the same user, and carries each field the
 * writer sets at most once, and never the client's own `token` or
 * `last_seq`. (Other fields go on as the bot sent them, a key it gave twice
 * included.)
 */
#ifndef AW_TESTS_FUZZ_FRAME_CHECK_H
#define AW_TESTS_FUZZ_FRAME_CHECK_H

#include <stdlib.h>
#include <string.h>
#include "actors/message.h"
#include "actors/reply.h"

static void frame_check(const aw_reply_t *reply, const char *user, size_t user_len)
{
    aw_buf_t *b = aw_reply_write(reply, user, user_len, "websocket", 1, 2);
    aw_message_t m;
    if (aw_message_parse(&m, b->data, b->len) != 0)
        abort();
    if (strcmp(m.type, "message") != 0 || m.user_len != user_len || memcmp(m.user, user, user_len) != 0)
        abort();
    static const char *const own[] = {"type",  "text",          "user",       "channel",   "seq",
                                      "ts",    "open_link",     "link_title", "goto_link", "quick_replies",
                                      "files", "disable_input", NULL};
    yajl_val root = m.root;
    for (const char *const *k = own; *k != NULL; k++) {
        int seen = 0;
        for (size_t i = 0; i < root->u.object.len; i++)
            seen += strcmp(root->u.object.keys[i], *k) == 0;
        if (seen > 1)
            abort();
    }
    /* The client's own fields never come from a bot. */
    for (size_t i = 0; i < root->u.object.len; i++)
        if (strcmp(root->u.object.keys[i], "token") == 0 || strcmp(root->u.object.keys[i], "last_seq") == 0)
            abort();
    aw_message_dispose(&m);
    aw_buf_release(b);
}

#endif
