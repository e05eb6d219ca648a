/*
 * ws-ceiling: a benchmark peer, not part of the server. The least a websocket
 * echo server can be on anywhere's own stack (libh2o on libuv, its websocket
 * upgrade, wslay for the frames) with nothing of anywhere's: no actors, no
 * sessions, no history, no JSON. Every text frame is sent back as it came, on
 * the loop thread that read it. `make bench` measures anywhere's echo against
 * it: the gap between the two is what the chat server itself costs.
 *
 *   ws-ceiling [-t THREADS] PORT      listens on 127.0.0.1:PORT, THREADS loops (2)
 *
 * Each loop thread has its own listening socket on the port (SO_REUSEPORT),
 * its own h2o context and its connections, as anywhere's I/O threads do.
 */
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>
#include <h2o.h>
#include <h2o/websocket.h>

#define MAX_THREADS 64

typedef struct loop {
    uv_loop_t uv;
    uv_tcp_t listener;
    h2o_context_t ctx;
    h2o_accept_ctx_t accept_ctx;
    uv_thread_t thread;
} loop_t;

static h2o_globalconf_t config;
static int port;

static void on_ws_message(h2o_websocket_conn_t *conn, const struct wslay_event_on_msg_recv_arg *arg)
{
    if (arg == NULL) { /* closed or broken */
        h2o_websocket_close(conn);
        return;
    }
    if (arg->opcode == WSLAY_TEXT_FRAME || arg->opcode == WSLAY_BINARY_FRAME) {
        struct wslay_event_msg echo = {arg->opcode, arg->msg, arg->msg_length};
        wslay_event_queue_msg(conn->ws_ctx, &echo); /* h2o writes it once this callback returns */
    }
}

static int on_request(h2o_handler_t *self, h2o_req_t *req)
{
    const char *key;
    if (h2o_is_websocket_handshake(req, &key) != 0 || key == NULL)
        return -1;
    h2o_upgrade_to_websocket(req, key, NULL, on_ws_message);
    return 0;
}

static void on_closed(uv_handle_t *h)
{
    free(h);
}

static void on_accept(uv_stream_t *listener, int status)
{
    loop_t *loop = listener->data;
    if (status != 0)
        return;
    uv_tcp_t *tcp = malloc(sizeof(*tcp));
    uv_tcp_init(listener->loop, tcp);
    if (uv_accept(listener, (uv_stream_t *)tcp) != 0) {
        uv_close((uv_handle_t *)tcp, on_closed);
        return;
    }
    uv_tcp_nodelay(tcp, 1);
    h2o_accept(&loop->accept_ctx, h2o_uv_socket_create((uv_stream_t *)tcp, on_closed));
}

static int listen_fd(void)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0 ||
        bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(fd, 4096) != 0) {
        perror("ws-ceiling: listen");
        exit(1);
    }
    return fd;
}

static void run_loop(void *arg)
{
    loop_t *loop = arg;
    uv_run(&loop->uv, UV_RUN_DEFAULT);
}

int main(int argc, char **argv)
{
    unsigned int n = 2;
    int opt;
    while ((opt = getopt(argc, argv, "t:")) != -1)
        n = opt == 't' ? (unsigned int)atoi(optarg) : 0;
    if (optind != argc - 1 || n == 0 || n > MAX_THREADS || (port = atoi(argv[optind])) <= 0) {
        fprintf(stderr, "usage: ws-ceiling [-t THREADS] PORT\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN); /* a write to a client that has gone is an error, not the end of the server */
    h2o_config_init(&config);
    h2o_hostconf_t *host = h2o_config_register_host(&config, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h2o_pathconf_t *path = h2o_config_register_path(host, "/", 0);
    h2o_create_handler(path, sizeof(h2o_handler_t))->on_req = on_request;

    static loop_t loops[MAX_THREADS];
    for (unsigned int i = 0; i < n; i++) {
        loop_t *loop = &loops[i];
        uv_loop_init(&loop->uv);
        h2o_context_init(&loop->ctx, &loop->uv, &config);
        loop->accept_ctx.ctx = &loop->ctx;
        loop->accept_ctx.hosts = config.hosts;
        uv_tcp_init(&loop->uv, &loop->listener);
        loop->listener.data = loop;
        if (uv_tcp_open(&loop->listener, listen_fd()) != 0 ||
            uv_listen((uv_stream_t *)&loop->listener, 4096, on_accept) != 0) {
            fprintf(stderr, "ws-ceiling: cannot listen on port %d\n", port);
            return 1;
        }
    }
    for (unsigned int i = 1; i < n; i++)
        uv_thread_create(&loops[i].thread, run_loop, &loops[i]);
    run_loop(&loops[0]); /* until killed: a benchmark peer has no shutdown */
    return 0;
}
