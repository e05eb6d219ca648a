/*
 * Unit tests of actors/message.c: what a client message must look like, what
 * is refused with which code, and that fields round-trip into history JSON
 * exactly.
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "actors/message.h"
#include "runtime/error.h"
#include "tests/check.h"

static int parse(const char *json)
{
    aw_message_t m;
    int r = aw_message_parse(&m, json, strlen(json));
    if (r == 0)
        aw_message_dispose(&m);
    return r;
}

static void test_accepts(void)
{
    aw_message_t m;
    const char *j = "{\"type\":\"hello\",\"user\":\"u1\",\"channel\":\"socket\",\"user_profile\":null,"
                    "\"token\":\"abc\",\"last_seq\":7,\"extra\":[1,{\"b\":true}]}";
    CHECK(aw_message_parse(&m, j, strlen(j)) == 0);
    CHECK(strcmp(m.type, "hello") == 0);
    CHECK(m.user_len == 2 && memcmp(m.user, "u1", 2) == 0);
    CHECK(strcmp(m.channel, "socket") == 0);
    CHECK(strcmp(m.token, "abc") == 0);
    CHECK(m.last_seq == 7);
    CHECK(m.text == NULL);
    aw_message_dispose(&m);
}

static void test_refuses(void)
{
    CHECK(parse("") == AW_EBADJSON);
    CHECK(parse("null") == AW_EBADJSON);
    CHECK(parse("[]") == AW_EBADJSON);
    CHECK(parse("{\"type\":\"message\",\"user\":\"a\"") == AW_EBADJSON);
    CHECK(parse("{\"type\":\"message\",\"user\":\"a\"} {}") == AW_EBADJSON);
    CHECK(parse("{\"type\":\"message\",\"user\":\"\xc3\x28\"}") == AW_EBADJSON);
    CHECK(aw_message_parse(&(aw_message_t){0}, "{\"type\":\"a\",\"user\":\"b\"}\0", 24) == AW_EBADJSON);
    char deep[200];
    memset(deep, '[', 40);
    memset(deep + 40, ']', 40);
    deep[80] = '\0';
    CHECK(parse(deep) == AW_EBADJSON);
    /* brackets inside strings do not count as depth */
    char str[300];
    snprintf(str, sizeof(str), "{\"type\":\"message\",\"user\":\"u\",\"text\":\"%s\"}",
             "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\\\"[[[[[[[[[");
    CHECK(parse(str) == 0);
    CHECK(parse("{\"user\":\"a\"}") == AW_EBADMSG);
    CHECK(parse("{\"type\":\"message\"}") == AW_EBADMSG);
    CHECK(parse("{\"type\":\"\",\"user\":\"a\"}") == AW_EBADMSG);
    CHECK(parse("{\"type\":\"message\",\"user\":\"\"}") == AW_EBADMSG);
    CHECK(parse("{\"type\":1,\"user\":\"a\"}") == AW_EBADMSG);
    CHECK(parse("{\"type\":\"message\",\"user\":\"a\",\"text\":5}") == AW_EBADMSG);
    CHECK(parse("{\"type\":\"message\",\"user\":\"a\",\"last_seq\":-1}") == AW_EBADMSG);
    CHECK(parse("{\"type\":\"message\",\"user\":\"a\",\"last_seq\":1.5}") == AW_EBADMSG);
    char longuser[400];
    snprintf(longuser, sizeof(longuser), "{\"type\":\"m\",\"user\":\"%0257d\"}", 0);
    CHECK(parse(longuser) == AW_EBADMSG);
    snprintf(longuser, sizeof(longuser), "{\"type\":\"m\",\"user\":\"%0256d\"}", 0);
    CHECK(parse(longuser) == 0);
}

/* A client's message id: 1..64 printable ASCII characters, or absent. */
static void test_mid(void)
{
    aw_message_t m;
    const char *j = "{\"type\":\"message\",\"user\":\"u\",\"mid\":\"a-1:B_~\"}";
    CHECK(aw_message_parse(&m, j, strlen(j)) == 0);
    CHECK(m.mid != NULL && m.mid_len == 7 && strcmp(m.mid, "a-1:B_~") == 0);
    aw_message_dispose(&m);
    CHECK(parse("{\"type\":\"message\",\"user\":\"u\",\"mid\":null}") == 0);
    char mid[200];
    snprintf(mid, sizeof(mid), "{\"type\":\"m\",\"user\":\"u\",\"mid\":\"%064d\"}", 0);
    CHECK(parse(mid) == 0);
    snprintf(mid, sizeof(mid), "{\"type\":\"m\",\"user\":\"u\",\"mid\":\"%065d\"}", 0);
    CHECK(parse(mid) == AW_EBADMSG);
    CHECK(parse("{\"type\":\"m\",\"user\":\"u\",\"mid\":\"\"}") == AW_EBADMSG);
    CHECK(parse("{\"type\":\"m\",\"user\":\"u\",\"mid\":\"a b\"}") == AW_EBADMSG);
    CHECK(parse("{\"type\":\"m\",\"user\":\"u\",\"mid\":\"a\\nb\"}") == AW_EBADMSG);
    CHECK(parse("{\"type\":\"m\",\"user\":\"u\",\"mid\":\"\u00e9\"}") == AW_EBADMSG);
    CHECK(parse("{\"type\":\"m\",\"user\":\"u\",\"mid\":7}") == AW_EBADMSG);
}

static void test_write_keeps_fields(void)
{
    aw_message_t m;
    const char *j = "{\"type\":\"message\",\"user\":\"u\",\"text\":\"h\\u00e9\\\"\",\"token\":\"secret\","
                    "\"n\":123456789012345678901234567890,\"f\":1.50,\"o\":{\"k\":[true,false,null]}}";
    CHECK(aw_message_parse(&m, j, strlen(j)) == 0);
    aw_buf_t *b = aw_message_write(&m, "message_received", 42, -1);
    const char *want =
        "{\"type\":\"message_received\",\"user\":\"u\",\"text\":\"h\xc3\xa9\\\"\","
        "\"n\":123456789012345678901234567890,\"f\":1.50,\"o\":{\"k\":[true,false,null]},\"ts\":42}";
    if (strcmp(b->data, want) != 0)
        fprintf(stderr, "got  %s\nwant %s\n", b->data, want);
    CHECK(strcmp(b->data, want) == 0);
    CHECK(strstr(b->data, "secret") == NULL);
    aw_buf_release(b);
    aw_message_dispose(&m);
}

int main(void)
{
    test_accepts();
    test_refuses();
    test_mid();
    test_write_keeps_fields();
    return check_exit("test_message");
}
