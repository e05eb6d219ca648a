/*
 * What the files of transport/ share: the per-thread loop, the cross-thread
 * post queue into it, and the entry points of the websocket and HTTP parts.
 * Everything here belongs to one I/O thread unless it says otherwise.
 */
#ifndef AW_TRANSPORT_INTERNAL_H
#define AW_TRANSPORT_INTERNAL_H

#include <uv.h>
#include <h2o.h>
#include "actors/conn.h"
#include "runtime/inbox.h"
#include "transport/server.h"

typedef struct aw_loop aw_loop_t;
typedef struct aw_ws aw_ws_t;

/* One I/O thread. */
struct aw_loop {
    uv_loop_t uv;
    h2o_context_t ctx;
    h2o_accept_ctx_t accept_ctx;
    uv_tcp_t listener;
    int listening;
    h2o_accept_ctx_t admin_accept_ctx; /* the first loop only, with an admin listener */
    uv_tcp_t admin;
    int admin_listening;
    aw_inbox_t inbox; /* posts from any thread; wakes the loop (drain) */
    uv_timer_t tick;  /* once a second: close deadlines */
    uv_thread_t thread;
    aw_server_t *srv;
    h2o_linklist_t websockets; /* every open aw_ws_t of this loop */
    aw_ws_t *dirty;            /* websockets with frames to write after this drain */
    int stopping;
    uint64_t stop_deadline;
};

struct aw_server {
    aw_server_config_t cfg;
    h2o_globalconf_t globalconf;
    h2o_hostconf_t *hostconf;       /* the routes of the main address */
    h2o_hostconf_t *hosts[2];       /* the same, as the NULL-ended list h2o_accept wants */
    h2o_hostconf_t *admin_hosts[2]; /* /healthz and /metrics only, for the admin listener */
    aw_loop_t *loops;
    unsigned int n_loops;
    int port;
    size_t websockets;        /* atomic */
    uint64_t next_conn_id;    /* atomic */
    size_t connections;       /* atomic: open TCP connections on the main address */
    size_t admin_connections; /* atomic: open connections on the admin listener */
    int admin_port;           /* 0: no admin listener */
    uv_mutex_t ip_lock;       /* guards the per-address counts */
    struct ip_count *ips;     /* open connections per client address */
    size_t ips_cap;
    SSL_CTX *ssl_ctx; /* NULL without --tls-cert */
};

/* Whether the request may go on: no Origin header (not a browser page), the
 * server's own origin, or one of --allowed-origin (server.c). */
int aw_server__origin_allowed(aw_server_t *srv, h2o_req_t *req);

/* What other threads post to a loop. */
enum { AW_POST_FRAME, AW_POST_CLOSE, AW_POST_ANSWER, AW_POST_ACCEPT_OFF, AW_POST_SHUTDOWN };

typedef struct aw_post {
    aw_inbox_entry_t entry;
    int kind;
    aw_conn_t *conn;   /* FRAME, CLOSE: a reference */
    aw_buf_t *frame;   /* FRAME: a reference */
    int code;          /* CLOSE, SHUTDOWN: websocket close code; ANSWER: error */
    aw_sink_t *sink;   /* ANSWER: a reference */
    aw_buf_t **frames; /* ANSWER: references */
    size_t n_frames;
} aw_post_t;

/* Queues `post` for `loop` and wakes it. Any thread. */
void aw_loop__post(aw_loop_t *loop, aw_post_t *post);

/* Registers the routes on the host; the order matters (STACK-NOTES.md). */
void aw_http__register(aw_server_t *srv);

/* Registers the admin listener's routes on `hostconf`: GET /healthz and GET
 * /metrics, and 404 for every other path (http.c). */
void aw_http__register_admin(aw_server_t *srv, h2o_hostconf_t *hostconf);

/* Starts a websocket on a request that asked for one (ws.c). */
int aw_ws__upgrade(aw_server_t *srv, h2o_req_t *req, const char *client_key);

/* Applies a FRAME or CLOSE post to its websocket (ws.c). Loop thread. */
void aw_ws__apply(aw_loop_t *loop, aw_post_t *post);

/* Writes what the websockets marked dirty have queued (ws.c). Loop thread. */
void aw_ws__flush_dirty(aw_loop_t *loop);

/* Starts closing every websocket of the loop with `code`; closes the ones
 * whose close handshake is past `deadline` (ms of aw_now_ms) (ws.c). */
void aw_ws__close_all(aw_loop_t *loop, int code);
void aw_ws__sweep(aw_loop_t *loop, uint64_t now);

/* Frees the calling thread's spare websocket parsers: they are thread-local,
 * so they would be lost (leaked) when the thread ends. Loop thread, once its
 * loop is done (ws.c). */
void aw_ws__free_spares(void);

/* Answers a webhook request from a session's replies (http.c). Loop thread. */
void aw_http__answer(aw_loop_t *loop, aw_post_t *post);

/* The embedded files of the chat page (generated at build time). */
typedef struct aw_asset {
    const char *path; /* "/index.html" */
    const char *type; /* MIME type */
    const unsigned char *data;
    size_t len;
} aw_asset_t;
extern const aw_asset_t aw_assets[];
extern const size_t aw_assets_count;

#endif
