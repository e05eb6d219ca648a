/*
 * The handoff state machine and its record (handoff.h). Transitions:
 *
 *   bot ──request──▶ waiting ──take──▶ owned ──release──▶ bot
 *    └──────────────take──────────────▶ │ ▲
 *                   waiting ◀─abandon───┘ └─take (its owner: no change)
 *
 * and release from waiting too (an operator dismisses it). Every change
 * the caller keeps as a record; a record read back restores the state as
 * it was.
 */
#include "actors/handoff.h"

#include <stdlib.h>
#include <string.h>
#include "actors/internal.h"
#include "actors/json.h"
#include "runtime/error.h"

const char *aw_handoff_state_name(int state)
{
    switch (state) {
    case AW_HANDOFF_WAITING:
        return "waiting";
    case AW_HANDOFF_OWNED:
        return "owned";
    default:
        return "bot";
    }
}

int aw_operator_name_valid(const char *name, size_t len)
{
    if (len == 0 || len > AW_OPERATOR_NAME_MAX)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
              c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

/* Copies at most `max` bytes of UTF-8 `src`, never splitting a character. */
static void copy_cut(char *dst, size_t max, const char *src)
{
    size_t n = src != NULL ? strlen(src) : 0;
    if (n > max) {
        n = max;
        while (n > 0 && ((unsigned char)src[n] & 0xC0) == 0x80)
            n--; /* src[n] continues a character: cut before its first byte */
    }
    if (n != 0)
        memcpy(dst, src, n);
    dst[n] = '\0';
}

int aw_handoff_request(aw_handoff_t *h, const char *reason, int64_t now_ms)
{
    if (h->state != AW_HANDOFF_BOT)
        return 0;
    memset(h, 0, sizeof(*h));
    h->state = AW_HANDOFF_WAITING;
    copy_cut(h->reason, AW_HANDOFF_REASON_MAX, reason);
    h->since_ms = now_ms;
    return 1;
}

int aw_handoff_take(aw_handoff_t *h, const char *op, int64_t now_ms)
{
    if (h->state == AW_HANDOFF_OWNED)
        return strcmp(h->operator_name, op) == 0 ? 0 : AW_EEXIST;
    if (h->state == AW_HANDOFF_BOT) {
        h->reason[0] = '\0'; /* taken over without being asked */
        h->since_ms = now_ms;
    }
    h->state = AW_HANDOFF_OWNED;
    copy_cut(h->operator_name, AW_OPERATOR_NAME_MAX, op);
    h->owned_ms = now_ms;
    h->answered = 0;
    return 1;
}

int aw_handoff_release(aw_handoff_t *h, const char *op)
{
    if (h->state == AW_HANDOFF_BOT)
        return AW_ENOTFOUND;
    if (op != NULL && h->state == AW_HANDOFF_OWNED && strcmp(h->operator_name, op) != 0)
        return AW_EEXIST;
    memset(h, 0, sizeof(*h));
    return 0;
}

int aw_handoff_abandon(aw_handoff_t *h, const char *op)
{
    if (h->state != AW_HANDOFF_OWNED || strcmp(h->operator_name, op) != 0)
        return 0;
    h->state = AW_HANDOFF_WAITING;
    h->operator_name[0] = '\0';
    h->owned_ms = 0;
    h->answered = 0;
    return 1;
}

int aw_handoff_answered(aw_handoff_t *h, int64_t now_ms, int64_t *waited_ms)
{
    if (h->state != AW_HANDOFF_OWNED || h->answered)
        return 0;
    h->answered = 1;
    *waited_ms = now_ms > h->since_ms ? now_ms - h->since_ms : 0;
    return 1;
}

aw_buf_t *aw_handoff_write(const aw_handoff_t *h)
{
    jw_t w;
    jw_init(&w, 128 + strlen(h->reason) * 6);
    jw_raw(&w, "{\"type\":\"handoff\"", 17);
    JW_KEY(&w, "state");
    jw_cstr(&w, aw_handoff_state_name(h->state));
    if (h->state != AW_HANDOFF_BOT) {
        JW_KEY(&w, "reason");
        jw_cstr(&w, h->reason);
        JW_KEY(&w, "since");
        jw_int(&w, h->since_ms);
    }
    if (h->state == AW_HANDOFF_OWNED) {
        JW_KEY(&w, "operator");
        jw_cstr(&w, h->operator_name);
        JW_KEY(&w, "owned");
        jw_int(&w, h->owned_ms);
        JW_KEY(&w, "answered");
        jw_bool(&w, h->answered);
    }
    jw_char(&w, '}');
    return jw_finish(&w);
}

aw_buf_t *aw_handoff_frame(const char *type, const char *user, size_t user_len, const char *op,
                           const char *code)
{
    jw_t w;
    jw_init(&w, 64 + user_len * 6);
    jw_raw(&w, "{\"type\":", 8);
    jw_cstr(&w, type);
    JW_KEY(&w, "user");
    jw_str(&w, user, user_len);
    if (op != NULL) {
        JW_KEY(&w, "operator");
        jw_cstr(&w, op);
    }
    if (code != NULL) {
        JW_KEY(&w, "code");
        jw_cstr(&w, code);
    }
    jw_char(&w, '}');
    return jw_finish(&w);
}

typedef struct page_req {
    aw_conn_t *to;
    size_t user_len;
    char user[]; /* not NUL-terminated */
} page_req_t;

/* History thread: writes the frame and hands it to the console's loop. */
static void page_read(int err, const aw_history_page_t *page, void *data)
{
    page_req_t *p = data;
    size_t bytes = 128 + p->user_len * 6;
    for (size_t i = 0; err == 0 && i < page->n; i++)
        bytes += page->records[i]->len + 1;
    jw_t w;
    jw_init(&w, bytes);
    jw_raw(&w, "{\"type\":\"history\"", 17);
    JW_KEY(&w, "user");
    jw_str(&w, p->user, p->user_len);
    if (err != 0) {
        JW_KEY(&w, "error");
        jw_cstr(&w, "unavailable");
    } else {
        JW_KEY(&w, "records");
        jw_char(&w, '[');
        for (size_t i = 0; i < page->n; i++) {
            if (i != 0)
                jw_char(&w, ',');
            jw_raw(&w, page->records[i]->data, page->records[i]->len); /* records are JSON objects */
        }
        jw_char(&w, ']');
        JW_KEY(&w, "more");
        jw_bool(&w, page->more);
        JW_KEY(&w, "before");
        jw_int(&w, page->before);
    }
    jw_char(&w, '}');
    aw_buf_t *frame = jw_finish(&w);
    p->to->send(p->to, frame);
    aw_buf_release(frame);
    aw_conn_release(p->to);
    free(p);
}

int aw_handoff_send_page(aw_history_t *history, const char *user, size_t user_len, int64_t before,
                         size_t limit, aw_conn_t *to)
{
    page_req_t *p = aw_alloc(sizeof(*p) + user_len);
    p->to = aw_conn_retain(to);
    p->user_len = user_len;
    memcpy(p->user, user, user_len);
    int err = aw_history_page(history, user, user_len, before, limit, AW_HISTORY_PAGE_BEFORE, page_read, p);
    if (err != 0) {
        aw_conn_release(p->to);
        free(p);
    }
    return err;
}

static int64_t get_int(yajl_val obj, const char *key, int *bad)
{
    const char *path[] = {key, NULL};
    yajl_val v = yajl_tree_get(obj, path, yajl_t_any);
    if (v == NULL)
        return 0;
    if (!YAJL_IS_INTEGER(v)) {
        *bad = 1;
        return 0;
    }
    return YAJL_GET_INTEGER(v);
}

int aw_handoff_parse(aw_handoff_t *h, const char *json, size_t len)
{
    memset(h, 0, sizeof(*h));
    yajl_val root = aw_json_parse_tree(json, len);
    if (root == NULL || !YAJL_IS_OBJECT(root)) {
        yajl_tree_free(root);
        return AW_EBADJSON;
    }
    int bad = 0;
    const char *state = aw_json_get_string(root, "state", &bad);
    const char *reason = aw_json_get_string(root, "reason", &bad);
    const char *op = aw_json_get_string(root, "operator", &bad);
    const char *answered_path[] = {"answered", NULL};
    yajl_val answered = yajl_tree_get(root, answered_path, yajl_t_any);
    aw_handoff_t got = {.since_ms = get_int(root, "since", &bad), .owned_ms = get_int(root, "owned", &bad)};
    got.answered = answered != NULL && YAJL_IS_TRUE(answered);
    if (state != NULL && strcmp(state, "waiting") == 0)
        got.state = AW_HANDOFF_WAITING;
    else if (state != NULL && strcmp(state, "owned") == 0)
        got.state = AW_HANDOFF_OWNED;
    else if (state == NULL || strcmp(state, "bot") != 0)
        bad = 1;
    if (got.state == AW_HANDOFF_OWNED && (op == NULL || !aw_operator_name_valid(op, strlen(op))))
        bad = 1;
    if (!bad) {
        /* only what aw_handoff_write writes for the state: a record read
         * back and written again is the same record */
        if (got.state == AW_HANDOFF_BOT) {
            got = (aw_handoff_t){0};
        } else {
            copy_cut(got.reason, AW_HANDOFF_REASON_MAX, reason);
            if (got.state == AW_HANDOFF_OWNED)
                copy_cut(got.operator_name, AW_OPERATOR_NAME_MAX, op);
            else
                got.owned_ms = got.answered = 0;
        }
        *h = got;
    }
    yajl_tree_free(root);
    return bad ? AW_EBADMSG : 0;
}
