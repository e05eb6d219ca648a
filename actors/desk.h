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

/* The other nodes of a cluster (cluster/cluster.h), when there are: each
 * node's desk lists every node's conversations and knows which operators
 * have a console open anywhere. Called with no lock held. */
typedef struct aw_desk_peers {
    void *data;
    /* a session here changed its user's state: the other desks hear it */
    void (*changed)(void *data, const char *user, size_t user_len, const aw_handoff_t *h);
    /* whether operator `op` has a console open on another node */
    int (*online)(void *data, const char *op);
    /* the operators with a console open here are not the same any more */
    void (*presence)(void *data);
} aw_desk_peers_t;

/* An empty desk. */
aw_desk_t *aw_desk_create(void);

/* Releases every console and frees the desk; once nothing calls it. */
void aw_desk_destroy(aw_desk_t *desk);

/* Connects the desk to the other nodes (`peers` is kept; NULL: none any
 * more). Before the server listens, and after it stops. */
void aw_desk_set_peers(aw_desk_t *desk, const aw_desk_peers_t *peers);

/* Fills the desk from the newest handoff record of every user in the store,
 * through `history` (aw_history_latest), and waits for it (the history
 * answers within the store's timeout). Returns 0, or the history's error
 * (the desk stays empty: a log line says what could not be read). Main
 * thread, before the server listens. */
int aw_desk_load(aw_desk_t *desk, aw_history_t *history);

/* The session of `user` says where it stands now: kept (waiting or owned)
 * or forgotten (the bot's), and every console is sent the new list. The
 * other nodes hear it (aw_desk_peers_t). */
void aw_desk_set(aw_desk_t *desk, const char *user, size_t user_len, const aw_handoff_t *h);

/* The same, said by the session of `user` on another node: only this
 * node's consoles hear it. */
void aw_desk_apply(aw_desk_t *desk, const char *user, size_t user_len, const aw_handoff_t *h);

/* Reads the newest handoff record of every user from the store again, in
 * the background (after this node missed what the others said: a NATS
 * outage, or its start), having written what this node's history holds: a
 * user whose state another node told meanwhile keeps what it told. Then
 * calls `done` (may be NULL) on the history thread. Returns 0, or the
 * history's error (`done` is not called). Any thread. */
int aw_desk_reload(aw_desk_t *desk, aw_history_t *history, void (*done)(void *arg), void *arg);

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

/* Whether operator `op` has a console open, here or (aw_desk_peers_t) on
 * another node. */
int aw_desk_online(aw_desk_t *desk, const char *op);

/* The users that operator `op` owns (any operator when `op` is NULL), as
 * aw_desk_leave returns them (NULL for none). With `owners` not NULL, it is
 * set to a list of their owners' names, in the same order. */
char **aw_desk_owned_by(aw_desk_t *desk, const char *op, char ***owners);

/* The operators with a console open on this node, each once, each followed
 * by a newline ("" for none). The caller frees it. */
char *aw_desk_operators(aw_desk_t *desk);

/* How many conversations wait, and how many are owned. */
void aw_desk_counts(aw_desk_t *desk, uint64_t *waiting, uint64_t *owned);

/* Frees a list of aw_desk_leave or aw_desk_owned_by. */
void aw_desk_free_list(char **users);

#endif
