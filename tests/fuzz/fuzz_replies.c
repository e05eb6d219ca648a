/*
 * Fuzz target for the bridge's parser of a bot's HTTP answer (a JSON array
 * of messages, actors/bridge.c): whatever the bot answers, parsing must not
 * crash, leak or hang, and every accepted message must write a frame that is
 * sound JSON for its user.
 */
#include <stdint.h>
#include <stdlib.h>
#include "actors/bridge.h"
#include "tests/fuzz/frame_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    aw_reply_t **replies;
    size_t n;
    if (aw_replies_parse((const char *)data, size, &replies, &n) != 0) {
        if (replies != NULL || n != 0)
            abort();
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        frame_check(replies[i], "u1", 2);
        aw_reply_free(replies[i]);
    }
    free(replies);
    return 0;
}
