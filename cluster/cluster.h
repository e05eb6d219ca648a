/*
 * The cluster: several anywhere processes, on one machine or many, acting as
 * one server over NATS (docs/cluster.md). Each user's session lives on one
 * node at a time, its home, chosen by rendezvous hashing over the live
 * members, which every node computes alike from the heartbeats it hears. A
 * message for a user whose home is elsewhere is sent there, with the socket
 * or request it came on; the home's session sees a connection or a sink like
 * any other (actors/conn.h), whose frames travel back. The cluster plugs
 * into the registry as its router (actors/registry.h), so neither the
 * transport nor the session knows whether a user is served here.
 *
 * Threads: nats.c delivers on its own threads; a heartbeat thread keeps the
 * membership. Every function here may be called from any thread unless it
 * says otherwise, and none blocks on the network.
 */
#ifndef AW_CLUSTER_CLUSTER_H
#define AW_CLUSTER_CLUSTER_H

#include <stddef.h>
#include <stdint.h>
#include "actors/desk.h"
#include "actors/history.h"
#include "actors/operators.h"
#include "actors/registry.h"

typedef struct aw_cluster aw_cluster_t;

typedef struct aw_cluster_config {
    const char *urls; /* NATS servers, comma-separated nats:// or tls:// URLs (credentials may be in them) */
    const char *name; /* the cluster's name: the prefix of its subjects; [A-Za-z0-9_-] */
    const char *node_id;    /* this node's id; NULL: made from the host name and the pid */
    const char *creds_file; /* a NATS credentials file, or NULL */
    const char *ca_file;    /* CA certificates to check the NATS servers' TLS with, or NULL */
    const unsigned char
        *secret; /* the identity secret, the same on every node: signs the cluster's messages */
    size_t secret_len;
    aw_registry_t *registry;   /* where the sessions homed here live */
    aw_history_t *history;     /* reads other nodes ask for; may be NULL */
    aw_desk_t *desk;           /* the operators' desk, shared with the other nodes; may be NULL */
    aw_operators_t *operators; /* whose sign-outs and epoch the nodes share; may be NULL */
    const char *store_kind;    /* "sqlite" or "mongodb": nodes on different hosts must not share SQLite */
    unsigned int heartbeat_ms; /* 0: 1000 */
    unsigned int dead_ms;      /* a member not heard from this long is dead; 0: 3 heartbeats and a half */
    unsigned int request_ms;   /* a request sent to another node is given up after this; 0: 70000 */
} aw_cluster_config_t;

/* Starts the cluster: connects to NATS (in the background, retrying for
 * ever, when no server answers yet), subscribes, starts heartbeats, and
 * becomes the registry's router. Returns 0, or AW_EINVAL with a message on
 * stderr (a bad id or name, a credentials file that cannot be read). Main
 * thread. */
int aw_cluster_start(aw_cluster_t **out, const aw_cluster_config_t *config);

/* An operator's console here has closed: the homes of the users it spoke
 * to elsewhere forget it. */
void aw_cluster_console_closed(aw_cluster_t *cl, aw_conn_t *console);

/* Whether this node takes users: it has joined, and heard the others. An
 * operator's sign-in is not checked before (the others say who signed out). */
int aw_cluster_ready(aw_cluster_t *cl);

/* The operators here changed (a sign-out): the others hear it now. */
void aw_cluster_operators_changed(aw_cluster_t *cl);

/* This node's id. */
const char *aw_cluster_node_id(const aw_cluster_t *cl);

/* Whether `user`'s home is this node in this node's view. */
int aw_cluster_is_home(aw_cluster_t *cl, const char *user, size_t user_len);

/* Reads a page of `user`'s history on the user's home, which holds the
 * records not yet written: as aw_history_page. Returns 0 when it took the
 * read (`cb` is called once, on another thread), 1 when the home is here
 * (read it locally), or AW_EUNAVAILABLE when the home cannot be reached. */
int aw_cluster_read_page(aw_cluster_t *cl, const char *user, size_t user_len, int64_t before, size_t limit,
                         int cut, aw_history_page_cb cb, void *data);

/* The chat's fence (aw_chat_config_t.fence, with the cluster as `data`):
 * a new session of a user whose home just moved here from a live node waits
 * until that node has let go of the user (docs/cluster.md, Moves). */
void aw_cluster_fence(void *data, const char *user, size_t user_len, void (*done)(void *arg), void *arg);

/* The server is stopping (SIGTERM): tells the other nodes this one leaves,
 * so that they stop sending it users. Messages sent to it meanwhile are
 * still taken. Main thread. */
void aw_cluster_leave(aw_cluster_t *cl);

/* Says goodbye, closes the NATS connection and frees the cluster; what still
 * waits for another node is answered `unavailable`. Call once the sessions
 * have finished, before the registry goes. Main thread. */
void aw_cluster_stop(aw_cluster_t *cl);

typedef struct aw_cluster_stats {
    size_t members;         /* live members that take users, this one included */
    size_t homes;           /* sessions whose home is here */
    int connected;          /* to a NATS server */
    char server[128];       /* the one connected to last (its URL, without credentials) */
    uint64_t forwarded_out; /* client messages sent to another node's session */
    uint64_t forwarded_in;  /* and taken from another node for a session here */
    uint64_t moves;         /* sessions let go because their user's home moved */
    uint64_t fences;        /* new sessions that asked the user's previous home to let go first */
    uint64_t joins, leaves, deaths;
    uint64_t reconnects;  /* to NATS */
    uint64_t nats_errors; /* asynchronous NATS errors (a slow consumer, a lost server) */
    uint64_t dropped_bad; /* cluster messages that did not parse or were not signed by the cluster */
    uint64_t
        dropped_stranger;  /* signed, but from a node that is not a member, or for what it does not hold */
    uint64_t dropped_late; /* for a socket that has gone, or a request answered or given up already */
} aw_cluster_stats_t;

void aw_cluster_get_stats(aw_cluster_t *cl, aw_cluster_stats_t *stats);

#endif
