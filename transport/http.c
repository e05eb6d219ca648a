/*
 * The HTTP routes of both addresses, as two tables at the end of this file
 * (the seam that runs them, and how h2o matches paths, are described in
 * internal.h), and their handlers. The main address has the webhook channel
 * (POST /botkit/receive answers one message object, POST /api/messages an
 * array), the history (POST /botkit/history, GET /api/history), the bot's
 * own messages (POST /api/send), GET /healthz and /metrics, and "/", which
 * either upgrades to a websocket or serves the embedded chat page. The admin
 * address has only GET /healthz and /metrics.
 *
 * A webhook, history or push request waits for another thread through an
 * aw_sink_t: the session (or the history) completes it on its own thread, the
 * answer hops back here, and a timer answers 504 (503 for history) if it
 * takes too long. The history actor answers with a page of records, which
 * the history routes write here in their own JSON shapes. The request may
 * vanish first (the client hung up); h2o then disposes its pool, which tells
 * the sink to answer no one.
 */
#include <inttypes.h>
#include <string.h>
#include "transport/internal.h"
#include "actors/bridge.h"
#include "actors/desk.h"
#include "actors/metrics.h"
#include "actors/registry.h"
#include "cluster/cluster.h"
#include "runtime/error.h"

/* A sink is completed at most once, so the post that carries its answer to
 * the loop, and the frames of a usual answer, live in it: completing a sink
 * on the worker allocates nothing that the loop thread would have to free.
 * A webhook's message to its session lives in it too. */
#define INLINE_FRAMES 2
typedef struct pending {
    aw_sink_t super;
    aw_loop_t *loop;
    h2o_req_t *req; /* NULL once answered or gone; loop thread only */
    uv_timer_t timer;
    aw_inbound_t in;                 /* a webhook's message to its session */
    aw_message_t msg;                /* what `in` carries, freed with the sink */
    aw_post_t post;                  /* the answer, once complete has been called */
    aw_buf_t *frames[INLINE_FRAMES]; /* post.frames when they fit */
} pending_t;

/* --- the webhook sink --- */

static void sink_complete(aw_sink_t *sink, aw_buf_t *const *frames, size_t n, int err)
{
    pending_t *p = (pending_t *)sink;
    aw_post_t *post = &p->post;
    post->kind = AW_POST_ANSWER;
    post->sink = aw_sink_retain(sink); /* released by aw_http__answer, with the post */
    post->code = err;
    post->frames = n <= INLINE_FRAMES ? p->frames : aw_alloc(n * sizeof(*post->frames));
    for (size_t i = 0; i < n; i++)
        post->frames[i] = aw_buf_retain(frames[i]);
    post->n_frames = n;
    aw_loop__post(p->loop, post);
}

static void sink_dispose(aw_sink_t *sink)
{
    pending_t *p = (pending_t *)sink;
    aw_message_dispose(&p->msg);
    free(p);
}

static void on_timer_closed(uv_handle_t *h)
{
    pending_t *p = h->data;
    aw_sink_release(&p->super); /* the loop's reference */
}

/* The request's pool is going away: answered, or the client left. */
static void on_req_gone(void *slot)
{
    pending_t *p = *(pending_t **)slot;
    p->req = NULL;
    uv_close((uv_handle_t *)&p->timer, on_timer_closed);
}

static void on_timeout(uv_timer_t *t)
{
    pending_t *p = t->data;
    if (p->req != NULL) {
        h2o_req_t *req = p->req;
        p->req = NULL;
        if (p->super.mode == AW_SINK_BODY)
            aw_route__send_error(req, AW_ROUTE_ERRORS_HISTORY, AW_EUNAVAILABLE);
        else
            aw_route__send_error(req, AW_ROUTE_ERRORS_FRAME, AW_ETIMEDOUT);
    }
}

/* The bytes of `open`, the JSON `frames` joined by commas, and `close`. */
static size_t joined_len(const char *open, aw_buf_t *const *frames, size_t n, const char *close)
{
    size_t len = strlen(open) + strlen(close) + (n != 0 ? n - 1 : 0);
    for (size_t i = 0; i < n; i++)
        len += frames[i]->len;
    return len;
}

/* Writes them into `out` (joined_len bytes); returns how many. */
static size_t join(char *out, const char *open, aw_buf_t *const *frames, size_t n, const char *close)
{
    size_t at = strlen(open), close_len = strlen(close);
    memcpy(out, open, at);
    for (size_t i = 0; i < n; i++) {
        if (i != 0)
            out[at++] = ',';
        memcpy(out + at, frames[i]->data, frames[i]->len);
        at += frames[i]->len;
    }
    memcpy(out + at, close, close_len);
    return at + close_len;
}

/* Builds the answer: the first reply or {} for receive, all of them for the
 * Botkit 4 route. */
static void answer(h2o_req_t *req, pending_t *p, aw_buf_t **frames, size_t n)
{
    /* A new user's greeting issued a token: it goes in a header, so that both
     * answer shapes stay exactly what Botkit's clients expect. */
    if (p->super.token[0] != '\0') {
        h2o_iovec_t token = h2o_strdup(&req->pool, p->super.token, strlen(p->super.token));
        h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("x-anywhere-token"), 0, NULL,
                              token.base, token.len);
    }
    /* The client's message id, acknowledged (docs/protocol.md, Delivery). */
    if (p->super.ack[0] != '\0') {
        h2o_iovec_t mid = h2o_strdup(&req->pool, p->super.ack, strlen(p->super.ack));
        h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("x-anywhere-ack"), 0, NULL, mid.base,
                              mid.len);
    }
    if (p->super.token[0] != '\0' || p->super.ack[0] != '\0')
        h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("access-control-expose-headers"), 0,
                              NULL, H2O_STRLIT("x-anywhere-token, x-anywhere-ack"));
    if (p->super.mode == AW_SINK_FIRST) {
        if (n == 0)
            aw_route__send_json(req, 200, "{}", 2);
        else
            aw_route__send_json(req, 200, frames[0]->data, frames[0]->len);
        return;
    }
    char *body = h2o_mem_alloc_pool(&req->pool, joined_len("[", frames, n, "]"));
    aw_route__send_json(req, 200, body, join(body, "[", frames, n, "]"));
}

void aw_http__answer(aw_loop_t *loop, aw_post_t *post)
{
    pending_t *p = (pending_t *)post->sink;
    if (p->req != NULL) {
        h2o_req_t *req = p->req;
        p->req = NULL;
        uv_timer_stop(&p->timer);
        if (p->super.mode == AW_SINK_BODY && post->code != 0)
            aw_route__send_error(req, AW_ROUTE_ERRORS_HISTORY, post->code);
        else if (p->super.mode == AW_SINK_BODY || p->super.mode == AW_SINK_PUSH)
            aw_route__send_json(req, p->super.mode == AW_SINK_PUSH ? 202 : 200, post->frames[0]->data,
                                post->frames[0]->len);
        else if (post->code != 0)
            aw_route__send_error(req, AW_ROUTE_ERRORS_FRAME, post->code);
        else
            answer(req, p, post->frames, post->n_frames);
    }
    for (size_t i = 0; i < post->n_frames; i++)
        aw_buf_release(post->frames[i]);
    if (post->frames != p->frames)
        free(post->frames);
    aw_sink_release(&p->super); /* the post's reference: the post may go with it */
}

/* --- handlers --- */

static aw_loop_t *loop_of(h2o_req_t *req)
{
    return (aw_loop_t *)((char *)req->conn->ctx - offsetof(aw_loop_t, ctx));
}

/* A request waiting for another thread's answer, with two references: the
 * loop's (dropped when its timer handle closes) and the caller's. */
static pending_t *new_pending(aw_server_t *srv, h2o_req_t *req, int mode)
{
    pending_t *p = aw_calloc(1, sizeof(*p));
    p->super.refcnt = 2;
    p->super.mode = mode;
    p->super.complete = sink_complete;
    p->super.dispose = sink_dispose;
    p->loop = loop_of(req);
    p->req = req;
    uv_timer_init(&p->loop->uv, &p->timer);
    p->timer.data = p;
    uv_timer_start(&p->timer, on_timeout, srv->cfg.webhook_timeout_ms, 0);
    *(pending_t **)h2o_mem_alloc_shared(&req->pool, sizeof(pending_t *), on_req_gone) = p;
    return p;
}

static int parse_message(aw_route_call_t *c)
{
    return aw_message_parse(&c->msg, c->body.base, c->body.len);
}

static void serve_webhook(aw_route_call_t *c, int mode)
{
    AW_METRIC_INC(messages_in[AW_CHANNEL_WEBHOOK]);
    pending_t *p = new_pending(c->srv, c->req, mode);
    /* The message and its inbound live in the request's sink, so they are
     * allocated and freed on this thread, not freed on the worker's. */
    p->msg = c->msg;
    memset(&c->msg, 0, sizeof(c->msg));
    aw_inbound_t *in = &p->in;
    aw_inbound_init_in_sink(in, &p->msg, &p->super, AW_CHANNEL_WEBHOOK);
    aw_sink_release(&p->super); /* the inbound took its own */
    int err = aw_registry_send(c->srv->cfg.registry, in->msg.user, in->msg.user_len, &in->super, 1);
    if (err != 0) {
        /* the server is stopping: 503, which a client may retry; counted */
        aw_msg_release(&in->super);
        p->req = NULL;
        aw_route__error(c, AW_EUNAVAILABLE, 1);
    }
}

static void serve_receive(aw_route_call_t *c)
{
    serve_webhook(c, AW_SINK_FIRST);
}

static void serve_messages(aw_route_call_t *c)
{
    serve_webhook(c, AW_SINK_ALL);
}

/* POST /botkit/history: {"user", "token", "limit"}. */
static int parse_history_body(aw_route_call_t *c)
{
    aw_history_query_t *q = &c->query;
    int err = aw_history_query_from_json(q, c->body.base, c->body.len);
    c->user = q->user;
    c->user_len = q->user_len;
    c->token = q->token;
    return err;
}

/* GET /api/history?user=&before=&limit= with Authorization: Bearer TOKEN. */
static int parse_history_url(aw_route_call_t *c)
{
    aw_history_query_t *q = &c->query;
    h2o_req_t *req = c->req;
    const char *qs = "";
    size_t qs_len = 0;
    if (req->query_at != SIZE_MAX) {
        qs = req->path.base + req->query_at + 1;
        qs_len = req->path.len - req->query_at - 1;
    }
    int err = aw_history_query_from_url(q, qs, qs_len);
    if (err != 0)
        return err;
    h2o_iovec_t token = aw_route__bearer(req);
    if (token.len != 0 && token.len <= AW_MAX_USER_LEN) {
        memcpy(q->token, token.base, token.len);
        q->token[token.len] = '\0';
    }
    c->user = q->user;
    c->user_len = q->user_len;
    c->token = q->token;
    return 0;
}

/* History thread: writes the page as its route answers it, once and at its
 * size, and hands it to the request's loop. Botkit's client reads
 * {"success":true,"history":[...]}; GET /api/history pages with
 * {"history":[...],"more":B,"before":N}. */
static void answer_page(aw_sink_t *sink, int err, const aw_history_page_t *page, int botkit)
{
    aw_buf_t *body = NULL;
    if (page != NULL) {
        const char *open = botkit ? "{\"success\":true,\"history\":[" : "{\"history\":[";
        char close[96] = "]}";
        if (!botkit)
            snprintf(close, sizeof(close), "],\"more\":%s,\"before\":%lld}", page->more ? "true" : "false",
                     (long long)page->before);
        size_t len = joined_len(open, page->records, page->n, close);
        body = aw_alloc(sizeof(*body) + len + 1);
        body->refcnt = 1;
        body->len = join(body->data, open, page->records, page->n, close);
        body->data[body->len] = '\0';
    }
    sink->complete(sink, &body, body != NULL ? 1 : 0, err);
    aw_buf_release(body);
    aw_sink_release(sink);
}

static void on_botkit_page(int err, const aw_history_page_t *page, void *data)
{
    answer_page(data, err, page, 1);
}

static void on_api_page(int err, const aw_history_page_t *page, void *data)
{
    answer_page(data, err, page, 0);
}

static void serve_history(aw_route_call_t *c, int botkit)
{
    const aw_history_query_t *q = &c->query;
    aw_history_t *history = c->srv->cfg.chat->history;
    if (history == NULL) {
        aw_route__error(c, AW_EUNAVAILABLE, 0);
        return;
    }
    pending_t *p = new_pending(c->srv, c->req, AW_SINK_BODY);
    int cut = botkit ? AW_HISTORY_PAGE_LATEST : AW_HISTORY_PAGE_BEFORE;
    aw_history_page_cb cb = botkit ? on_botkit_page : on_api_page;
    /* The user's home holds the records not written yet: it reads there. */
    int err = 1;
    if (c->srv->cfg.cluster != NULL)
        err = aw_cluster_read_page(c->srv->cfg.cluster, q->user, q->user_len, q->before, (size_t)q->limit,
                                   cut, cb, &p->super);
    if (err == 1)
        err = aw_history_page(history, q->user, q->user_len, q->before, (size_t)q->limit, cut, cb, &p->super);
    if (err != 0) {
        p->req = NULL;
        aw_sink_release(&p->super);
        aw_route__error(c, AW_EUNAVAILABLE, 0);
    }
}

static void serve_botkit_history(aw_route_call_t *c)
{
    serve_history(c, 1);
}

static void serve_api_history(aw_route_call_t *c)
{
    serve_history(c, 0);
}

/* POST /api/send with Authorization: Bearer API_KEY: a message from the bot
 * to a user, at any time. */
static int parse_push(aw_route_call_t *c)
{
    return aw_push_parse(c->body.base, c->body.len, c->push.user, &c->push.user_len, &c->push.reply);
}

static void serve_send(aw_route_call_t *c)
{
    AW_METRIC_INC(messages_in[AW_CHANNEL_PUSH]);
    pending_t *p = new_pending(c->srv, c->req, AW_SINK_PUSH);
    aw_inbound_t *in = aw_push_new(c->push.reply, &p->super);
    c->push.reply = NULL;       /* the inbound's now */
    aw_sink_release(&p->super); /* the inbound took its own */
    if (aw_registry_send(c->srv->cfg.registry, c->push.user, c->push.user_len, &in->super, 1) != 0) {
        aw_msg_release(&in->super);
        p->req = NULL;
        aw_route__error(c, AW_EUNAVAILABLE, 1);
    }
}

/* Whether the store answered its last write or read. */
static int store_ok(aw_server_t *srv)
{
    aw_history_stats_t hs;
    if (srv->cfg.chat == NULL || srv->cfg.chat->history == NULL)
        return 1;
    aw_history_get_stats(srv->cfg.chat->history, &hs);
    return !hs.store_down;
}

/* 200 while the store (and, in a cluster, NATS) answers, 503 while it does
 * not (chat still works, for the users it can serve). */
static void serve_healthz(aw_route_call_t *c)
{
    aw_server_t *srv = c->srv;
    char body[600];
    int store = store_ok(srv), nats = 1;
    char cluster[400] = "";
    if (srv->cfg.cluster != NULL) {
        aw_cluster_stats_t cs;
        aw_cluster_get_stats(srv->cfg.cluster, &cs);
        nats = cs.connected;
        snprintf(cluster, sizeof(cluster),
                 ",\"cluster\":{\"node\":\"%s\",\"nats\":\"%s\",\"server\":\"%s\",\"members\":%zu}",
                 aw_cluster_node_id(srv->cfg.cluster), nats ? "connected" : "disconnected", cs.server,
                 cs.members);
    }
    int ok = store && nats;
    int len = snprintf(body, sizeof(body),
                       "{\"status\":\"%s\",\"store\":\"%s\",\"sessions\":%zu,\"websockets\":%zu%s}",
                       ok ? "ok" : "degraded", store ? "ok" : "unreachable",
                       aw_registry_count(srv->cfg.registry), aw_server_websockets(srv), cluster);
    aw_route__send_json(c->req, ok ? 200 : 503, body, (size_t)len);
}

static void serve_metrics(aw_route_call_t *c)
{
    aw_server_t *srv = c->srv;
    h2o_req_t *req = c->req;
    static h2o_generator_t generator = {NULL, NULL};
    aw_bytes_t out;
    aw_bytes_init(&out, 8192);
    aw_metrics_line(&out, "anywhere_websockets", "gauge", "Open websockets.", aw_server_websockets(srv));
    aw_metrics_line(&out, "anywhere_connections", "gauge",
                    "Open TCP connections on the main address (what --max-connections counts).",
                    __atomic_load_n(&srv->connections, __ATOMIC_RELAXED));
    aw_metrics_line(&out, "anywhere_admin_connections", "gauge",
                    "Open connections on the --admin-listen address.",
                    __atomic_load_n(&srv->admin_connections, __ATOMIC_RELAXED));
    aw_metrics_line(&out, "anywhere_sessions", "gauge", "Users with a session in memory.",
                    aw_registry_count(srv->cfg.registry));
    const aw_chat_config_t *chat = srv->cfg.chat;
    if (chat != NULL && chat->history != NULL) {
        aw_history_stats_t hs;
        aw_history_get_stats(chat->history, &hs);
        aw_metrics_line(&out, "anywhere_history_queue", "gauge", "History records held, not yet written.",
                        hs.queued);
        aw_metrics_line(&out, "anywhere_history_queue_bytes", "gauge",
                        "Bytes of the history records held (bounded by --history-queue-bytes).",
                        hs.held_bytes);
        aw_metrics_line(&out, "anywhere_history_written_total", "counter", "History records written.",
                        hs.written);
        aw_metrics_line(&out, "anywhere_history_refused_total", "counter",
                        "History records refused because the queue was at a bound (records or bytes).",
                        hs.refused);
        aw_metrics_line(&out, "anywhere_history_batches_total", "counter", "History batch writes.",
                        hs.batches);
        aw_metrics_line(&out, "anywhere_store_errors_total", "counter", "Failed store writes (retried).",
                        hs.failures);
        aw_metrics_line(&out, "anywhere_store_up", "gauge", "1 while the store answers.", !hs.store_down);
    }
    if (srv->cfg.cluster != NULL) {
        aw_cluster_stats_t cs;
        aw_cluster_get_stats(srv->cfg.cluster, &cs);
        aw_metrics_line(&out, "anywhere_cluster_members", "gauge", "Live cluster members that take users.",
                        cs.members);
        aw_metrics_line(&out, "anywhere_cluster_homes", "gauge", "Users whose session lives on this node.",
                        cs.homes);
        aw_metrics_line(&out, "anywhere_nats_connected", "gauge", "1 while connected to a NATS server.",
                        (uint64_t)cs.connected);
        aw_bytes_appendf(&out,
                         "# HELP anywhere_cluster_forwarded_total Client messages forwarded between nodes.\n"
                         "# TYPE anywhere_cluster_forwarded_total counter\n"
                         "anywhere_cluster_forwarded_total{direction=\"out\"} %" PRIu64 "\n"
                         "anywhere_cluster_forwarded_total{direction=\"in\"} %" PRIu64 "\n",
                         cs.forwarded_out, cs.forwarded_in);
        aw_metrics_line(&out, "anywhere_cluster_home_moves_total", "counter",
                        "Sessions let go because their user's home moved to another node.", cs.moves);
        aw_metrics_line(&out, "anywhere_cluster_fences_total", "counter",
                        "New sessions that waited for the user's previous home to let go first.", cs.fences);
        aw_bytes_appendf(
            &out,
            "# HELP anywhere_cluster_membership_total Nodes seen joining, leaving and declared dead.\n"
            "# TYPE anywhere_cluster_membership_total counter\n"
            "anywhere_cluster_membership_total{event=\"join\"} %" PRIu64 "\n"
            "anywhere_cluster_membership_total{event=\"leave\"} %" PRIu64 "\n"
            "anywhere_cluster_membership_total{event=\"dead\"} %" PRIu64 "\n",
            cs.joins, cs.leaves, cs.deaths);
        aw_metrics_line(&out, "anywhere_nats_reconnects_total", "counter", "Reconnections to NATS.",
                        cs.reconnects);
        aw_metrics_line(&out, "anywhere_nats_errors_total", "counter",
                        "Asynchronous NATS errors (a slow consumer, a lost server).", cs.nats_errors);
        aw_bytes_appendf(&out,
                         "# HELP anywhere_cluster_dropped_total Cluster messages dropped.\n"
                         "# TYPE anywhere_cluster_dropped_total counter\n"
                         "anywhere_cluster_dropped_total{reason=\"bad\"} %" PRIu64 "\n"
                         "anywhere_cluster_dropped_total{reason=\"stranger\"} %" PRIu64 "\n"
                         "anywhere_cluster_dropped_total{reason=\"late\"} %" PRIu64 "\n",
                         cs.dropped_bad, cs.dropped_stranger, cs.dropped_late);
    }
    if (chat != NULL && chat->desk != NULL) {
        uint64_t waiting, owned;
        aw_desk_counts(chat->desk, &waiting, &owned);
        aw_metrics_line(&out, "anywhere_handoff_waiting", "gauge", "Conversations waiting for a person.",
                        waiting);
        aw_metrics_line(&out, "anywhere_handoff_owned", "gauge", "Conversations an operator owns.", owned);
    }
    struct aw_bridge *bridge = chat != NULL ? aw_bot_bridge(chat->bot) : NULL;
    if (bridge != NULL) {
        aw_bridge_stats_t bs;
        aw_bridge_get_stats(bridge, &bs);
        aw_metrics_line(&out, "anywhere_bridge_requests_total", "counter", "Requests to --bot-url.",
                        bs.requests);
        aw_metrics_line(&out, "anywhere_bridge_failures_total", "counter",
                        "Requests to --bot-url that failed.", bs.failures);
        aw_metrics_line(&out, "anywhere_bridge_in_flight", "gauge", "Requests to --bot-url under way.",
                        bs.in_flight);
    }
    aw_metrics_write(&out);
    h2o_iovec_t body = h2o_strdup(&req->pool, out.buf->data, out.len);
    aw_bytes_dispose(&out);
    req->res.status = 200;
    req->res.reason = "OK";
    req->res.content_length = body.len;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                   H2O_STRLIT("text/plain; version=0.0.4; charset=utf-8"));
    h2o_start_response(req, &generator);
    h2o_send(req, &body, 1, H2O_SEND_STATE_FINAL);
}

/* An embedded file of the chat page; HEAD gets its headers only. */
static void serve_file(aw_route_call_t *c)
{
    static h2o_generator_t generator = {NULL, NULL};
    h2o_req_t *req = c->req;
    const aw_asset_t *a = c->file;
    int is_head = h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD"));
    h2o_iovec_t body = h2o_iovec_init(a->data, a->len);
    req->res.status = 200;
    req->res.reason = "OK";
    req->res.content_length = a->len;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, a->type, strlen(a->type));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, H2O_STRLIT("no-cache"));
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("x-content-type-options"), 0, NULL,
                          H2O_STRLIT("nosniff"));
    if (strncmp(a->type, "text/html", 9) == 0) {
        /* The page runs only its own scripts and talks only to this server: a
         * bot or a person who slipped markup past the renderer still could not
         * run or load anything. Images may come from anywhere (bots send them). */
        h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("content-security-policy"), 0, NULL,
                              H2O_STRLIT("default-src 'self'; script-src 'self'; style-src 'self'; "
                                         "img-src 'self' https: http: data:; connect-src 'self'; "
                                         "object-src 'none'; base-uri 'none'; form-action 'self'"));
        h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("referrer-policy"), 0, NULL,
                              H2O_STRLIT("strict-origin-when-cross-origin"));
    }
    h2o_start_response(req, &generator);
    h2o_send(req, &body, is_head ? 0 : 1, H2O_SEND_STATE_FINAL);
}

/* --- the tables --- */

/* The main address. To add a route, add its row and its handlers; the seam
 * does every check a row states (internal.h), in the order given there, so
 * a handler sees only requests its row allows. A row must come before any
 * row whose path is a prefix of its own (h2o matches prefixes in this
 * order), and "/" last.
 *
 * Rate: no route has an HTTP rate of its own. Each client message counts
 * against its user's --rate and --burst, whichever channel it came on; the
 * session applies it, since the bucket is the user's. A push (/api/send) is
 * the bot's own message, not the user's, and does not count. */
static const aw_route_t routes[] = {
    {.path = "/botkit/receive",
     .methods = AW_ROUTE_POST,
     .cors = 1,
     .body = AW_ROUTE_BODY_MESSAGE,
     .parse = parse_message,
     .serve = serve_receive},
    {.path = "/api/messages",
     .methods = AW_ROUTE_POST,
     .cors = 1,
     .body = AW_ROUTE_BODY_MESSAGE,
     .parse = parse_message,
     .serve = serve_messages},
    {.path = "/botkit/history",
     .methods = AW_ROUTE_POST,
     .cors = 1,
     .auth = AW_ROUTE_USER_TOKEN,
     .body = AW_ROUTE_BODY_MESSAGE,
     .errors = AW_ROUTE_ERRORS_HISTORY,
     .parse = parse_history_body,
     .serve = serve_botkit_history},
    {.path = "/api/history",
     .methods = AW_ROUTE_GET,
     .cors = 1,
     .auth = AW_ROUTE_USER_TOKEN,
     .errors = AW_ROUTE_ERRORS_HISTORY,
     .parse = parse_history_url,
     .serve = serve_api_history},
    {.path = "/api/send",
     .methods = AW_ROUTE_POST,
     .auth = AW_ROUTE_API_KEY,
     .body = AW_ROUTE_BODY_MESSAGE,
     .parse = parse_push,
     .serve = serve_send},
    {.path = "/api/handoff",
     .methods = AW_ROUTE_POST,
     .auth = AW_ROUTE_API_KEY,
     .body = AW_ROUTE_BODY_MESSAGE,
     .parse = aw_console__parse_handoff,
     .serve = aw_console__serve_handoff},
    /* The operator console (console.c): it checks its own requests (the
     * server's own pages only, an operator's sign-in), so these rows state
     * no more than paths and methods. */
    {.path = "/console/login",
     .methods = AW_ROUTE_POST,
     .match = AW_ROUTE_EXACT,
     .body = AW_ROUTE_BODY_MESSAGE,
     .serve = aw_console__sign_in},
    {.path = "/console/logout",
     .methods = AW_ROUTE_POST,
     .match = AW_ROUTE_EXACT,
     .serve = aw_console__sign_out},
    {.path = "/console/me", .methods = AW_ROUTE_GET, .match = AW_ROUTE_EXACT, .serve = aw_console__me},
    {.path = "/console/ws",
     .methods = AW_ROUTE_GET,
     .match = AW_ROUTE_EXACT,
     .websocket = 1,
     .serve = aw_console__socket_plain,
     .upgrade = aw_console__upgrade},
    {.path = "/console", .methods = AW_ROUTE_GET | AW_ROUTE_HEAD, .serve = aw_console__page},
    /* any method, unlike the admin address's rows below */
    {.path = "/healthz", .methods = AW_ROUTE_ANY, .serve = serve_healthz},
    {.path = "/metrics", .methods = AW_ROUTE_ANY, .serve = serve_metrics},
    {.path = "/",
     .methods = AW_ROUTE_GET | AW_ROUTE_HEAD,
     .match = AW_ROUTE_FILES,
     .websocket = 1,
     .serve = serve_file},
};

/* The admin address: the two paths exactly, GET only; the port shows nothing
 * else of the server. */
static const aw_route_t admin_routes[] = {
    {.path = "/healthz", .methods = AW_ROUTE_GET, .match = AW_ROUTE_EXACT, .serve = serve_healthz},
    {.path = "/metrics", .methods = AW_ROUTE_GET, .match = AW_ROUTE_EXACT, .serve = serve_metrics},
    {.path = "/"}, /* everything else: 404 */
};

void aw_http__register(aw_server_t *srv)
{
    aw_route__register(srv, srv->hostconf, routes, sizeof(routes) / sizeof(routes[0]));
}

void aw_http__register_admin(aw_server_t *srv, h2o_hostconf_t *hostconf)
{
    aw_route__register(srv, hostconf, admin_routes, sizeof(admin_routes) / sizeof(admin_routes[0]));
}
