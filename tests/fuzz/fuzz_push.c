/*
 * Fuzz target for the body of POST /api/send ({"user": ..., message fields}):
 * whatever the bytes, parsing must not crash, leak or hang; an accepted body
 * names a user of 1..256 bytes and gives a message whose frame is sound JSON
 * for that user.
 */
#include <stdint.h>
#include <stdlib.h>
#include "actors/reply.h"
#include "tests/fuzz/frame_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char user[AW_MAX_USER_LEN];
    size_t user_len = 0;
    aw_reply_t *reply = NULL;
    if (aw_push_parse((const char *)data, size, user, &user_len, &reply) != 0) {
        if (reply != NULL)
            abort();
        return 0;
    }
    if (user_len == 0 || user_len > AW_MAX_USER_LEN)
        abort();
    frame_check(reply, user, user_len);
    aw_reply_free(reply);
    return 0;
}
