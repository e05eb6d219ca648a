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
