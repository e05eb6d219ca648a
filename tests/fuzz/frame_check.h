/*
 * The check the fuzz targets of bot messages share: a frame written by
 * aw_reply_write must be one JSON object, with no key twice, that parses
 * again as a client message of type "message" for the same user.
 */
#ifndef AW_TESTS_FUZZ_FRAME_CHECK_H
#define AW_TESTS_FUZZ_FRAME_CHECK_H

#include <stdlib.h>
#include <string.h>
#include "actors/message.h"

static void frame_check(const aw_reply_t *reply, const char *user, size_t user_len)
{
    aw_buf_t *b = aw_reply_write(reply, user, user_len, "websocket", 1, 2);
    aw_message_t m;
    if (aw_message_parse(&m, b->data, b->len) != 0)
        abort();
    if (strcmp(m.type, "message") != 0 || m.user_len != user_len || memcmp(m.user, user, user_len) != 0)
        abort();
    yajl_val root = m.root;
    for (size_t i = 0; i < root->u.object.len; i++)
        for (size_t j = i + 1; j < root->u.object.len; j++)
            if (strcmp(root->u.object.keys[i], root->u.object.keys[j]) == 0)
                abort();
    aw_message_dispose(&m);
    aw_buf_release(b);
}

#endif
