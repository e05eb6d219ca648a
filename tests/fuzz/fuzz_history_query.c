/*
 * Fuzz target for the history request parsers: POST /botkit/history bodies
 * and GET /api/history query strings. The first byte picks the parser. An
 * accepted request must hold a user of 1..256 bytes and a limit of 1..100.
 */
#include <stdint.h>
#include <stdlib.h>
#include "transport/history_query.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    aw_history_query_t q;
    if (size == 0)
        return 0;
    int r = (data[0] & 1) ? aw_history_query_from_url(&q, (const char *)data + 1, size - 1)
                          : aw_history_query_from_json(&q, (const char *)data + 1, size - 1);
    if (r == 0 && (q.user_len == 0 || q.user_len > AW_MAX_USER_LEN || q.limit < 1 || q.limit > 100))
        abort();
    return 0;
}
