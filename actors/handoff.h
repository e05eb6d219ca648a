/*
 * Who answers a user: the bot, or a person. A conversation the bot hands
 * over (or a site's backend puts in the queue) waits for an operator; an
 * operator takes it over and owns it, alone, until handing it back or
 * leaving for longer than the grace period, when it waits again. This is
 * the state machine and its record: the user's session holds one (so
 * ownership lives where the user's turns are ordered, and two operators
 * racing for one conversation are decided by the order of its mailbox),
 * keeps every change as a handoff record (store.h, AW_RECORD_HANDOFF) and
 * tells the desk (desk.h), which lists them for the consoles. Pure
 * functions on a struct the caller owns: any thread, one at a time per
 * struct.
 */
#ifndef AW_ACTORS_HANDOFF_H
#define AW_ACTORS_HANDOFF_H

#include <stddef.h>
#include <stdint.h>
#include "actors/conn.h"
#include "actors/history.h"
#include "runtime/buf.h"

#define AW_OPERATOR_NAME_MAX 64   /* bytes of an operator's name: [A-Za-z0-9._-] */
#define AW_HANDOFF_REASON_MAX 200 /* bytes of a reason kept; a longer one is cut at a character */

enum {
    AW_HANDOFF_BOT = 0, /* the bot answers */
    AW_HANDOFF_WAITING, /* the bot gave up: the user waits for a person */
    AW_HANDOFF_OWNED,   /* an operator answers */
};

typedef struct aw_handoff {
    int state;                                    /* AW_HANDOFF_... */
    char reason[AW_HANDOFF_REASON_MAX + 1];       /* why the user waits (WAITING, OWNED), or "" */
    char operator_name[AW_OPERATOR_NAME_MAX + 1]; /* OWNED: who owns it */
    int64_t since_ms;                             /* WAITING, OWNED: when the user began to wait */
    int64_t owned_ms;                             /* OWNED: when the operator took it */
    int answered;                                 /* OWNED: the operator has said something */
} aw_handoff_t;

/* The name of a state, as records and the consoles' frames carry it:
 * "bot", "waiting", "owned". */
const char *aw_handoff_state_name(int state);

/* Whether `name` (`len` bytes) may be an operator's: 1..AW_OPERATOR_NAME_MAX
 * of [A-Za-z0-9._-]. */
int aw_operator_name_valid(const char *name, size_t len);

/* The bot (or a backend) asks for a person, for `reason` (may be NULL;
 * copied, cut to AW_HANDOFF_REASON_MAX at a UTF-8 character). Returns 1
 * when the user now waits, 0 when a person was already asked for or has
 * the conversation (nothing changes). */
int aw_handoff_request(aw_handoff_t *h, const char *reason, int64_t now_ms);

/* Operator `op` takes the conversation over, waiting or not. Returns 1 when
 * `op` owns it now and did not before, 0 when `op` owned it already, and
 * AW_EEXIST when another operator owns it (nothing changes). */
int aw_handoff_take(aw_handoff_t *h, const char *op, int64_t now_ms);

/* Hands the conversation back to the bot. `op` NULL: whoever asks may (a
 * site's backend); otherwise only the owner may, or any operator while it
 * only waits. Returns 0, AW_ENOTFOUND when the bot has it already, or
 * AW_EEXIST when another operator owns it. */
int aw_handoff_release(aw_handoff_t *h, const char *op);

/* The owner `op` has left for longer than the grace period: the user waits
 * again, since when they first waited. Returns 1 when it changed. */
int aw_handoff_abandon(aw_handoff_t *h, const char *op);

/* The owner has said something. Returns 1 the first time of an ownership,
 * with how long the user waited for it in `*waited_ms`. */
int aw_handoff_answered(aw_handoff_t *h, int64_t now_ms, int64_t *waited_ms);

/* The record of the state: {"type":"handoff","state":...,"reason":...,
 * "operator":...,"since":...,"owned":...,"answered":...}. The caller
 * releases it. */
aw_buf_t *aw_handoff_write(const aw_handoff_t *h);

/* A frame for an operator's console: {"type": type, "user": user} with
 * "operator" and "code" when they are not NULL. The caller releases it. */
aw_buf_t *aw_handoff_frame(const char *type, const char *user, size_t user_len, const char *op,
                           const char *code);

/* Reads a page of `user`'s history (aw_history_page, cut before bot message
 * `before`, INT64_MAX for the newest) and sends it to the console `to` as
 * {"type":"history","user":...,"records":[...],"more":...,"before":...}, or
 * with "error":"unavailable" when the store cannot be read. Holds a
 * reference to `to` until then. Returns 0, or AW_ESTOPPED (nothing is
 * sent). Any thread. */
int aw_handoff_send_page(aw_history_t *history, const char *user, size_t user_len, int64_t before,
                         size_t limit, aw_conn_t *to);

/* Reads a record written by aw_handoff_write. Returns 0, or AW_EBADJSON /
 * AW_EBADMSG leaving `h` in the bot's state. */
int aw_handoff_parse(aw_handoff_t *h, const char *json, size_t len);

#endif
