/*
 * Fuzz target for the client message parser (websocket frames and webhook
 * bodies both go through it): whatever the bytes, parsing must not crash,
 * leak or hang, and an accepted message must write back as JSON that parses
 * again to the same type and user.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "actors/message.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    aw_message_t m, again;
    if (aw_message_parse(&m, (const char *)data, size) != 0)
        return 0;
    aw_buf_t *b = aw_message_write(&m, "message_received", 1, 2);
    if (aw_message_parse(&again, b->data, b->len) != 0)
        abort();
    if (strcmp(again.type, "message_received") != 0 || again.user_len != m.user_len ||
        memcmp(again.user, m.user, m.user_len) != 0)
        abort();
    aw_message_dispose(&again);
    aw_buf_release(b);
    aw_message_dispose(&m);
    return 0;
}
