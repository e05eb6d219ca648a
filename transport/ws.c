/*
 * Websockets. h2o performs the HTTP/1.1 upgrade; from then on the socket is
 * ours: wslay parses what the client sends (masking, fragments, control
 * frames, the size limit) and writes the control frames it must answer with,
 * while bot frames are framed here once per payload and written straight from
 * the shared buffer. Everything queued for a socket during one drain of the
 * loop's inbox goes out in one writev, which is what keeps a busy server off
 * one system call per message. h2o's own websocket layer
 * writes one frame per system call, so it is not used.
 *
 * What one client can make its socket hold is bounded (docs/protocol.md): a
 * message in progress by --max-message, MAX_FRAGMENTS frames and
 * --http-timeout; what it does not read, bot frames and wslay's answers
 * alike, by --max-outbox; what its session has not finished with by
 * MAX_HELD messages, past which the socket is not read. A socket that
 * breaks the first two is condemned: closed with 1008 and no longer read.
 *
 * Every function here runs on the websocket's own loop thread, except
 * ws_send and ws_close, which only post to that loop.
 */
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <wslay/wslay.h>
#include "transport/internal.h"
#include <h2o/http1.h>
#include <h2o/websocket.h>
#include "actors/metrics.h"
#include "actors/registry.h"
#include "runtime/error.h"
#include "runtime/log.h"

#define BAD_JSON_LIMIT 5    /* bad_json frames before a socket is closed with 1007 */
#define CLOSE_GRACE_MS 2000 /* how long a client has to answer our close */
#define SPARE_PARSERS 256   /* parsers kept per I/O thread for the next socket that speaks */
#define PUMP_PINGS 64       /* pings wslay may answer before its answers are moved out and counted */
#define MAX_FRAGMENTS 256   /* frames of one message; more close the socket with 1008 */
#define MAX_HELD 16         /* messages of one socket its session may hold before the socket waits */

/* A wslay context and the socket it parses for now. wslay fixes a context's
 * callback data at creation; this indirection lets a context serve one
 * socket after another. */
typedef struct parser {
    wslay_event_context_ptr ctx;
    aw_ws_t *owner;
} parser_t;

typedef struct out_frame {
    struct out_frame *next;
    aw_buf_t *payload;
    uint8_t hdr[10];
    uint8_t hdr_len;
} out_frame_t;

struct aw_ws {
    aw_conn_t super;
    aw_loop_t *loop;
    h2o_linklist_t link;        /* in loop->websockets */
    h2o_socket_t *sock;         /* NULL once closed */
    wslay_event_context_ptr ws; /* parser->ctx; NULL between frames (release_parser) */
    parser_t *parser;
    uint64_t rx_fed;              /* bytes handed to wslay */
    uint64_t rx_framed;           /* bytes of the frames it has finished */
    int rx_fragmented;            /* a fragmented message is open */
    unsigned int rx_fragments;    /* frames of that message so far */
    uint64_t rx_msg_since;        /* when that message began, or 0 */
    uint64_t rx_frame_since;      /* when the frame wslay holds in part began, or 0 */
    out_frame_t *q_head, *q_tail; /* to write */
    out_frame_t *w_head;          /* being written */
    h2o_buffer_t *ctl;            /* wslay's output, to write */
    h2o_buffer_t *ctl_w;          /* wslay's output, being written */
    h2o_iovec_t *iov;
    size_t iov_cap;
    aw_ws_t *next_dirty;
    int dirty;
    int close_queued;
    uint64_t close_deadline;
    size_t queued_bytes;         /* bytes of bot frames in q_head, waiting behind a write */
    uint64_t last_seen;          /* when the client last sent anything */
    uint64_t ping_sent;          /* when our unanswered ping went, or 0 */
    int condemned;               /* closed with 1008 for what its client sent: no longer read */
    int paused;                  /* not read while its session holds MAX_HELD of its messages */
    unsigned int pings_unpumped; /* pings wslay answered since pump last ran */
    unsigned int bad_json;
    char *user; /* the user this socket speaks for, once it has spoken */
    size_t user_len;
    const aw_ws_hooks_t *hooks; /* a console's: its messages go there, not to the chat */
    void *hooks_data;
};

static h2o_buffer_prototype_t ctl_prototype = {{256}};

/* --- posting from other threads --- */

static void ws_send(aw_conn_t *c, aw_buf_t *frame)
{
    aw_ws_t *ws = (aw_ws_t *)c;
    aw_post_t *p = aw_calloc(1, sizeof(*p));
    p->kind = AW_POST_FRAME;
    p->conn = aw_conn_retain(c);
    p->frame = aw_buf_retain(frame);
    aw_loop__post(ws->loop, p);
}

static void ws_close(aw_conn_t *c, int code)
{
    aw_ws_t *ws = (aw_ws_t *)c;
    aw_post_t *p = aw_calloc(1, sizeof(*p));
    p->kind = AW_POST_CLOSE;
    p->conn = aw_conn_retain(c);
    p->code = code;
    aw_loop__post(ws->loop, p);
}

static void free_frames(out_frame_t *f)
{
    while (f != NULL) {
        out_frame_t *next = f->next;
        aw_buf_release(f->payload);
        free(f);
        f = next;
    }
}

static void ws_dispose(aw_conn_t *c)
{
    aw_ws_t *ws = (aw_ws_t *)c;
    free_frames(ws->q_head);
    free_frames(ws->w_head);
    if (ws->ctl != NULL)
        h2o_buffer_dispose(&ws->ctl);
    if (ws->ctl_w != NULL)
        h2o_buffer_dispose(&ws->ctl_w);
    free(ws->iov);
    free(ws->user);
    free(ws);
}

/* --- queueing on the loop --- */

static void mark_dirty(aw_ws_t *ws)
{
    if (ws->dirty)
        return;
    ws->dirty = 1;
    ws->next_dirty = ws->loop->dirty;
    ws->loop->dirty = ws;
}

static void queue_close(aw_ws_t *ws, int code);
static void ensure_parser(aw_ws_t *ws);

/* Queues a text frame carrying `payload` (a reference is taken). A client
 * that does not read falls behind: while a write is still under way, what
 * waits behind it may not pass --max-outbox, or the queue is dropped (its
 * messages stay recoverable by last_seq) and the socket closed with 1008. A
 * burst, such as a long replay, goes out in one write and does not count. */
static void queue_text(aw_ws_t *ws, aw_buf_t *payload)
{
    if (ws->sock == NULL || ws->close_queued)
        return;
    size_t max = ws->loop->srv->cfg.max_outbox;
    if (max != 0 && h2o_socket_is_writing(ws->sock) && ws->queued_bytes + payload->len > max) {
        free_frames(ws->q_head);
        ws->q_head = ws->q_tail = NULL;
        AW_METRIC_INC(sockets_closed_slow);
        aw_log(AW_LOG_INFO, "ws_slow", "websocket %llu fell %zu bytes behind: closed (1008)",
               (unsigned long long)ws->super.id, ws->queued_bytes);
        queue_close(ws, 1008);
        return;
    }
    ws->queued_bytes += payload->len;
    out_frame_t *f = aw_alloc(sizeof(*f));
    f->next = NULL;
    f->payload = aw_buf_retain(payload);
    size_t len = payload->len;
    f->hdr[0] = 0x80 | WSLAY_TEXT_FRAME; /* FIN, text */
    if (len < 126) {
        f->hdr[1] = (uint8_t)len;
        f->hdr_len = 2;
    } else if (len < 65536) {
        f->hdr[1] = 126;
        f->hdr[2] = (uint8_t)(len >> 8);
        f->hdr[3] = (uint8_t)len;
        f->hdr_len = 4;
    } else {
        f->hdr[1] = 127;
        for (int i = 0; i < 8; i++)
            f->hdr[2 + i] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
        f->hdr_len = 10;
    }
    if (ws->q_tail != NULL)
        ws->q_tail->next = f;
    else
        ws->q_head = f;
    ws->q_tail = f;
    mark_dirty(ws);
}

static void queue_close(aw_ws_t *ws, int code)
{
    if (ws->sock == NULL || ws->close_queued)
        return;
    ws->close_queued = 1;
    ws->close_deadline = aw_now_ms() + CLOSE_GRACE_MS;
    ensure_parser(ws);
    wslay_event_queue_close(ws->ws, (uint16_t)code, NULL, 0);
    mark_dirty(ws);
}

static void send_error(aw_ws_t *ws, int err)
{
    aw_buf_t *f = aw_frame_error(err);
    queue_text(ws, f);
    aw_buf_release(f);
}

/* What the socket owes its client behind a write: bot frames waiting, and
 * control frames (pongs, closes) waiting or being written. wslay's own queue
 * is not counted: pump empties it after every read, and its count is not to
 * be trusted (wslay 1.1.1 never subtracts the pongs it drops once a close is
 * queued). */
static size_t owed(aw_ws_t *ws)
{
    return ws->queued_bytes + ws->ctl->size + ws->ctl_w->size;
}

/* Closes a socket with 1008 for what its client sent (`reason`, an
 * AW_ABUSE_... code, for the metrics; `why` for the log) and stops reading
 * it: nothing more it sends is parsed or answered, and what it was owed is
 * dropped. The close frame goes out if the client reads, then the socket
 * closes; the close deadline ends it otherwise. Runs inside wslay callbacks
 * too: it never frees the socket nor the parser. */
static void condemn(aw_ws_t *ws, int reason, const char *why)
{
    if (ws->sock == NULL || ws->condemned)
        return;
    ws->condemned = 1;
    AW_METRIC_INC(sockets_closed_abuse[reason]);
    aw_log(AW_LOG_INFO, "ws_abuse", "websocket %llu %s: closed (1008)", (unsigned long long)ws->super.id,
           why);
    free_frames(ws->q_head);
    ws->q_head = ws->q_tail = NULL;
    ws->queued_bytes = 0;
    ensure_parser(ws);
    /* Pongs only: once wslay has written a close it writes nothing more, and
     * that close must stay. */
    if (!wslay_event_get_close_sent(ws->ws) && ws->ctl->size != 0)
        h2o_buffer_consume(&ws->ctl, ws->ctl->size);
    queue_close(ws, 1008);
    wslay_event_shutdown_read(ws->ws);
    h2o_socket_read_stop(ws->sock);
    if (ws->sock->input->size != 0)
        h2o_buffer_consume(&ws->sock->input, ws->sock->input->size);
}

/* --- closing --- */

/* The socket is gone (error, or the close handshake is over). */
static void on_closed(aw_ws_t *ws)
{
    if (ws->sock == NULL)
        return;
    h2o_socket_close(ws->sock);
    ws->sock = NULL;
    if (ws->ws != NULL) {
        wslay_event_context_free(ws->ws);
        free(ws->parser);
    }
    ws->ws = NULL;
    ws->parser = NULL;
    h2o_linklist_unlink(&ws->link);
    if (ws->dirty) {
        /* the loop's reference goes below: leave no pointer behind */
        aw_ws_t **p = &ws->loop->dirty;
        while (*p != ws)
            p = &(*p)->next_dirty;
        *p = ws->next_dirty;
        ws->dirty = 0;
    }
    __atomic_sub_fetch(&ws->loop->srv->websockets, 1, __ATOMIC_RELAXED);
    aw_log(AW_LOG_DEBUG, "ws_close", "websocket %llu closed", (unsigned long long)ws->super.id);
    __atomic_store_n(&ws->super.closed, 1, __ATOMIC_RELEASE); /* before the detach: see conn.h */
    if (ws->hooks != NULL)
        ws->hooks->on_close(&ws->super, ws->hooks_data);
    if (ws->user != NULL) {
        aw_msg_t *m = aw_detach_new(&ws->super);
        if (aw_registry_send(ws->loop->srv->cfg.registry, ws->user, ws->user_len, m, 0) != 0)
            aw_msg_release(m);
    }
    aw_conn_release(&ws->super); /* the loop's reference */
}

static void flush(aw_ws_t *ws);
static void release_parser(aw_ws_t *ws);

static void on_write_done(h2o_socket_t *sock, const char *err)
{
    aw_ws_t *ws = sock->data;
    free_frames(ws->w_head);
    ws->w_head = NULL;
    h2o_buffer_consume(&ws->ctl_w, ws->ctl_w->size);
    if (err != NULL) {
        on_closed(ws);
        return;
    }
    flush(ws);
}

static void reserve_iov(aw_ws_t *ws, size_t n)
{
    if (n <= ws->iov_cap)
        return;
    ws->iov_cap = n < 16 ? 16 : n * 2;
    ws->iov = aw_realloc(ws->iov, ws->iov_cap * sizeof(*ws->iov));
}

/* Tries to write `iov` straight to the socket, and returns how many bytes
 * went (0 on any error: h2o's write then meets it and reports it). Only
 * without TLS, and only while no write is under way, so the order of bytes
 * is kept. The reason: libuv re-arms epoll after every write it completes
 * (one epoll_ctl per frame on the I/O thread, under a closed-loop load one
 * per message), while a write that goes at once needs no request at all. */
static size_t write_now(aw_ws_t *ws, h2o_iovec_t *iov, size_t n)
{
    int fd;
    if (ws->sock->ssl != NULL || n > IOV_MAX || (fd = h2o_socket_get_fd(ws->sock)) < 0)
        return 0;
    struct msghdr mh = {.msg_iov = (struct iovec *)iov, .msg_iovlen = n};
    _Static_assert(sizeof(struct iovec) == sizeof(h2o_iovec_t) &&
                       offsetof(struct iovec, iov_base) == offsetof(h2o_iovec_t, base) &&
                       offsetof(struct iovec, iov_len) == offsetof(h2o_iovec_t, len),
                   "h2o_iovec_t is laid out as struct iovec");
    ssize_t r;
    while ((r = sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT)) < 0 && errno == EINTR)
        ;
    if (r <= 0)
        return 0;
    ws->sock->bytes_written += (size_t)r;
    return (size_t)r;
}

/* Drops the first `done` bytes of `iov`; returns how many entries are left,
 * now at the start of `iov`. */
static size_t iov_skip(h2o_iovec_t *iov, size_t n, size_t done)
{
    size_t i = 0;
    while (i < n && done >= iov[i].len)
        done -= iov[i++].len;
    if (i < n) {
        iov[i].base += done;
        iov[i].len -= done;
    }
    memmove(iov, iov + i, (n - i) * sizeof(*iov));
    return n - i;
}

/* Moves what wslay has to write (pongs, close frames) into ctl, where it is
 * counted against --max-outbox. send_cb takes everything, so this empties
 * wslay's queue and cannot fail. */
static void pump(aw_ws_t *ws)
{
    ws->pings_unpumped = 0;
    if (wslay_event_want_write(ws->ws))
        wslay_event_send(ws->ws);
}

/* After a read: when wslay has closed the socket on its own, refusing what
 * the client sent, the refusal is counted like any other (a message over
 * --max-message as too_large, text that is not UTF-8 as bad_json), and the
 * socket is closing from then on: nothing of ours may follow that close. */
static void note_refusal(aw_ws_t *ws)
{
    if (ws->close_queued || !wslay_event_get_close_sent(ws->ws))
        return;
    ws->close_queued = 1;
    ws->close_deadline = aw_now_ms() + CLOSE_GRACE_MS;
    switch (wslay_event_get_status_code_sent(ws->ws)) {
    case WSLAY_CODE_MESSAGE_TOO_BIG:
        aw_metrics_count_error(AW_ETOOLARGE);
        break;
    case WSLAY_CODE_INVALID_FRAME_PAYLOAD_DATA:
        aw_metrics_count_error(AW_EBADJSON);
        break;
    }
}

/* wslay met a frame it cannot parse (a control frame over 125 bytes or
 * fragmented, a length not in its shortest form) and stopped, with an empty
 * close queued unless a close was already. RFC 6455 7.1.7 asks to tell the
 * client why: our own 1002 goes instead of wslay's empty close, after what
 * was queued before it, and then the connection ends. */
static void fail_protocol(aw_ws_t *ws)
{
    static const char close_1002[] = {(char)0x88, 2, 1002 >> 8, (char)(1002 & 0xff)};
    wslay_event_shutdown_read(ws->ws);
    h2o_socket_read_stop(ws->sock);
    if (ws->close_queued) {
        pump(ws); /* our close, or the answer to the client's */
    } else if (!wslay_event_get_close_sent(ws->ws)) {
        h2o_iovec_t dst = h2o_buffer_reserve(&ws->ctl, sizeof(close_1002));
        memcpy(dst.base, close_1002, sizeof(close_1002));
        ws->ctl->size += sizeof(close_1002);
        ws->close_queued = 1;
        ws->close_deadline = aw_now_ms() + CLOSE_GRACE_MS;
    }
    wslay_event_shutdown_write(ws->ws);
    mark_dirty(ws);
}

/* Writes bot frames first and wslay's output after, so that our close frame
 * always follows the data queued before it. */
static void flush(aw_ws_t *ws)
{
    if (ws->sock == NULL || h2o_socket_is_writing(ws->sock))
        return;
    if (ws->ws != NULL)
        pump(ws);
    size_t n = 0;
    for (out_frame_t *f = ws->q_head; f != NULL; f = f->next)
        n += 2;
    reserve_iov(ws, n + 1);
    n = 0;
    for (out_frame_t *f = ws->q_head; f != NULL; f = f->next) {
        ws->iov[n++] = h2o_iovec_init(f->hdr, f->hdr_len);
        ws->iov[n++] = h2o_iovec_init(f->payload->data, f->payload->len);
    }
    if (ws->ctl->size != 0) {
        h2o_buffer_t *t = ws->ctl_w;
        ws->ctl_w = ws->ctl;
        ws->ctl = t;
        ws->iov[n++] = h2o_iovec_init(ws->ctl_w->bytes, ws->ctl_w->size);
    }
    if (n == 0) {
        if (ws->ws != NULL && !wslay_event_want_read(ws->ws) && !wslay_event_want_write(ws->ws))
            on_closed(ws); /* both close frames have been exchanged */
        else
            release_parser(ws);
        return;
    }
    ws->w_head = ws->q_head;
    ws->q_head = ws->q_tail = NULL;
    ws->queued_bytes = 0; /* only what waits behind a write counts */
    n = iov_skip(ws->iov, n, write_now(ws, ws->iov, n));
    if (n == 0) {
        /* All of it went: what on_write_done would do, without the wait. */
        free_frames(ws->w_head);
        ws->w_head = NULL;
        h2o_buffer_consume(&ws->ctl_w, ws->ctl_w->size);
        flush(ws); /* nothing is queued: this only ends a finished close, or lets the parser go */
        return;
    }
    h2o_socket_write(ws->sock, ws->iov, n, on_write_done); /* calls back later, never inside */
    release_parser(ws);
}

/* --- wslay callbacks --- */

/* Whether the session holds as many messages of this socket as it may: the
 * socket is then not read (backpressure) until it has taken some. A client
 * that sends faster than its session works would otherwise pile messages up
 * in the session's mailbox without bound. */
static int held_full(aw_ws_t *ws)
{
    return __atomic_load_n(&ws->super.held, __ATOMIC_ACQUIRE) >= MAX_HELD;
}

/* Hands wslay what the socket read. It stops early, leaving the rest for
 * on_read's next turn, once wslay has answered PUMP_PINGS pings: their pongs
 * are then moved out and counted before it reads on, so that a read full of
 * pings cannot pile answers up in wslay's queue. A condemned socket is fed
 * nothing more, nor one whose session holds MAX_HELD of its messages. */
static ssize_t recv_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags, void *data)
{
    aw_ws_t *ws = ((parser_t *)data)->owner;
    if (ws->sock->input->size == 0 || ws->condemned || ws->pings_unpumped >= PUMP_PINGS || held_full(ws)) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    if (len > ws->sock->input->size)
        len = ws->sock->input->size;
    memcpy(buf, ws->sock->input->bytes, len);
    h2o_buffer_consume(&ws->sock->input, len);
    ws->rx_fed += len;
    return (ssize_t)len;
}

static ssize_t send_cb(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags, void *user)
{
    aw_ws_t *ws = ((parser_t *)user)->owner;
    h2o_iovec_t dst = h2o_buffer_reserve(&ws->ctl, len);
    memcpy(dst.base, data, len);
    ws->ctl->size += len;
    return (ssize_t)len;
}

/* Counts the bytes of each frame, header included (client frames are
 * masked), so that release_parser knows wslay holds nothing half read. A
 * header longer than the shortest encoding only makes the count fall short,
 * which keeps the parser: the safe side.
 *
 * It also bounds a message in progress by its frames: wslay keeps each
 * fragment in an allocation of its own (about 100 bytes for a one-byte
 * fragment) and answers pings between them, so a message that never ends
 * would hold memory without bound under --max-message. Past MAX_FRAGMENTS
 * the socket is condemned; wslay then stores this one frame more and reads
 * nothing after it. */
static void frame_start_cb(wslay_event_context_ptr ctx, const struct wslay_event_on_frame_recv_start_arg *arg,
                           void *data)
{
    aw_ws_t *ws = ((parser_t *)data)->owner;
    uint64_t len = arg->payload_length;
    ws->rx_framed += 2 + 4 + len + (len < 126 ? 0 : len < 65536 ? 2 : 8);
    switch (arg->opcode) {
    case WSLAY_TEXT_FRAME:
    case WSLAY_BINARY_FRAME:
        ws->rx_fragmented = !arg->fin;
        ws->rx_fragments = 1;
        ws->rx_msg_since = arg->fin ? 0 : aw_now_ms();
        break;
    case WSLAY_CONTINUATION_FRAME:
        ws->rx_fragmented = !arg->fin;
        if (arg->fin)
            ws->rx_msg_since = 0;
        if (++ws->rx_fragments > MAX_FRAGMENTS)
            condemn(ws, AW_ABUSE_FRAGMENTS, "sent a message in too many frames");
        break;
    case WSLAY_PING:
        ws->pings_unpumped++;
        break;
    case WSLAY_CONNECTION_CLOSE:
        /* A close body is empty or starts with a 2-byte code (RFC 6455
         * 5.5.1); wslay would take a single byte for no code at all. */
        if (len == 1) {
            queue_close(ws, 1002);
            wslay_event_shutdown_read(ctx);
        }
        break;
    }
}

static void frame_end_cb(wslay_event_context_ptr ctx, void *data)
{
    ((parser_t *)data)->owner->rx_frame_since = 0;
}

static void on_text(aw_ws_t *ws, const char *data, size_t len)
{
    if (ws->hooks != NULL) {
        ws->hooks->on_text(&ws->super, data, len, ws->hooks_data);
        return;
    }
    aw_message_t msg;
    int err = aw_message_parse(&msg, data, len);
    if (err != 0) {
        aw_metrics_count_error(err);
        send_error(ws, err);
        if (err == AW_EBADJSON && ++ws->bad_json >= BAD_JSON_LIMIT)
            queue_close(ws, 1007);
        return;
    }
    if (ws->user != NULL && (ws->user_len != msg.user_len || memcmp(ws->user, msg.user, msg.user_len) != 0)) {
        aw_message_dispose(&msg);
        aw_metrics_count_error(AW_EUNAUTHORIZED);
        send_error(ws, AW_EUNAUTHORIZED);
        return;
    }
    AW_METRIC_INC(messages_in[AW_CHANNEL_WEBSOCKET]);
    if (ws->user == NULL) {
        ws->user = aw_strndup(msg.user, msg.user_len);
        ws->user_len = msg.user_len;
    }
    aw_inbound_t *in = aw_inbound_new(&msg, &ws->super, NULL, AW_CHANNEL_WEBSOCKET);
    if (aw_registry_send(ws->loop->srv->cfg.registry, ws->user, ws->user_len, &in->super, 1) != 0) {
        /* The server is stopping: between SIGTERM and our 1001 close the
         * sessions take nothing more; or, in a cluster, the user's home
         * cannot be reached now. The client hears it, with the message's
         * `mid`, and can send the message again (once it has reconnected). */
        aw_metrics_count_error(AW_EUNAVAILABLE);
        aw_buf_t *f = aw_frame_error_mid(AW_EUNAVAILABLE, in->msg.mid, in->msg.mid_len);
        aw_msg_release(&in->super);
        queue_text(ws, f);
        aw_buf_release(f);
    }
}

static void on_msg_cb(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *arg, void *data)
{
    aw_ws_t *ws = ((parser_t *)data)->owner;
    if (arg->opcode == WSLAY_TEXT_FRAME)
        on_text(ws, (const char *)arg->msg, arg->msg_length);
    else if (arg->opcode == WSLAY_BINARY_FRAME)
        queue_close(ws, 1003);
    else if (arg->opcode == WSLAY_CONNECTION_CLOSE && !ws->close_queued) {
        /* wslay answers it; nothing of ours may follow */
        ws->close_queued = 1;
        ws->close_deadline = aw_now_ms() + CLOSE_GRACE_MS;
    }
}

static void on_read(h2o_socket_t *sock, const char *err)
{
    aw_ws_t *ws = sock->data;
    if (err != NULL) {
        on_closed(ws);
        return;
    }
    ws->last_seen = aw_now_ms();
    ws->ping_sent = 0; /* anything from the client shows it is alive */
    ensure_parser(ws);
    size_t max = ws->loop->srv->cfg.max_outbox;
    do {
        if (wslay_event_recv(ws->ws) != 0) {
            fail_protocol(ws);
            break;
        }
        /* A client that pings and never reads would otherwise have its
         * pongs pile up without bound (in wslay's queue, then in ctl). */
        pump(ws);
        note_refusal(ws);
        if (max != 0 && owed(ws) > max)
            condemn(ws, AW_ABUSE_CONTROL, "did not read its pongs");
    } while (!ws->condemned && sock->input->size != 0 && wslay_event_get_read_enabled(ws->ws) &&
             !held_full(ws));
    /* wslay holds part of a frame (its header, or its payload): aw_ws__sweep
     * gives it --http-timeout from when it began. frame_end_cb clears it. */
    if (ws->rx_fed != ws->rx_framed && ws->rx_frame_since == 0)
        ws->rx_frame_since = ws->last_seen;
    if (!wslay_event_want_read(ws->ws)) {
        h2o_socket_read_stop(sock);
    } else if (!ws->condemned && held_full(ws)) {
        /* until the session has taken some: maybe_resume */
        ws->paused = 1;
        h2o_socket_read_stop(sock);
    }
    mark_dirty(ws);
    aw_ws__flush_dirty(ws->loop);
}

/* Reads a paused socket again once its session holds fewer than MAX_HELD of
 * its messages, starting with what it had read already. Called when anything
 * is posted to the socket (the session's answers usually are) and once a
 * second. The caller holds a reference: on_read may close the socket. */
static void maybe_resume(aw_ws_t *ws)
{
    if (!ws->paused || ws->sock == NULL || held_full(ws))
        return;
    ws->paused = 0;
    if (ws->condemned || (ws->ws != NULL && !wslay_event_get_read_enabled(ws->ws)))
        return;
    h2o_socket_read_start(ws->sock, on_read);
    if (ws->sock->input->size != 0)
        on_read(ws->sock, NULL);
}

static void on_upgraded(void *data, h2o_socket_t *sock, size_t reqsize)
{
    aw_ws_t *ws = data;
    if (sock == NULL) {
        if (ws->hooks != NULL)
            ws->hooks->on_close(&ws->super, ws->hooks_data);
        aw_conn_release(&ws->super);
        return;
    }
    ws->sock = sock;
    sock->data = ws;
    h2o_buffer_consume(&sock->input, reqsize);
    ensure_parser(ws);
    h2o_linklist_insert(&ws->loop->websockets, &ws->link);
    __atomic_add_fetch(&ws->loop->srv->websockets, 1, __ATOMIC_RELAXED);
    aw_log(AW_LOG_DEBUG, "ws_open", "websocket %llu opened", (unsigned long long)ws->super.id);
    ws->last_seen = aw_now_ms();
    if (ws->loop->stopping)
        queue_close(ws, 1001);
    if (ws->hooks != NULL)
        ws->hooks->on_open(&ws->super, ws->hooks_data);
    h2o_socket_read_start(sock, on_read);
    if (sock->input->size != 0)
        on_read(sock, NULL);
}

/* A wslay context is about 8.5 KiB, most of it buffers: more than all the
 * rest of an idle session. A socket holds one only while a frame is half
 * read or a control frame waits to be written; between frames it goes back
 * to its I/O thread's spares, for the next socket that speaks. A context
 * between frames is as good as new: nothing buffered (every byte handed to
 * wslay belongs to a finished frame), no message open, no close under way,
 * nothing queued. The spares are per thread: a context is only ever touched
 * by the thread of the socket it serves. */
static __thread parser_t *spares[SPARE_PARSERS];
static __thread unsigned int n_spares;

static void ensure_parser(aw_ws_t *ws)
{
    static const struct wslay_event_callbacks callbacks = {.recv_callback = recv_cb,
                                                           .send_callback = send_cb,
                                                           .on_frame_recv_start_callback = frame_start_cb,
                                                           .on_frame_recv_end_callback = frame_end_cb,
                                                           .on_msg_recv_callback = on_msg_cb};
    if (ws->ws != NULL)
        return;
    parser_t *p;
    if (n_spares != 0) {
        p = spares[--n_spares];
    } else {
        p = aw_alloc(sizeof(*p));
        if (wslay_event_context_server_init(&p->ctx, &callbacks, p) != 0) {
            fprintf(stderr, "anywhere: out of memory (websocket parser)\n");
            abort();
        }
        wslay_event_config_set_max_recv_msg_length(p->ctx, ws->loop->srv->cfg.max_message);
    }
    p->owner = ws;
    ws->parser = p;
    ws->ws = p->ctx;
    ws->rx_fed = ws->rx_framed = 0;
    ws->rx_fragmented = 0;
    ws->rx_fragments = 0;
    ws->rx_msg_since = ws->rx_frame_since = 0;
    ws->pings_unpumped = 0;
}

static void release_parser(aw_ws_t *ws)
{
    wslay_event_context_ptr ctx = ws->ws;
    if (ctx == NULL || ws->sock == NULL || ws->close_queued || ws->rx_fed != ws->rx_framed ||
        ws->rx_fragmented || !wslay_event_get_read_enabled(ctx) || !wslay_event_get_write_enabled(ctx) ||
        wslay_event_want_write(ctx) || wslay_event_get_close_sent(ctx) || wslay_event_get_close_received(ctx))
        return;
    if (n_spares < SPARE_PARSERS) {
        ws->parser->owner = NULL;
        spares[n_spares++] = ws->parser;
    } else {
        wslay_event_context_free(ctx);
        free(ws->parser);
    }
    ws->ws = NULL;
    ws->parser = NULL;
}

void aw_ws__free_spares(void)
{
    while (n_spares != 0) {
        parser_t *p = spares[--n_spares];
        wslay_event_context_free(p->ctx);
        free(p);
    }
}

/* Sec-WebSocket-Accept: base64(SHA-1(key + the RFC 6455 GUID)). h2o 2.2
 * declares a helper for it but does not export it. */
static void accept_key(char dst[29], const char *client_key)
{
    static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    unsigned char src[24 + sizeof(guid) - 1], digest[SHA_DIGEST_LENGTH];
    memcpy(src, client_key, 24);
    memcpy(src + 24, guid, sizeof(guid) - 1);
    SHA1(src, sizeof(src), digest);
    EVP_EncodeBlock((unsigned char *)dst, digest, sizeof(digest));
}

static aw_loop_t *loop_of(aw_server_t *srv, h2o_context_t *ctx)
{
    return (aw_loop_t *)((char *)ctx - offsetof(aw_loop_t, ctx));
}

static int upgrade(aw_server_t *srv, h2o_req_t *req, const char *client_key, const aw_ws_hooks_t *hooks,
                   void *data)
{
    char key[29];
    aw_ws_t *ws = aw_calloc(1, sizeof(*ws));
    ws->hooks = hooks;
    ws->hooks_data = data;
    ws->super.refcnt = 1;
    ws->super.id = __atomic_add_fetch(&srv->next_conn_id, 1, __ATOMIC_RELAXED);
    ws->super.send = ws_send;
    ws->super.close = ws_close;
    ws->super.dispose = ws_dispose;
    ws->loop = loop_of(srv, req->conn->ctx);
    h2o_buffer_init(&ws->ctl, &ctl_prototype);
    h2o_buffer_init(&ws->ctl_w, &ctl_prototype);
    accept_key(key, client_key);
    req->res.status = 101;
    req->res.reason = "Switching Protocols";
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_UPGRADE, NULL, H2O_STRLIT("websocket"));
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("sec-websocket-accept"), 0, NULL, key,
                          strlen(key));
    h2o_http1_upgrade(req, NULL, 0, on_upgraded, ws);
    return 0;
}

int aw_ws__upgrade(aw_server_t *srv, h2o_req_t *req, const char *client_key)
{
    return upgrade(srv, req, client_key, NULL, NULL);
}

int aw_ws__upgrade_hooked(aw_server_t *srv, h2o_req_t *req, const char *client_key,
                          const aw_ws_hooks_t *hooks, void *data)
{
    return upgrade(srv, req, client_key, hooks, data);
}

/* --- loop side of the posts --- */

void aw_ws__apply(aw_loop_t *loop, aw_post_t *p)
{
    aw_ws_t *ws = (aw_ws_t *)p->conn;
    if (p->kind == AW_POST_FRAME)
        queue_text(ws, p->frame);
    else
        queue_close(ws, p->code);
    maybe_resume(ws); /* the post's reference keeps `ws` */
}

void aw_ws__flush_dirty(aw_loop_t *loop)
{
    while (loop->dirty != NULL) {
        aw_ws_t *ws = loop->dirty;
        loop->dirty = ws->next_dirty;
        ws->dirty = 0;
        aw_conn_retain(&ws->super); /* flush may close it */
        flush(ws);
        aw_conn_release(&ws->super);
    }
}

void aw_ws__close_all(aw_loop_t *loop, int code)
{
    for (h2o_linklist_t *l = loop->websockets.next; l != &loop->websockets; l = l->next) {
        aw_ws_t *ws = H2O_STRUCT_FROM_MEMBER(aw_ws_t, link, l);
        queue_close(ws, code);
    }
    aw_ws__flush_dirty(loop);
}

/* Pings a socket that has been quiet for an interval; closes one that let a
 * whole interval pass without answering. Returns 1 when it closed the socket:
 * `ws` may then be freed already. */
static int keepalive(aw_ws_t *ws, uint64_t now, uint64_t interval)
{
    if (ws->ping_sent != 0 && now - ws->ping_sent >= interval) {
        AW_METRIC_INC(sockets_closed_idle);
        aw_log(AW_LOG_DEBUG, "ws_idle", "websocket %llu did not answer a ping: closed",
               (unsigned long long)ws->super.id);
        on_closed(ws);
        return 1;
    } else if (ws->ping_sent == 0 && now - ws->last_seen >= interval) {
        struct wslay_event_msg ping = {.opcode = WSLAY_PING, .msg = (const uint8_t *)"", .msg_length = 0};
        ensure_parser(ws);
        wslay_event_queue_msg(ws->ws, &ping);
        ws->ping_sent = now;
        mark_dirty(ws);
    }
    return 0;
}

/* Whether the client has let a message, or a frame, it began stay unfinished
 * for `limit` ms: bytes trickled slowly hold a parser and up to
 * --max-message of buffer. */
static int stalled(aw_ws_t *ws, uint64_t now, uint64_t limit)
{
    return (ws->rx_msg_since != 0 && now - ws->rx_msg_since >= limit) ||
           (ws->rx_frame_since != 0 && now - ws->rx_frame_since >= limit);
}

void aw_ws__sweep(aw_loop_t *loop, uint64_t now)
{
    uint64_t interval = loop->srv->cfg.ping_interval_ms;
    uint64_t limit =
        loop->srv->cfg.http_timeout_ms != 0 ? loop->srv->cfg.http_timeout_ms : H2O_DEFAULT_HTTP1_REQ_TIMEOUT;
    h2o_linklist_t *l = loop->websockets.next;
    while (l != &loop->websockets) {
        aw_ws_t *ws = H2O_STRUCT_FROM_MEMBER(aw_ws_t, link, l);
        l = l->next; /* on_closed unlinks */
        /* on_closed may drop the last reference: a closed `ws` is not
         * touched again (release_parser on it read freed memory, and could
         * hand a freed parser to the spares). */
        if (ws->close_queued && now >= ws->close_deadline) {
            on_closed(ws);
            continue;
        }
        if (!ws->close_queued && !ws->paused && ws->ws != NULL && now != UINT64_MAX &&
            stalled(ws, now, limit))
            condemn(ws, AW_ABUSE_STALLED, "left a message unfinished");
        if (!ws->close_queued && interval != 0 && now != UINT64_MAX && keepalive(ws, now, interval))
            continue;
        if (now == UINT64_MAX)
            continue;
        /* A resumed socket reads what it holds, and on_read flushes the
         * loop's dirty sockets: only `ws` and those swept before it can be
         * dirty now, so `l` stays open. */
        aw_conn_retain(&ws->super);
        maybe_resume(ws);
        release_parser(ws);
        aw_conn_release(&ws->super);
    }
    aw_ws__flush_dirty(loop);
}
