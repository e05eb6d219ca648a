/*
 * JSON for the chat (json.h): the readers and the writer. Input is bounded:
 * size by the transport, nesting depth here, because yajl's tree parser and
 * its free are recursive and have no depth limit of their own (the arena
 * reader's callbacks count the depth as they go; the other bodies are checked
 * with aw_json_too_deep first). The writer's buffer and its small primitives
 * are inline in internal.h, where message.c and reply.c use them; what is here
 * is its out-of-line part.
 */
#include "actors/json.h"

#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <string.h>
#include <yajl/yajl_parse.h>
#include "actors/internal.h"

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

const char *aw_json_get_string(yajl_val obj, const char *key, int *bad)
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
 * The arena reader, which reads every client message. yajl's own parser
 * reads the bytes (so what is accepted is exactly what yajl_tree_parse
 * accepts: comments allowed, UTF-8 checked, escapes decoded, nothing after
 * the value), and the callbacks below build the same yajl_val tree yajl_tree
 * builds, but in one arena the caller keeps (a message, as long as it lives):
 * one allocation for a usual message instead of one or two per value, no copy
 * of the input, and one free. yajl's own bookkeeping comes from a per-thread
 * scratch area, reset by every parse.
 */
struct aw_json_arena {
    struct aw_json_arena *next;
    size_t cap, used;
    max_align_t data[];
};
typedef struct aw_json_arena arena_chunk_t; /* one chunk: an arena is its newest, linked to the older */

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

yajl_val aw_json_parse_arena(const char *json, size_t len, aw_json_arena_t **arena)
{
    *arena = NULL;
    /* Nesting past AW_MAX_DEPTH is refused while the tree is built. */
    if (len == 0 || memchr(json, '\0', len) != NULL)
        return NULL;
    return tree_parse(json, len, arena);
}

void aw_json_arena_free(aw_json_arena_t *arena)
{
    arena_free(arena);
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

/* The writer's out-of-line part: see internal.h. */

/* Bytes that need an escape: the control characters, '"' and '\'. */
static inline int jw_plain(unsigned char c)
{
    return c >= 0x20 && c != '"' && c != '\\';
}

/* The bytes jw_str writes for the byte `c`. */
static size_t jw_escaped_len(unsigned char c)
{
    if (jw_plain(c))
        return 1;
    switch (c) {
    case '"':
    case '\\':
    case '\b':
    case '\f':
    case '\n':
    case '\r':
    case '\t':
        return 2;
    default:
        return 6;
    }
}

/* The bytes jw_str writes for `s`, quotes included. */
static size_t jw_str_len(const char *s, size_t n)
{
    size_t len = 2;
    for (size_t i = 0; i < n; i++)
        len += jw_escaped_len((unsigned char)s[i]);
    return len;
}

void jw_str(jw_t *w, const char *s, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    /* Room for the worst case (every byte becomes \u00xx) when there is
     * that much already; otherwise for exactly what is written, so that a
     * frame sized for its usual content is not grown (a realloc and a copy)
     * for a worst case that almost never comes. */
    size_t worst = n * 6 + 2;
    char *o = jw_room(w, worst < w->cap - w->len ? worst : jw_str_len(s, n)), *start = o;
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

void jw_key(jw_t *w, const char *k)
{
    if (w->buf->data[w->len - 1] != '{')
        jw_char(w, ',');
    jw_str(w, k, strlen(k));
    jw_char(w, ':');
}

void jw_value(jw_t *w, yajl_val v)
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

const char *aw_json_unknown_key(yajl_val obj, const char *const *known)
{
    for (size_t i = 0; i < obj->u.object.len; i++)
        if (!skipped(obj->u.object.keys[i], known))
            return obj->u.object.keys[i];
    return NULL;
}

void jw_fields_except(jw_t *w, yajl_val obj, const char *const *skip)
{
    for (size_t i = 0; i < obj->u.object.len; i++) {
        const char *k = obj->u.object.keys[i];
        if (skipped(k, skip))
            continue;
        jw_key(w, k);
        jw_value(w, obj->u.object.values[i]);
    }
}
