/*
 * Parsing and writing of client messages (message.h). The JSON itself is
 * read and written by json.c: a message with its arena reader, the history
 * record and the bot's body with its writer, straight into the buffer that
 * carries them.
 */
#include "actors/message.h"

#include <string.h>
#include "actors/internal.h"
#include "runtime/error.h"

static const char *str_value(yajl_val v, int *bad)
{
    if (v == NULL || YAJL_IS_NULL(v))
        return NULL;
    if (!YAJL_IS_STRING(v)) {
        *bad = 1;
        return NULL;
    }
    return YAJL_GET_STRING(v);
}

static int64_t last_seq_value(yajl_val v, int *bad)
{
    if (v == NULL || YAJL_IS_NULL(v))
        return -1;
    if (!YAJL_IS_INTEGER(v) || YAJL_GET_INTEGER(v) < 0) {
        *bad = 1;
        return -1;
    }
    return YAJL_GET_INTEGER(v);
}

/* The known fields of a client message, in one pass over the members. A key
 * given twice counts where it first appears, as yajl_tree_get finds it. */
static void read_known_fields(aw_message_t *msg, yajl_val root, int *bad)
{
    static const char *const names[] = {"type", "user", "text", "channel", "token", "last_seq", "mid"};
    enum { N = sizeof(names) / sizeof(names[0]) };
    yajl_val found[N] = {NULL};
    for (size_t i = 0; i < root->u.object.len; i++) {
        const char *k = root->u.object.keys[i];
        for (size_t n = 0; n < N; n++) {
            if (found[n] == NULL && k[0] == names[n][0] && strcmp(k, names[n]) == 0) {
                found[n] = root->u.object.values[i];
                break;
            }
        }
    }
    msg->type = str_value(found[0], bad);
    msg->user = str_value(found[1], bad);
    msg->text = str_value(found[2], bad);
    msg->channel = str_value(found[3], bad);
    msg->token = str_value(found[4], bad);
    msg->last_seq = last_seq_value(found[5], bad);
    msg->mid = str_value(found[6], bad);
}

/* A client's message id: 1..AW_MAX_MID_LEN printable ASCII characters, so
 * that it can travel in an HTTP header (X-Anywhere-Ack) as it is. */
static int mid_valid(const char *mid, size_t *len)
{
    size_t n = 0;
    for (; mid[n] != '\0'; n++)
        if (n == AW_MAX_MID_LEN || (unsigned char)mid[n] < 0x21 || (unsigned char)mid[n] > 0x7e)
            return 0;
    *len = n;
    return n != 0;
}

int aw_message_parse(aw_message_t *msg, const char *json, size_t len)
{
    aw_json_arena_t *arena = NULL;
    int bad = 0;

    memset(msg, 0, sizeof(*msg));
    yajl_val root = aw_json_parse_arena(json, len, &arena);
    if (root == NULL)
        return AW_EBADJSON;
    msg->root = root;
    msg->arena = arena;
    if (!YAJL_IS_OBJECT(root)) {
        aw_message_dispose(msg);
        return AW_EBADJSON;
    }
    read_known_fields(msg, root, &bad);
    if (msg->user != NULL)
        msg->user_len = strlen(msg->user);
    if (msg->mid != NULL && !mid_valid(msg->mid, &msg->mid_len))
        bad = 1;
    if (bad || msg->type == NULL || msg->type[0] == '\0' || msg->user_len == 0 ||
        msg->user_len > AW_MAX_USER_LEN) {
        aw_message_dispose(msg);
        return AW_EBADMSG;
    }
    return 0;
}

void aw_message_dispose(aw_message_t *msg)
{
    aw_json_arena_free(msg->arena);
    memset(msg, 0, sizeof(*msg));
}

/* Opens a message object: its type and the client's fields but `skip`. */
static void open_message(jw_t *w, const aw_message_t *msg, const char *type, const char *const *skip)
{
    jw_init(w, 256);
    jw_char(w, '{');
    JW_KEY(w, "type");
    jw_cstr(w, type != NULL ? type : msg->type);
    jw_fields_except(w, msg->root, skip);
}

aw_buf_t *aw_message_write(const aw_message_t *msg, const char *type, int64_t ts_ms, int64_t seq)
{
    static const char *const skip[] = {"type", "token", "ts", "seq", NULL};
    jw_t w;
    open_message(&w, msg, type, skip);
    if (ts_ms >= 0) {
        JW_KEY(&w, "ts");
        jw_int(&w, ts_ms);
    }
    if (seq >= 0) {
        JW_KEY(&w, "seq");
        jw_int(&w, seq);
    }
    jw_char(&w, '}');
    return jw_finish(&w);
}

aw_buf_t *aw_message_write_for_bot(const aw_message_t *msg, int64_t ts_ms, int guest)
{
    /* `guest` is the server's word, never the client's. */
    static const char *const skip[] = {"type", "token", "ts", "seq", "guest", NULL};
    jw_t w;
    open_message(&w, msg, NULL, skip);
    JW_KEY(&w, "ts");
    jw_int(&w, ts_ms);
    if (guest) {
        JW_KEY(&w, "guest");
        jw_bool(&w, 1);
    }
    jw_char(&w, '}');
    return jw_finish(&w);
}
