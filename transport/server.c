/*
 * The I/O threads (server.h). Each has its own uv loop, h2o context and
 * listening socket: the sockets share one address through SO_REUSEPORT, so
 * the kernel spreads connections over the threads and a connection stays on
 * the thread that accepted it for its whole life. Other threads reach a loop
 * only through its inbox (aw_inbox_t), whose uv_async wake-up coalesces: one
 * wake-up drains everything posted so far, in posting order.
 * The admin listener, when there is one, is a plain socket of the first loop
 * with its own h2o host (/healthz and /metrics only) and its own fixed cap.
 */
#include "transport/server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <openssl/ssl.h>
#include "actors/metrics.h"
#include "runtime/log.h"
#include "runtime/error.h"
#include "transport/internal.h"

/* A connection with what its close must give back to the caps. */
typedef struct tcp_conn {
    uv_tcp_t tcp;
    aw_server_t *srv;
    int admin; /* on the admin listener: counted in admin_connections only */
    int counted_ip;
    char ip[INET6_ADDRSTRLEN];
} tcp_conn_t;

struct ip_count {
    char ip[INET6_ADDRSTRLEN]; /* "" for a free slot */
    unsigned int n;
};

/* Adds `delta` to the count of `ip`; returns the new count. The table only
 * grows (addresses are reused by the next client), and stays small: it holds
 * at most as many addresses as there were open connections at once. */
static unsigned int ip_add(aw_server_t *srv, const char *ip, int delta)
{
    uv_mutex_lock(&srv->ip_lock);
    if (srv->ips_cap == 0) {
        srv->ips_cap = 256;
        srv->ips = aw_calloc(srv->ips_cap, sizeof(*srv->ips));
    }
    struct ip_count *free_slot = NULL, *hit = NULL;
    for (size_t i = 0; i < srv->ips_cap && hit == NULL; i++) {
        if (strcmp(srv->ips[i].ip, ip) == 0)
            hit = &srv->ips[i];
        else if (free_slot == NULL && srv->ips[i].n == 0)
            free_slot = &srv->ips[i];
    }
    if (hit == NULL && free_slot == NULL) {
        srv->ips = aw_realloc(srv->ips, srv->ips_cap * 2 * sizeof(*srv->ips));
        memset(srv->ips + srv->ips_cap, 0, srv->ips_cap * sizeof(*srv->ips));
        free_slot = &srv->ips[srv->ips_cap];
        srv->ips_cap *= 2;
    }
    if (hit == NULL) {
        hit = free_slot;
        snprintf(hit->ip, sizeof(hit->ip), "%s", ip);
    }
    hit->n += delta;
    unsigned int n = hit->n;
    uv_mutex_unlock(&srv->ip_lock);
    return n;
}

static void on_conn_closed(uv_handle_t *h)
{
    tcp_conn_t *c = (tcp_conn_t *)h;
    __atomic_sub_fetch(c->admin ? &c->srv->admin_connections : &c->srv->connections, 1, __ATOMIC_RELAXED);
    if (c->counted_ip)
        ip_add(c->srv, c->ip, -1);
    free(c);
}

/* Applies --max-connections and --max-connections-per-ip; returns 0 to
 * refuse. */
static int admit_conn(aw_server_t *srv, tcp_conn_t *c)
{
    size_t open = __atomic_add_fetch(&srv->connections, 1, __ATOMIC_RELAXED);
    if (srv->cfg.max_connections != 0 && open > srv->cfg.max_connections)
        return 0;
    if (srv->cfg.max_connections_per_ip == 0)
        return 1;
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len);
    const void *addr = ss.ss_family == AF_INET6 ? (const void *)&((struct sockaddr_in6 *)&ss)->sin6_addr
                                                : (const void *)&((struct sockaddr_in *)&ss)->sin_addr;
    inet_ntop(ss.ss_family, addr, c->ip, sizeof(c->ip));
    c->counted_ip = 1;
    return ip_add(srv, c->ip, 1) <= srv->cfg.max_connections_per_ip;
}

/* Takes the next connection off `listener`; NULL when there is none. */
static tcp_conn_t *accept_conn(uv_stream_t *listener, int status, int admin)
{
    aw_loop_t *loop = listener->data;
    if (status != 0)
        return NULL;
    tcp_conn_t *c = aw_calloc(1, sizeof(*c));
    c->srv = loop->srv;
    c->admin = admin;
    uv_tcp_init(listener->loop, &c->tcp);
    if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0) {
        uv_close((uv_handle_t *)&c->tcp, (uv_close_cb)free);
        return NULL;
    }
    return c;
}

/* Hands an admitted connection to h2o, which closes it through on_conn_closed. */
static void serve_conn(tcp_conn_t *c, h2o_accept_ctx_t *accept_ctx)
{
    /* h2o's libuv binding leaves Nagle on: each small frame would wait ~40 ms. */
    uv_tcp_nodelay(&c->tcp, 1);
    h2o_socket_t *sock = h2o_uv_socket_create((uv_stream_t *)&c->tcp, on_conn_closed);
    h2o_accept(accept_ctx, sock);
}

static void on_accept(uv_stream_t *listener, int status)
{
    aw_loop_t *loop = listener->data;
    tcp_conn_t *c = accept_conn(listener, status, 0);
    if (c == NULL)
        return;
    if (!admit_conn(loop->srv, c)) {
        /* refused cleanly: the client sees the connection closed at once */
        AW_METRIC_INC(connections_refused);
        aw_log(AW_LOG_DEBUG, "conn_refused", "a connection over the connection caps was refused");
        uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
        return;
    }
    AW_METRIC_INC(connections_accepted);
    serve_conn(c, &loop->accept_ctx);
}

/* The admin listener counts only its own connections, against its own fixed
 * cap: neither --max-connections nor --max-connections-per-ip sees them, so
 * a full main address leaves it open, and it adds at most
 * AW_SERVER_ADMIN_MAX_CONNECTIONS open files. */
static void on_admin_accept(uv_stream_t *listener, int status)
{
    aw_loop_t *loop = listener->data;
    tcp_conn_t *c = accept_conn(listener, status, 1);
    if (c == NULL)
        return;
    size_t open = __atomic_add_fetch(&loop->srv->admin_connections, 1, __ATOMIC_RELAXED);
    if (open > AW_SERVER_ADMIN_MAX_CONNECTIONS) {
        AW_METRIC_INC(admin_connections_refused);
        aw_log(AW_LOG_DEBUG, "admin_conn_refused", "a connection over the admin listener's cap was refused");
        uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
        return;
    }
    serve_conn(c, &loop->admin_accept_ctx);
}

enum { SOCK_REUSEPORT = 1, SOCK_LISTEN = 2 };

/*
 * Makes a socket bound to host:port, with SO_REUSEADDR and the `flags`:
 * SOCK_REUSEPORT for the main listeners, one per loop (the kernel spreads new
 * connections over them), SOCK_LISTEN to listen. Neither flag makes a socket
 * that is only bound: the probe below. Returns the fd, with the port bound in
 * *bound_port, or -1 with errno set.
 */
static int make_socket(const char *host, int port, int flags, int *bound_port)
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
        ((flags & SOCK_REUSEPORT) && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0) ||
        bind(fd, res->ai_addr, res->ai_addrlen) != 0 || ((flags & SOCK_LISTEN) && listen(fd, 4096) != 0)) {
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

static int make_listener(const char *host, int port, int *bound_port)
{
    return make_socket(host, port, SOCK_REUSEPORT | SOCK_LISTEN, bound_port);
}

/*
 * Any process of the same user may bind the port with SO_REUSEPORT too, and
 * the kernel would then hand it a share of our connections: a second server
 * started by mistake on the same port (another data folder, another bot)
 * would silently answer some of the users. A socket bound without
 * SO_REUSEPORT fails wherever anyone listens, so it is bound, then closed,
 * before the listeners: a port in use stops the start with EADDRINUSE. (Two
 * servers started within the same microseconds can still both pass.)
 */
static int port_is_free(const char *host, int port)
{
    int ignored, fd = make_socket(host, port, 0, &ignored);
    if (fd < 0)
        return 0;
    close(fd);
    return 1;
}

void aw_loop__post(aw_loop_t *loop, aw_post_t *post)
{
    aw_inbox_push(&loop->inbox, &post->entry);
}

/* Closes the loop's listeners, the admin one too: a stopping server answers
 * nothing new, monitoring included. */
static void close_listener(aw_loop_t *loop)
{
    if (loop->listening) {
        loop->listening = 0;
        uv_close((uv_handle_t *)&loop->listener, NULL);
    }
    if (loop->admin_listening) {
        loop->admin_listening = 0;
        uv_close((uv_handle_t *)&loop->admin, NULL);
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
        aw_http__answer(loop, p); /* lives in its sink, and goes with it */
        return;
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
    aw_inbox_entry_t *fifo = aw_inbox_take(&loop->inbox); /* posting order */
    while (fifo != NULL) {
        aw_post_t *p = (aw_post_t *)fifo;
        fifo = fifo->next;
        apply_post(loop, p);
    }
    aw_ws__flush_dirty(loop);
    if (loop_done(loop))
        uv_stop(&loop->uv);
}

static void on_post(aw_inbox_t *inbox, void *data)
{
    drain(data);
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
    /* What this thread kept for reuse dies with it: free it, or it leaks. */
    aw_ws__free_spares();
    h2o_mem_recycle_t *bufs = &h2o_socket_buffer_prototype.allocator;
    while (bufs->cnt != 0)
        free(h2o_mem_alloc_recycle(bufs, 0));
}

static int init_loop(aw_server_t *srv, aw_loop_t *loop, int fd)
{
    loop->srv = srv;
    uv_loop_init(&loop->uv);
    h2o_linklist_init_anchor(&loop->websockets);
    aw_inbox_init_async(&loop->inbox, &loop->uv, on_post, loop);
    uv_timer_init(&loop->uv, &loop->tick);
    loop->tick.data = loop;
    uv_timer_start(&loop->tick, on_tick, 1000, 1000);
    h2o_context_init(&loop->ctx, &loop->uv, &srv->globalconf);
    loop->accept_ctx.ctx = &loop->ctx;
    loop->accept_ctx.hosts = srv->hosts;
    loop->accept_ctx.ssl_ctx = srv->ssl_ctx;
    uv_tcp_init(&loop->uv, &loop->listener);
    loop->listener.data = loop;
    if (uv_tcp_open(&loop->listener, fd) != 0 ||
        uv_listen((uv_stream_t *)&loop->listener, 4096, on_accept) != 0)
        return AW_EIO;
    loop->listening = 1;
    return 0;
}

/* Listens on the admin socket `fd` from `loop`. Its connections share the
 * loop's h2o context, but see only the admin host, and never TLS: the admin
 * address is meant for loopback or a private network. Returns 0 or a libuv
 * error. */
static int init_admin(aw_server_t *srv, aw_loop_t *loop, int fd)
{
    loop->admin_accept_ctx.ctx = &loop->ctx;
    loop->admin_accept_ctx.hosts = srv->admin_hosts;
    uv_tcp_init(&loop->uv, &loop->admin);
    loop->admin.data = loop;
    int err = uv_tcp_open(&loop->admin, fd);
    if (err == 0)
        err = uv_listen((uv_stream_t *)&loop->admin, 128, on_admin_accept);
    if (err == 0)
        loop->admin_listening = 1;
    return err;
}

static SSL_CTX *make_ssl_ctx(const char *cert, const char *key)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, key != NULL ? key : cert, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
        aw_log(AW_LOG_ERROR, "tls", "cannot use the TLS certificate %s and key %s", cert,
               key != NULL ? key : cert);
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

/* Whether a host name (an address, or `name:port`) names this machine's loopback. */
static int is_loopback_name(const char *base, size_t len)
{
    const char *colon = memchr(base, ':', len);
    size_t n = base[0] == '[' ? len : colon != NULL ? (size_t)(colon - base) : len;
    return (n >= 4 && memcmp(base, "127.", 4) == 0) || (n == 9 && h2o_lcstris(base, n, "localhost", 9)) ||
           (n >= 5 && memcmp(base, "[::1]", 5) == 0) || (n == 3 && memcmp(base, "::1", 3) == 0);
}

/* The server's own origins: the Host the browser used, and the loopback
 * names on our port. A server that listens only on loopback believes a Host
 * only when it is a loopback name too: otherwise any site could rebind its
 * own name to 127.0.0.1 and call itself our origin (DNS rebinding). */
static int same_origin(aw_server_t *srv, h2o_req_t *req, h2o_iovec_t origin)
{
    const char *scheme = srv->ssl_ctx != NULL ? "https://" : "http://";
    size_t sl = strlen(scheme);
    const char *listen = srv->cfg.host != NULL ? srv->cfg.host : "127.0.0.1";
    int trust_host = !is_loopback_name(listen, strlen(listen)) ||
                     (req->authority.len != 0 && is_loopback_name(req->authority.base, req->authority.len));
    if (trust_host && origin.len > sl && memcmp(origin.base, scheme, sl) == 0 &&
        req->authority.len == origin.len - sl &&
        h2o_lcstris(origin.base + sl, origin.len - sl, req->authority.base, req->authority.len))
        return 1;
    char own[64];
    for (int i = 0; i < 2; i++) {
        int n = snprintf(own, sizeof(own), "%s%s:%d", scheme, i == 0 ? "127.0.0.1" : "localhost", srv->port);
        if ((size_t)n == origin.len && h2o_lcstris(origin.base, origin.len, own, (size_t)n))
            return 1;
    }
    return 0;
}

int aw_server__own_origin(aw_server_t *srv, h2o_req_t *req)
{
    ssize_t at = h2o_find_header_by_str(&req->headers, H2O_STRLIT("origin"), -1);
    return at == -1 || same_origin(srv, req, req->headers.entries[at].value);
}

int aw_server__origin_allowed(aw_server_t *srv, h2o_req_t *req)
{
    ssize_t at = h2o_find_header_by_str(&req->headers, H2O_STRLIT("origin"), -1);
    if (at == -1)
        return 1; /* not a browser page: a server, a bot, a test client */
    h2o_iovec_t origin = req->headers.entries[at].value;
    if (same_origin(srv, req, origin))
        return 1;
    for (size_t i = 0; i < srv->cfg.n_origins; i++) {
        const char *o = srv->cfg.origins[i];
        if (strcmp(o, "*") == 0 ||
            (strlen(o) == origin.len && h2o_lcstris(origin.base, origin.len, o, strlen(o))))
            return 1;
    }
    return 0;
}

/* Binds the admin address, on the first loop. Without SO_REUSEPORT, the bind
 * itself fails wherever anything listens, the main address included: no
 * probe is needed. Main thread, before the loops run. */
static void start_admin(aw_server_t *srv)
{
    const char *host = srv->cfg.admin_host;
    int port = srv->cfg.admin_port;
    int fd = make_socket(host, port, SOCK_LISTEN, &port), err = 0;
    if (fd < 0 || (err = init_admin(srv, &srv->loops[0], fd)) != 0) {
        aw_log(AW_LOG_ERROR, "admin_listen", "cannot listen on the admin address %s:%d: %s", host, port,
               fd < 0 ? strerror(errno) : uv_strerror(err));
        exit(1); /* as for the main address: nothing runs yet */
    }
    srv->admin_port = port;
    if (strcmp(host, "::1") != 0 && !is_loopback_name(host, strlen(host)))
        aw_log(AW_LOG_WARN, "admin_listen_public",
               "the admin address %s is not loopback: /healthz and /metrics are served there in plain "
               "HTTP to whoever can reach it",
               host);
}

int aw_server_start(aw_server_t **out, const aw_server_config_t *cfg)
{
    aw_server_t *srv = aw_calloc(1, sizeof(*srv));
    srv->cfg = *cfg;
    srv->n_loops = cfg->io_threads != 0 ? cfg->io_threads : (unsigned int)sysconf(_SC_NPROCESSORS_ONLN);
    h2o_config_init(&srv->globalconf);
    /* h2o buffers bodies up to this; ours answer 413 beyond max_message. */
    srv->globalconf.max_request_entity_size = cfg->max_message * 4;
    if (cfg->http_timeout_ms != 0)
        srv->globalconf.http1.req_timeout = cfg->http_timeout_ms;
    uv_mutex_init(&srv->ip_lock);
    if (cfg->tls_cert != NULL && (srv->ssl_ctx = make_ssl_ctx(cfg->tls_cert, cfg->tls_key)) == NULL) {
        uv_mutex_destroy(&srv->ip_lock);
        h2o_config_dispose(&srv->globalconf);
        free(srv);
        return AW_EIO;
    }
    srv->hostconf = h2o_config_register_host(&srv->globalconf, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    srv->hosts[0] = srv->hostconf;
    aw_http__register(srv);
    if (cfg->admin_host != NULL) {
        /* before the loops: h2o_context_init sets up the paths of every host */
        srv->admin_hosts[0] =
            h2o_config_register_host(&srv->globalconf, h2o_iovec_init(H2O_STRLIT("admin")), 65535);
        aw_http__register_admin(srv, srv->admin_hosts[0]);
    }
    srv->loops = aw_calloc(srv->n_loops, sizeof(*srv->loops));
    int port = cfg->port;
    /* A cluster's nodes on one machine share the port on purpose (--reuse-port). */
    if (port != 0 && !cfg->reuse_port && !port_is_free(cfg->host, port)) {
        aw_log(AW_LOG_ERROR, "listen", "cannot listen on %s:%d: %s (is another server running there?)",
               cfg->host, port, strerror(errno));
        exit(1);
    }
    for (unsigned int i = 0; i < srv->n_loops; i++) {
        int fd = make_listener(cfg->host, port, &port);
        if (fd < 0 || init_loop(srv, &srv->loops[i], fd) != 0) {
            aw_log(AW_LOG_ERROR, "listen", "cannot listen on %s:%d: %s", cfg->host, port, strerror(errno));
            exit(1); /* nothing is running yet that a clean exit would save */
        }
    }
    srv->port = port;
    if (cfg->admin_host != NULL)
        start_admin(srv);
    for (unsigned int i = 0; i < srv->n_loops; i++)
        uv_thread_create(&srv->loops[i].thread, run_loop, &srv->loops[i]);
    *out = srv;
    return 0;
}

int aw_server_port(aw_server_t *srv)
{
    return srv->port;
}

int aw_server_admin_port(aw_server_t *srv)
{
    return srv->admin_port;
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

/* The loops of destroyed servers. Their h2o contexts are never disposed (see
 * run_loop), so the contexts, and the keep-alive connections h2o still lists
 * in them, live until the process exits: kept reachable from here, they are
 * not leaks to LeakSanitizer, which then reports only real ones. */
static aw_loop_t *undisposed_loops;

void aw_server_destroy(aw_server_t *srv)
{
    for (unsigned int i = 0; i < srv->n_loops; i++)
        uv_loop_close(&srv->loops[i].uv);
    h2o_config_dispose(&srv->globalconf);
    if (srv->ssl_ctx != NULL)
        SSL_CTX_free(srv->ssl_ctx);
    uv_mutex_destroy(&srv->ip_lock);
    free(srv->ips);
    free(undisposed_loops);
    undisposed_loops = srv->loops;
    free(srv);
}
