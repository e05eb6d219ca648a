/*
 * An inbox: a queue that any thread pushes to without a lock, and that one
 * thread, its owner, empties in one take, oldest first; plus the wake-up of
 * that owner, of the kind the owner chooses when it sets the inbox up:
 *
 * - a loop's inbox (aw_inbox_init_async) wakes a libuv loop with a uv_async
 *   handle. Wake-ups coalesce: one callback takes everything pushed so far,
 *   so a burst of pushes costs the loop one wake-up.
 * - a thread's inbox (aw_inbox_init_wait) is for a plain thread that sleeps
 *   in aw_inbox_wait on a condition variable, until a push or a deadline.
 *   A push is eager (aw_inbox_push: it wakes the owner) or lazy
 *   (aw_inbox_push_lazy: it wakes the owner only once as many lazy pushes
 *   have come as the owner said it waits for), so that an owner collecting a
 *   batch until a deadline is not woken, and its pushers do not pay a system
 *   call, for each item of the batch.
 *
 * The queue is a Concurrency Kit stack (ck_stack_push_upmc); the owner takes
 * it whole and reverses it. What is pushed embeds an aw_inbox_entry_t and
 * belongs to the owner from the push on: the pusher must not touch it after.
 * Items pushed by one thread are taken in the order that thread pushed them.
 */
#ifndef AW_RUNTIME_INBOX_H
#define AW_RUNTIME_INBOX_H

#include <stddef.h>
#include <stdint.h>
#include <ck_stack.h>
#include <uv.h>

typedef struct aw_inbox aw_inbox_t;

/* The link every pushed item embeds. After a take, `next` leads to the next
 * item taken (NULL after the last); the owner may reuse it from then on. */
typedef ck_stack_entry_t aw_inbox_entry_t;

/* Called on the loop's thread after one or more pushes: take what is there
 * (aw_inbox_take). */
typedef void (*aw_inbox_cb)(aw_inbox_t *inbox, void *data);

/* All fields are private. Counts are of pushes since the inbox was set up;
 * they wrap around harmlessly (only differences are used). */
struct aw_inbox {
    ck_stack_t stack; /* MPSC: pushed by anyone, taken by the owner */
    int async;        /* a loop's inbox; set once, before any push */
    aw_inbox_cb cb;
    void *data;
    /* a thread's inbox only */
    uint64_t lazy, eager;           /* atomic: pushes of each kind, counted once on the stack */
    uint64_t lazy_seen, eager_seen; /* owner: the counts when it last took */
    uint64_t wake_at;               /* atomic: the lazy count that wakes the waiting owner */
    int waiting;                    /* atomic: the owner is in aw_inbox_wait, or about to be */
    union {
        uv_async_t async;
        struct {
            uv_mutex_t lock;
            uv_cond_t cond;
        } wait;
    } u;
};

/* Sets up a loop's inbox: `cb` runs on the thread that runs `loop` after
 * pushes. Its uv_async handle is one of the loop's handles: the loop's owner
 * closes it with the others (uv_walk) before uv_loop_close. Returns 0 or a
 * libuv error. The loop's thread, or any thread before the loop runs;
 * before anyone pushes. */
int aw_inbox_init_async(aw_inbox_t *inbox, uv_loop_t *loop, aw_inbox_cb cb, void *data);

/* Sets up a thread's inbox, whose owner sleeps in aw_inbox_wait. Undo with
 * aw_inbox_dispose. Before anyone pushes. */
void aw_inbox_init_wait(aw_inbox_t *inbox);

/* Frees what a thread's inbox holds (its lock and condition variable); does
 * nothing to a loop's. Items still queued are the caller's: take them first.
 * Once no one pushes any more. */
void aw_inbox_dispose(aw_inbox_t *inbox);

/* Queues `entry` and wakes the owner: a loop's at once (uv_async_send), a
 * thread's if it waits in aw_inbox_wait. Lock-free but for that wake-up. Any
 * thread. */
void aw_inbox_push(aw_inbox_t *inbox, aw_inbox_entry_t *entry);

/* Queues `entry`, waking a thread's owner only when this push makes the
 * number it waits for (aw_inbox_wait); otherwise the owner finds the entry
 * when it next wakes. On a loop's inbox, the same as aw_inbox_push. Any
 * thread. */
void aw_inbox_push_lazy(aw_inbox_t *inbox, aw_inbox_entry_t *entry);

/* Wakes the owner as an eager push does, with nothing pushed: for what the
 * owner reads on waking besides its inbox (a flag that says stop). Any
 * thread. */
void aw_inbox_wake(aw_inbox_t *inbox);

/* Takes everything pushed so far, oldest first, linked by `next`; NULL when
 * there is nothing. The owner only (after the owner thread has been joined,
 * the thread that joined it). */
aw_inbox_entry_t *aw_inbox_take(aw_inbox_t *inbox);

/* Sleeps until an eager push, until `want` lazy pushes have come since the
 * last take, or until `until` (ms of aw_now_ms; 0: no deadline), whichever
 * comes first. Returns at once when that has come already (with `want` 0,
 * always). It may also return early (a spurious wake-up): the owner takes
 * what is there and decides again. `want` 1 makes any push wake it; SIZE_MAX
 * makes only eager pushes and the deadline wake it. The owner of a thread's
 * inbox only. */
void aw_inbox_wait(aw_inbox_t *inbox, uint64_t until, size_t want);

#endif
