/*
 * Unit tests of actors/json.c: the arena reader accepts exactly what
 * yajl_tree_parse accepts and builds the same tree, both readers are bounded
 * in depth, and the writer writes byte for byte what yajl_gen writes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_gen.h>
#include "actors/json.h"
#include "tests/check.h"

/* Whether the arena reader takes the `len` bytes of `json`. */
static int arena_accepts(const char *json, size_t len)
{
    aw_json_arena_t *arena;
    yajl_val root = aw_json_parse_arena(json, len, &arena);
    aw_json_arena_free(arena);
    return root != NULL;
}

/* Empty input and NUL bytes are refused before yajl sees them. */
static void test_readers_refuse_empty_and_nul(void)
{
    CHECK(!arena_accepts("", 0));
    CHECK(!arena_accepts("{\"a\":1}\0", 8));
    CHECK(aw_json_parse_tree("", 0) == NULL);
    CHECK(aw_json_parse_tree("{\"a\":1}\0", 8) == NULL);
    yajl_val v = aw_json_parse_tree("{\"a\":1}", 7);
    CHECK(v != NULL && YAJL_IS_OBJECT(v));
    yajl_tree_free(v);
}

/* yajl's tree parser accepts comments: brackets inside one are not depth,
 * and once counted, a comment of "]" let any nesting through. */
static void test_comment_brackets_buy_no_depth(void)
{
    char json[400];
    size_t n = (size_t)snprintf(json, sizeof(json), "/*%.40s*/{\"type\":\"m\",\"user\":\"u\",\"x\":",
                                "]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]");
    memset(json + n, '[', 40);
    memset(json + n + 40, ']', 40);
    strcpy(json + n + 80, "}");
    CHECK(!arena_accepts(json, strlen(json)));
    CHECK(aw_json_parse_tree(json, strlen(json)) == NULL);
    CHECK(aw_json_too_deep("// ]]]]\n[[[", 11, 2));
    CHECK(!aw_json_too_deep("/* [[[[ */[[", 12, 2));
    CHECK(!aw_json_too_deep("// [[[[\n[[", 10, 2));
    /* a comment opener inside a string is text */
    CHECK(aw_json_too_deep("[\"/*\",[[\"*/\"]]]", 15, 2));
    /* and comments are still fine where they are not abused */
    const char *fine = "/* hi */ {\"type\":\"m\",\"user\":\"u\"} // bye\n";
    CHECK(arena_accepts(fine, strlen(fine)));
}

/* The reference the writer must match byte for byte: yajl_gen, as the server
 * used it before it wrote JSON itself. */
static void ref_value(yajl_gen g, yajl_val v)
{
    switch (v->type) {
    case yajl_t_string:
        yajl_gen_string(g, (const unsigned char *)v->u.string, strlen(v->u.string));
        break;
    case yajl_t_number:
        yajl_gen_number(g, v->u.number.r, strlen(v->u.number.r));
        break;
    case yajl_t_object:
        yajl_gen_map_open(g);
        for (size_t i = 0; i < v->u.object.len; i++) {
            yajl_gen_string(g, (const unsigned char *)v->u.object.keys[i], strlen(v->u.object.keys[i]));
            ref_value(g, v->u.object.values[i]);
        }
        yajl_gen_map_close(g);
        break;
    case yajl_t_array:
        yajl_gen_array_open(g);
        for (size_t i = 0; i < v->u.array.len; i++)
            ref_value(g, v->u.array.values[i]);
        yajl_gen_array_close(g);
        break;
    case yajl_t_true:
        yajl_gen_bool(g, 1);
        break;
    case yajl_t_false:
        yajl_gen_bool(g, 0);
        break;
    default:
        yajl_gen_null(g);
        break;
    }
}

static int same_as_yajl(yajl_val v)
{
    yajl_gen g = yajl_gen_alloc(NULL);
    const unsigned char *want;
    size_t want_len;
    ref_value(g, v);
    yajl_gen_get_buf(g, &want, &want_len);
    aw_buf_t *b = aw_json_write(v);
    int same = b->len == want_len && memcmp(b->data, want, want_len) == 0 && b->data[b->len] == '\0';
    if (!same)
        fprintf(stderr, "got  %s\nwant %.*s\n", b->data, (int)want_len, (const char *)want);
    aw_buf_release(b);
    yajl_gen_free(g);
    return same;
}

/* Every control character, quote and backslash is escaped as yajl escapes
 * it (by name or as \u00XX, upper-case hex), every other byte (DEL, UTF-8 of any
 * length) goes out as it is, and '/' is not escaped. */
static void test_writer_escapes_like_yajl(void)
{
    char s[256];
    for (int i = 1; i < 256; i++)
        s[i - 1] = (char)i;
    s[255] = '\0';
    yajl_gen g = yajl_gen_alloc(NULL);
    const unsigned char *want;
    size_t want_len;
    yajl_gen_string(g, (const unsigned char *)s, 255);
    yajl_gen_get_buf(g, &want, &want_len);
    aw_buf_t *b = aw_json_string(s, 255);
    CHECK(b->len == want_len && memcmp(b->data, want, want_len) == 0);
    CHECK(strstr(b->data, "\\u001F") != NULL && strstr(b->data, "\\n") != NULL &&
          strstr(b->data, "/") != NULL);
    aw_buf_release(b);
    yajl_gen_free(g);

    /* One byte that needs escaping at every place of a word, among plain
     * ASCII and UTF-8, for the writer's eight-bytes-at-a-time path. */
    const unsigned char special[] = {0, 1, 0x1f, '"', '\\', '\n', 0x7f, 0x80, 0xff, ' ', '/'};
    for (size_t k = 0; k < sizeof(special); k++) {
        for (size_t at = 0; at < 24; at++) {
            char t[24];
            for (size_t i = 0; i < sizeof(t); i++)
                t[i] = i % 3 == 0 ? (char)0xc3 : i % 3 == 1 ? (char)0xa9 : 'a';
            t[at] = (char)special[k];
            yajl_gen r = yajl_gen_alloc(NULL);
            yajl_gen_string(r, (const unsigned char *)t, sizeof(t));
            yajl_gen_get_buf(r, &want, &want_len);
            b = aw_json_string(t, sizeof(t));
            CHECK(b->len == want_len && memcmp(b->data, want, want_len) == 0);
            aw_buf_release(b);
            yajl_gen_free(r);
        }
    }

    b = aw_json_string("", 0);
    CHECK(strcmp(b->data, "\"\"") == 0);
    aw_buf_release(b);
    /* A long string of escapes grows the buffer past its first guess. */
    static char ctl[5000];
    memset(ctl, 1, sizeof(ctl));
    b = aw_json_string(ctl, sizeof(ctl));
    CHECK(b->len == sizeof(ctl) * 6 + 2 && memcmp(b->data + 1, "\\u0001", 6) == 0);
    aw_buf_release(b);
}

/* Whole trees: nesting to the limit, empty containers, big and precise
 * numbers, UTF-8, keys that need escaping, integers at the edges. */
static void test_writer_trees_like_yajl(void)
{
    const char *docs[] = {
        "{}",
        "[]",
        "{\"a\":[],\"b\":{},\"c\":[{}],\"d\":[[],[1]]}",
        ("{\"n\":123456789012345678901234567890,\"f\":-1.50e+300,\"z\":-0,\"i\":-9223372036854775808,"
         "\"j\":9223372036854775807}"),
        "{\"k\\\"\\n\":\"\\u00e9\\ud83d\\ude00\\u0001\\/\",\"t\":true,\"f\":false,\"x\":null}",
        "[1,\"two\",[3,[4,{\"five\":[6]}]],null,true]",
        "{\"dup\":1,\"dup\":2}",
    };
    char errbuf[64];
    for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++) {
        yajl_val v = yajl_tree_parse(docs[i], errbuf, sizeof(errbuf));
        CHECK(v != NULL);
        CHECK(same_as_yajl(v));
        yajl_tree_free(v);
    }
    char deep[2 * AW_MAX_DEPTH + 1];
    for (int i = 0; i < AW_MAX_DEPTH; i++) {
        deep[i] = '[';
        deep[2 * AW_MAX_DEPTH - 1 - i] = ']';
    }
    deep[2 * AW_MAX_DEPTH] = '\0';
    yajl_val v = yajl_tree_parse(deep, errbuf, sizeof(errbuf));
    CHECK(v != NULL && same_as_yajl(v));
    yajl_tree_free(v);
}

/* Number flags agree node by node, and the trees have the same shape. */
static int same_numbers(yajl_val a, yajl_val b)
{
    if (a->type != b->type)
        return 0;
    if (YAJL_IS_NUMBER(a))
        return a->u.number.flags == b->u.number.flags &&
               (!YAJL_IS_INTEGER(a) || YAJL_GET_INTEGER(a) == YAJL_GET_INTEGER(b));
    if (YAJL_IS_OBJECT(a)) {
        if (a->u.object.len != b->u.object.len)
            return 0;
        for (size_t i = 0; i < a->u.object.len; i++)
            if (!same_numbers(a->u.object.values[i], b->u.object.values[i]))
                return 0;
    }
    if (YAJL_IS_ARRAY(a)) {
        if (a->u.array.len != b->u.array.len)
            return 0;
        for (size_t i = 0; i < a->u.array.len; i++)
            if (!same_numbers(a->u.array.values[i], b->u.array.values[i]))
                return 0;
    }
    return 1;
}

/* The arena reader builds its own tree; it must accept exactly what
 * yajl_tree_parse accepts and build the same tree. */
static void test_parser_matches_yajl_tree(void)
{
    const char *docs[] = {
        ("{\"type\":\"m\",\"user\":\"u\",\"x\":[1,2.5,-0,1e999,-9223372036854775808,9223372036854775807,"
         "9223372036854775808,123456789012345678901234567890]}"),
        "{\"type\":\"m\",\"user\":\"u\",\"s\":\"\\u00e9\\ud83d\\ude00\\ud800x\\u0000after\\/\\b\"}",
        "{\"type\":\"m\",\"user\":\"u\",\"k\":1,\"k\":2,\"user\":\"v\"}",
        "{\"type\":\"m\",\"user\":\"u\",\"e\":{},\"a\":[],\"n\":[[[{\"d\":[{}]}]]]}",
        "/* c */{\"type\":\"m\",\"user\":\"u\"}// end\n",
        "  {\"type\":\"m\",\"user\":\"u\"}  \n",
        "{\"type\":\"m\",\"user\":\"u\"} {}",
        "{\"type\":\"m\",\"user\":\"u\"",
        "{\"type\":\"m\",\"user\":\"\xff\"}",
        "{\"type\":\"m\",\"user\":\"\xc3\"}",
        "{\"type\":\"m\",\"user\":\"\xed\xa0\x80\"}",
        "{\"type\":\"m\",\"user\":\"\xf4\x90\x80\x80\"}",
        "{\"type\":\"m\",\"user\":\"a\x01\"}",
        "{\"type\":\"m\",\"user\":\"u\",\"x\":01}",
        "{\"type\":\"m\",\"user\":\"u\",\"x\":1.}",
        "{\"type\":\"m\",\"user\":\"u\",\"x\":[1,]}",
        "{\"type\":\"m\",\"user\":\"u\",\"x\":NaN}",
        "{\"type\":\"m\",\"user\":\"u\",\"x\":\"\\x\"}",
        "{'type':'m'}",
        "[\"type\",\"user\"]",
        "\"str\"",
        "{\"type\":\"m\",\"user\":\"u\",\"last_seq\":-9223372036854775808}",
        "{\"type\":\"m\",\"user\":\"u\",\"last_seq\":9223372036854775807}",
    };
    char errbuf[128];
    for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++) {
        aw_json_arena_t *arena;
        yajl_val ours = aw_json_parse_arena(docs[i], strlen(docs[i]), &arena);
        yajl_val ref = yajl_tree_parse(docs[i], errbuf, sizeof(errbuf));
        if ((ours != NULL) != (ref != NULL))
            fprintf(stderr, "parser and yajl_tree differ on %s\n", docs[i]);
        CHECK((ours != NULL) == (ref != NULL));
        if (ours != NULL && ref != NULL) {
            CHECK(same_numbers(ours, ref));
            CHECK(same_as_yajl(ours));
            aw_buf_t *a = aw_json_write(ours), *b = aw_json_write(ref);
            CHECK(a->len == b->len && memcmp(a->data, b->data, a->len) == 0);
            aw_buf_release(a);
            aw_buf_release(b);
        }
        aw_json_arena_free(arena);
        if (ref != NULL)
            yajl_tree_free(ref);
    }
}

/* A document bigger than the arena reader's first chunk and its inline
 * member stack: many members, long strings. */
static void test_parser_big_message(void)
{
    size_t cap = 1000000, n = 0;
    char *j = malloc(cap);
    n += (size_t)sprintf(j + n, "{\"type\":\"m\",\"user\":\"u\",\"a\":[");
    for (int i = 0; i < 5000; i++)
        n += (size_t)sprintf(j + n, "%s{\"k%d\":\"%0100d\"}", i ? "," : "", i, i);
    n += (size_t)sprintf(j + n, "]}");
    aw_json_arena_t *arena;
    yajl_val root = aw_json_parse_arena(j, n, &arena);
    CHECK(root != NULL && YAJL_IS_OBJECT(root));
    yajl_val a = root->u.object.values[2];
    CHECK(YAJL_IS_ARRAY(a) && a->u.array.len == 5000);
    aw_buf_t *b = aw_json_write(root);
    CHECK(b->len == n && memcmp(b->data, j, n) == 0);
    aw_buf_release(b);
    aw_json_arena_free(arena);
    free(j);
}

/* The arena reader counts nesting itself: AW_MAX_DEPTH levels pass, one more is
 * refused, comments and strings holding brackets count for nothing. */
static void test_parser_depth_limit(void)
{
    char j[512];
    for (int extra = AW_MAX_DEPTH - 1; extra <= AW_MAX_DEPTH; extra++) {
        int n = sprintf(j, "{\"type\":\"m\",\"user\":\"u\",\"s\":\"[[[[\",\"x\":/* [[[ */");
        for (int i = 0; i < extra; i++)
            j[n++] = '[';
        for (int i = 0; i < extra; i++)
            j[n++] = ']';
        j[n++] = '}';
        j[n] = '\0';
        int want = extra == AW_MAX_DEPTH - 1;
        CHECK(arena_accepts(j, (size_t)n) == want);
        CHECK(aw_json_too_deep(j, (size_t)n, AW_MAX_DEPTH) == !want);
    }
}

int main(void)
{
    test_readers_refuse_empty_and_nul();
    test_comment_brackets_buy_no_depth();
    test_writer_escapes_like_yajl();
    test_writer_trees_like_yajl();
    test_parser_matches_yajl_tree();
    test_parser_big_message();
    test_parser_depth_limit();
    return check_exit("test_json");
}
