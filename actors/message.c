/*
 * Parsing and writing of chat messages (see message.h). Input is bounded:
 * size by the transport, nesting depth here, because yajl's tree parser and
 * its free are recursive and have no depth limit of their own (client
 * messages are built by our own callbacks, which count the depth as they
 * go; the other bodies are checked with aw_json_too_deep first). Frames and
 * records are written by a small writer of our own, straight into the
 * buffer that carries them.
 */
#include "actors/message.h"

#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <string.h>
#include <yajl/yajl_parse.h>
#include "actors/protocol.h"
#include "runtime/bytes.h"
#include "runtime/error.h"

/* Returns non-zero when arrays and objects nest deeper than `max`. It must
 * see the structure yajl's tree parser will see: brackets inside strings do
 * not count, and neither do brackets inside comments, which that parser
 * accepts (it turns yajl_allow_comments on, with no way to turn it off).
 * Counting a "]" of a comment let a comment of closing brackets buy any
 * depth past the limit. */
int aw_json_too_deep(const char *s, size_t len, int max)
{
    int depth = 0, in_str = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (in_str) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_str = 0;
        } else if (c == '"') {
            in_str = 1;
        } else if (c == '/' && i + 1 < len && s[i + 1] == '*') {
            const char *end = memmem(s + i + 2, len - i - 2, "*/", 2);
            if (end == NULL)
                return 0; /* unterminated: yajl refuses it */
            i = (size_t)(end - s) + 1;
        } else if (c == '/' && i + 1 < len && s[i + 1] == '/') {
            const char *end = memchr(s + i + 2, '\n', len - i - 2);
            if (end == NULL)
                return 0;
            i = (size_t)(end - s);
        } else if (c == '[' || c == '{') {
            if (++depth > max)
                return 1;
        } else if (c == ']' || c == '}') {
            depth--;
        }
    }
    return 0;
}

/* The string field `key` of the object, NULL when absent or null, and
 * *bad = 1 when present with another type. */
static const char *get_str(yajl_val obj, const char *key, int *bad)
{
    const char *path[] = {key, NULL};
    yajl_val v = yajl_tree_get(obj, path, yajl_t_any);
    if (v == NULL || YAJL_IS_NULL(v))
        return NULL;
    if (!YAJL_IS_STRING(v)) {
        *bad = 1;
        return NULL;
    }
    return YAJL_GET_STRING(v);
}

/*
 * The client message parser. yajl's own parser reads the bytes (so what is
 * accepted is exactly what yajl_tree_parse accepted: comments allowed, UTF-8
 * checked, escapes decoded, nothing after the value), and the callbacks below
 * build the same yajl_val tree yajl_tree builds, but in one arena owned by
 * the message: one allocation for a usual message instead of one or two per
 * value, no copy of the input, and one free. yajl's own bookkeeping comes
 * from a per-thread scratch area, reset by every parse.
 */
typedef struct arena_chunk {
    struct arena_chunk *next;
    size_t cap, used;
    max_align_t data[];
} arena_chunk_t;

static void *arena_alloc(arena_chunk_t **head, size_t n)
{
    n = (n + sizeof(max_align_t) - 1) & ~(sizeof(max_align_t) - 1);
    arena_chunk_t *c = *head;
    if (c == NULL || c->cap - c->used < n) {
        size_t cap = n > 2048 ? n : 2048;
        if (c != NULL && c->cap * 2 > cap)
            cap = c->cap * 2;
        arena_chunk_t *fresh = aw_alloc(sizeof(*fresh) + cap);
        fresh->next = c;
        fresh->cap = cap;
        fresh->used = 0;
        *head = c = fresh;
    }
    void *p = (char *)c->data + c->used;
    c->used += n;
    return p;
}

static void arena_free(arena_chunk_t *c)
{
    while (c != NULL) {
        arena_chunk_t *next = c->next;
        free(c);
        c = next;
    }
}

/* yajl's allocations during one parse on this thread. Freed memory is only
 * taken back when the area is reset; what does not fit goes to malloc. */
#define SCRATCH_SIZE 16384
static __thread struct {
    size_t used;
    max_align_t data[SCRATCH_SIZE / sizeof(max_align_t)];
} scratch;

static int in_scratch(const void *p)
{
    return (const char *)p >= (const char *)scratch.data &&
           (const char *)p < (const char *)scratch.data + sizeof(scratch.data);
}

static void *scratch_malloc(void *ctx, size_t n)
{
    (void)ctx;
    size_t need = (sizeof(max_align_t) + n + sizeof(max_align_t) - 1) & ~(sizeof(max_align_t) - 1);
    if (sizeof(scratch.data) - scratch.used < need)
        return aw_alloc(n);
    char *p = (char *)scratch.data + scratch.used;
    scratch.used += need;
    memcpy(p, &n, sizeof(n)); /* the size, for realloc */
    return p + sizeof(max_align_t);
}

static void scratch_free(void *ctx, void *p)
{
    (void)ctx;
    if (p != NULL && !in_scratch(p))
        free(p);
}

static void *scratch_realloc(void *ctx, void *p, size_t n)
{
    if (p == NULL)
        return scratch_malloc(ctx, n);
    if (!in_scratch(p))
        return aw_realloc(p, n);
    size_t old;
    memcpy(&old, (char *)p - sizeof(max_align_t), sizeof(old));
    void *q = scratch_malloc(ctx, n);
    memcpy(q, p, old < n ? old : n);
    return q;
}

typedef struct tree_ent {
    const char *key; /* NULL in an array */
    yajl_val v;
} tree_ent_t;

/* What the callbacks build: open containers, and the members read so far of
 * every open container, on one stack. */
typedef struct tree_builder {
    arena_chunk_t *arena;
    yajl_val root;
    const char *key; /* the key of the next member of the innermost object */
    yajl_val open[AW_MAX_DEPTH];
    size_t open_at[AW_MAX_DEPTH]; /* where each open container's members start */
    int depth;
    tree_ent_t *ents, ents_inline[64];
    size_t n_ents, cap_ents;
} tree_builder_t;

static yajl_val tb_node(tree_builder_t *tb, yajl_type type)
{
    yajl_val v = arena_alloc(&tb->arena, sizeof(*v));
    memset(v, 0, sizeof(*v));
    v->type = type;
    return v;
}

static char *tb_strdup(tree_builder_t *tb, const unsigned char *s, size_t len)
{
    char *p = arena_alloc(&tb->arena, len + 1);
    memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

static int tb_add(tree_builder_t *tb, yajl_val v)
{
    if (tb->depth == 0) {
        tb->root = v;
        return 1;
    }
    if (tb->n_ents == tb->cap_ents) {
        tb->cap_ents *= 2;
        if (tb->ents == tb->ents_inline) {
            tb->ents = aw_alloc(tb->cap_ents * sizeof(*tb->ents));
            memcpy(tb->ents, tb->ents_inline, sizeof(tb->ents_inline));
        } else {
            tb->ents = aw_realloc(tb->ents, tb->cap_ents * sizeof(*tb->ents));
        }
    }
    tb->ents[tb->n_ents].key = YAJL_IS_OBJECT(tb->open[tb->depth - 1]) ? tb->key : NULL;
    tb->ents[tb->n_ents++].v = v;
    return 1;
}

static int tb_open(void *ctx, yajl_type type)
{
    tree_builder_t *tb = ctx;
    /* The depth limit of aw_json_too_deep, counted on what yajl reads, so
     * the bytes need no pass of their own. */
    if (tb->depth == AW_MAX_DEPTH)
        return 0;
    yajl_val v = tb_node(tb, type);
    tb_add(tb, v);
    tb->open[tb->depth] = v;
    tb->open_at[tb->depth++] = tb->n_ents;
    return 1;
}

static int tb_close(void *ctx)
{
    tree_builder_t *tb = ctx;
    yajl_val v = tb->open[--tb->depth];
    size_t at = tb->open_at[tb->depth], n = tb->n_ents - at;
    if (YAJL_IS_OBJECT(v)) {
        v->u.object.keys = arena_alloc(&tb->arena, n * sizeof(*v->u.object.keys) + 1);
        v->u.object.values = arena_alloc(&tb->arena, n * sizeof(*v->u.object.values) + 1);
        for (size_t i = 0; i < n; i++) {
            v->u.object.keys[i] = tb->ents[at + i].key;
            v->u.object.values[i] = tb->ents[at + i].v;
        }
        v->u.object.len = n;
    } else {
        v->u.array.values = arena_alloc(&tb->arena, n * sizeof(*v->u.array.values) + 1);
        for (size_t i = 0; i < n; i++)
            v->u.array.values[i] = tb->ents[at + i].v;
        v->u.array.len = n;
    }
    tb->n_ents = at;
    return 1;
}

static int tb_start_map(void *ctx)
{
    return tb_open(ctx, yajl_t_object);
}

static int tb_start_array(void *ctx)
{
    return tb_open(ctx, yajl_t_array);
}

static int tb_map_key(void *ctx, const unsigned char *s, size_t len)
{
    tree_builder_t *tb = ctx;
    tb->key = tb_strdup(tb, s, len);
    return 1;
}

static int tb_string(void *ctx, const unsigned char *s, size_t len)
{
    tree_builder_t *tb = ctx;
    yajl_val v = tb_node(tb, yajl_t_string);
    v->u.string = tb_strdup(tb, s, len);
    return tb_add(tb, v);
}

/* yajl's integer reading, quirks included (its tree marks
 * -9223372036854775808 as no integer), so that YAJL_IS_INTEGER means what it
 * meant with yajl_tree_parse. Returns 0 when the text is no integer. */
static int yajl_like_integer(const char *s, size_t len, long long *out)
{
    long long ret = 0;
    long sign = 1;
    const char *pos = s, *end = s + len;
    if (*pos == '-') {
        pos++;
        sign = -1;
    }
    if (*pos == '+')
        pos++;
    while (pos < end) {
        if (ret > LLONG_MAX / 10 || LLONG_MAX - ret * 10 < (*pos - '0') || *pos < '0' || *pos > '9')
            return 0;
        ret = ret * 10 + (*pos++ - '0');
    }
    *out = sign * ret;
    return 1;
}

static int tb_number(void *ctx, const char *s, size_t len)
{
    tree_builder_t *tb = ctx;
    yajl_val v = tb_node(tb, yajl_t_number);
    char *r = tb_strdup(tb, (const unsigned char *)s, len), *endptr = NULL;
    v->u.number.r = r;
    if (yajl_like_integer(r, len, &v->u.number.i))
        v->u.number.flags |= YAJL_NUMBER_INT_VALID;
    errno = 0;
    v->u.number.d = strtod(r, &endptr);
    if (errno == 0 && endptr != NULL && *endptr == '\0')
        v->u.number.flags |= YAJL_NUMBER_DOUBLE_VALID;
    return tb_add(tb, v);
}

static int tb_null(void *ctx)
{
    tree_builder_t *tb = ctx;
    return tb_add(tb, tb_node(tb, yajl_t_null));
}

static int tb_bool(void *ctx, int b)
{
    tree_builder_t *tb = ctx;
    return tb_add(tb, tb_node(tb, b ? yajl_t_true : yajl_t_false));
}

static const yajl_callbacks tb_callbacks = {
    .yajl_null = tb_null,
    .yajl_boolean = tb_bool,
    .yajl_number = tb_number,
    .yajl_string = tb_string,
    .yajl_start_map = tb_start_map,
    .yajl_map_key = tb_map_key,
    .yajl_end_map = tb_close,
    .yajl_start_array = tb_start_array,
    .yajl_end_array = tb_close,
};

/* Parses `len` bytes into a tree in a new arena, as yajl_tree_parse would.
 * Returns the root, or NULL (with nothing left to free). */
static yajl_val tree_parse(const char *json, size_t len, arena_chunk_t **arena)
{
    static const yajl_alloc_funcs scratch_funcs = {scratch_malloc, scratch_realloc, scratch_free, NULL};
    tree_builder_t tb;
    tb.arena = NULL;
    tb.root = NULL;
    tb.key = NULL;
    tb.depth = 0;
    tb.ents = tb.ents_inline;
    tb.n_ents = 0;
    tb.cap_ents = sizeof(tb.ents_inline) / sizeof(tb.ents_inline[0]);
    /* A first chunk big enough for a usual message and its strings. */
    arena_alloc(&tb.arena, 2 * len + 512);
    tb.arena->used = 0;
    scratch.used = 0;
    yajl_handle h = yajl_alloc(&tb_callbacks, (yajl_alloc_funcs *)&scratch_funcs, &tb);
    if (h == NULL) {
        fprintf(stderr, "anywhere: out of memory (yajl_alloc)\n");
        abort();
    }
    yajl_config(h, yajl_allow_comments, 1);
    int ok = yajl_parse(h, (const unsigned char *)json, len) == yajl_status_ok &&
             yajl_complete_parse(h) == yajl_status_ok && tb.root != NULL;
    yajl_free(h);
    if (tb.ents != tb.ents_inline)
        free(tb.ents);
    if (!ok) {
        arena_free(tb.arena);
        return NULL;
    }
    *arena = tb.arena;
    return tb.root;
}

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
    static const char *const names[] = {"type", "user", "text", "channel", "token", "last_seq"};
    yajl_val found[6] = {NULL};
    for (size_t i = 0; i < root->u.object.len; i++) {
        const char *k = root->u.object.keys[i];
        for (size_t n = 0; n < 6; n++) {
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
}

int aw_message_parse(aw_message_t *msg, const char *json, size_t len)
{
    arena_chunk_t *arena = NULL;
    int bad = 0;

    memset(msg, 0, sizeof(*msg));
    /* Nesting past AW_MAX_DEPTH is refused while the tree is built. */
    if (len == 0 || memchr(json, '\0', len) != NULL)
        return AW_EBADJSON;
    yajl_val root = tree_parse(json, len, &arena);
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
    if (bad || msg->type == NULL || msg->type[0] == '\0' || msg->user_len == 0 ||
        msg->user_len > AW_MAX_USER_LEN) {
        aw_message_dispose(msg);
        return AW_EBADMSG;
    }
    return 0;
}

void aw_message_dispose(aw_message_t *msg)
{
    arena_free(msg->arena);
    memset(msg, 0, sizeof(*msg));
}

/*
 * The writer. Frames, history records and bot bodies are written straight
 * into the bytes of the aw_buf_t that carries them: no generator to allocate,
 * no copy at the end, one allocation per frame in the common case. The
 * output is byte for byte what yajl_gen (no beautify, no solidus escaping)
 * wrote before: `"`, `\` and the control characters escaped, \b \f \n \r \t
 * by name and the others as \u00XX (upper-case hex), every other byte as it is. Strings reach
 * the writer as valid UTF-8 (yajl's parser checks what clients send, and the
 * server's own strings are ASCII), so it has none to check.
 */
typedef aw_bytes_t jw_t;

static void jw_init(jw_t *w, size_t cap)
{
    aw_bytes_init(w, cap);
}

/* Makes room for `n` more bytes and the final NUL. */
static inline char *jw_room(jw_t *w, size_t n)
{
    return aw_bytes_reserve(w, n);
}

static inline void jw_raw(jw_t *w, const char *s, size_t n)
{
    aw_bytes_append(w, s, n);
}

static inline void jw_char(jw_t *w, char c)
{
    aw_bytes_appendc(w, c);
}

static aw_buf_t *jw_finish(jw_t *w)
{
    return aw_bytes_finish(w);
}

/* Bytes that need an escape: the control characters, '"' and '\'. */
static inline int jw_plain(unsigned char c)
{
    return c >= 0x20 && c != '"' && c != '\\';
}

static void jw_str(jw_t *w, const char *s, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    /* Worst case: every byte becomes \u00xx. */
    char *o = jw_room(w, n * 6 + 2), *start = o;
    *o++ = '"';
    size_t i = 0;
    for (;;) {
        /* Eight plain bytes at a time: none below 0x20, none '"' or '\\'
         * (the classic "has a byte less than" and "has a zero byte" tests). */
        while (i + 8 <= n) {
            uint64_t x;
            memcpy(&x, s + i, 8);
            uint64_t q = x ^ 0x2222222222222222ull, b = x ^ 0x5c5c5c5c5c5c5c5cull;
            uint64_t special = ((x - 0x2020202020202020ull) & ~x) | ((q - 0x0101010101010101ull) & ~q) |
                               ((b - 0x0101010101010101ull) & ~b);
            if ((special & 0x8080808080808080ull) != 0)
                break;
            memcpy(o, &x, 8);
            o += 8;
            i += 8;
        }
        if (i == n)
            break;
        unsigned char c = (unsigned char)s[i++];
        if (jw_plain(c)) {
            *o++ = (char)c;
            continue;
        }
        *o++ = '\\';
        switch (c) {
        case '"':
        case '\\':
            *o++ = (char)c;
            break;
        case '\b':
            *o++ = 'b';
            break;
        case '\f':
            *o++ = 'f';
            break;
        case '\n':
            *o++ = 'n';
            break;
        case '\r':
            *o++ = 'r';
            break;
        case '\t':
            *o++ = 't';
            break;
        default:
            *o++ = 'u';
            *o++ = '0';
            *o++ = '0';
            *o++ = hex[c >> 4];
            *o++ = hex[c & 15];
            break;
        }
    }
    *o++ = '"';
    w->len += (size_t)(o - start);
}

static void jw_cstr(jw_t *w, const char *s)
{
    if (s == NULL)
        jw_raw(w, "null", 4);
    else
        jw_str(w, s, strlen(s));
}

/* Starts a member of an object: the comma unless it is the first. */
static void jw_key(jw_t *w, const char *k)
{
    if (w->buf->data[w->len - 1] != '{')
        jw_char(w, ',');
    jw_str(w, k, strlen(k));
    jw_char(w, ':');
}

/* The same for a key of the server's own, known to need no escaping:
 * JW_KEY(w, "ts") writes ,"ts": without looking at its bytes. */
static inline void jw_key_lit(jw_t *w, const char *quoted, size_t n)
{
    if (w->buf->data[w->len - 1] != '{')
        jw_char(w, ',');
    jw_raw(w, quoted, n);
}
#define JW_KEY(w, k) jw_key_lit((w), "\"" k "\":", sizeof(k) + 2)

static void jw_int(jw_t *w, int64_t v)
{
    char tmp[24];
    char *e = tmp + sizeof(tmp), *p = e;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u != 0);
    if (v < 0)
        *--p = '-';
    jw_raw(w, p, (size_t)(e - p));
}

static void jw_bool(jw_t *w, int v)
{
    if (v)
        jw_raw(w, "true", 4);
    else
        jw_raw(w, "false", 5);
}

/* Writes any tree value. Depth is bounded by the parser's limit. */
static void jw_value(jw_t *w, yajl_val v)
{
    switch (v->type) {
    case yajl_t_string:
        jw_cstr(w, v->u.string);
        break;
    case yajl_t_number:
        /* The number's own text: big or precise numbers pass through exactly. */
        jw_raw(w, v->u.number.r, strlen(v->u.number.r));
        break;
    case yajl_t_object:
        jw_char(w, '{');
        for (size_t i = 0; i < v->u.object.len; i++) {
            jw_key(w, v->u.object.keys[i]);
            jw_value(w, v->u.object.values[i]);
        }
        jw_char(w, '}');
        break;
    case yajl_t_array:
        jw_char(w, '[');
        for (size_t i = 0; i < v->u.array.len; i++) {
            if (i != 0)
                jw_char(w, ',');
            jw_value(w, v->u.array.values[i]);
        }
        jw_char(w, ']');
        break;
    case yajl_t_true:
        jw_bool(w, 1);
        break;
    case yajl_t_false:
        jw_bool(w, 0);
        break;
    default:
        jw_raw(w, "null", 4);
        break;
    }
}

aw_buf_t *aw_json_write(yajl_val v)
{
    jw_t w;
    jw_init(&w, 256);
    jw_value(&w, v);
    return jw_finish(&w);
}

aw_buf_t *aw_json_string(const char *s, size_t len)
{
    jw_t w;
    jw_init(&w, len + 16);
    jw_str(&w, s, len);
    return jw_finish(&w);
}

static int skipped(const char *k, const char *const *skip)
{
    for (const char *const *s = skip; *s != NULL; s++)
        if (strcmp(*s, k) == 0)
            return 1;
    return 0;
}

/* Writes the fields of `obj` except the listed keys. */
static void write_fields_except(jw_t *w, yajl_val obj, const char *const *skip)
{
    for (size_t i = 0; i < obj->u.object.len; i++) {
        const char *k = obj->u.object.keys[i];
        if (skipped(k, skip))
            continue;
        jw_key(w, k);
        jw_value(w, obj->u.object.values[i]);
    }
}

/* Opens a message object: its type and the client's fields but `skip`. */
static void open_message(jw_t *w, const aw_message_t *msg, const char *type, const char *const *skip)
{
    jw_init(w, 256);
    jw_char(w, '{');
    JW_KEY(w, "type");
    jw_cstr(w, type != NULL ? type : msg->type);
    write_fields_except(w, msg->root, skip);
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

static char *dup_or_null(const char *s)
{
    return s != NULL ? aw_strndup(s, strlen(s)) : NULL;
}

aw_reply_t *aw_reply_new(const char *text)
{
    aw_reply_t *r = aw_calloc(1, sizeof(*r));
    r->text = dup_or_null(text);
    return r;
}

void aw_reply_free(aw_reply_t *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->n_quick_replies; i++) {
        free(r->quick_replies[i].title);
        free(r->quick_replies[i].payload);
    }
    for (size_t i = 0; i < r->n_files; i++)
        free(r->files[i].url);
    free(r->quick_replies);
    free(r->files);
    free(r->type);
    free(r->text);
    free(r->open_link);
    free(r->link_title);
    free(r->goto_link);
    if (r->extra != NULL)
        yajl_tree_free(r->extra);
    free(r);
}

void aw_reply_add_quick_reply(aw_reply_t *r, const char *title, const char *payload)
{
    r->quick_replies = aw_realloc(r->quick_replies, (r->n_quick_replies + 1) * sizeof(*r->quick_replies));
    r->quick_replies[r->n_quick_replies].title = dup_or_null(title);
    r->quick_replies[r->n_quick_replies].payload = dup_or_null(payload != NULL ? payload : title);
    r->n_quick_replies++;
}

void aw_reply_add_file(aw_reply_t *r, const char *url, int image)
{
    r->files = aw_realloc(r->files, (r->n_files + 1) * sizeof(*r->files));
    r->files[r->n_files].url = dup_or_null(url);
    r->files[r->n_files].image = image;
    r->n_files++;
}

void aw_reply_set_link(aw_reply_t *r, const char *url, const char *title)
{
    free(r->open_link);
    free(r->link_title);
    r->open_link = dup_or_null(url);
    r->link_title = dup_or_null(title);
}

static void write_opt_str_lit(jw_t *w, const char *quoted, size_t n, const char *value)
{
    if (value == NULL)
        return;
    jw_key_lit(w, quoted, n);
    jw_cstr(w, value);
}
/* Writes "key":"value" when value is not NULL; `k` is a literal. */
#define write_opt_str(w, k, value) write_opt_str_lit((w), "\"" k "\":", sizeof(k) + 2, (value))

static void write_reply_lists(jw_t *w, const aw_reply_t *r)
{
    if (r->n_quick_replies != 0) {
        JW_KEY(w, "quick_replies");
        jw_char(w, '[');
        for (size_t i = 0; i < r->n_quick_replies; i++) {
            jw_raw(w, i != 0 ? ",{" : "{", i != 0 ? 2 : 1);
            write_opt_str(w, "title", r->quick_replies[i].title);
            write_opt_str(w, "payload", r->quick_replies[i].payload);
            jw_char(w, '}');
        }
        jw_char(w, ']');
    }
    if (r->n_files != 0) {
        JW_KEY(w, "files");
        jw_char(w, '[');
        for (size_t i = 0; i < r->n_files; i++) {
            jw_raw(w, i != 0 ? ",{" : "{", i != 0 ? 2 : 1);
            write_opt_str(w, "url", r->files[i].url);
            JW_KEY(w, "image");
            jw_bool(w, r->files[i].image);
            jw_char(w, '}');
        }
        jw_char(w, ']');
    }
}

aw_buf_t *aw_reply_write(const aw_reply_t *r, const char *user, size_t user_len, const char *channel,
                         int64_t seq, int64_t ts_ms)
{
    /* Every field written from `r` is skipped in `extra`, or the frame
     * would carry it twice. So are `token` and `last_seq`: they belong to
     * the client's side of the protocol (its identity and what it has
     * shown), and a bot that sets them must not put them in a user's frame,
     * where a client would take them for its own. */
    static const char *const skip[] = {"type",  "text",          "user",       "channel",   "seq",
                                       "ts",    "open_link",     "link_title", "goto_link", "quick_replies",
                                       "files", "disable_input", "token",      "last_seq",  NULL};
    jw_t w;
    jw_init(&w, 256);
    jw_char(&w, '{');
    write_opt_str(&w, "type", r->type != NULL ? r->type : "message");
    write_opt_str(&w, "text", r->text);
    write_reply_lists(&w, r);
    write_opt_str(&w, "open_link", r->open_link);
    write_opt_str(&w, "link_title", r->link_title);
    write_opt_str(&w, "goto_link", r->goto_link);
    if (r->disable_input) {
        JW_KEY(&w, "disable_input");
        jw_bool(&w, 1);
    }
    if (r->extra != NULL && YAJL_IS_OBJECT(r->extra))
        write_fields_except(&w, r->extra, skip);
    JW_KEY(&w, "user");
    jw_str(&w, user, user_len);
    write_opt_str(&w, "channel", channel);
    if (seq >= 0) {
        JW_KEY(&w, "seq");
        jw_int(&w, seq);
    }
    if (ts_ms >= 0) {
        JW_KEY(&w, "ts");
        jw_int(&w, ts_ms);
    }
    jw_char(&w, '}');
    return jw_finish(&w);
}

aw_buf_t *aw_frame_typing(const char *user, size_t user_len)
{
    jw_t w;
    jw_init(&w, 64 + user_len);
    jw_char(&w, '{');
    write_opt_str(&w, "type", "typing");
    JW_KEY(&w, "user");
    jw_str(&w, user, user_len);
    jw_char(&w, '}');
    return jw_finish(&w);
}

aw_buf_t *aw_frame_session(const char *user, size_t user_len, const char *token, int64_t seq)
{
    jw_t w;
    jw_init(&w, 160 + user_len);
    jw_char(&w, '{');
    write_opt_str(&w, "type", "session");
    JW_KEY(&w, "user");
    jw_str(&w, user, user_len);
    write_opt_str(&w, "token", token);
    JW_KEY(&w, "seq");
    jw_int(&w, seq);
    jw_char(&w, '}');
    return jw_finish(&w);
}

aw_buf_t *aw_frame_error(int err)
{
    aw_protocol_error_t e = aw_protocol_error(err);
    jw_t w;
    jw_init(&w, 128);
    jw_char(&w, '{');
    write_opt_str(&w, "type", "error");
    write_opt_str(&w, "code", e.code);
    write_opt_str(&w, "message", e.message);
    jw_char(&w, '}');
    return jw_finish(&w);
}

static int set_user(aw_history_query_t *q, const char *user, size_t len)
{
    if (len == 0 || len > AW_MAX_USER_LEN || memchr(user, '\0', len) != NULL)
        return AW_EBADMSG;
    memcpy(q->user, user, len);
    q->user[len] = '\0';
    q->user_len = len;
    return 0;
}

static int set_token(aw_history_query_t *q, const char *token, size_t len)
{
    if (len > AW_MAX_USER_LEN)
        return AW_EBADMSG;
    memcpy(q->token, token, len);
    q->token[len] = '\0';
    return 0;
}

static void query_init(aw_history_query_t *q)
{
    memset(q, 0, sizeof(*q));
    q->before = INT64_MAX;
    q->limit = 10;
}

yajl_val aw_json_parse_tree(const char *json, size_t len)
{
    char errbuf[64];
    if (len == 0 || memchr(json, '\0', len) != NULL || aw_json_too_deep(json, len, AW_MAX_DEPTH))
        return NULL;
    char *copy = aw_strndup(json, len); /* yajl's tree parser wants a C string */
    yajl_val root = yajl_tree_parse(copy, errbuf, sizeof(errbuf));
    free(copy);
    return root;
}

int aw_history_query_from_json(aw_history_query_t *q, const char *json, size_t len)
{
    aw_message_t m;
    int bad = 0;
    query_init(q);
    m.root = aw_json_parse_tree(json, len);
    if (m.root == NULL)
        return AW_EBADJSON;
    int err = YAJL_IS_OBJECT(m.root) ? 0 : AW_EBADJSON;
    const char *user = err == 0 ? get_str(m.root, "user", &bad) : NULL;
    const char *token = err == 0 ? get_str(m.root, "token", &bad) : NULL;
    const char *path[] = {"limit", NULL};
    yajl_val limit = err == 0 ? yajl_tree_get(m.root, path, yajl_t_any) : NULL;
    if (err == 0 && (bad || user == NULL || set_user(q, user, strlen(user)) != 0 ||
                     (token != NULL && set_token(q, token, strlen(token)) != 0)))
        err = AW_EBADMSG;
    if (err == 0 && limit != NULL && !YAJL_IS_NULL(limit)) {
        if (!YAJL_IS_INTEGER(limit) || YAJL_GET_INTEGER(limit) < 1 || YAJL_GET_INTEGER(limit) > 100)
            err = AW_EBADMSG;
        else
            q->limit = (int)YAJL_GET_INTEGER(limit);
    }
    yajl_tree_free(m.root);
    return err;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Percent-decodes into `out` (room for `cap` bytes); returns the length or -1. */
static ssize_t url_decode(const char *s, size_t len, char *out, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '%') {
            int hi, lo;
            if (i + 2 >= len || (hi = hexval(s[i + 1])) < 0 || (lo = hexval(s[i + 2])) < 0)
                return -1;
            c = (char)(hi * 16 + lo);
            i += 2;
        } else if (c == '+') {
            c = ' ';
        }
        if (n == cap)
            return -1;
        out[n++] = c;
    }
    return (ssize_t)n;
}

static int parse_int(const char *s, size_t len, int64_t min, int64_t max, int64_t *out)
{
    int64_t v = 0;
    if (len == 0 || len > 18)
        return -1;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    if (v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

static int query_pair(aw_history_query_t *q, const char *key, size_t klen, const char *val, size_t vlen)
{
    char buf[AW_MAX_USER_LEN * 3 + 1];
    ssize_t n = url_decode(val, vlen, buf, sizeof(buf));
    int64_t v;
    if (n < 0)
        return AW_EBADMSG;
    if (klen == 4 && memcmp(key, "user", 4) == 0)
        return set_user(q, buf, (size_t)n);
    if (klen == 6 && memcmp(key, "before", 6) == 0) {
        if (parse_int(buf, (size_t)n, 0, INT64_MAX / 2, &v) != 0)
            return AW_EBADMSG;
        q->before = v;
    } else if (klen == 5 && memcmp(key, "limit", 5) == 0) {
        if (parse_int(buf, (size_t)n, 1, 100, &v) != 0)
            return AW_EBADMSG;
        q->limit = (int)v;
    }
    return 0;
}

int aw_history_query_from_url(aw_history_query_t *q, const char *query, size_t len)
{
    query_init(q);
    size_t i = 0;
    while (i < len) {
        size_t end = i;
        while (end < len && query[end] != '&')
            end++;
        const char *eq = memchr(query + i, '=', end - i);
        size_t klen = eq != NULL ? (size_t)(eq - (query + i)) : end - i;
        const char *val = eq != NULL ? eq + 1 : query + end;
        int err = query_pair(q, query + i, klen, val, (size_t)(query + end - val));
        if (err != 0)
            return err;
        i = end + 1;
    }
    return q->user_len == 0 ? AW_EBADMSG : 0;
}

static int opt_reply_str(yajl_val obj, const char *key, char **out)
{
    int bad = 0;
    const char *v = get_str(obj, key, &bad);
    if (bad)
        return AW_EBADMSG;
    *out = v != NULL ? aw_strndup(v, strlen(v)) : NULL;
    return 0;
}

static int reply_lists(yajl_val obj, aw_reply_t *r)
{
    const char *qpath[] = {"quick_replies", NULL}, *fpath[] = {"files", NULL};
    yajl_val q = yajl_tree_get(obj, qpath, yajl_t_any), f = yajl_tree_get(obj, fpath, yajl_t_any);
    if ((q != NULL && !YAJL_IS_ARRAY(q)) || (f != NULL && !YAJL_IS_ARRAY(f)))
        return AW_EBADMSG;
    for (size_t i = 0; q != NULL && i < q->u.array.len; i++) {
        yajl_val e = q->u.array.values[i];
        int bad = 0;
        const char *title = YAJL_IS_OBJECT(e) ? get_str(e, "title", &bad) : NULL;
        const char *payload = YAJL_IS_OBJECT(e) ? get_str(e, "payload", &bad) : NULL;
        if (title == NULL || bad)
            return AW_EBADMSG;
        aw_reply_add_quick_reply(r, title, payload);
    }
    for (size_t i = 0; f != NULL && i < f->u.array.len; i++) {
        yajl_val e = f->u.array.values[i];
        int bad = 0;
        const char *url = YAJL_IS_OBJECT(e) ? get_str(e, "url", &bad) : NULL;
        const char *ipath[] = {"image", NULL};
        yajl_val img = YAJL_IS_OBJECT(e) ? yajl_tree_get(e, ipath, yajl_t_any) : NULL;
        if (url == NULL || bad || (img != NULL && !YAJL_IS_TRUE(img) && !YAJL_IS_FALSE(img)))
            return AW_EBADMSG;
        aw_reply_add_file(r, url, img != NULL && YAJL_IS_TRUE(img));
    }
    return 0;
}

int aw_reply_from_object(yajl_val obj, aw_reply_t **out)
{
    int bad = 0;
    if (obj == NULL || !YAJL_IS_OBJECT(obj))
        return AW_EBADMSG;
    const char *type = get_str(obj, "type", &bad);
    if (bad || (type != NULL && strcmp(type, "message") != 0))
        return AW_EBADMSG;
    aw_reply_t *r = aw_reply_new(NULL);
    const char *tpath[] = {"typing", NULL}, *dpath[] = {"disable_input", NULL};
    yajl_val typing = yajl_tree_get(obj, tpath, yajl_t_any), dis = yajl_tree_get(obj, dpath, yajl_t_any);
    int err = opt_reply_str(obj, "text", &r->text);
    if (err == 0)
        err = opt_reply_str(obj, "open_link", &r->open_link);
    if (err == 0)
        err = opt_reply_str(obj, "link_title", &r->link_title);
    if (err == 0)
        err = opt_reply_str(obj, "goto_link", &r->goto_link);
    if (err == 0)
        err = reply_lists(obj, r);
    if (err == 0 && typing != NULL &&
        (!YAJL_IS_INTEGER(typing) || YAJL_GET_INTEGER(typing) < 0 || YAJL_GET_INTEGER(typing) > 60000))
        err = AW_EBADMSG;
    if (err == 0 && dis != NULL && !YAJL_IS_TRUE(dis) && !YAJL_IS_FALSE(dis))
        err = AW_EBADMSG;
    if (err != 0) {
        aw_reply_free(r);
        return err;
    }
    r->typing_ms = typing != NULL ? (unsigned int)YAJL_GET_INTEGER(typing) : 0;
    r->disable_input = dis != NULL && YAJL_IS_TRUE(dis);
    r->extra = obj;
    *out = r;
    return 0;
}

int aw_push_parse(const char *json, size_t len, char user[AW_MAX_USER_LEN], size_t *user_len,
                  aw_reply_t **reply)
{
    yajl_val root = aw_json_parse_tree(json, len);
    if (root == NULL || !YAJL_IS_OBJECT(root)) {
        if (root != NULL)
            yajl_tree_free(root);
        return AW_EBADJSON;
    }
    const char *path[] = {"user", NULL};
    yajl_val u = yajl_tree_get(root, path, yajl_t_string);
    const char *name = u != NULL ? YAJL_GET_STRING(u) : NULL;
    size_t n = name != NULL ? strlen(name) : 0;
    if (n == 0 || n > AW_MAX_USER_LEN || aw_reply_from_object(root, reply) != 0) {
        yajl_tree_free(root);
        return AW_EBADMSG;
    }
    memcpy(user, name, n); /* `root` now belongs to the reply, which keeps `name` alive */
    *user_len = n;
    return 0;
}
