/*
 * The operators' desk: what the consoles see of every conversation that is
 * not with the bot (waiting for a person, or owned by one), and the consoles
 * open now. It is a view, not the truth: each user's session decides its
 * own state (handoff.h) and tells the desk after every change; the desk
 * sends the new list to every console at once. A start fills it from the
 * store (aw_desk_load) before anyone chats, and a session that loads
 * takes its state from it. Any thread: one lock, held briefly, never while
 * calling out (a console's `send` only queues).
 */
#ifndef AW_ACTORS_DESK_H
#define AW_ACTORS_DESK_H

#include <stddef.h>
#include <stdint.h>
#include "actors/conn.h"
#include "actors/handoff.h"
#include "actors/history.h"

typedef struct aw_desk aw_desk_t;

/* An empty desk. */
aw_desk_t *aw_desk_create(void);

/* Releases every console and frees the desk; once nothing calls it. */
void aw_desk_destroy(aw_desk_t *desk);

/* Fills the desk from the newest handoff record of every user in the store,
 * through `history` (aw_history_latest), and waits for it (the history
 * answers within the store's timeout). Returns 0, or the history's error
 * (the desk stays empty: a log line says what could not be read). Main
 * thread, before the server listens. */
int aw_desk_load(aw_desk_t *desk, aw_history_t *history);

/* The session of `user` says where it stands now: kept (waiting or owned)
 * or forgotten (the bot's), and every console is sent the new list. */
void aw_desk_set(aw_desk_t *desk, const char *user, size_t user_len, const aw_handoff_t *h);

/* Fills `h` with what the desk holds of `user` and returns 1, or returns 0
 * (the bot's) leaving it alone. */
int aw_desk_get(aw_desk_t *desk, const char *user, size_t user_len, aw_handoff_t *h);

/* A console of operator `op` opened: it is sent the list now and at every
 * change, until aw_desk_leave. Takes a reference to `conn`. */
void aw_desk_join(aw_desk_t *desk, aw_conn_t *conn, const char *op);

/* A console closed. When it was its operator's last, returns the users
 * that operator owns (an array of NUL-terminated ids, NULL-ended; the
 * caller frees each and the array) for their grace period to start, and
 * sets `*last`; otherwise returns NULL. */
char **aw_desk_leave(aw_desk_t *desk, aw_conn_t *conn, int *last);

/* Whether operator `op` has a console open. */
int aw_desk_online(aw_desk_t *desk, const char *op);

/* The users that operator `op` owns (any operator when `op` is NULL), as
 * aw_desk_leave returns them (NULL for none). */
char **aw_desk_owned_by(aw_desk_t *desk, const char *op);

/* Sends `frame` to every console of operator `op`. */
void aw_desk_tell(aw_desk_t *desk, const char *op, aw_buf_t *frame);

/* How many conversations wait, and how many are owned. */
void aw_desk_counts(aw_desk_t *desk, uint64_t *waiting, uint64_t *owned);

/* Frees a list of aw_desk_leave or aw_desk_owned_by. */
void aw_desk_free_list(char **users);

#endif
