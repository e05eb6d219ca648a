/*
 * The I/O threads (server.h). Each has its own uv loop, h2o context and
 * listening socket: the sockets share one address through SO_REUSEPORT, so
 * the kernel spreads connections over the threads and a connection stays on
 * the thread that accepted it for its whole life. Other threads reach a loop
 * only through its inbox (a lock-free stack) and a uv_async wake-up, which
 * coalesces: one wake-up drains everything posted so far, in posting order.
 */
#include "transport/server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "runtime/error.h"
#include "transport/internal.h"

static void on_accept(uv_stream_t *listener, int status)
{
    aw_loop_t *loop = listener->data;
    if (status != 0)
        return;
    uv_tcp_t *conn = aw_alloc(sizeof(*conn));
    uv_tcp_init(listener->loop, conn);
    if (uv_accept(listener, (uv_stream_t *)conn) != 0) {
        uv_close((uv_handle_t *)conn, (uv_close_cb)free);
        return;
    }
    /* h2o's libuv binding leaves Nagle on: each small frame would wait ~40 ms. */
    uv_tcp_nodelay(conn, 1);
    h2o_socket_t *sock = h2o_uv_socket_create((uv_stream_t *)conn, (uv_close_cb)free);
    h2o_accept(&loop->accept_ctx, sock);
}

/* Makes a listening socket on host:port with SO_REUSEPORT. Returns the fd or
 * -1 with errno set. */
static int make_listener(const char *host, int port, int *bound_port)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
    struct addrinfo *res;
    char portstr[16];
    snprintf(portstr, sizeof(portstr), "%d", port);
    if (getaddrinfo(host, portstr, &hints, &res) != 0) {
        errno = EADDRNOTAVAIL;
        return -1;
    }
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0 ||
        bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, 4096) != 0) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        freeaddrinfo(res);
        errno = e;
        return -1;
    }
    freeaddrinfo(res);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    getsockname(fd, (struct sockaddr *)&ss, &sl);
    *bound_port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                 : ((struct sockaddr_in *)&ss)->sin_port);
    return fd;
}

void aw_loop__post(aw_loop_t *loop, aw_post_t *post)
{
    ck_stack_push_upmc(&loop->inbox, &post->entry);
    uv_async_send(&loop->wake);
}

static void close_listener(aw_loop_t *loop)
{
    if (loop->listening) {
        loop->listening = 0;
        uv_close((uv_handle_t *)&loop->listener, NULL);
    }
}

static void apply_post(aw_loop_t *loop, aw_post_t *p)
{
    switch (p->kind) {
    case AW_POST_FRAME:
    case AW_POST_CLOSE:
        aw_ws__apply(loop, p);
        break;
    case AW_POST_ANSWER:
        aw_http__answer(loop, p);
        break;
    case AW_POST_ACCEPT_OFF:
        close_listener(loop);
        break;
    case AW_POST_SHUTDOWN:
        close_listener(loop);
        loop->stopping = 1;
        loop->stop_deadline = aw_now_ms() + (uint64_t)p->code;
        h2o_context_request_shutdown(&loop->ctx); /* no more keep-alive */
        aw_ws__close_all(loop, 1001);
        break;
    }
    if (p->conn != NULL)
        aw_conn_release(p->conn);
    if (p->frame != NULL)
        aw_buf_release(p->frame);
    if (p->sink != NULL)
        aw_sink_release(p->sink);
    free(p);
}

static int loop_done(aw_loop_t *loop)
{
    return loop->stopping && (h2o_linklist_is_empty(&loop->websockets) || aw_now_ms() >= loop->stop_deadline);
}

static void drain(aw_loop_t *loop)
{
    /* The stack gives the newest first: reverse it to keep posting order. */
    ck_stack_entry_t *e = ck_stack_batch_pop_upmc(&loop->inbox), *fifo = NULL;
    while (e != NULL) {
        ck_stack_entry_t *next = e->next;
        e->next = fifo;
        fifo = e;
        e = next;
    }
    while (fifo != NULL) {
        aw_post_t *p = (aw_post_t *)fifo;
        fifo = fifo->next;
        apply_post(loop, p);
    }
    aw_ws__flush_dirty(loop);
    if (loop_done(loop))
        uv_stop(&loop->uv);
}

static void on_wake(uv_async_t *a)
{
    drain(a->data);
}

static void on_tick(uv_timer_t *t)
{
    aw_loop_t *loop = t->data;
    aw_ws__sweep(loop, aw_now_ms());
    if (loop_done(loop))
        uv_stop(&loop->uv);
}

static void close_any(uv_handle_t *h, void *arg)
{
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static void run_loop(void *arg)
{
    aw_loop_t *loop = arg;
    uv_run(&loop->uv, UV_RUN_DEFAULT);
    /* Shutting down: force what is left (clients that never answered our
     * close), release what was posted last, then let every handle close. */
    aw_ws__sweep(loop, UINT64_MAX);
    drain(loop);
    aw_ws__sweep(loop, UINT64_MAX);
    /* Idle keep-alive HTTP connections may still be open: h2o 2.2 cannot
     * close them from outside, and h2o_context_dispose asserts that none are
     * left. The process is about to exit, so their handles are closed below
     * and the context is left undisposed. */
    uv_walk(&loop->uv, close_any, NULL);
    uv_run(&loop->uv, UV_RUN_DEFAULT);
}

static int init_loop(aw_server_t *srv, aw_loop_t *loop, int fd)
{
    loop->srv = srv;
    uv_loop_init(&loop->uv);
    ck_stack_init(&loop->inbox);
    h2o_linklist_init_anchor(&loop->websockets);
    uv_async_init(&loop->uv, &loop->wake, on_wake);
    loop->wake.data = loop;
    uv_timer_init(&loop->uv, &loop->tick);
    loop->tick.data = loop;
    uv_timer_start(&loop->tick, on_tick, 1000, 1000);
    h2o_context_init(&loop->ctx, &loop->uv, &srv->globalconf);
    loop->accept_ctx.ctx = &loop->ctx;
    loop->accept_ctx.hosts = srv->globalconf.hosts;
    uv_tcp_init(&loop->uv, &loop->listener);
    loop->listener.data = loop;
    if (uv_tcp_open(&loop->listener, fd) != 0 ||
        uv_listen((uv_stream_t *)&loop->listener, 4096, on_accept) != 0)
        return AW_EIO;
    loop->listening = 1;
    return 0;
}

int aw_server_start(aw_server_t **out, const aw_server_config_t *cfg)
{
    aw_server_t *srv = aw_calloc(1, sizeof(*srv));
    srv->cfg = *cfg;
    srv->n_loops = cfg->io_threads != 0 ? cfg->io_threads : (unsigned int)sysconf(_SC_NPROCESSORS_ONLN);
    h2o_config_init(&srv->globalconf);
    /* h2o buffers bodies up to this; ours answer 413 beyond max_message. */
    srv->globalconf.max_request_entity_size = cfg->max_message * 4;
    srv->hostconf = h2o_config_register_host(&srv->globalconf, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    aw_http__register(srv);
    srv->loops = aw_calloc(srv->n_loops, sizeof(*srv->loops));
    int port = cfg->port;
    for (unsigned int i = 0; i < srv->n_loops; i++) {
        int fd = make_listener(cfg->host, port, &port);
        if (fd < 0 || init_loop(srv, &srv->loops[i], fd) != 0) {
            fprintf(stderr, "anywhere: cannot listen on %s:%d: %s\n", cfg->host, port, strerror(errno));
            exit(1); /* nothing is running yet that a clean exit would save */
        }
    }
    srv->port = port;
    for (unsigned int i = 0; i < srv->n_loops; i++)
        uv_thread_create(&srv->loops[i].thread, run_loop, &srv->loops[i]);
    *out = srv;
    return 0;
}

int aw_server_port(aw_server_t *srv)
{
    return srv->port;
}

size_t aw_server_websockets(aw_server_t *srv)
{
    return __atomic_load_n(&srv->websockets, __ATOMIC_RELAXED);
}

static void post_all(aw_server_t *srv, int kind, int code)
{
    for (unsigned int i = 0; i < srv->n_loops; i++) {
        aw_post_t *p = aw_calloc(1, sizeof(*p));
        p->kind = kind;
        p->code = code;
        aw_loop__post(&srv->loops[i], p);
    }
}

void aw_server_stop_accepting(aw_server_t *srv)
{
    post_all(srv, AW_POST_ACCEPT_OFF, 0);
}

void aw_server_shutdown(aw_server_t *srv, unsigned int deadline_ms)
{
    post_all(srv, AW_POST_SHUTDOWN, (int)deadline_ms);
    for (unsigned int i = 0; i < srv->n_loops; i++)
        uv_thread_join(&srv->loops[i].thread);
}

void aw_server_destroy(aw_server_t *srv)
{
    for (unsigned int i = 0; i < srv->n_loops; i++)
        uv_loop_close(&srv->loops[i].uv);
    h2o_config_dispose(&srv->globalconf);
    free(srv->loops);
    free(srv);
}
