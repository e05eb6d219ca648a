/*
 * The HTTP and websocket server: h2o 2.2 on libuv, one uv loop and one
 * h2o context per I/O thread, each accepting on its own SO_REUSEPORT socket of
 * the same address. It parses and checks what clients send, hands messages
 * to the registry, and writes what sessions send back on the connection's own
 * loop. It never runs bot logic. An optional admin listener, on the first I/O
 * thread, serves only GET /healthz and GET /metrics, outside the connection
 * caps of the main address, so monitoring still gets in when they are reached.
 */
#ifndef AW_TRANSPORT_SERVER_H
#define AW_TRANSPORT_SERVER_H

#include <stddef.h>
#include "actors/operators.h"
#include "actors/registry.h"

typedef struct aw_server aw_server_t;

typedef struct aw_server_config {
    const char *host;                /* address to listen on */
    int port;                        /* 0 picks a free port (see aw_server_port) */
    unsigned int io_threads;         /* 0 means the number of cores */
    size_t max_message;              /* bytes of one message (frame or body) */
    unsigned int webhook_timeout_ms; /* a webhook turn that takes longer gets 504 */
    aw_registry_t *registry;         /* where messages go; must outlive the server */
    const aw_chat_config_t *chat;    /* secret, history_auth and history for the history routes */
    const char *api_key;             /* bearer key of POST /api/send; NULL turns the route off */
    unsigned int max_connections;    /* open connections at most; 0: no cap */
    unsigned int max_connections_per_ip;
    unsigned int ping_interval_ms; /* websocket ping period; a socket silent for two is closed */
    size_t max_outbox;             /* bytes queued for one socket; past it the socket is closed, 1008 */
    unsigned int http_timeout_ms;  /* idle HTTP connections and slow request headers */
    const char *const *origins;    /* allowed Origin values besides the server's own; "*" allows any */
    size_t n_origins;
    const char *tls_cert, *tls_key; /* PEM files: HTTPS and wss:// on the same port */
    const char *admin_host;         /* the admin listener's address; NULL: no admin listener */
    int admin_port;                 /* its port; 0 picks a free one (see aw_server_admin_port) */
    struct aw_cluster *cluster;     /* the cluster this node is part of, or NULL (cluster/cluster.h) */
    int reuse_port;                 /* other processes may listen on the port too (a cluster's nodes) */
    aw_operators_t *operators;      /* who may open the console (--operators); NULL: no console */
} aw_server_config_t;

/* Open connections the admin listener takes at most; more are refused at
 * accept. Fixed and small: the admin listener is outside --max-connections,
 * so this is what it may add to the open files. */
#define AW_SERVER_ADMIN_MAX_CONNECTIONS 64

/* Binds, then starts the I/O threads, and returns 0 with the server in
 * `*server`; or AW_EIO with a message on stderr (bad TLS files), having
 * started nothing. An address that cannot be bound (in use, bad host), main
 * or admin, exits the process with 1. Main thread. */
int aw_server_start(aw_server_t **server, const aw_server_config_t *config);

/* The port actually bound. */
int aw_server_port(aw_server_t *server);

/* The port the admin listener actually bound; 0 without one. */
int aw_server_admin_port(aw_server_t *server);

/* Number of open websockets across all I/O threads. Any thread. */
size_t aw_server_websockets(aw_server_t *server);

/* Stops accepting connections; open ones go on. Main thread. */
void aw_server_stop_accepting(aw_server_t *server);

/* Closes every websocket with 1001 "going away" (after what is queued for
 * it), stops accepting, and stops the I/O threads once every websocket has
 * closed or `deadline_ms` has passed. Main thread. */
void aw_server_shutdown(aw_server_t *server, unsigned int deadline_ms);

/* Frees a shut-down server. */
void aw_server_destroy(aw_server_t *server);

#endif
