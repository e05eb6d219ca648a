/*
 * Signed identities (docs/design.md, "Identity and history"): a user's token is the
 * lowercase hex of HMAC-SHA256(secret, user id). A site's backend that knows
 * the secret computes the same token for its own users. Pure functions: any
 * thread.
 */
#ifndef AW_ACTORS_IDENTITY_H
#define AW_ACTORS_IDENTITY_H

#include <stddef.h>

#define AW_TOKEN_LEN 64   /* hex characters of a token */
#define AW_SECRET_MAX 256 /* bytes of a secret */

/* Writes the token of `user` and a NUL into `out`. */
void aw_identity_token(const unsigned char *secret, size_t secret_len, const char *user, size_t user_len,
                       char out[AW_TOKEN_LEN + 1]);

/* Returns 1 when `token` (NUL-terminated) is the token of `user`, comparing in
 * constant time; 0 otherwise. */
int aw_identity_verify(const unsigned char *secret, size_t secret_len, const char *user, size_t user_len,
                       const char *token);

/* Loads the secret kept in `path`, or makes a random one and writes it there
 * with mode 0600 when the file does not exist. Returns the secret's length in
 * `*len`, and 0, or AW_EIO with a message on stderr. */
int aw_identity_load_secret(const char *path, unsigned char *secret, size_t *len);

#endif
