/*
 * Unit tests of growable byte strings (runtime/bytes.h): an empty string
 * allocates nothing and finishes as "", appends of 0 bytes change nothing,
 * room grows by doubling through small and large appends alike, printf-style
 * appends longer than the room, and the finished buffer is NUL-terminated,
 * holds one reference and leaves the string empty.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "runtime/bytes.h"
#include "tests/check.h"

static void test_empty(void)
{
    aw_bytes_t b = {0};
    aw_bytes_append(&b, NULL, 0);
    aw_bytes_append(&b, "x", 0);
    CHECK(b.buf == NULL && b.len == 0); /* nothing allocated */
    aw_buf_t *buf = aw_bytes_finish(&b);
    CHECK(buf->len == 0 && buf->data[0] == '\0' && buf->refcnt == 1);
    aw_buf_release(buf);
    CHECK(b.buf == NULL && b.len == 0 && b.cap == 0);

    aw_bytes_init(&b, 0);
    CHECK(b.buf == NULL);
    aw_bytes_dispose(&b);
    aw_bytes_dispose(&b); /* twice is fine: empty again */
}

static void test_small(void)
{
    aw_bytes_t b;
    aw_bytes_init(&b, 4);
    CHECK(b.buf != NULL && b.cap == 5);
    aw_bytes_append(&b, "abcd", 4); /* exactly the room */
    CHECK(b.cap == 5);
    aw_bytes_appendc(&b, 'e'); /* one more grows */
    CHECK(b.cap >= 7);
    aw_bytes_append(&b, "", 0);
    char *p = aw_bytes_reserve(&b, 3);
    memcpy(p, "fg", 2); /* at most what was reserved */
    b.len += 2;
    aw_buf_t *buf = aw_bytes_finish(&b);
    CHECK(buf->len == 7 && strcmp(buf->data, "abcdefg") == 0);
    aw_buf_release(buf);
}

static void test_growth(void)
{
    aw_bytes_t b = {0};
    size_t grows = 0, cap = 0;
    for (int i = 0; i < 100000; i++) {
        char c = (char)('a' + i % 26);
        aw_bytes_appendc(&b, c);
        if (b.cap != cap) {
            CHECK(cap == 0 || b.cap >= 2 * cap); /* doubling: few reallocations */
            cap = b.cap;
            grows++;
        }
        CHECK(b.cap > b.len); /* room for the NUL, always */
    }
    CHECK(grows <= 20);
    aw_buf_t *buf = aw_bytes_finish(&b);
    CHECK(buf->len == 100000 && buf->data[100000] == '\0');
    int same = 1;
    for (int i = 0; i < 100000; i++)
        same &= buf->data[i] == (char)('a' + i % 26);
    CHECK(same);
    aw_buf_release(buf);
}

static void test_large(void)
{
    size_t big = (size_t)8 << 20;
    char *src = malloc(big);
    for (size_t i = 0; i < big; i++)
        src[i] = (char)(i * 7);
    aw_bytes_t b;
    aw_bytes_init(&b, 16);
    aw_bytes_append(&b, "<", 1);
    aw_bytes_append(&b, src, big); /* far more than the room, at once */
    aw_bytes_append(&b, src, big);
    aw_bytes_append(&b, ">", 1);
    CHECK(b.len == 2 * big + 2 && b.cap > b.len);
    aw_buf_t *buf = aw_bytes_finish(&b);
    CHECK(buf->len == 2 * big + 2 && buf->data[0] == '<' && buf->data[buf->len - 1] == '>');
    CHECK(memcmp(buf->data + 1, src, big) == 0 && memcmp(buf->data + 1 + big, src, big) == 0);
    CHECK(buf->data[buf->len] == '\0');
    aw_buf_release(buf);
    free(src);
}

static void test_appendf(void)
{
    aw_bytes_t b = {0};
    aw_bytes_appendf(&b, "%s=%d;", "a", 1); /* from nothing */
    aw_bytes_appendf(&b, "%s", "");         /* nothing */
    char expect[8192] = "a=1;";
    for (int i = 0; i < 300; i++) {
        aw_bytes_appendf(&b, "line %d %s\n", i, i % 2 ? "odd" : "even");
        snprintf(expect + strlen(expect), sizeof(expect) - strlen(expect), "line %d %s\n", i,
                 i % 2 ? "odd" : "even");
    }
    char wide[3000];
    memset(wide, 'w', sizeof(wide) - 1);
    wide[sizeof(wide) - 1] = '\0';
    aw_bytes_t c;
    aw_bytes_init(&c, 8);
    aw_bytes_appendf(&c, "[%s]", wide); /* longer than the room: written again, whole */
    aw_buf_t *buf = aw_bytes_finish(&b), *wbuf = aw_bytes_finish(&c);
    CHECK(buf->len == strlen(expect) && strcmp(buf->data, expect) == 0);
    CHECK(wbuf->len == sizeof(wide) + 1 && wbuf->data[0] == '[' && wbuf->data[wbuf->len - 1] == ']');
    CHECK(strspn(wbuf->data + 1, "w") == sizeof(wide) - 1);
    aw_buf_release(buf);
    aw_buf_release(wbuf);
}

int main(void)
{
    test_empty();
    test_small();
    test_growth();
    test_large();
    test_appendf();
    return check_exit("test_bytes");
}
