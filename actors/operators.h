/*
 * Operators: the people who may open the console (--operators FILE), their
 * sign-ins, and the brake on guessing their passwords. The file holds one
 * operator a line, `NAME:pbkdf2-sha256:ITERATIONS:SALT:HASH` (salt and hash
 * in lowercase hex; `#` starts a comment line), written by `anywhere
 * operator add NAME`. A password is never kept: PBKDF2-HMAC-SHA256 of it
 * with the line's salt must give the line's hash. A sign-in is an id, the
 * value of the console's cookie, signed with a key derived from the
 * identity secret, that names the operator until they sign out or it
 * expires, on every node that has the secret. Any thread: one lock, held
 * briefly.
 */
#ifndef AW_ACTORS_OPERATORS_H
#define AW_ACTORS_OPERATORS_H

#include <stddef.h>
#include <stdint.h>
#include "actors/handoff.h"

typedef struct aw_operators aw_operators_t;

#define AW_OPERATOR_SESSION_MAX (96 + AW_OPERATOR_NAME_MAX) /* characters of a sign-in id */
#define AW_OPERATOR_PASSWORD_MAX 1024                       /* bytes of a password */
#define AW_OPERATOR_ITERATIONS 100000                       /* PBKDF2 rounds of a new entry */
#define AW_OPERATOR_SESSION_MS 43200000u                    /* a sign-in lasts 12 hours */
#define AW_OPERATOR_FAILURES 5               /* failed sign-ins from one address before it must wait */
#define AW_OPERATOR_FAILURE_WINDOW_MS 60000u /* and how long the failures count */

/* Reads operators from `len` bytes of a file's text. Returns 0 with a new
 * set in `*ops` (empty for a file of comments only), or AW_EINVAL with a
 * sentence naming the line in `err`. Pure: any thread. */
int aw_operators_parse(const char *text, size_t len, aw_operators_t **ops, char *err, size_t err_size);

/* Reads the file at `path` as aw_operators_parse does; AW_EIO when it
 * cannot be read. */
int aw_operators_load(const char *path, aw_operators_t **ops, char *err, size_t err_size);

/* Frees the set and its sign-ins. */
void aw_operators_free(aw_operators_t *ops);

/* The number of operators. */
size_t aw_operators_count(const aw_operators_t *ops);

/* Whether `password` is operator `name`'s. Takes as long for a name that
 * does not exist, so that timing does not tell which names do. */
int aw_operators_check(const aw_operators_t *ops, const char *name, const char *password);

/* A line for the file: `name` with a new salt and the hash of `password`
 * (no newline). Returns 0, or AW_EINVAL for a name that may not be an
 * operator's or an empty or over-long password, AW_EIO without
 * randomness. */
int aw_operators_entry(const char *name, const char *password, char *line, size_t size);

/* Writes `name`'s entry into the file at `path`, replacing the line of the
 * same name if there is one, creating the file (mode 0600) if not; the
 * file is replaced whole, and synced. Returns 0, AW_EINVAL (as above, or
 * the file is not an operators file: `err` says why) or AW_EIO. */
int aw_operators_add(const char *path, const char *name, const char *password, char *err, size_t err_size);

/* Whether `key` (a client address) may try to sign in now: it has failed
 * fewer than AW_OPERATOR_FAILURES times in AW_OPERATOR_FAILURE_WINDOW_MS. */
int aw_operators_may_try(aw_operators_t *ops, const char *key, uint64_t now_ms);

/* Counts a failed sign-in of `key`. */
void aw_operators_failed(aw_operators_t *ops, const char *key, uint64_t now_ms);

/* Derives the key that signs the sign-ins from the identity secret, the
 * same on every node of a cluster (before any sign-in; without it, the
 * sign-ins of this process only hold). */
void aw_operators_set_key(aw_operators_t *ops, const unsigned char *secret, size_t len);

/* Signs operator `name` in: writes a new sign-in id (NUL-terminated, of
 * [0-9a-f] then the name) into `id`. Returns 0, or AW_EIO without
 * randomness. */
int aw_operators_sign_in(aw_operators_t *ops, const char *name, uint64_t now_ms,
                         char id[AW_OPERATOR_SESSION_MAX + 1]);

/* The operator whose sign-in `id` (`len` bytes) is, copied into `name`;
 * returns 1, or 0 for one that is not signed with the key, expired, made
 * before the operator signed out or before the epoch, or of an operator no
 * longer in the file. */
int aw_operators_session(aw_operators_t *ops, const char *id, size_t len, uint64_t now_ms,
                         char name[AW_OPERATOR_NAME_MAX + 1]);

/* Signs out the operator whose sign-in `id` is: none of their sign-ins made
 * until now holds any more, on any device. Returns 1 with their name, or 0
 * when `id` is no sign-in. */
int aw_operators_sign_out(aw_operators_t *ops, const char *id, size_t len, uint64_t now_ms,
                          char name[AW_OPERATOR_NAME_MAX + 1]);

/* Another node says operator `name` signed out at `at_ms`. */
void aw_operators_signed_out(aw_operators_t *ops, const char *name, size_t len, uint64_t at_ms);

/* No sign-in made before `at_ms` holds (a start; the later of two wins). */
void aw_operators_set_epoch(aw_operators_t *ops, uint64_t at_ms);
uint64_t aw_operators_epoch(aw_operators_t *ops);

/* The sign-outs of the last AW_OPERATOR_SESSION_MS, one "NAME MS\n" line
 * each, for the other nodes. The caller frees it. */
char *aw_operators_sign_outs(aw_operators_t *ops, uint64_t now_ms);

#endif
