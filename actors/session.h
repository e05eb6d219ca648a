/*
 * The session actor: one per user id. It holds the user's open sockets, the
 * sequence number of the user's bot messages, the bot messages kept for
 * recovery, the per-user conversation state, and the turn in progress. It
 * runs the bot on each incoming message, one turn at a time and in arrival
 * order, and sends each bot message to every socket that may see it.
 *
 * Sessions are created and found through the registry (registry.h); this
 * header describes what is sent to them.
 */
#ifndef AW_ACTORS_SESSION_H
#define AW_ACTORS_SESSION_H

#include <stddef.h>
#include <stdint.h>
#include "actors/bot.h"
#include "actors/conn.h"
#include "actors/handoff.h"
#include "actors/history.h"
#include "actors/message.h"
#include "actors/reply.h"
#include "runtime/actor.h"

typedef void (*aw_fence_fn)(void *data, const char *user, size_t user_len, void (*done)(void *arg),
                            void *arg);

/* What every session of a server shares; read-only once the server runs. */
typedef struct aw_chat_config {
    const aw_bot_t *bot;
    const unsigned char *secret; /* identity secret (identity.h) */
    size_t secret_len;
    int history_auth;      /* 1: a token is needed to see history or another tab's messages */
    unsigned int recent;   /* bot messages kept in memory per user for recovery; 0 means 64 */
    unsigned int idle_ms;  /* a session with no socket and nothing to do is freed after this */
    aw_history_t *history; /* where messages are kept; NULL keeps nothing (tests) */
    double rate;           /* messages per second a user may send, on average; 0: no limit */
    double burst;          /* and at once */
    unsigned int claim_ms; /* how long a greeting waits for a new id's claim (session.c); 0 means 5000 */
    int durable; /* --durable-delivery: acks and bot messages wait until their records are durable */
    /* Called by a new session before it reads where its numbering goes on;
     * it reads (and takes turns) only once `done(arg)` is called, from any
     * thread. A cluster waits there until the user's previous home has let
     * go of the user (cluster/cluster.h). NULL: no wait. It may be set once
     * the server runs, before any session exists: `fence_data` first, then
     * `fence` with an atomic store (release), which sessions load. */
    aw_fence_fn fence;
    void *fence_data;
    /* Handing over to a person (handoff.h): the desk the consoles see
     * (desk.h; NULL: nobody can take over), what the user is told when an
     * operator joins and when the bot is back ("": nothing), and how long
     * an owner may be away before the conversation waits again; 0 means
     * 60000. */
    struct aw_desk *desk;
    const char *handoff_joined, *handoff_ended;
    unsigned int handoff_grace_ms;
} aw_chat_config_t;

/* Kinds of aw_msg_t a session handles. */
enum {
    AW_SESSION_INBOUND = 1, /* aw_inbound_t: a client message */
    AW_SESSION_DETACH,      /* an aw_inbound_t with only `conn`: that socket of this user has closed */
    AW_SESSION_SHUTDOWN,    /* the server is stopping: send what is pending now */
    AW_SESSION_MOVED,       /* the user's home is another node now: finish, close the sockets, go */
    AW_SESSION_RELEASE,     /* an aw_release_t: as MOVED, and say when nothing of the user is left here */
    AW_SESSION_HANDOFF,     /* aw_handoff_msg_t: an operator or a backend acts on who answers */
    AW_SESSION__TIMER,      /* private: the session's own timers */
    AW_SESSION__LOADED,     /* private: the history answered where numbering continues */
    AW_SESSION__REPLAY,     /* private: the history answered the messages a socket missed */
    AW_SESSION__BOT,        /* private: a remote bot answered */
    AW_SESSION__CLAIMED,    /* private: the history answered an identity claim */
    AW_SESSION__RESERVED,   /* private: the history answered a seq reservation */
    AW_SESSION__DURABLE,    /* private: the history wrote a group of the session's records */
    AW_SESSION__FENCED,     /* private: the fence let the session go on */
    AW_SESSION__FLUSHED,    /* private: what the session appended before letting go is written */
};

/* Asks a session to let go of its user (aw_registry_release): it finishes
 * the turns it holds, closes its sockets with 1012, makes sure what it
 * appended is written, then calls `done(arg)` (on any thread). */
typedef struct aw_release {
    aw_msg_t super;
    void (*done)(void *arg);
    void *arg;
    struct aw_release *next; /* the session's list of those waiting */
} aw_release_t;

aw_release_t *aw_release_new(void (*done)(void *arg), void *arg);

/* A client message on its way to the session of its user. */
typedef struct aw_inbound {
    aw_msg_t super;
    aw_message_t msg;               /* owned */
    aw_conn_t *conn;                /* the socket it came on (a reference), or NULL */
    aw_sink_t *sink;                /* the webhook request waiting for the replies (a reference), or NULL */
    aw_channel_t channel;           /* the channel it came on */
    struct aw_inbound *next;        /* the session's queue of waiting turns */
    aw_reply_t *push;               /* a message to deliver as it is (POST /api/send), or NULL */
    int trusted;                    /* the server's own event (handoff_end): speaks for the user, proven */
    struct aw_handoff_msg *handoff; /* a request about the conversation waiting its turn (owned), or NULL */
} aw_inbound_t;

/* Wraps a parsed message that came on `channel`, taking it over (`msg` is
 * left empty) and taking references to `conn` and `sink` (either may be
 * NULL). It counts in conn->held until it is freed. */
aw_inbound_t *aw_inbound_new(aw_message_t *msg, aw_conn_t *conn, aw_sink_t *sink, aw_channel_t channel);

/* Sets up `in` as aw_inbound_new would for a message of a webhook request,
 * without allocating: `in` lives inside the request's sink, which shares
 * its life. `msg` is not taken over: its owner (the sink) disposes of it
 * once the sink goes, so that what the request's thread allocated is freed
 * there too. Freeing the inbound drops its reference to `sink`. */
void aw_inbound_init_in_sink(aw_inbound_t *in, const aw_message_t *msg, aw_sink_t *sink,
                             aw_channel_t channel);

/* A proactive message for the user (POST /api/send): delivered to every
 * verified socket, kept with its seq, and answered through `sink` (mode
 * AW_SINK_PUSH) with {"seq": N, "sockets": M}. Takes `reply` over. */
aw_inbound_t *aw_push_new(aw_reply_t *reply, aw_sink_t *sink);

/* What an operator's console or a site's backend asks of a conversation
 * (handoff.h). The session answers the console, if any, with a frame:
 * docs/protocol.md, "The operator console". */
enum {
    AW_HANDOFF_OP_REQUEST, /* a person is asked for (POST /api/handoff), `text` the reason */
    AW_HANDOFF_OP_TAKE,    /* the operator takes it over, and watches it */
    AW_HANDOFF_OP_SEND,    /* the owner says `text` */
    AW_HANDOFF_OP_TYPING,  /* the owner is typing */
    AW_HANDOFF_OP_RELEASE, /* back to the bot: by its owner, any operator while it waits, or the API */
    AW_HANDOFF_OP_WATCH,   /* the console is sent the newest page of the history, then every message as it
                            * comes: what was kept before this is in the page, what comes after is sent */
    AW_HANDOFF_OP_UNWATCH, /* no longer */
    AW_HANDOFF_OP_GONE,    /* the operator (any, for "") has no console open: the grace period starts */
    AW_HANDOFF_OP_AWAY,    /* the same, unless a grace period runs already (a cluster's node found
                            * the owner has no console on any node: cluster.c) */
};

typedef struct aw_handoff_msg {
    aw_msg_t super;
    int op;                                       /* AW_HANDOFF_OP_... */
    char operator_name[AW_OPERATOR_NAME_MAX + 1]; /* who acts; "" for the API */
    aw_conn_t *console;                           /* the console to answer (a reference), or NULL */
    char *text;                                   /* SEND: the message; REQUEST: the reason; or NULL */
} aw_handoff_msg_t;

/* A request of `op` by operator `name` ("" or NULL: the API), answered on
 * `console` (may be NULL; a reference is taken), with `text` (copied; may
 * be NULL). */
aw_handoff_msg_t *aw_handoff_msg_new(int op, const char *name, aw_conn_t *console, const char *text);

/* A message saying `conn` has closed; takes a reference to it. */
aw_msg_t *aw_detach_new(aw_conn_t *conn);

/* A message telling a session its user lives on another node now
 * (aw_registry_move_away): it finishes the turns it holds, then closes its
 * sockets with 1012 so that their clients reconnect, and reach the new home,
 * and it is freed. */
aw_msg_t *aw_moved_msg_new(void);

/* A message asking a session to stop waiting: deliver pending and delayed
 * messages now. */
aw_msg_t *aw_shutdown_msg_new(void);

#endif
