/*
 * The session actor (session.h). Everything here runs inside the actor's
 * handler, so on one worker thread at a time: the state needs no lock. What
 * leaves the actor goes through thread-safe doors only: aw_conn_t.send and
 * aw_sink_t.complete (which hop to the I/O thread), runtime timers, and the
 * registry's reap.
 *
 * Who sees what: the socket a message came on gets every frame of that turn;
 * a socket that proved its identity (a valid token, or the token this server
 * just issued to a brand new user) gets every bot message of the user; other
 * sockets of the same user id get only their own turns. A user id alone thus
 * never unlocks another person's messages.
 *
 * Delivery (docs/protocol.md, Delivery): a bot message is numbered only
 * below a durable reservation (reserve_ahead); a client's `mid` is
 * acknowledged once its message is taken, and a `mid` already taken is a
 * duplicate (delivery.h keeps the window); the person's record is written
 * with the first reply its bot gives at once, in one group; with
 * --durable-delivery every frame of the user's stream waits in the held
 * queue until the records before it are durable.
 */
#include "actors/session.h"

#include <string.h>
#include <time.h>
#include "actors/bridge.h"
#include "actors/delivery.h"
#include "actors/desk.h"
#include "actors/identity.h"
#include "actors/internal.h"
#include "actors/metrics.h"
#include "actors/registry.h"
#include "runtime/error.h"
#include "runtime/log.h"

enum { TIMER_STEP, TIMER_LATER, TIMER_REAP, TIMER_LOAD, TIMER_CLAIM, TIMER_RESERVE, TIMER_HANDOFF };

#define REPLAY_MAX 1000 /* bot messages sent back to one socket at most */
#define SEQ_BLOCK 64    /* seq numbers reserved at a time (docs/protocol.md, Delivery) */

/* An answer of the history actor, sent back to the session. */
typedef struct hist_msg {
    aw_msg_t super;
    int err;
    int64_t seq, sub;
    int64_t reserved;  /* LOADED: the durable reservation the session may number below, or 0 */
    int flags;         /* LOADED: AW_TAIL_PROTECTED, AW_TAIL_KNOWN */
    aw_buf_t **frames; /* REPLAY: the missed frames; LOADED: the person's newest messages */
    size_t n;
    aw_reply_t **replies; /* a remote bot's answer */
    size_t n_replies;
    aw_buf_t *handoff; /* LOADED: the user's newest handoff record (a reference), or NULL */
    int handoff_known; /* LOADED: and whether it says who answers (history.h) */
} hist_msg_t;

static void hist_msg_free(aw_msg_t *msg);
static void reserve_ahead(aw_session_t *s, int ahead);
/* handoff (below): a person answers instead of the bot */
static int ho_intercept(aw_session_t *s, aw_inbound_t *in);
static void ho_request(aw_session_t *s, const char *reason);
static void ho_show(aw_session_t *s, aw_buf_t *frame);
static void ho_handle(aw_session_t *s, aw_handoff_msg_t *m);
static void ho_apply(aw_session_t *s, aw_handoff_msg_t *m);
static void ho_grace_over(aw_session_t *s, uint64_t gen);
static void ho_loaded(aw_session_t *s, const aw_buf_t *record, int known);
static void ho_dispose(aw_session_t *s);

typedef struct timer_msg {
    aw_msg_t super;
    int kind;
    uint64_t gen;
} timer_msg_t;

typedef struct conn_ent {
    aw_conn_t *conn;
    int verified;
} conn_ent_t;

typedef struct later_ent {
    aw_reply_t *reply;
    uint64_t due_ms;
    aw_conn_t *origin; /* the socket whose turn asked for it (a reference), or NULL */
    int guest;         /* asked for by a guest turn (see admit) */
} later_ent_t;

typedef struct turn_state {
    aw_inbound_t *in;
    aw_reply_t **replies;
    size_t n, next;
    int typing_sent;
    aw_buf_t **answers; /* frames for the webhook sink */
    size_t n_answers;
    int sink_done;
    int guest; /* the speaker did not prove a protected identity (see admit) */
    /* The person's record, kept until the first reply that goes out at once
     * is numbered, so that both are written together (keep_inbound). */
    aw_buf_t *in_json;
    int64_t in_seq, in_sub, in_ts;
    int ack_later; /* --durable-delivery: the ack waits for that record */
} turn_state_t;

struct aw_session_state {
    conn_ent_t *conns;
    size_t n_conns;
    int64_t seq; /* the latest bot message's */
    int64_t sub; /* the person's messages stored since it */
    int loaded;  /* seq and sub continue what the history holds */
    int loading;
    int waiting; /* the turn waits for missed messages from the history */
    unsigned int load_backoff;
    double tokens; /* the rate limit's bucket */
    uint64_t refilled_ms;
    int known;          /* the id has records or a claim: its token is never issued (again) */
    int claim_waiting;  /* the turn waits for the id's claim (see claim) */
    int claim_late;     /* the claim is still in flight, but the turn went on without it */
    aw_conn_t *claimer; /* then: the socket whose greeting made it (a reference), or NULL */
    uint64_t claim_gen;
    int protected_id;  /* a client proved this user's token (see admit) */
    aw_buf_t **recent; /* ring of the latest bot frames, by seq */
    int64_t *recent_seq;
    unsigned int recent_cap, recent_n, recent_head;
    aw_vars_t vars;
    aw_ask_t ask;
    aw_vars_t guest_vars; /* the conversation of those who name this user unproven */
    aw_ask_t guest_ask;
    aw_inbound_t *q_head, *q_tail;
    turn_state_t cur;
    int in_turn;
    later_ent_t *later;
    size_t n_later;
    uint64_t step_gen;
    uint64_t idle_at; /* aw_now_ms when the session last fell idle (maybe_idle); 0: busy since */
    int reap_armed;   /* a TIMER_REAP is pending: at most one at a time */
    int shutting_down;
    int moved;              /* the user's home is another node: close the sockets once nothing is pending */
    aw_release_t *releases; /* those waiting for the session to let go of its user */
    int flushing;           /* the last flush before letting go is under way */
    int fenced;             /* the fence (aw_chat_config_t) let it load */
    int fencing;
    int64_t reserved;  /* seq may go up to it: a durable reservation of this session's */
    int64_t reserving; /* the top of the reservation in flight, or 0 */
    unsigned int reserve_backoff;
    int numbering_stopped; /* the history stopped: nothing more is numbered */
    aw_mid_window_t mids;  /* the client message ids taken */
    aw_held_queue_t held;  /* --durable-delivery: what waits for records to be durable */
    uint64_t groups;       /* groups of records appended with a wait for them to be durable */
    uint64_t durable;      /* and of those, answered (the history answers them in order) */
    /* handoff (below) */
    aw_handoff_t ho;      /* who answers: the bot, or a person */
    aw_conn_t **watchers; /* consoles shown this conversation live (references) */
    size_t n_watchers;
    uint64_t ho_grace_gen; /* the owner's grace period that counts */
    int ho_grace_armed;
};

static int64_t wall_ms(void)
{
    return (int64_t)aw_wall_ms();
}

static void arm_timer(aw_session_t *s, int kind, uint64_t gen, uint64_t delay_ms)
{
    timer_msg_t *t = aw_calloc(1, sizeof(*t));
    t->super.type = AW_SESSION__TIMER;
    t->kind = kind;
    t->gen = gen;
    if (aw_timer_send(s->super.rt, &s->super, &t->super, delay_ms) != 0)
        free(t); /* stopping: nothing more will run */
}

/* --- sockets --- */

static conn_ent_t *find_conn(aw_session_t *s, aw_conn_t *c)
{
    for (size_t i = 0; i < s->st->n_conns; i++)
        if (s->st->conns[i].conn == c)
            return &s->st->conns[i];
    return NULL;
}

/* Attaches `c`, unless its client has gone: its detach may have been
 * handled already (a message of it waited for its turn), and a connection
 * attached after it would keep the session from ever being idle. Returns
 * NULL then. */
static conn_ent_t *attach(aw_session_t *s, aw_conn_t *c)
{
    conn_ent_t *e = find_conn(s, c);
    if (e != NULL)
        return e;
    if (__atomic_load_n(&c->closed, __ATOMIC_ACQUIRE))
        return NULL;
    struct aw_session_state *st = s->st;
    st->conns = aw_realloc(st->conns, (st->n_conns + 1) * sizeof(*st->conns));
    e = &st->conns[st->n_conns++];
    e->conn = aw_conn_retain(c);
    e->verified = 0;
    return e;
}

static void ho_watch(aw_session_t *s, aw_conn_t *c, int on);

/* A socket has closed; or a console of another node (cluster.c) has. */
static void detach(aw_session_t *s, aw_conn_t *c)
{
    struct aw_session_state *st = s->st;
    for (size_t i = 0; i < st->n_conns; i++) {
        if (st->conns[i].conn == c) {
            aw_conn_release(c);
            st->conns[i] = st->conns[--st->n_conns];
            return;
        }
    }
    ho_watch(s, c, 0);
}

/* Sends `frame` to the turn's own socket (if any) and every verified socket. */
static void fanout(aw_session_t *s, aw_conn_t *origin, aw_buf_t *frame)
{
    uint64_t n = 0;
    if (origin != NULL) {
        origin->send(origin, frame);
        n++;
    }
    for (size_t i = 0; i < s->st->n_conns; i++) {
        conn_ent_t *e = &s->st->conns[i];
        if (e->verified && e->conn != origin) {
            e->conn->send(e->conn, frame);
            n++;
        }
    }
    AW_METRIC_ADD(frames_out, n);
}

/* Sends a frame of a turn: a guest turn's go only to the guest's own socket. */
static void deliver(aw_session_t *s, aw_conn_t *origin, aw_buf_t *frame, int guest)
{
    if (!guest) {
        fanout(s, origin, frame);
    } else if (origin != NULL) {
        origin->send(origin, frame);
        AW_METRIC_ADD(frames_out, 1);
    }
}

/* --- bot messages --- */

static void remember(aw_session_t *s, int64_t seq, aw_buf_t *frame)
{
    struct aw_session_state *st = s->st;
    if (st->recent == NULL) {
        st->recent_cap = s->cfg->recent != 0 ? s->cfg->recent : 64;
        st->recent = aw_calloc(st->recent_cap, sizeof(*st->recent));
        st->recent_seq = aw_calloc(st->recent_cap, sizeof(*st->recent_seq));
    }
    unsigned int slot;
    if (st->recent_n == st->recent_cap) {
        slot = st->recent_head; /* overwrite the oldest */
        aw_buf_release(st->recent[slot]);
        st->recent_head = (st->recent_head + 1) % st->recent_cap;
    } else {
        slot = (st->recent_head + st->recent_n++) % st->recent_cap;
    }
    st->recent[slot] = aw_buf_retain(frame);
    st->recent_seq[slot] = seq;
}

/* --- records and what waits for them --- */

/* Hands a history answer that is only an error code to the session, as a
 * message of `type`, from the history thread; releases the reference the
 * session took when it asked. */
static void answer_session(aw_session_t *s, int type, int err)
{
    hist_msg_t *m = aw_calloc(1, sizeof(*m));
    m->super.type = type;
    m->super.free = hist_msg_free;
    m->err = err;
    if (aw_actor_send(&s->super, &m->super) != 0)
        aw_msg_release(&m->super);
    aw_actor_release(&s->super);
}

static void on_durable(int err, void *data)
{
    answer_session(data, AW_SESSION__DURABLE, err);
}

/* Appends records of the user as one group (written together or not at
 * all). Returns the group's number when --durable-delivery waits for it, 0
 * otherwise (no wait, or the history refused the records: a full queue
 * refuses them, counted, and the chat goes on). */
static uint64_t keep_group(aw_session_t *s, aw_history_item_t *items, size_t n)
{
    if (s->cfg->history == NULL)
        return 0;
    for (size_t i = 0; i < n; i++)
        items[i].flags |= s->st->protected_id ? AW_RECORD_PROTECTED : 0; /* see admit */
    if (!s->cfg->durable) {
        aw_history_append_group(s->cfg->history, s->user, s->user_len, items, n, NULL, NULL);
        return 0;
    }
    aw_actor_retain(&s->super);
    if (aw_history_append_group(s->cfg->history, s->user, s->user_len, items, n, on_durable, s) != 0) {
        aw_actor_release(&s->super);
        return 0;
    }
    return ++s->st->groups;
}

/* Sends a frame of the user's stream now, or, with --durable-delivery,
 * queues it behind what is held: until the records of `group` are durable
 * (a frame that stands for records of its own), or until what was queued
 * before it goes (group 0). `seq` >= 0: a numbered bot message, kept in the
 * ring when it goes. */
static void emit(aw_session_t *s, aw_conn_t *origin, aw_buf_t *frame, int guest, int64_t seq, uint64_t group)
{
    struct aw_session_state *st = s->st;
    if (group > st->durable || aw_held_any(&st->held)) {
        aw_held_t e = {.group = group != 0 ? group : st->groups,
                       .kind = AW_HELD_FRAME,
                       .frame = aw_buf_retain(frame),
                       .conn = origin != NULL ? aw_conn_retain(origin) : NULL,
                       .guest = guest,
                       .seq = seq};
        aw_held_push(&st->held, &e);
        return;
    }
    if (seq >= 0)
        remember(s, seq, frame);
    deliver(s, origin, frame, guest);
}

/* Sends what the records written so far let go, in the order it was held. */
static void release_held(aw_session_t *s)
{
    struct aw_session_state *st = s->st;
    aw_held_t e;
    while (aw_held_pop(&st->held, st->durable, &e)) {
        if (e.kind == AW_HELD_FRAME) {
            if (e.seq >= 0)
                remember(s, e.seq, e.frame);
            /* the turn's socket, if the session still has it (a closed one drops it) */
            deliver(s, e.conn != NULL && find_conn(s, e.conn) != NULL ? e.conn : NULL, e.frame, e.guest);
        } else {
            e.sink->complete(e.sink, e.frames, e.n_frames, e.err);
        }
        aw_held_dispose(&e);
    }
}

/* The client's `mid` is acknowledged: on its socket, or in the webhook's
 * answer. `group`: as emit's. */
static void ack(aw_session_t *s, aw_inbound_t *in, int duplicate, uint64_t group)
{
    if (in->msg.mid == NULL)
        return;
    if (in->sink != NULL)
        memcpy(in->sink->ack, in->msg.mid, in->msg.mid_len + 1);
    if (in->conn != NULL) {
        aw_buf_t *f = aw_frame_ack(s->user, s->user_len, in->msg.mid, in->msg.mid_len, duplicate);
        emit(s, in->conn, f, 1, -1, group); /* to that socket alone */
        aw_buf_release(f);
    }
}

/* Writes the person's record of the turn, if it still waits, with `bot` (a
 * bot message's record, or NULL) in the same group; acknowledges it then if
 * the ack waits for it. Returns the group (as keep_group). */
static uint64_t keep_turn(aw_session_t *s, aw_history_item_t *bot)
{
    turn_state_t *t = &s->st->cur;
    aw_history_item_t items[2];
    size_t n = 0;
    if (t->in_json != NULL)
        items[n++] = (aw_history_item_t){t->in_seq, t->in_sub, t->in_ts, AW_RECORD_IN, 0, t->in_json};
    if (bot != NULL)
        items[n++] = *bot;
    uint64_t group = n != 0 ? keep_group(s, items, n) : 0;
    if (t->in_json != NULL) {
        aw_buf_release(t->in_json);
        t->in_json = NULL;
        if (t->ack_later) {
            t->ack_later = 0;
            ack(s, t->in, 0, group);
        }
    }
    return group;
}

/* Numbers, sends and keeps one bot message. A guest's reply is neither
 * numbered in the user's stream nor kept: it is the guest's alone. The
 * caller has checked that a number is reserved (may_number). `in_turn`: the
 * message is a reply of the current turn, whose person's record goes with
 * it. */
static aw_buf_t *send_bot(aw_session_t *s, aw_conn_t *origin, aw_channel_t channel, const aw_reply_t *r,
                          int guest, int in_turn)
{
    int64_t seq = guest ? -1 : ++s->st->seq, ts = wall_ms();
    aw_channel_t out = aw_channel_out(channel);
    aw_buf_t *frame = aw_reply_write(r, s->user, s->user_len, aw_channel_frame_name(out), seq, ts);
    uint64_t group = 0;
    if (!guest) {
        s->st->sub = 0;
        aw_history_item_t item = {seq, 0, ts, AW_RECORD_OUT, 0, frame};
        group = in_turn ? keep_turn(s, &item) : keep_group(s, &item, 1);
    }
    emit(s, origin, frame, guest, seq, group);
    if (!guest)
        ho_show(s, frame);
    AW_METRIC_INC(messages_out[out]);
    if (!guest)
        reserve_ahead(s, 1); /* the next block, once half of this one is used */
    return frame;
}

/* Keeps a message the person sent: its record waits for the turn's first
 * reply (keep_turn). */
static void keep_inbound(aw_session_t *s, const aw_message_t *msg, int guest)
{
    if (s->cfg->history == NULL || guest || strcmp(msg->type, "message") != 0)
        return;
    turn_state_t *t = &s->st->cur;
    t->in_ts = wall_ms();
    t->in_json = aw_message_write(msg, "message_received", t->in_ts, -1);
    t->in_seq = s->st->seq;
    t->in_sub = ++s->st->sub;
}

/* Whether the ring holds every bot message above `last_seq`. */
static int ring_covers(const struct aw_session_state *st, int64_t last_seq)
{
    if (last_seq >= st->seq)
        return 1;
    return st->recent_n != 0 && st->recent_seq[st->recent_head] <= last_seq + 1;
}

/* Sends the kept bot messages above `last_seq` to one socket, in order. */
static void replay(aw_session_t *s, aw_conn_t *c, int64_t last_seq)
{
    struct aw_session_state *st = s->st;
    for (unsigned int i = 0; i < st->recent_n; i++) {
        unsigned int slot = (st->recent_head + i) % st->recent_cap;
        if (st->recent_seq[slot] > last_seq)
            c->send(c, st->recent[slot]);
    }
}

/* --- numbering --- */

static void on_reserved(int err, void *data)
{
    answer_session(data, AW_SESSION__RESERVED, err);
}

static void retry_reserve(aw_session_t *s)
{
    struct aw_session_state *st = s->st;
    st->reserve_backoff =
        st->reserve_backoff == 0 ? 50 : (st->reserve_backoff >= 2000 ? 2000 : st->reserve_backoff * 2);
    arm_timer(s, TIMER_RESERVE, 0, st->reserve_backoff);
}

/* Asks for the next block of seq numbers once half of the one held is used
 * (or none is held), so that a chat seldom waits for it. A block's top is a
 * multiple of SEQ_BLOCK: two servers that both believe they hold the user
 * and start from numbers of the same block ask for the same top, and the
 * store gives it to one of them only. `ahead`: nobody waits for it yet, so
 * it goes with the next batch (AW_RESERVE_AHEAD); otherwise a turn waits and
 * it is written at once. */
static void reserve_ahead(aw_session_t *s, int ahead)
{
    struct aw_session_state *st = s->st;
    if (s->cfg->history == NULL) {
        st->reserved = INT64_MAX; /* nothing outlives the process: nothing to number again */
        return;
    }
    if (st->reserving != 0 || st->numbering_stopped || !st->loaded || st->seq + SEQ_BLOCK / 2 < st->reserved)
        return;
    int64_t base = st->seq > st->reserved ? st->seq : st->reserved;
    int64_t top = (base / SEQ_BLOCK + 1) * SEQ_BLOCK;
    aw_actor_retain(&s->super);
    int err = aw_history_reserve(
        s->cfg->history, s->user, s->user_len, top,
        (st->protected_id ? AW_RECORD_PROTECTED : 0) | (ahead ? AW_RESERVE_AHEAD : 0), on_reserved, s);
    if (err != 0) {
        aw_actor_release(&s->super);
        if (err == AW_ESTOPPED)
            st->numbering_stopped = 1;
        else
            retry_reserve(s); /* a full queue, or no randomness: try again later */
        return;
    }
    st->reserving = top;
}

/* Whether the next bot message may be numbered now; if not, a reservation
 * is on its way (or numbering has stopped with the history). */
static int may_number(aw_session_t *s)
{
    if (s->st->seq < s->st->reserved)
        return 1;
    reserve_ahead(s, 0);
    return s->st->seq < s->st->reserved;
}

static void reserve_answered(aw_session_t *s, int err)
{
    struct aw_session_state *st = s->st;
    int64_t top = st->reserving;
    st->reserving = 0;
    if (err == 0) {
        if (top > st->reserved)
            st->reserved = top;
        st->reserve_backoff = 0;
    } else if (err == AW_EEXIST) {
        /* Someone reserved that block first: another server numbers this
         * user, or did. Number nothing more until the store says where
         * numbering goes on. */
        aw_log(AW_LOG_WARN, "seq_taken", "seq block up to %lld of user %.*s was reserved by another writer",
               (long long)top, (int)s->user_len, s->user);
        st->reserved = 0;
        st->loaded = 0;
    } else if (err == AW_ESTOPPED) {
        st->numbering_stopped = 1;
    } else {
        retry_reserve(s);
    }
}

/* --- turns --- */

static int is_greeting(const char *type)
{
    return strcmp(type, "hello") == 0 || strcmp(type, "welcome_back") == 0 || strcmp(type, "reconnect") == 0;
}

/* Checks the token a message carries, if any. Returns 0 with `*proved` set
 * when the token is the user's, or AW_EUNAUTHORIZED for a wrong one. */
static int check_token(aw_session_t *s, aw_inbound_t *in, int *proved)
{
    const aw_chat_config_t *cfg = s->cfg;
    *proved = 0;
    if (in->msg.token == NULL)
        return 0;
    if (!aw_identity_verify(cfg->secret, cfg->secret_len, s->user, s->user_len, in->msg.token))
        return AW_EUNAUTHORIZED;
    s->st->protected_id = 1;
    *proved = 1;
    return 0;
}

/* Whether an unproven greeting comes from a user id that has nothing: no
 * record, no claim. Such a greeting is issued the id's token. */
static int brand_new(aw_session_t *s, aw_inbound_t *in, int proved)
{
    return !proved && s->cfg->history_auth && is_greeting(in->msg.type) && !s->st->known && s->st->seq == 0;
}

/* Binds the socket and says who the speaker is. `proved`: the message
 * carried the user's token, or the speaker is a brand new user whose token
 * this turn issues. `*issue` is set when the session frame should carry the
 * token.
 *
 * `*guest` is set when the speaker names a protected user without proving
 * it, on this frame or earlier on the same socket. A user is protected once
 * some client has presented its valid token: from then on, whoever merely
 * knows the id talks with the bot in a conversation of its own, and never
 * sees the user's variables, answers or history, never adds to them, and is
 * never shown to the user's sockets. Clients that never send a token (Botkit's
 * own) are trusted by id, as Botkit trusts them, for as long as nobody has
 * proved the id; with --history-auth off every speaker is. Protection
 * outlives the process: the records kept from then on carry
 * AW_RECORD_PROTECTED, and the user's newest record is read before the
 * first turn (load). */
static void admit(aw_session_t *s, aw_inbound_t *in, int proved, int *issue, int *guest)
{
    if (!s->cfg->history_auth)
        proved = 1;
    *issue = proved;
    if (proved)
        s->st->known = 1;
    conn_ent_t *e = in->conn != NULL ? attach(s, in->conn) : NULL;
    if (e != NULL) {
        e->verified |= proved;
        proved = e->verified;
    }
    *guest = !proved && s->st->protected_id;
}

static void on_missed(int err, aw_buf_t **frames, size_t n, void *data)
{
    aw_session_t *s = data; /* history thread: hand the answer to the session */
    hist_msg_t *m = aw_calloc(1, sizeof(*m));
    m->super.type = AW_SESSION__REPLAY;
    m->super.free = hist_msg_free;
    m->err = err;
    m->frames = frames;
    m->n = n;
    if (aw_actor_send(&s->super, &m->super) != 0)
        aw_msg_release(&m->super);
    aw_actor_release(&s->super);
}

/* Asks the history for what the ring no longer holds; the turn waits for the
 * answer so that nothing newer overtakes it. Returns 0 if it cannot ask. */
static int ask_missed(aw_session_t *s, int64_t last_seq)
{
    if (s->cfg->history == NULL)
        return 0;
    aw_actor_retain(&s->super);
    if (aw_history_missed(s->cfg->history, s->user, s->user_len, last_seq, REPLAY_MAX, on_missed, s) != 0) {
        aw_actor_release(&s->super);
        return 0;
    }
    s->st->waiting = 1;
    return 1;
}

_Static_assert(sizeof(((aw_sink_t *)0)->token) == AW_TOKEN_LEN + 1, "a webhook sink holds one token");

static void greet(aw_session_t *s, aw_inbound_t *in, int issue, int guest)
{
    char token[AW_TOKEN_LEN + 1];
    if (in->conn == NULL) {
        /* A webhook greeting: the token travels with the answer instead. */
        if (issue && in->sink != NULL)
            aw_identity_token(s->cfg->secret, s->cfg->secret_len, s->user, s->user_len, in->sink->token);
        return;
    }
    if (issue)
        aw_identity_token(s->cfg->secret, s->cfg->secret_len, s->user, s->user_len, token);
    aw_buf_t *f = aw_frame_session(s->user, s->user_len, issue ? token : NULL, guest ? 0 : s->st->seq);
    in->conn->send(in->conn, f);
    aw_buf_release(f);
    conn_ent_t *e = find_conn(s, in->conn);
    if (in->msg.last_seq < 0 || e == NULL || !e->verified)
        return;
    if (ring_covers(s->st, in->msg.last_seq) || !ask_missed(s, in->msg.last_seq))
        replay(s, in->conn, in->msg.last_seq);
}

static void on_bot_answer(int err, aw_reply_t **replies, size_t n, void *data)
{
    aw_session_t *s = data; /* bridge thread: hand the answer to the session */
    hist_msg_t *m = aw_calloc(1, sizeof(*m));
    m->super.type = AW_SESSION__BOT;
    m->super.free = hist_msg_free;
    m->err = err;
    m->replies = replies;
    m->n_replies = n;
    if (aw_actor_send(&s->super, &m->super) != 0)
        aw_msg_release(&m->super);
    aw_actor_release(&s->super);
}

/* Hands the turn to a remote bot; the turn waits for its answer, so a user's
 * next message never reaches the bot before this one is answered. */
static void ask_remote(aw_session_t *s, aw_inbound_t *in, struct aw_bridge *bridge)
{
    aw_buf_t *body = aw_message_write_for_bot(&in->msg, wall_ms(), s->st->cur.guest);
    aw_actor_retain(&s->super);
    if (aw_bridge_post(bridge, body, on_bot_answer, s) == 0)
        s->st->waiting = 1;
    else
        aw_actor_release(&s->super);
    aw_buf_release(body);
}

static void run_bot(aw_session_t *s, aw_inbound_t *in)
{
    struct aw_session_state *st = s->st;
    if (ho_intercept(s, in))
        return; /* a person has the conversation: the bot does not hear it */
    struct aw_bridge *bridge = aw_bot_bridge(s->cfg->bot);
    if (bridge != NULL) {
        keep_turn(s, NULL); /* the answer takes a round trip: the person's record goes ahead */
        ask_remote(s, in, bridge);
        return;
    }
    int guest = st->cur.guest;
    aw_ask_t *ask = guest ? &st->guest_ask : &st->ask;
    aw_ask_t asked = *ask;
    aw_turn_t turn = {
        .user = s->user, .user_len = s->user_len, .vars = guest ? &st->guest_vars : &st->vars, .ask = ask};
    int is_message = strcmp(in->msg.type, "message") == 0;
    if (is_message && asked.cb != NULL) {
        /* the answer to a question goes to the question's handler, once */
        memset(ask, 0, sizeof(*ask));
        asked.cb(&turn, &in->msg, asked.data);
    } else {
        aw_bot_dispatch(s->cfg->bot, &turn, &in->msg);
    }
    uint64_t now = aw_now_ms();
    for (size_t i = 0; i < turn.n_later; i++) {
        st->later = aw_realloc(st->later, (st->n_later + 1) * sizeof(*st->later));
        st->later[st->n_later].reply = turn.later[i].reply;
        st->later[st->n_later].due_ms = now + turn.later[i].delay_ms;
        st->later[st->n_later].origin = in->conn != NULL ? aw_conn_retain(in->conn) : NULL;
        st->later[st->n_later].guest = guest;
        st->n_later++;
        arm_timer(s, TIMER_LATER, 0, st->shutting_down ? 0 : turn.later[i].delay_ms);
    }
    turn.n_later = 0;
    st->cur.replies = turn.replies;
    st->cur.n = turn.n_replies;
    turn.replies = NULL;
    turn.n_replies = 0;
    aw_turn__clear(&turn);
}

/* Answers a webhook: now, or after what is held (emit). */
static void finish_sink(aw_session_t *s, aw_sink_t *sink, aw_buf_t *const *frames, size_t n, int err)
{
    struct aw_session_state *st = s->st;
    if (!aw_held_any(&st->held)) {
        sink->complete(sink, frames, n, err);
        return;
    }
    aw_held_t e = {
        .group = st->groups, .kind = AW_HELD_SINK, .seq = -1, .sink = aw_sink_retain(sink), .err = err};
    e.frames = aw_alloc((n + 1) * sizeof(*e.frames));
    for (size_t i = 0; i < n; i++)
        e.frames[i] = aw_buf_retain(frames[i]);
    e.n_frames = n;
    aw_held_push(&st->held, &e);
}

static void complete_sink(aw_session_t *s)
{
    turn_state_t *t = &s->st->cur;
    if (t->in->sink == NULL || t->sink_done)
        return;
    t->sink_done = 1;
    if (t->in->sink->mode == AW_SINK_PUSH) {
        /* the sockets that got it: every verified one (a push has no origin) */
        size_t sockets = 0;
        for (size_t i = 0; i < s->st->n_conns; i++)
            sockets += s->st->conns[i].verified != 0;
        char body[96];
        int len =
            snprintf(body, sizeof(body), "{\"seq\":%lld,\"sockets\":%zu}", (long long)s->st->seq, sockets);
        aw_buf_t *b = aw_buf_new(body, (size_t)len);
        finish_sink(s, t->in->sink, &b, 1, 0);
        aw_buf_release(b);
        return;
    }
    finish_sink(s, t->in->sink, t->answers, t->n_answers, 0);
}

static void end_turn(aw_session_t *s)
{
    turn_state_t *t = &s->st->cur;
    keep_turn(s, NULL); /* a turn without a reply that went out at once */
    complete_sink(s);
    for (size_t i = 0; i < t->n; i++)
        aw_reply_free(t->replies[i]);
    for (size_t i = 0; i < t->n_answers; i++)
        aw_buf_release(t->answers[i]);
    free(t->replies);
    free(t->answers);
    aw_msg_release(&t->in->super);
    memset(t, 0, sizeof(*t));
    s->st->in_turn = 0;
}

/* Sends the turn's replies in order; returns 0 when it has to wait for a
 * typing pause, 1 when the turn is over. */
static int advance(aw_session_t *s)
{
    struct aw_session_state *st = s->st;
    turn_state_t *t = &st->cur;
    /* Webhook turns have nobody to show a pause to, and at shutdown nobody waits. */
    int no_delay = t->in->conn == NULL || st->shutting_down;
    while (t->next < t->n) {
        aw_reply_t *r = t->replies[t->next];
        if (aw_reply_is_handoff(r)) {
            if (!t->guest)
                ho_request(s, r->text); /* after the replies before it, before those after */
            t->next++;
            continue;
        }
        if (r->typing_ms != 0 && !no_delay && !t->typing_sent) {
            keep_turn(s, NULL); /* the reply does not go out at once */
            aw_buf_t *typing = aw_frame_typing(s->user, s->user_len);
            emit(s, t->in->conn, typing, t->guest, -1, 0);
            aw_buf_release(typing);
            t->typing_sent = 1;
            arm_timer(s, TIMER_STEP, ++st->step_gen, r->typing_ms);
            return 0;
        }
        if (!t->guest && !may_number(s)) {
            /* The person's record waits with the reply: written alone, a
             * crash before the reply would keep the message (and, with
             * --durable-delivery, acknowledge it) without an answer ever. */
            if (!st->numbering_stopped)
                return 0;   /* pump runs again once the reservation is answered */
            t->next = t->n; /* the history has stopped: nothing more can be numbered */
            break;
        }
        aw_buf_t *frame = send_bot(s, t->in->conn, t->in->channel, r, t->guest, 1);
        t->answers = aw_realloc(t->answers, (t->n_answers + 1) * sizeof(*t->answers));
        t->answers[t->n_answers++] = frame; /* keeps the reference send_bot made */
        if (t->in->sink != NULL && t->in->sink->mode == AW_SINK_FIRST)
            complete_sink(s);
        t->next++;
        t->typing_sent = 0;
    }
    end_turn(s);
    return 1;
}

/* A message whose `mid` was taken before is a duplicate: acknowledged
 * again, never handed to the bot, stored or shown twice. A guest's ids are
 * not kept: a stranger must not be able to push the user's out of the
 * window. Returns 1 when the turn is over. */
static int taken_before(aw_session_t *s, aw_inbound_t *in, int guest)
{
    if (in->msg.mid == NULL || is_greeting(in->msg.type) || guest)
        return 0;
    if (!aw_mid_window_has(&s->st->mids, in->msg.mid, in->msg.mid_len)) {
        aw_mid_window_add(&s->st->mids, in->msg.mid, in->msg.mid_len);
        return 0;
    }
    AW_METRIC_INC(duplicates);
    ack(s, in, 1, 0);
    end_turn(s);
    return 1;
}

/* Runs the part of a turn that follows the identity check: binds the
 * socket, keeps the person's message, greets, and asks the bot. */
static void continue_turn(aw_session_t *s, int proved)
{
    aw_inbound_t *in = s->st->cur.in;
    int issue = 0, guest = 0;
    admit(s, in, proved, &issue, &guest);
    if (taken_before(s, in, guest))
        return;
    keep_inbound(s, &in->msg, guest);
    s->st->cur.guest = guest;
    if (in->msg.mid != NULL && !is_greeting(in->msg.type)) {
        /* taken: acknowledged now, or, with --durable-delivery, once its
         * record is durable (keep_turn) */
        if (s->cfg->durable && s->st->cur.in_json != NULL)
            s->st->cur.ack_later = 1;
        else
            ack(s, in, 0, 0);
    }
    if (is_greeting(in->msg.type))
        greet(s, in, issue, guest);
    if (!s->st->waiting)
        run_bot(s, in);
}

static void on_claimed(int err, void *data)
{
    answer_session(data, AW_SESSION__CLAIMED, err);
}

/* The claim is answered while the turn waits for it: the turn goes on, with
 * the token if the claim is this session's. */
static void claim_answered(aw_session_t *s, int err)
{
    struct aw_session_state *st = s->st;
    st->waiting = 0;
    st->claim_waiting = 0;
    st->claim_gen++; /* the deadline no longer matters */
    if (err == AW_EEXIST) {
        st->known = 1; /* claimed before: trusted by id, without a token */
    } else if (err != 0) {
        aw_log(AW_LOG_WARN, "claim_failed",
               "the identity of a new user could not be claimed (%s): greeted without a token",
               aw_strerror(err));
    }
    continue_turn(s, err == 0);
}

/* The claim took longer than the store may (the store takes no writes): the
 * turn goes on without the token, as a user trusted by id, and the claim
 * stays in flight (claim_late). */
static void claim_overdue(aw_session_t *s)
{
    struct aw_session_state *st = s->st;
    aw_inbound_t *in = st->cur.in;
    st->waiting = 0;
    st->claim_waiting = 0;
    st->claim_late = 1;
    st->claimer = in->conn != NULL ? aw_conn_retain(in->conn) : NULL;
    aw_log(AW_LOG_INFO, "claim_slow",
           "the store has not taken a new user's identity claim yet: greeted without a token for now");
    continue_turn(s, 0);
}

/* A claim answered after its turn went on: when it is this session's, the
 * socket whose greeting made it gets the token now, in a session frame, and
 * sees the user's messages from then on. A webhook greeting has nowhere to
 * receive it. */
static void claim_answered_late(aw_session_t *s, int err)
{
    struct aw_session_state *st = s->st;
    aw_conn_t *c = st->claimer;
    st->claim_late = 0;
    st->claimer = NULL;
    if (err == 0 || err == AW_EEXIST)
        st->known = 1;
    conn_ent_t *e = c != NULL ? find_conn(s, c) : NULL;
    if (err == 0 && e != NULL) {
        char token[AW_TOKEN_LEN + 1];
        aw_identity_token(s->cfg->secret, s->cfg->secret_len, s->user, s->user_len, token);
        e->verified = 1;
        aw_buf_t *f = aw_frame_session(s->user, s->user_len, token, st->seq);
        c->send(c, f);
        aw_buf_release(f);
    }
    if (c != NULL)
        aw_conn_release(c);
}

/* A brand new user's token is issued only once the id's claim is durable in
 * the store: a token is HMAC(secret, id), the same each time, so an id that
 * looked new again later (its session freed, the server restarted, a second
 * node) would hand the same token to whoever greets next. The claim is
 * first-writer-wins in the store, so no two greetings ever both get it.
 * Returns 1 when the turn waits for the claim, 0 when there is no store to
 * claim in (the token is issued at once, as nothing outlives the process). */
static int claim(aw_session_t *s)
{
    struct aw_session_state *st = s->st;
    if (s->cfg->history == NULL)
        return 0;
    aw_actor_retain(&s->super);
    int err = aw_history_claim(s->cfg->history, s->user, s->user_len, on_claimed, s);
    if (err != 0) {
        aw_actor_release(&s->super);
        claim_answered(s, err);
        return 1;
    }
    st->waiting = 1;
    st->claim_waiting = 1;
    arm_timer(s, TIMER_CLAIM, ++st->claim_gen, s->cfg->claim_ms != 0 ? s->cfg->claim_ms : 5000);
    return 1;
}

static void start_turn(aw_session_t *s, aw_inbound_t *in)
{
    if (in->push != NULL) {
        s->st->cur.in = in;
        s->st->in_turn = 1;
        s->st->cur.replies = aw_alloc(sizeof(aw_reply_t *));
        s->st->cur.replies[0] = in->push;
        s->st->cur.n = 1;
        in->push = NULL;
        return;
    }
    int proved = 0;
    int err = check_token(s, in, &proved);
    proved |= in->trusted;
    if (err != 0) {
        if (in->conn != NULL) {
            aw_buf_t *f = aw_frame_error_mid(err, in->msg.mid, in->msg.mid_len);
            in->conn->send(in->conn, f);
            aw_buf_release(f);
        }
        if (in->sink != NULL)
            in->sink->complete(in->sink, NULL, 0, err);
        aw_msg_release(&in->super);
        return;
    }
    s->st->cur.in = in;
    s->st->in_turn = 1;
    /* While a claim whose turn stopped waiting is in flight, no greeting is
     * issued the token: the claim is the first greeting's. */
    int is_new = brand_new(s, in, proved) && !s->st->claim_late;
    if (is_new && claim(s))
        return; /* the turn goes on when the claim is answered */
    continue_turn(s, proved || is_new);
}

static void on_tail(int err, const aw_history_tail_t *tail, void *data)
{
    aw_session_t *s = data; /* history thread: hand the answer to the session */
    hist_msg_t *m = aw_calloc(1, sizeof(*m));
    m->super.type = AW_SESSION__LOADED;
    m->super.free = hist_msg_free;
    m->err = err;
    if (tail != NULL) {
        m->seq = tail->seq;
        m->sub = tail->sub;
        m->reserved = tail->reserved;
        m->flags = tail->flags;
        /* the tail's records are lent for the call: keep references */
        m->frames = aw_alloc((tail->n_recent + 1) * sizeof(*m->frames));
        for (size_t i = 0; i < tail->n_recent; i++)
            m->frames[i] = aw_buf_retain(tail->recent[i]);
        m->n = tail->n_recent;
        m->handoff = tail->handoff != NULL ? aw_buf_retain(tail->handoff) : NULL;
        m->handoff_known = tail->handoff_known;
    }
    if (aw_actor_send(&s->super, &m->super) != 0)
        aw_msg_release(&m->super);
    aw_actor_release(&s->super);
}

/* Asks the history where this user's numbering continues. Until it answers,
 * turns wait: a seq must never repeat, even across restarts. */
static void on_fenced(void *arg)
{
    aw_session_t *s = arg;
    aw_msg_t *m = aw_calloc(1, sizeof(*m));
    m->type = AW_SESSION__FENCED;
    if (aw_actor_send(&s->super, m) != 0)
        free(m);
    aw_actor_release(&s->super);
}

static void load(aw_session_t *s)
{
    struct aw_session_state *st = s->st;
    if (st->loading || st->fencing)
        return;
    /* set once by main, after the workers started (see aw_chat_config_t) */
    aw_fence_fn fence = __atomic_load_n(&s->cfg->fence, __ATOMIC_ACQUIRE);
    if (!st->fenced && fence != NULL) {
        /* the user's previous home lets go first (cluster/cluster.h) */
        st->fencing = 1;
        aw_actor_retain(&s->super);
        fence(s->cfg->fence_data, s->user, s->user_len, on_fenced, s);
        return;
    }
    if (s->cfg->history == NULL) {
        st->loaded = 1;
        return;
    }
    st->loading = 1;
    aw_actor_retain(&s->super);
    if (aw_history_tail(s->cfg->history, s->user, s->user_len, on_tail, s) != 0) {
        aw_actor_release(&s->super);
        st->loading = 0; /* stopping: nothing more will be stored */
    }
}

static int is_idle(const struct aw_session_state *st)
{
    return st->n_conns == 0 && !st->in_turn && st->q_head == NULL && st->n_later == 0 &&
           !aw_held_any(&st->held) && st->n_watchers == 0 && !st->ho_grace_armed;
}

/* An idle session is freed once it has stayed idle for idle_ms. A webhook
 * user falls idle after every turn: rather than a timer per turn (a message,
 * a heap entry and a delivery each), the session notes when it fell idle and
 * keeps at most one reap timer pending, which looks at that time when it
 * fires and sets itself again for what is left (on_timer). */
static void maybe_idle(aw_session_t *s)
{
    struct aw_session_state *st = s->st;
    if (!is_idle(st))
        return;
    st->idle_at = aw_now_ms();
    if (!st->reap_armed) {
        st->reap_armed = 1;
        arm_timer(s, TIMER_REAP, 0, s->cfg->idle_ms);
    }
}

/* Runs queued turns until one has to wait or none is left. */
static void pump(aw_session_t *s)
{
    struct aw_session_state *st = s->st;
    for (;;) {
        if (!st->loaded) {
            load(s);
            if (!st->loaded)
                return;
        }
        if (st->waiting || (st->in_turn && !advance(s)))
            return;
        if (st->q_head == NULL)
            break;
        aw_inbound_t *in = st->q_head;
        st->q_head = in->next;
        if (st->q_head == NULL)
            st->q_tail = NULL;
        if (in->handoff != NULL) { /* a console's or the API's request, in its turn (ho_handle) */
            ho_apply(s, in->handoff);
            in->handoff = NULL;
            aw_msg_release(&in->super);
            continue;
        }
        start_turn(s, in);
    }
    maybe_idle(s);
}

static void enqueue(aw_session_t *s, aw_inbound_t *in)
{
    struct aw_session_state *st = s->st;
    in->next = NULL;
    if (st->q_tail != NULL)
        st->q_tail->next = in;
    else
        st->q_head = in;
    st->q_tail = in;
}

/* Sends the delayed messages that are due (all of them at shutdown). */
static void send_later(aw_session_t *s)
{
    struct aw_session_state *st = s->st;
    uint64_t now = aw_now_ms();
    size_t kept = 0;
    if (st->waiting || !st->loaded) {
        arm_timer(s, TIMER_LATER, 0, 20); /* nothing may overtake a replay */
        return;
    }
    int blocked = 0; /* a message waits for a seq reservation: the ones after it wait too */
    for (size_t i = 0; i < st->n_later; i++) {
        int due = st->shutting_down || st->later[i].due_ms <= now;
        if (due && !blocked && !st->later[i].guest && !may_number(s))
            blocked = !st->numbering_stopped;
        if (due && !blocked) {
            /* The socket that asked gets it too, while it is still open, even
             * if it never proved the identity. */
            aw_conn_t *origin = st->later[i].origin;
            if (origin != NULL && find_conn(s, origin) == NULL)
                origin = NULL;
            /* a later message has only sockets to go to, whatever its turn's channel; once the
             * history has stopped, one that cannot be numbered is dropped */
            if (st->later[i].guest || may_number(s))
                aw_buf_release(
                    send_bot(s, origin, AW_CHANNEL_WEBSOCKET, st->later[i].reply, st->later[i].guest, 0));
            aw_reply_free(st->later[i].reply);
            aw_conn_release(st->later[i].origin);
        } else {
            st->later[kept++] = st->later[i];
        }
    }
    st->n_later = kept;
    if (blocked)
        arm_timer(s, TIMER_LATER, 0, 20);
}

static void on_timer(aw_session_t *s, timer_msg_t *t)
{
    struct aw_session_state *st = s->st;
    switch (t->kind) {
    case TIMER_STEP:
        if (st->in_turn && t->gen == st->step_gen)
            pump(s);
        break;
    case TIMER_LATER:
        send_later(s);
        maybe_idle(s);
        break;
    case TIMER_RESERVE:
        reserve_ahead(s, 0);
        pump(s);
        break;
    case TIMER_LOAD:
        pump(s);
        break;
    case TIMER_HANDOFF:
        ho_grace_over(s, t->gen);
        maybe_idle(s);
        break;
    case TIMER_CLAIM:
        if (t->gen == st->claim_gen && st->claim_waiting) {
            claim_overdue(s);
            pump(s);
        }
        break;
    case TIMER_REAP: {
        /* Busy since it fell idle (idle_at 0): the next maybe_idle sets a timer. */
        st->reap_armed = 0;
        if (st->idle_at == 0 || !is_idle(st))
            break;
        uint64_t now = aw_now_ms(), due = st->idle_at + s->cfg->idle_ms;
        if (now >= due) {
            aw_registry__reap(s->reg, s);
        } else {
            st->reap_armed = 1; /* busy and idle again meanwhile: the rest of its idle time */
            arm_timer(s, TIMER_REAP, 0, due - now);
        }
        break;
    }
    }
}

/* Adds the `mid` of a stored message of the person to the window. */
static void remember_mid(aw_session_t *s, const aw_buf_t *json)
{
    aw_json_arena_t *arena = NULL;
    yajl_val root = aw_json_parse_arena(json->data, json->len, &arena);
    int bad = 0;
    const char *mid = root != NULL && YAJL_IS_OBJECT(root) ? aw_json_get_string(root, "mid", &bad) : NULL;
    if (mid != NULL && !bad)
        aw_mid_window_add(&s->st->mids, mid, strlen(mid));
    aw_json_arena_free(arena);
}

static void on_loaded(aw_session_t *s, hist_msg_t *m)
{
    struct aw_session_state *st = s->st;
    st->loading = 0;
    if (m->err != 0) {
        /* the store is down: try again, with backoff, and keep the turns */
        st->load_backoff =
            st->load_backoff == 0 ? 100 : (st->load_backoff >= 2000 ? 2000 : st->load_backoff * 2);
        if (m->err != AW_ESTOPPED)
            arm_timer(s, TIMER_LOAD, 0, st->load_backoff);
        return;
    }
    if (m->seq > st->seq || (m->seq == st->seq && m->sub > st->sub)) {
        st->seq = m->seq;
        st->sub = m->sub;
    }
    st->known |= st->seq > 0 || st->sub > 0 || (m->flags & AW_TAIL_KNOWN);
    st->protected_id |= (m->flags & AW_TAIL_PROTECTED) != 0;
    st->reserved = m->reserved; /* where the store says this session may number up to */
    st->loaded = 1;
    ho_loaded(s, m->handoff, m->handoff_known);
    /* The ids of the person's newest messages, oldest first, so that a
     * message sent again after a restart is known as a duplicate. */
    for (size_t i = m->n; i-- > 0;)
        remember_mid(s, m->frames[i]);
    /* The first block, ahead of the first bot message: it goes with the
     * next batch, so that the first reply seldom waits for a write. */
    reserve_ahead(s, 1);
    pump(s);
}

static void on_bot(aw_session_t *s, hist_msg_t *m)
{
    struct aw_session_state *st = s->st;
    st->waiting = 0;
    st->cur.replies = m->replies;
    st->cur.n = m->n_replies;
    m->replies = NULL;
    m->n_replies = 0;
    pump(s);
}

static void on_replay(aw_session_t *s, hist_msg_t *m)
{
    struct aw_session_state *st = s->st;
    aw_inbound_t *in = st->cur.in;
    if (m->err == 0) {
        for (size_t i = 0; i < m->n; i++)
            in->conn->send(in->conn, m->frames[i]);
    } else {
        replay(s, in->conn, in->msg.last_seq); /* the store is down: what memory holds */
    }
    st->waiting = 0;
    run_bot(s, in);
    pump(s);
}

static void hist_msg_free(aw_msg_t *msg)
{
    hist_msg_t *m = (hist_msg_t *)msg;
    for (size_t i = 0; i < m->n_replies; i++)
        aw_reply_free(m->replies[i]);
    free(m->replies);
    for (size_t i = 0; i < m->n; i++)
        aw_buf_release(m->frames[i]);
    free(m->frames);
    aw_buf_release(m->handoff);
    free(m);
}

static void on_shutdown(aw_session_t *s)
{
    struct aw_session_state *st = s->st;
    st->shutting_down = 1;
    st->step_gen++; /* a pending pause no longer matters */
    send_later(s);
    pump(s);
}

/* Refuses a message over the user's rate: told to its socket or request,
 * counted, never stored nor shown to the bot. Returns 1 when refused. */
static int over_rate(aw_session_t *s, aw_inbound_t *in)
{
    struct aw_session_state *st = s->st;
    const aw_chat_config_t *cfg = s->cfg;
    if (cfg->rate <= 0 || in->push != NULL)
        return 0;
    uint64_t now = aw_now_ms();
    if (st->refilled_ms == 0)
        st->tokens = cfg->burst;
    else
        st->tokens += (double)(now - st->refilled_ms) * cfg->rate / 1000.0;
    if (st->tokens > cfg->burst)
        st->tokens = cfg->burst;
    st->refilled_ms = now;
    if (st->tokens >= 1.0) {
        st->tokens -= 1.0;
        return 0;
    }
    aw_metrics_count_error(AW_ERATELIMITED);
    aw_log(AW_LOG_DEBUG, "rate_limited", "a message of user %.*s was over the rate and dropped",
           (int)s->user_len, s->user);
    if (in->conn != NULL) {
        aw_buf_t *f = aw_frame_error_mid(AW_ERATELIMITED, in->msg.mid, in->msg.mid_len);
        in->conn->send(in->conn, f);
        aw_buf_release(f);
    }
    if (in->sink != NULL)
        in->sink->complete(in->sink, NULL, 0, AW_ERATELIMITED);
    return 1;
}

/* A session whose user moved to another node closes its sockets once it
 * owes them nothing more (turns, later messages, held frames): their
 * clients reconnect with last_seq and are served by the new home. The
 * registry has forgotten this session already, so it is freed once the
 * last message that holds it is handled. */
static void on_flushed(int err, const aw_history_page_t *page, void *data)
{
    (void)page;
    answer_session(data, AW_SESSION__FLUSHED, err);
}

/* Tells everyone waiting that the user is let go of. */
static void answer_releases(aw_session_t *s)
{
    struct aw_session_state *st = s->st;
    while (st->releases != NULL) {
        aw_release_t *r = st->releases;
        st->releases = r->next;
        r->done(r->arg);
        r->done = NULL;
        aw_msg_release(&r->super);
    }
}

static void ho_moved(aw_session_t *s);

static void shed_conns(aw_session_t *s)
{
    struct aw_session_state *st = s->st;
    if (!st->moved || st->in_turn || st->q_head != NULL || st->n_later != 0 || aw_held_any(&st->held))
        return;
    while (st->n_conns != 0) {
        aw_conn_t *c = st->conns[--st->n_conns].conn;
        c->close(c, 1012);
        aw_conn_release(c);
    }
    ho_moved(s);
    if (st->flushing)
        return;
    if (st->releases == NULL) {
        if (is_idle(st))
            aw_registry__reap(s->reg, s); /* nothing of the user is left here: no need to wait idle_ms */
        return;
    }
    /* Before the new home reads where this user's history ends, what this
     * session appended must be in the store: a read writes the records held
     * before it (aw_history_page), so one is made and its answer awaited. */
    st->flushing = 1;
    aw_actor_retain(&s->super);
    if (s->cfg->history == NULL || aw_history_page(s->cfg->history, s->user, s->user_len, INT64_MAX, 1,
                                                   AW_HISTORY_PAGE_LATEST, on_flushed, s) != 0) {
        aw_actor_release(&s->super);
        st->flushing = 0;
        answer_releases(s);
    }
}

static void handle(aw_actor_t *actor, aw_msg_t *msg)
{
    aw_session_t *s = (aw_session_t *)actor;
    /* Only what the registry routed counts as in flight (registry.c). */
    if (msg->type == AW_SESSION_INBOUND || msg->type == AW_SESSION_DETACH ||
        msg->type == AW_SESSION_SHUTDOWN || msg->type == AW_SESSION_MOVED ||
        msg->type == AW_SESSION_RELEASE || msg->type == AW_SESSION_HANDOFF)
        __atomic_sub_fetch(&s->inflight, 1, __ATOMIC_ACQ_REL);
    switch (msg->type) {
    case AW_SESSION_INBOUND:
        if (over_rate(s, (aw_inbound_t *)msg))
            break;
        s->st->idle_at = 0; /* a pending reap timer no longer counts */
        enqueue(s, (aw_inbound_t *)msg);
        pump(s);
        shed_conns(s);
        return; /* the turn owns the message */
    case AW_SESSION_DETACH:
        detach(s, ((aw_inbound_t *)msg)->conn);
        maybe_idle(s);
        break;
    case AW_SESSION_SHUTDOWN:
        on_shutdown(s);
        break;
    case AW_SESSION_MOVED:
        s->st->moved = 1;
        break;
    case AW_SESSION_RELEASE: {
        aw_release_t *r = (aw_release_t *)msg;
        s->st->moved = 1;
        r->next = s->st->releases;
        s->st->releases = r;
        shed_conns(s);
        return; /* kept until answered */
    }
    case AW_SESSION__FENCED:
        s->st->fencing = 0;
        s->st->fenced = 1;
        pump(s);
        break;
    case AW_SESSION__FLUSHED:
        s->st->flushing = 0;
        answer_releases(s);
        break;
    case AW_SESSION__TIMER:
        on_timer(s, (timer_msg_t *)msg);
        break;
    case AW_SESSION__LOADED:
        on_loaded(s, (hist_msg_t *)msg);
        break;
    case AW_SESSION__REPLAY:
        on_replay(s, (hist_msg_t *)msg);
        break;
    case AW_SESSION__BOT:
        on_bot(s, (hist_msg_t *)msg);
        break;
    case AW_SESSION__RESERVED:
        reserve_answered(s, ((hist_msg_t *)msg)->err);
        pump(s);
        send_later(s);
        break;
    case AW_SESSION__DURABLE:
        s->st->durable++; /* answered in the order appended */
        release_held(s);
        maybe_idle(s);
        break;
    case AW_SESSION_HANDOFF:
        ho_handle(s, (aw_handoff_msg_t *)msg);
        maybe_idle(s);
        return; /* ho_handle disposes of the message */
    case AW_SESSION__CLAIMED:
        if (s->st->claim_waiting)
            claim_answered(s, ((hist_msg_t *)msg)->err);
        else
            claim_answered_late(s, ((hist_msg_t *)msg)->err);
        pump(s);
        break;
    }
    shed_conns(s);
    aw_msg_release(msg);
}

static void drop_queue(struct aw_session_state *st)
{
    while (st->q_head != NULL) {
        aw_inbound_t *in = st->q_head;
        st->q_head = in->next;
        aw_msg_release(&in->super);
    }
}

static void dispose(aw_actor_t *actor)
{
    aw_session_t *s = (aw_session_t *)actor;
    struct aw_session_state *st = s->st;
    if (st->in_turn)
        end_turn(s);
    drop_queue(st);
    answer_releases(s); /* nothing of the user is left here */
    aw_held_clear(&st->held);
    aw_mid_window_clear(&st->mids);
    for (size_t i = 0; i < st->n_conns; i++)
        aw_conn_release(st->conns[i].conn);
    if (st->claimer != NULL)
        aw_conn_release(st->claimer);
    for (unsigned int i = 0; i < st->recent_n; i++)
        aw_buf_release(st->recent[(st->recent_head + i) % st->recent_cap]);
    for (size_t i = 0; i < st->n_later; i++) {
        aw_reply_free(st->later[i].reply);
        aw_conn_release(st->later[i].origin);
    }
    free(st->later);
    free(st->recent);
    free(st->recent_seq);
    free(st->conns);
    aw_vars__clear(&st->vars);
    aw_vars__clear(&st->guest_vars);
    ho_dispose(s);
    free(st);
    free(s->user);
    free(s);
}

aw_session_t *aw_session__new(struct aw_registry *reg, aw_runtime_t *rt, const aw_chat_config_t *cfg,
                              const char *user, size_t user_len, uint64_t hash)
{
    aw_session_t *s = aw_calloc(1, sizeof(*s));
    aw_actor_init(&s->super, rt, handle, dispose);
    s->reg = reg;
    s->cfg = cfg;
    s->hash = hash;
    s->user = aw_strndup(user, user_len);
    s->user_len = user_len;
    s->st = aw_calloc(1, sizeof(*s->st));
    if (cfg->desk != NULL)
        aw_desk_get(cfg->desk, user, user_len, &s->st->ho); /* the desk was read from the store at start */
    return s;
}

/* --- handoff: a person answers instead of the bot (handoff.h) ---
 *
 * The state lives here, in the user's session, so that whatever asks for a
 * change (the bot's turn, an operator's console, the API) is ordered by one
 * mailbox: two operators who take the same conversation at once are two
 * messages, and the second finds it owned. Every change is kept as a
 * handoff record through the history (at the key a message of the person
 * would take next) and told to the desk, which shows it to the consoles.
 * An operator's message is a bot message like a push: numbered, kept, sent
 * to every verified socket, with the operator's name. */

#define AW_HANDOFF_PAGE 50 /* history records a console is sent at a time */

static void ho_audit(aw_session_t *s, const char *op, const char *action)
{
    aw_log(AW_LOG_NOTICE, "audit", "operator %s %s (user %.*s)", op != NULL && op[0] != '\0' ? op : "(api)",
           action, (int)s->user_len, s->user);
}

/* Keeps the state as a record and shows it to the consoles. */
static void ho_keep(aw_session_t *s)
{
    struct aw_session_state *st = s->st;
    if (s->cfg->history != NULL) {
        aw_buf_t *json = aw_handoff_write(&st->ho);
        aw_history_item_t item = {st->seq, ++st->sub, wall_ms(), AW_RECORD_IN, AW_RECORD_HANDOFF, json};
        keep_group(s, &item, 1);
        aw_buf_release(json);
    }
    if (s->cfg->desk != NULL)
        aw_desk_set(s->cfg->desk, s->user, s->user_len, &st->ho);
}

/* Sends `frame` to the consoles watching; forgets those that have closed. */
static void ho_show(aw_session_t *s, aw_buf_t *frame)
{
    struct aw_session_state *st = s->st;
    for (size_t i = 0; i < st->n_watchers;) {
        aw_conn_t *c = st->watchers[i];
        if (__atomic_load_n(&c->closed, __ATOMIC_ACQUIRE)) {
            st->watchers[i] = st->watchers[--st->n_watchers];
            aw_conn_release(c);
            continue;
        }
        c->send(c, frame);
        i++;
    }
}

static void ho_watch(aw_session_t *s, aw_conn_t *c, int on)
{
    struct aw_session_state *st = s->st;
    for (size_t i = 0; i < st->n_watchers; i++) {
        if (st->watchers[i] == c) {
            if (!on) {
                st->watchers[i] = st->watchers[--st->n_watchers];
                aw_conn_release(c);
            }
            return;
        }
    }
    if (on && !__atomic_load_n(&c->closed, __ATOMIC_ACQUIRE)) {
        st->watchers = aw_realloc(st->watchers, (st->n_watchers + 1) * sizeof(*st->watchers));
        st->watchers[st->n_watchers++] = aw_conn_retain(c);
    }
}

/* Answers the console that asked, if any. */
static void ho_answer(aw_session_t *s, aw_handoff_msg_t *m, const char *type, const char *op,
                      const char *code)
{
    if (m->console == NULL)
        return;
    aw_buf_t *f = aw_handoff_frame(type, s->user, s->user_len, op, code);
    m->console->send(m->console, f);
    aw_buf_release(f);
}

/* Queues a message of the operator's side as a turn of its own, so that it
 * is numbered in order with everything else the user is sent. */
static void ho_say(aw_session_t *s, const char *text, const char *op, const char *event)
{
    if (text == NULL || text[0] == '\0')
        return;
    aw_reply_t *r = aw_reply_new(text);
    aw_reply_set_operator(r, op, event);
    enqueue(s, aw_push_new(r, NULL));
}

/* Tells the bot that it has the conversation again: the event handoff_end,
 * run as a turn of the user's that needs no token (the server's own). */
static void ho_tell_bot(aw_session_t *s, const char *op)
{
    aw_buf_t *json = aw_handoff_frame("handoff_end", s->user, s->user_len, op, NULL);
    aw_message_t msg;
    if (aw_message_parse(&msg, json->data, json->len) == 0) {
        aw_inbound_t *in = aw_inbound_new(&msg, NULL, NULL, AW_CHANNEL_PUSH);
        in->trusted = 1;
        enqueue(s, in);
    }
    aw_buf_release(json);
}

static void ho_request(aw_session_t *s, const char *reason)
{
    if (!aw_handoff_request(&s->st->ho, reason, wall_ms()))
        return;
    ho_keep(s);
    AW_METRIC_INC(handoffs_requested);
    aw_log(AW_LOG_NOTICE, "handoff", "user %.*s waits for a person", (int)s->user_len, s->user);
}

/* Shows the person's messages to the consoles watching, and keeps them from
 * the bot while a person has the conversation. Returns 1 when the bot is
 * not to run. */
static int ho_intercept(aw_session_t *s, aw_inbound_t *in)
{
    struct aw_session_state *st = s->st;
    if (st->cur.guest || in->trusted)
        return 0;
    int is_message = strcmp(in->msg.type, "message") == 0;
    if (st->n_watchers != 0 && (is_message || strcmp(in->msg.type, "typing") == 0)) {
        aw_buf_t *f = is_message ? aw_message_write(&in->msg, "message_received", wall_ms(), -1)
                                 : aw_handoff_frame("typing", s->user, s->user_len, NULL, NULL);
        ho_show(s, f);
        aw_buf_release(f);
    }
    if (st->ho.state == AW_HANDOFF_BOT)
        return 0;
    keep_turn(s, NULL); /* no reply of the bot's will carry the person's record */
    return 1;
}

/* The store says who answers the user (the desk said it when the session
 * was made, as this node saw it): the store wins, since the session may
 * have lived on another node, and the desk learns it. */
static void ho_loaded(aw_session_t *s, const aw_buf_t *record, int known)
{
    struct aw_session_state *st = s->st;
    aw_handoff_t h = {0};
    if (!known || (record != NULL && aw_handoff_parse(&h, record->data, record->len) != 0))
        return; /* the store could not tell, or the record is not one this server reads: the desk's view */
    if (memcmp(&h, &st->ho, sizeof(h)) == 0)
        return;
    st->ho = h;
    if (s->cfg->desk != NULL)
        aw_desk_set(s->cfg->desk, s->user, s->user_len, &st->ho);
}

static void ho_grace_cancel(aw_session_t *s)
{
    s->st->ho_grace_gen++;
    s->st->ho_grace_armed = 0;
}

static void ho_take(aw_session_t *s, aw_handoff_msg_t *m)
{
    struct aw_session_state *st = s->st;
    int rc = aw_handoff_take(&st->ho, m->operator_name, wall_ms());
    if (rc == AW_EEXIST) {
        ho_answer(s, m, "error", st->ho.operator_name, "taken");
        return;
    }
    if (m->console != NULL)
        ho_watch(s, m->console, 1);
    ho_grace_cancel(s);
    if (rc == 1) {
        ho_keep(s);
        AW_METRIC_INC(handoffs_taken);
        ho_audit(s, m->operator_name, "took over");
        ho_say(s, s->cfg->handoff_joined, m->operator_name, "joined");
    }
    ho_answer(s, m, "taken", m->operator_name, NULL);
}

static void ho_send(aw_session_t *s, aw_handoff_msg_t *m)
{
    struct aw_session_state *st = s->st;
    if (st->ho.state != AW_HANDOFF_OWNED || strcmp(st->ho.operator_name, m->operator_name) != 0) {
        ho_answer(s, m, "error", NULL, "not_owner");
        return;
    }
    int64_t waited;
    if (aw_handoff_answered(&st->ho, wall_ms(), &waited)) {
        ho_keep(s);
        aw_metrics_first_answer((uint64_t)waited);
    }
    aw_reply_t *r = aw_reply_new(m->text);
    aw_reply_set_operator(r, m->operator_name, NULL);
    enqueue(s, aw_push_new(r, NULL));
    ho_audit(s, m->operator_name, "sent a message");
}

static void ho_release(aw_session_t *s, aw_handoff_msg_t *m)
{
    struct aw_session_state *st = s->st;
    char owner[AW_OPERATOR_NAME_MAX + 1];
    int was_owned = st->ho.state == AW_HANDOFF_OWNED;
    memcpy(owner, st->ho.operator_name, sizeof(owner));
    int rc = aw_handoff_release(&st->ho, m->operator_name[0] != '\0' ? m->operator_name : NULL);
    if (rc != 0) {
        ho_answer(s, m, "error", rc == AW_EEXIST ? owner : NULL,
                  rc == AW_EEXIST ? "taken" : "not_in_handoff");
        return;
    }
    ho_grace_cancel(s);
    ho_keep(s);
    AW_METRIC_INC(handoffs_released);
    ho_audit(s, m->operator_name, "handed back to the bot");
    if (was_owned)
        ho_say(s, s->cfg->handoff_ended, owner, "ended");
    ho_tell_bot(s, was_owned ? owner : NULL);
    ho_answer(s, m, "released", NULL, NULL);
}

/* The owner closed their last console: the conversation is theirs for the
 * grace period, then waits again unless they are back (ho_grace_over). */
static void ho_gone(aw_session_t *s, aw_handoff_msg_t *m)
{
    struct aw_session_state *st = s->st;
    if (st->ho.state != AW_HANDOFF_OWNED ||
        (m->operator_name[0] != '\0' && strcmp(st->ho.operator_name, m->operator_name) != 0))
        return; /* "": whoever owns it (a start, when no console is open yet) */
    st->ho_grace_armed = 1;
    arm_timer(s, TIMER_HANDOFF, ++st->ho_grace_gen,
              s->cfg->handoff_grace_ms != 0 ? s->cfg->handoff_grace_ms : 60000);
}

static void ho_grace_over(aw_session_t *s, uint64_t gen)
{
    struct aw_session_state *st = s->st;
    if (gen != st->ho_grace_gen || !st->ho_grace_armed)
        return;
    st->ho_grace_armed = 0;
    char owner[AW_OPERATOR_NAME_MAX + 1];
    memcpy(owner, st->ho.operator_name, sizeof(owner));
    if (s->cfg->desk != NULL && aw_desk_online(s->cfg->desk, owner))
        return; /* back meanwhile */
    if (aw_handoff_abandon(&st->ho, owner)) {
        ho_keep(s);
        ho_audit(s, owner, "was away past the grace period: the conversation waits again");
    }
}

static void ho_apply(aw_session_t *s, aw_handoff_msg_t *m)
{
    switch (m->op) {
    case AW_HANDOFF_OP_REQUEST:
        ho_request(s, m->text);
        break;
    case AW_HANDOFF_OP_TAKE:
        ho_take(s, m);
        break;
    case AW_HANDOFF_OP_SEND:
        ho_send(s, m);
        break;
    case AW_HANDOFF_OP_TYPING:
        if (s->st->ho.state == AW_HANDOFF_OWNED && strcmp(s->st->ho.operator_name, m->operator_name) == 0) {
            aw_buf_t *f = aw_handoff_frame("typing", s->user, s->user_len, m->operator_name, NULL);
            fanout(s, NULL, f);
            aw_buf_release(f);
        }
        break;
    case AW_HANDOFF_OP_RELEASE:
        ho_release(s, m);
        break;
    case AW_HANDOFF_OP_WATCH:
        /* The page is asked for after every record this session appended
         * so far, and the console sees every later message live: the two
         * neither overlap nor leave a gap. */
        if (m->console != NULL) {
            ho_watch(s, m->console, 1);
            if (s->cfg->history != NULL && aw_handoff_send_page(s->cfg->history, s->user, s->user_len,
                                                                INT64_MAX, AW_HANDOFF_PAGE, m->console) != 0)
                ho_answer(s, m, "error", NULL, "unavailable");
        }
        break;
    case AW_HANDOFF_OP_UNWATCH:
        if (m->console != NULL)
            ho_watch(s, m->console, 0);
        break;
    case AW_HANDOFF_OP_GONE:
        ho_gone(s, m);
        break;
    case AW_HANDOFF_OP_AWAY:
        if (!s->st->ho_grace_armed)
            ho_gone(s, m);
        break;
    }
    aw_msg_release(&m->super);
}

/* A change of the conversation takes its turn after the user's messages
 * that came before it, so that one sent before a hand back is still the
 * person's to read, and one sent before a take over the bot's to answer;
 * and it waits until the session knows where the user's numbering goes on,
 * as its record takes the next key. So it joins the queue of turns unless
 * nothing is in it. Watching and typing change nothing: at once. */
static void ho_handle(aw_session_t *s, aw_handoff_msg_t *m)
{
    struct aw_session_state *st = s->st;
    int at_once =
        m->op == AW_HANDOFF_OP_WATCH || m->op == AW_HANDOFF_OP_UNWATCH || m->op == AW_HANDOFF_OP_TYPING;
    if (at_once || (st->loaded && !st->in_turn && !st->waiting && st->q_head == NULL)) {
        ho_apply(s, m);
        pump(s);
        return;
    }
    aw_message_t empty = {0};
    aw_inbound_t *in = aw_inbound_new(&empty, NULL, NULL, AW_CHANNEL_PUSH);
    in->handoff = m;
    enqueue(s, in);
    pump(s);
}

/* The user lives on another node now: the consoles watching open the
 * conversation again, which reaches the new home, and the grace period of
 * an owner away is the new home's to keep (cluster.c starts it there). */
static void ho_moved(aw_session_t *s)
{
    struct aw_session_state *st = s->st;
    if (st->n_watchers != 0) {
        aw_buf_t *f = aw_handoff_frame("moved", s->user, s->user_len, NULL, NULL);
        while (st->n_watchers != 0) {
            aw_conn_t *c = st->watchers[--st->n_watchers];
            if (!__atomic_load_n(&c->closed, __ATOMIC_ACQUIRE))
                c->send(c, f);
            aw_conn_release(c);
        }
        aw_buf_release(f);
    }
    if (st->ho_grace_armed)
        ho_grace_cancel(s);
}

static void ho_dispose(aw_session_t *s)
{
    struct aw_session_state *st = s->st;
    for (size_t i = 0; i < st->n_watchers; i++)
        aw_conn_release(st->watchers[i]);
    free(st->watchers);
}

/* --- messages to sessions --- */

static void inbound_free(aw_msg_t *m)
{
    aw_inbound_t *in = (aw_inbound_t *)m;
    aw_reply_free(in->push);
    if (in->handoff != NULL)
        aw_msg_release(&in->handoff->super);
    aw_message_dispose(&in->msg);
    if (in->conn != NULL && in->super.type == AW_SESSION_INBOUND)
        __atomic_sub_fetch(&in->conn->held, 1, __ATOMIC_RELEASE);
    if (in->conn != NULL)
        aw_conn_release(in->conn);
    if (in->sink != NULL)
        aw_sink_release(in->sink);
    free(in);
}

aw_inbound_t *aw_inbound_new(aw_message_t *msg, aw_conn_t *conn, aw_sink_t *sink, aw_channel_t channel)
{
    aw_inbound_t *in = aw_calloc(1, sizeof(*in));
    in->super.type = AW_SESSION_INBOUND;
    in->super.free = inbound_free;
    in->msg = *msg;
    memset(msg, 0, sizeof(*msg));
    in->conn = conn != NULL ? aw_conn_retain(conn) : NULL;
    if (conn != NULL)
        __atomic_add_fetch(&conn->held, 1, __ATOMIC_RELAXED);
    in->sink = sink != NULL ? aw_sink_retain(sink) : NULL;
    in->channel = channel;
    return in;
}

static void inbound_free_in_sink(aw_msg_t *m)
{
    aw_sink_release(((aw_inbound_t *)m)->sink); /* the memory, and the message, are the sink's */
}

void aw_inbound_init_in_sink(aw_inbound_t *in, const aw_message_t *msg, aw_sink_t *sink, aw_channel_t channel)
{
    memset(in, 0, sizeof(*in));
    in->super.type = AW_SESSION_INBOUND;
    in->super.free = inbound_free_in_sink;
    in->msg = *msg;
    in->sink = aw_sink_retain(sink);
    in->channel = channel;
}

aw_inbound_t *aw_push_new(aw_reply_t *reply, aw_sink_t *sink)
{
    aw_message_t empty = {0};
    aw_inbound_t *in = aw_inbound_new(&empty, NULL, sink, AW_CHANNEL_PUSH);
    in->push = reply;
    return in;
}

static void handoff_msg_free(aw_msg_t *msg)
{
    aw_handoff_msg_t *m = (aw_handoff_msg_t *)msg;
    aw_conn_release(m->console);
    free(m->text);
    free(m);
}

aw_handoff_msg_t *aw_handoff_msg_new(int op, const char *name, aw_conn_t *console, const char *text)
{
    aw_handoff_msg_t *m = aw_calloc(1, sizeof(*m));
    m->super.type = AW_SESSION_HANDOFF;
    m->super.free = handoff_msg_free;
    m->op = op;
    snprintf(m->operator_name, sizeof(m->operator_name), "%s", name != NULL ? name : "");
    m->console = console != NULL ? aw_conn_retain(console) : NULL;
    m->text = text != NULL ? aw_strndup(text, strlen(text)) : NULL;
    return m;
}

aw_msg_t *aw_detach_new(aw_conn_t *conn)
{
    aw_inbound_t *in = aw_calloc(1, sizeof(*in));
    in->super.type = AW_SESSION_DETACH;
    in->super.free = inbound_free;
    in->conn = aw_conn_retain(conn);
    return &in->super;
}

static void release_free(aw_msg_t *m)
{
    aw_release_t *r = (aw_release_t *)m;
    if (r->done != NULL) /* discarded unanswered: a stopped runtime lets go of everything */
        r->done(r->arg);
    free(r);
}

aw_release_t *aw_release_new(void (*done)(void *arg), void *arg)
{
    aw_release_t *r = aw_calloc(1, sizeof(*r));
    r->super.type = AW_SESSION_RELEASE;
    r->super.free = release_free;
    r->done = done;
    r->arg = arg;
    return r;
}

aw_msg_t *aw_moved_msg_new(void)
{
    aw_msg_t *m = aw_calloc(1, sizeof(*m));
    m->type = AW_SESSION_MOVED;
    return m;
}

aw_msg_t *aw_shutdown_msg_new(void)
{
    aw_msg_t *m = aw_calloc(1, sizeof(*m));
    m->type = AW_SESSION_SHUTDOWN;
    return m;
}
