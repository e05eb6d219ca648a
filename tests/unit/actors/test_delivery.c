/*
 * Unit tests of actors/delivery.c: the window of client message ids keeps
 * the last AW_MID_WINDOW ids and forgets the oldest, and the held queue
 * gives its entries back in order, only up to the group that is durable.
 */
#include <stdio.h>
#include <string.h>
#include "actors/delivery.h"
#include "tests/check.h"

static void test_mid_window(void)
{
    aw_mid_window_t w = {0};
    CHECK(!aw_mid_window_has(&w, "a", 1));
    CHECK(w.ring == NULL); /* nothing allocated for users without ids */
    char mid[16];
    for (int i = 0; i < AW_MID_WINDOW + 10; i++) {
        int n = snprintf(mid, sizeof(mid), "m%d", i);
        CHECK(!aw_mid_window_has(&w, mid, (size_t)n));
        aw_mid_window_add(&w, mid, (size_t)n);
        CHECK(aw_mid_window_has(&w, mid, (size_t)n));
    }
    for (int i = 0; i < AW_MID_WINDOW + 10; i++) {
        int n = snprintf(mid, sizeof(mid), "m%d", i);
        CHECK(aw_mid_window_has(&w, mid, (size_t)n) == (i >= 10)); /* the ten oldest are forgotten */
    }
    CHECK(!aw_mid_window_has(&w, "m1", 1)); /* a prefix is another id */
    aw_mid_window_clear(&w);
    CHECK(!aw_mid_window_has(&w, "m20", 3));
}

static void test_held_queue(void)
{
    aw_held_queue_t q = {0};
    aw_held_t e, out;
    CHECK(!aw_held_any(&q) && !aw_held_pop(&q, 100, &out));
    for (int i = 0; i < 20; i++) {
        memset(&e, 0, sizeof(e));
        e.group = (uint64_t)(i / 4 + 1);
        e.seq = i;
        e.frame = aw_buf_new("{}", 2);
        aw_held_push(&q, &e);
    }
    CHECK(aw_held_any(&q));
    CHECK(!aw_held_pop(&q, 0, &out)); /* nothing durable yet */
    int next = 0;
    while (aw_held_pop(&q, 2, &out)) { /* groups 1 and 2: entries 0..7, in order */
        CHECK(out.seq == next++);
        aw_held_dispose(&out);
    }
    CHECK(next == 8);
    for (int i = 20; i < 30; i++) { /* pushes after pops reuse the room */
        memset(&e, 0, sizeof(e));
        e.group = 9;
        e.seq = i;
        aw_held_push(&q, &e);
    }
    while (aw_held_pop(&q, 9, &out)) {
        CHECK(out.seq == next++);
        aw_held_dispose(&out);
    }
    CHECK(next == 30 && !aw_held_any(&q));
    e = (aw_held_t){.group = 10, .frame = aw_buf_new("{}", 2)};
    aw_held_push(&q, &e);
    aw_held_clear(&q); /* what is still held is released, unsent */
    CHECK(!aw_held_any(&q));
}

int main(void)
{
    test_mid_window();
    test_held_queue();
    return check_exit("test_delivery");
}
