/*
 * The registry maps a user id to that user's session actor: it creates a
 * session on first contact and forgets it when the session, idle with no
 * socket, asks to be reaped. It is the only way messages for a user reach a
 * session, which is what makes reaping safe: the registry pushes under the
 * same shard lock that a reap takes. Any thread may call it.
 */
#ifndef AW_ACTORS_REGISTRY_H
#define AW_ACTORS_REGISTRY_H

#include <stddef.h>
#include "actors/session.h"
#include "runtime/actor.h"

typedef struct aw_registry aw_registry_t;

/* Creates a registry whose sessions run on `rt` with `config` (both must
 * outlive it). */
aw_registry_t *aw_registry_create(aw_runtime_t *rt, const aw_chat_config_t *config);

/* Sends `msg` to the session of `user`, creating it when `create` is set.
 * Returns 0 (the session owns `msg`), AW_ENOTFOUND when there is no session
 * and `create` is 0, or AW_ESTOPPED; on error the caller still owns `msg`. */
int aw_registry_send(aw_registry_t *reg, const char *user, size_t user_len, aw_msg_t *msg, int create);

/* A router sees every message aw_registry_send is given, before the registry
 * looks for a session here: a cluster (cluster/cluster.h) sends on the
 * messages of users whose session lives on another node. It returns
 * AW_REGISTRY_HERE to let the registry deliver `msg` here, AW_REGISTRY_TAKEN
 * when it took `msg` over, or an AW_E... code (< 0; the caller keeps `msg`).
 * Any thread; it must not block. */
enum { AW_REGISTRY_HERE = 0, AW_REGISTRY_TAKEN = 1 };
typedef int (*aw_registry_router_fn)(void *data, const char *user, size_t user_len, aw_msg_t *msg,
                                     int create);

/* Sets the router; call before any message is sent. */
void aw_registry_set_router(aw_registry_t *reg, aw_registry_router_fn fn, void *data);

/* aw_registry_send without the router: for the router itself, delivering
 * what another node sent to a session of this one. */
int aw_registry_send_here(aw_registry_t *reg, const char *user, size_t user_len, aw_msg_t *msg, int create);

/* Lets go of every session whose user `stays` (called under a shard lock,
 * so it must be quick and must not call the registry) says no longer
 * belongs here: each is departing at once, so that the next message for its
 * user makes a new session (which reads where numbering goes on from the
 * store), and is sent AW_SESSION_MOVED, after which it finishes what it
 * holds and goes. Returns how many were let go. Any thread. */
size_t aw_registry_move_away(aw_registry_t *reg, int (*stays)(void *data, const char *user, size_t user_len),
                             void *data);

/* Lets go of every session of `user` here, departing or not (the user's
 * new home asks, cluster/cluster.h), and calls `done(arg)` once none holds
 * anything of the user any more: its turns finished, its sockets closed, its
 * records written (AW_SESSION_RELEASE). At once when there is none. Any
 * thread; `done` runs on any thread. */
void aw_registry_release(aw_registry_t *reg, const char *user, size_t user_len, void (*done)(void *arg),
                         void *arg);

/* Sends a shutdown message to every session, then refuses new messages
 * (aw_registry_send answers AW_ESTOPPED), so that draining the runtime ends. */
void aw_registry_shutdown(aw_registry_t *reg);

/* Number of live sessions. */
size_t aw_registry_count(aw_registry_t *reg);

/* Releases every session and frees the registry; call after the runtime has
 * stopped. */
void aw_registry_destroy(aw_registry_t *reg);

/* For the session actor (actors/ only): removes `session` if nothing was
 * sent to it since it last drained; returns 1 when removed. */
struct aw_session;
int aw_registry__reap(aw_registry_t *reg, struct aw_session *session);

#endif
