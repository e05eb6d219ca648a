/*
 * Fuzz target for the client message parser (websocket frames and webhook
 * bodies both go through it): whatever the bytes, parsing must not crash,
 * leak or hang, and an accepted message must write back as JSON that parses
 * again to the same type and user. The parser builds its own tree: it must
 * accept exactly the objects yajl_tree_parse accepts, and write them back the
 * same.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "actors/json.h"
#include "actors/message.h"
#include "runtime/error.h"

/* What yajl_tree_parse makes of the same bytes: 1 for an object, 0 if not;
 * `out` gets its JSON. */
static int yajl_tree_view(const uint8_t *data, size_t size, aw_buf_t **out)
{
    char errbuf[64];
    *out = NULL;
    if (size == 0 || memchr(data, '\0', size) != NULL ||
        aw_json_too_deep((const char *)data, size, AW_MAX_DEPTH))
        return 0;
    char *copy = malloc(size + 1);
    memcpy(copy, data, size);
    copy[size] = '\0';
    yajl_val v = yajl_tree_parse(copy, errbuf, sizeof(errbuf));
    free(copy);
    int obj = v != NULL && YAJL_IS_OBJECT(v);
    if (obj)
        *out = aw_json_write(v);
    if (v != NULL)
        yajl_tree_free(v);
    return obj;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    aw_message_t m, again;
    aw_buf_t *ref;
    int ref_obj = yajl_tree_view(data, size, &ref);
    int err = aw_message_parse(&m, (const char *)data, size);
    if ((err != AW_EBADJSON) != ref_obj)
        abort();
    if (err != 0) {
        aw_buf_release(ref);
        return 0;
    }
    aw_buf_t *mine = aw_json_write(m.root);
    if (mine->len != ref->len || memcmp(mine->data, ref->data, ref->len) != 0)
        abort();
    aw_buf_release(mine);
    aw_buf_release(ref);
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
