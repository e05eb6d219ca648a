/*
 * Identity tokens with OpenSSL's HMAC-SHA256, and the secret file that keeps
 * them valid across restarts when the operator sets no secret of their own.
 */
#include "actors/identity.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include "runtime/log.h"
#include "runtime/error.h"

void aw_identity_token(const unsigned char *secret, size_t secret_len, const char *user, size_t user_len,
                       char out[AW_TOKEN_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    HMAC(EVP_sha256(), secret, (int)secret_len, (const unsigned char *)user, user_len, mac, &mac_len);
    for (unsigned int i = 0; i < mac_len && i < AW_TOKEN_LEN / 2; i++) {
        out[2 * i] = hex[mac[i] >> 4];
        out[2 * i + 1] = hex[mac[i] & 15];
    }
    out[AW_TOKEN_LEN] = '\0';
}

int aw_identity_verify(const unsigned char *secret, size_t secret_len, const char *user, size_t user_len,
                       const char *token)
{
    char want[AW_TOKEN_LEN + 1];
    if (token == NULL || strlen(token) != AW_TOKEN_LEN)
        return 0;
    aw_identity_token(secret, secret_len, user, user_len, want);
    return CRYPTO_memcmp(want, token, AW_TOKEN_LEN) == 0;
}

static int make_secret(const char *path, unsigned char *secret, size_t *len)
{
    unsigned char raw[32];
    static const char hex[] = "0123456789abcdef";
    if (RAND_bytes(raw, sizeof(raw)) != 1) {
        aw_log(AW_LOG_ERROR, "secret", "cannot generate a secret");
        return AW_EIO;
    }
    for (size_t i = 0; i < sizeof(raw); i++) {
        secret[2 * i] = hex[raw[i] >> 4];
        secret[2 * i + 1] = hex[raw[i] & 15];
    }
    *len = 2 * sizeof(raw);
    /* Written whole beside it, then linked into place: link() fails if
     * another process made the file first, and a reader never sees it empty
     * or half written (O_EXCL on the file itself did let a second loader
     * read it between its creation and the write). */
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof(tmp), "%s.XXXXXX", path);
    int fd = mkstemp(tmp); /* mode 0600, a name of its own per caller */
    if (fd < 0)
        return AW_EIO;
    int ok = write(fd, secret, *len) == (ssize_t)*len;
    ok = (fsync(fd) == 0) && ok;
    close(fd);
    int linked = ok ? link(tmp, path) : -1, e = errno;
    unlink(tmp);
    if (linked == 0)
        return 0;
    if (ok && e == EEXIST)
        return 1; /* another process made it first: read theirs */
    errno = e;
    return AW_EIO;
}

int aw_identity_load_secret(const char *path, unsigned char *secret, size_t *len)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        int fd = open(path, O_RDONLY);
        if (fd >= 0) {
            ssize_t n = read(fd, secret, AW_SECRET_MAX);
            close(fd);
            while (n > 0 && (secret[n - 1] == '\n' || secret[n - 1] == '\r'))
                n--;
            if (n <= 0) {
                aw_log(AW_LOG_ERROR, "secret", "the secret file %s is empty or unreadable", path);
                return AW_EIO;
            }
            *len = (size_t)n;
            return 0;
        }
        if (errno != ENOENT)
            break;
        int r = make_secret(path, secret, len);
        if (r == 0)
            return 0;
        if (r < 0)
            break;
        /* another process created it first: read theirs */
    }
    aw_log(AW_LOG_ERROR, "secret", "cannot read or create the secret file %s: %s", path, strerror(errno));
    return AW_EIO;
}
