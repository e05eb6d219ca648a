/*
 * Inboxes (inbox.h). A loop's inbox is the stack and uv_async_send, which
 * libuv coalesces: however many pushes come before the loop runs the
 * callback, it runs once, and the callback takes them all.
 *
 * A thread's inbox counts its pushes instead, so that a pusher can tell,
 * without a lock, whether the owner waits for its push: each push is counted
 * after it is on the stack, and the owner reads the counts before it takes
 * the stack. An entry whose count the owner has seen is therefore taken by
 * that take, and "the counts moved since the last take" means "something
 * may be waiting". The owner publishes the lazy count that should wake it
 * (wake_at) before it says it waits; exactly one lazy push reaches that
 * count, and that one signals.
 *
 * The sleep itself is the classic pair of stores and loads (Dekker): the
 * pusher counts its push, then reads `waiting`; the owner sets `waiting`,
 * then reads the counts. Both sides use sequentially consistent operations,
 * so at least one of them sees the other: either the owner sees the push and
 * does not sleep, or the pusher sees the owner waiting and signals it. The
 * owner holds the lock from before it sets `waiting` until the wait releases
 * it, and the pusher signals under the lock, so a signal never falls between
 * the owner's look and its wait.
 */
#include "runtime/inbox.h"

#include "runtime/actor.h"
#include "runtime/internal.h"

static void on_async(uv_async_t *async)
{
    aw_inbox_t *in = async->data;
    in->cb(in, in->data);
}

int aw_inbox_init_async(aw_inbox_t *in, uv_loop_t *loop, aw_inbox_cb cb, void *data)
{
    ck_stack_init(&in->stack);
    in->async = 1;
    in->cb = cb;
    in->data = data;
    in->u.async.data = in;
    return uv_async_init(loop, &in->u.async, on_async);
}

void aw_inbox_init_wait(aw_inbox_t *in)
{
    ck_stack_init(&in->stack);
    in->async = 0;
    in->cb = NULL;
    in->data = NULL;
    in->lazy = in->eager = in->lazy_seen = in->eager_seen = in->wake_at = 0;
    in->waiting = 0;
    uv_mutex_init(&in->u.wait.lock);
    uv_cond_init(&in->u.wait.cond);
}

void aw_inbox_dispose(aw_inbox_t *in)
{
    if (in->async)
        return;
    uv_cond_destroy(&in->u.wait.cond);
    uv_mutex_destroy(&in->u.wait.lock);
}

static void signal_owner(aw_inbox_t *in)
{
    uv_mutex_lock(&in->u.wait.lock);
    uv_cond_signal(&in->u.wait.cond);
    uv_mutex_unlock(&in->u.wait.lock);
}

void aw_inbox_wake(aw_inbox_t *in)
{
    if (in->async) {
        uv_async_send(&in->u.async);
        return;
    }
    /* Counted after the push, if any, and before reading `waiting`: see the
     * top of the file. */
    __atomic_add_fetch(&in->eager, 1, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&in->waiting, __ATOMIC_SEQ_CST))
        signal_owner(in);
}

void aw_inbox_push(aw_inbox_t *in, aw_inbox_entry_t *e)
{
    ck_stack_push_upmc(&in->stack, e);
    aw_inbox_wake(in); /* `e` may be freed by now */
}

void aw_inbox_push_lazy(aw_inbox_t *in, aw_inbox_entry_t *e)
{
    ck_stack_push_upmc(&in->stack, e);
    if (in->async) {
        uv_async_send(&in->u.async);
        return;
    }
    uint64_t n = __atomic_add_fetch(&in->lazy, 1, __ATOMIC_SEQ_CST);
    /* Only the push that reaches wake_at signals; the owner wrote wake_at
     * before `waiting`, so a pusher that sees it waiting sees its wake_at. */
    if (__atomic_load_n(&in->waiting, __ATOMIC_SEQ_CST) &&
        n == __atomic_load_n(&in->wake_at, __ATOMIC_RELAXED))
        signal_owner(in);
}

aw_inbox_entry_t *aw_inbox_take(aw_inbox_t *in)
{
    if (!in->async) {
        /* Before the stack: what these counts include is on it already. */
        in->lazy_seen = __atomic_load_n(&in->lazy, __ATOMIC_SEQ_CST);
        in->eager_seen = __atomic_load_n(&in->eager, __ATOMIC_SEQ_CST);
    }
    return aw_inbox__take_fifo(&in->stack);
}

/* Whether what the owner waits for came since its last take. */
static int enough(aw_inbox_t *in, size_t want)
{
    return __atomic_load_n(&in->eager, __ATOMIC_SEQ_CST) != in->eager_seen ||
           __atomic_load_n(&in->lazy, __ATOMIC_SEQ_CST) - in->lazy_seen >= want;
}

void aw_inbox_wait(aw_inbox_t *in, uint64_t until, size_t want)
{
    uv_mutex_lock(&in->u.wait.lock);
    __atomic_store_n(&in->wake_at, in->lazy_seen + want, __ATOMIC_RELAXED);
    __atomic_store_n(&in->waiting, 1, __ATOMIC_SEQ_CST);
    if (!enough(in, want)) {
        uint64_t now = aw_now_ms();
        if (until == 0)
            uv_cond_wait(&in->u.wait.cond, &in->u.wait.lock);
        else if (until > now)
            uv_cond_timedwait(&in->u.wait.cond, &in->u.wait.lock, (until - now) * 1000000);
    }
    __atomic_store_n(&in->waiting, 0, __ATOMIC_SEQ_CST);
    uv_mutex_unlock(&in->u.wait.lock);
}
