/*
 * Operators (operators.h): the file's parser and writer, PBKDF2 with
 * OpenSSL, the sign-ins, and the failed sign-ins in a small array under one
 * mutex. A sign-in is signed, not stored: 64 hex digits of
 * HMAC-SHA256(key, the rest), then 16 of the time it was made, 16 random
 * ones, and the operator's name. The key comes from the identity secret,
 * so every node of a cluster reads the sign-ins of every other; a
 * sign-out is a time before which the operator's sign-ins no longer hold,
 * and a start (or a cluster's first node) is one for everybody. MACs are
 * compared in constant time.
 */
#include "actors/operators.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include "runtime/actor.h"
#include "runtime/error.h"

#define SALT_LEN 16
#define HASH_LEN 32
#define MAX_ITERATIONS 10000000
#define MAX_FAILURE_KEYS 256
#define MAC_HEX 64
#define TIME_HEX 16
#define NONCE_HEX 16
#define SIGNED_PART (TIME_HEX + NONCE_HEX) /* before the name */

typedef struct op {
    char name[AW_OPERATOR_NAME_MAX + 1];
    unsigned int iterations;
    unsigned char salt[SALT_LEN];
    unsigned char hash[HASH_LEN];
    uint64_t not_before; /* under the lock: sign-ins made before this no longer hold */
} op_t;

typedef struct failures {
    char key[64];
    unsigned int n;
    uint64_t first;
} failures_t;

struct aw_operators {
    op_t *ops;
    size_t n;
    pthread_mutex_t lock;
    unsigned char key[32]; /* signs the sign-ins */
    uint64_t epoch;        /* under the lock: no sign-in made before this holds */
    failures_t failures[MAX_FAILURE_KEYS];
};

static int unhex(const char *s, size_t len, unsigned char *out, size_t out_len)
{
    if (len != out_len * 2)
        return -1;
    for (size_t i = 0; i < out_len; i++) {
        int v = 0;
        for (int k = 0; k < 2; k++) {
            char c = s[2 * i + k];
            int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
            if (d < 0)
                return -1;
            v = v * 16 + d;
        }
        out[i] = (unsigned char)v;
    }
    return 0;
}

static void hex(const unsigned char *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = '\0';
}

/* Reads one entry line (without its newline). Returns 0 or -1 with `why`. */
static int parse_line(const char *s, size_t len, op_t *op, const char **why)
{
    const char *field[5];
    size_t flen[5], k = 0;
    const char *p = s, *end = s + len;
    while (k < 5) {
        const char *colon = memchr(p, ':', (size_t)(end - p));
        const char *stop = colon != NULL && k < 4 ? colon : end;
        field[k] = p;
        flen[k++] = (size_t)(stop - p);
        if (stop == end)
            break;
        p = stop + 1;
    }
    if (k != 5) {
        *why = "expected NAME:pbkdf2-sha256:ITERATIONS:SALT:HASH";
        return -1;
    }
    if (!aw_operator_name_valid(field[0], flen[0])) {
        *why = "a name is 1 to 64 of A-Z a-z 0-9 . _ -";
        return -1;
    }
    if (flen[1] != 13 || memcmp(field[1], "pbkdf2-sha256", 13) != 0) {
        *why = "the only scheme is pbkdf2-sha256";
        return -1;
    }
    unsigned long it = 0;
    for (size_t i = 0; i < flen[2]; i++) {
        if (field[2][i] < '0' || field[2][i] > '9' || it > MAX_ITERATIONS) {
            it = 0;
            break;
        }
        it = it * 10 + (unsigned long)(field[2][i] - '0');
    }
    if (flen[2] == 0 || it < 1000 || it > MAX_ITERATIONS) {
        *why = "iterations must be 1000 to 10000000";
        return -1;
    }
    if (unhex(field[3], flen[3], op->salt, SALT_LEN) != 0 ||
        unhex(field[4], flen[4], op->hash, HASH_LEN) != 0) {
        *why = "the salt is 32 and the hash 64 lowercase hex digits";
        return -1;
    }
    memcpy(op->name, field[0], flen[0]);
    op->name[flen[0]] = '\0';
    op->iterations = (unsigned int)it;
    return 0;
}

int aw_operators_parse(const char *text, size_t len, aw_operators_t **out, char *err, size_t err_size)
{
    aw_operators_t *ops = aw_calloc(1, sizeof(*ops));
    pthread_mutex_init(&ops->lock, NULL);
    /* until aw_operators_set_key: sign-ins that hold in this process only */
    if (RAND_bytes(ops->key, sizeof(ops->key)) != 1)
        ops->epoch = UINT64_MAX; /* no sign-in holds */
    const char *p = text, *end = text + len;
    for (unsigned int line = 1; p < end; line++) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = (size_t)((nl != NULL ? nl : end) - p);
        const char *s = p;
        p = nl != NULL ? nl + 1 : end;
        if (n != 0 && s[n - 1] == '\r')
            n--;
        if (n == 0 || s[0] == '#')
            continue;
        op_t op = {0};
        const char *why = NULL;
        if (parse_line(s, n, &op, &why) == 0) {
            for (size_t i = 0; i < ops->n; i++)
                if (strcmp(ops->ops[i].name, op.name) == 0)
                    why = "the name is on an earlier line too";
        }
        if (why != NULL) {
            snprintf(err, err_size, "line %u: %s", line, why);
            aw_operators_free(ops);
            return AW_EINVAL;
        }
        ops->ops = aw_realloc(ops->ops, (ops->n + 1) * sizeof(*ops->ops));
        ops->ops[ops->n++] = op;
    }
    *out = ops;
    return 0;
}

/* The whole file, NUL-terminated; NULL with errno set. */
static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    char *buf = NULL;
    size_t n = 0, cap = 0, got;
    do {
        if (cap - n < 4096) {
            cap = cap == 0 ? 8192 : cap * 2;
            buf = aw_realloc(buf, cap + 1);
        }
        got = fread(buf + n, 1, cap - n, f);
        n += got;
    } while (got != 0 && n < (1u << 24));
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        errno = EIO;
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

int aw_operators_load(const char *path, aw_operators_t **ops, char *err, size_t err_size)
{
    size_t len = 0;
    char *text = read_file(path, &len);
    if (text == NULL) {
        snprintf(err, err_size, "%s: %s", path, strerror(errno));
        return AW_EIO;
    }
    int rc = aw_operators_parse(text, len, ops, err, err_size);
    OPENSSL_cleanse(text, len);
    free(text);
    return rc;
}

void aw_operators_free(aw_operators_t *ops)
{
    if (ops == NULL)
        return;
    OPENSSL_cleanse(ops->ops, ops->n * sizeof(*ops->ops));
    free(ops->ops);
    OPENSSL_cleanse(ops->key, sizeof(ops->key));
    pthread_mutex_destroy(&ops->lock);
    free(ops);
}

size_t aw_operators_count(const aw_operators_t *ops)
{
    return ops->n;
}

static void derive(const char *password, const unsigned char *salt, unsigned int iterations,
                   unsigned char out[HASH_LEN])
{
    if (PKCS5_PBKDF2_HMAC(password, (int)strlen(password), salt, SALT_LEN, (int)iterations, EVP_sha256(),
                          HASH_LEN, out) != 1) {
        fprintf(stderr, "anywhere: PBKDF2 failed\n");
        abort();
    }
}

int aw_operators_check(const aw_operators_t *ops, const char *name, const char *password)
{
    static const unsigned char decoy_salt[SALT_LEN];
    const op_t *found = NULL;
    for (size_t i = 0; i < ops->n; i++)
        if (strcmp(ops->ops[i].name, name) == 0)
            found = &ops->ops[i];
    unsigned char got[HASH_LEN];
    if (strlen(password) > AW_OPERATOR_PASSWORD_MAX)
        password = "";
    /* an unknown name costs as much as a known one */
    derive(password, found != NULL ? found->salt : decoy_salt,
           found != NULL ? found->iterations : AW_OPERATOR_ITERATIONS, got);
    int ok = found != NULL && password[0] != '\0' && CRYPTO_memcmp(got, found->hash, HASH_LEN) == 0;
    OPENSSL_cleanse(got, sizeof(got));
    return ok;
}

int aw_operators_entry(const char *name, const char *password, char *line, size_t size)
{
    op_t op = {.iterations = AW_OPERATOR_ITERATIONS};
    size_t plen = strlen(password);
    if (!aw_operator_name_valid(name, strlen(name)) || plen == 0 || plen > AW_OPERATOR_PASSWORD_MAX)
        return AW_EINVAL;
    if (RAND_bytes(op.salt, SALT_LEN) != 1)
        return AW_EIO;
    derive(password, op.salt, op.iterations, op.hash);
    char salt[2 * SALT_LEN + 1], hash[2 * HASH_LEN + 1];
    hex(op.salt, SALT_LEN, salt);
    hex(op.hash, HASH_LEN, hash);
    int n = snprintf(line, size, "%s:pbkdf2-sha256:%u:%s:%s", name, op.iterations, salt, hash);
    OPENSSL_cleanse(&op, sizeof(op));
    return n > 0 && (size_t)n < size ? 0 : AW_EINVAL;
}

/* Whether line `s` (`n` bytes) is the entry of `name`. */
static int line_of(const char *s, size_t n, const char *name)
{
    size_t len = strlen(name);
    return n > len && memcmp(s, name, len) == 0 && s[len] == ':';
}

int aw_operators_add(const char *path, const char *name, const char *password, char *err, size_t err_size)
{
    char entry[512];
    int rc = aw_operators_entry(name, password, entry, sizeof(entry));
    if (rc != 0) {
        snprintf(err, err_size, "%s", rc == AW_EIO ? "no randomness for the salt" : "a bad name or password");
        return rc;
    }
    size_t len = 0;
    char *old = read_file(path, &len);
    if (old == NULL && errno != ENOENT) {
        snprintf(err, err_size, "%s: %s", path, strerror(errno));
        return AW_EIO;
    }
    aw_operators_t *check = NULL;
    if (old != NULL && aw_operators_parse(old, len, &check, err, err_size) != 0) {
        free(old);
        return AW_EINVAL;
    }
    aw_operators_free(check);
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (f == NULL) {
        snprintf(err, err_size, "%s: %s", tmp, strerror(errno));
        if (fd >= 0)
            close(fd);
        free(old);
        return AW_EIO;
    }
    int replaced = 0;
    for (const char *p = old, *end = old != NULL ? old + len : NULL; p != NULL && p < end;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = (size_t)((nl != NULL ? nl : end) - p);
        if (line_of(p, n, name)) {
            fprintf(f, "%s\n", entry);
            replaced = 1;
        } else {
            fprintf(f, "%.*s\n", (int)n, p);
        }
        p = nl != NULL ? nl + 1 : end;
    }
    if (!replaced)
        fprintf(f, "%s\n", entry);
    free(old);
    int bad = fflush(f) != 0 || fsync(fileno(f)) != 0;
    bad |= fclose(f) != 0;
    if (bad || rename(tmp, path) != 0) {
        snprintf(err, err_size, "%s: %s", path, strerror(errno));
        unlink(tmp);
        return AW_EIO;
    }
    return 0;
}

/* --- failed sign-ins --- */

static failures_t *failures_of(aw_operators_t *ops, const char *key, uint64_t now, int make)
{
    failures_t *spare = NULL; /* an empty slot, or the one whose window began first */
    for (size_t i = 0; i < MAX_FAILURE_KEYS; i++) {
        failures_t *f = &ops->failures[i];
        if (f->n != 0 && now - f->first > AW_OPERATOR_FAILURE_WINDOW_MS)
            f->n = 0; /* its window is over */
        if (f->n != 0 && strncmp(f->key, key, sizeof(f->key) - 1) == 0)
            return f;
        if (spare == NULL || (spare->n != 0 && (f->n == 0 || f->first < spare->first)))
            spare = f;
    }
    if (!make)
        return NULL;
    memset(spare, 0, sizeof(*spare));
    snprintf(spare->key, sizeof(spare->key), "%s", key);
    spare->first = now;
    return spare;
}

int aw_operators_may_try(aw_operators_t *ops, const char *key, uint64_t now_ms)
{
    pthread_mutex_lock(&ops->lock);
    failures_t *f = failures_of(ops, key, now_ms, 0);
    int ok = f == NULL || f->n < AW_OPERATOR_FAILURES;
    pthread_mutex_unlock(&ops->lock);
    return ok;
}

void aw_operators_failed(aw_operators_t *ops, const char *key, uint64_t now_ms)
{
    pthread_mutex_lock(&ops->lock);
    failures_of(ops, key, now_ms, 1)->n++;
    pthread_mutex_unlock(&ops->lock);
}

/* --- sign-ins --- */

void aw_operators_set_key(aw_operators_t *ops, const unsigned char *secret, size_t len)
{
    static const char label[] = "anywhere operator sign-in";
    unsigned int n = 0;
    pthread_mutex_lock(&ops->lock);
    if (HMAC(EVP_sha256(), secret, (int)len, (const unsigned char *)label, sizeof(label) - 1, ops->key, &n) ==
        NULL)
        ops->epoch = UINT64_MAX; /* no sign-in holds */
    pthread_mutex_unlock(&ops->lock);
}

/* The MAC of a sign-in's part after the MAC, in hex, without a NUL (lock
 * held). */
static void sign(aw_operators_t *ops, const char *part, size_t len, char out[MAC_HEX])
{
    unsigned char mac[32];
    char text[MAC_HEX + 1];
    unsigned int n = 0;
    if (HMAC(EVP_sha256(), ops->key, sizeof(ops->key), (const unsigned char *)part, len, mac, &n) == NULL)
        memset(mac, 0, sizeof(mac)); /* never matches a sign-in: ops->epoch stops them all first */
    hex(mac, sizeof(mac), text);
    memcpy(out, text, MAC_HEX);
}

static op_t *op_named(aw_operators_t *ops, const char *name, size_t len)
{
    for (size_t i = 0; i < ops->n; i++)
        if (strlen(ops->ops[i].name) == len && memcmp(ops->ops[i].name, name, len) == 0)
            return &ops->ops[i];
    return NULL;
}

int aw_operators_sign_in(aw_operators_t *ops, const char *name, uint64_t now_ms,
                         char id[AW_OPERATOR_SESSION_MAX + 1])
{
    unsigned char nonce[NONCE_HEX / 2];
    size_t name_len = strlen(name);
    if (RAND_bytes(nonce, sizeof(nonce)) != 1 || !aw_operator_name_valid(name, name_len))
        return AW_EIO;
    char *part = id + MAC_HEX;
    snprintf(part, TIME_HEX + 1, "%016llx", (unsigned long long)now_ms);
    hex(nonce, sizeof(nonce), part + TIME_HEX);
    memcpy(part + SIGNED_PART, name, name_len + 1);
    pthread_mutex_lock(&ops->lock);
    sign(ops, part, SIGNED_PART + name_len, id);
    pthread_mutex_unlock(&ops->lock);
    return 0;
}

/* The operator and the time of sign-in `id` when its MAC is right and its
 * operator is in the file (lock held); else NULL. */
static op_t *read_sign_in(aw_operators_t *ops, const char *id, size_t len, uint64_t *made)
{
    if (len <= MAC_HEX + SIGNED_PART || len > AW_OPERATOR_SESSION_MAX)
        return NULL;
    char mac[MAC_HEX];
    sign(ops, id + MAC_HEX, len - MAC_HEX, mac);
    if (CRYPTO_memcmp(mac, id, MAC_HEX) != 0)
        return NULL;
    unsigned char t[TIME_HEX / 2];
    if (unhex(id + MAC_HEX, TIME_HEX, t, sizeof(t)) != 0)
        return NULL;
    *made = 0;
    for (size_t i = 0; i < sizeof(t); i++)
        *made = *made << 8 | t[i];
    return op_named(ops, id + MAC_HEX + SIGNED_PART, len - MAC_HEX - SIGNED_PART);
}

int aw_operators_session(aw_operators_t *ops, const char *id, size_t len, uint64_t now_ms,
                         char name[AW_OPERATOR_NAME_MAX + 1])
{
    uint64_t made = 0;
    pthread_mutex_lock(&ops->lock);
    op_t *op = read_sign_in(ops, id, len, &made);
    /* made by a node whose clock runs ahead by a minute at most */
    int ok = op != NULL && made >= ops->epoch && made >= op->not_before && made <= now_ms + 60000 &&
             made + AW_OPERATOR_SESSION_MS > now_ms;
    if (ok)
        memcpy(name, op->name, AW_OPERATOR_NAME_MAX + 1);
    pthread_mutex_unlock(&ops->lock);
    return ok;
}

int aw_operators_sign_out(aw_operators_t *ops, const char *id, size_t len, uint64_t now_ms,
                          char name[AW_OPERATOR_NAME_MAX + 1])
{
    uint64_t made = 0;
    pthread_mutex_lock(&ops->lock);
    op_t *op = read_sign_in(ops, id, len, &made);
    if (op != NULL) {
        if (op->not_before < now_ms + 1)
            op->not_before = now_ms + 1;
        memcpy(name, op->name, AW_OPERATOR_NAME_MAX + 1);
    }
    pthread_mutex_unlock(&ops->lock);
    return op != NULL;
}

void aw_operators_signed_out(aw_operators_t *ops, const char *name, size_t len, uint64_t at_ms)
{
    pthread_mutex_lock(&ops->lock);
    op_t *op = op_named(ops, name, len);
    if (op != NULL && op->not_before < at_ms)
        op->not_before = at_ms;
    pthread_mutex_unlock(&ops->lock);
}

void aw_operators_set_epoch(aw_operators_t *ops, uint64_t at_ms)
{
    pthread_mutex_lock(&ops->lock);
    if (ops->epoch < at_ms)
        ops->epoch = at_ms;
    pthread_mutex_unlock(&ops->lock);
}

uint64_t aw_operators_epoch(aw_operators_t *ops)
{
    pthread_mutex_lock(&ops->lock);
    uint64_t e = ops->epoch;
    pthread_mutex_unlock(&ops->lock);
    return e;
}

char *aw_operators_sign_outs(aw_operators_t *ops, uint64_t now_ms)
{
    size_t cap = 1, n = 0;
    pthread_mutex_lock(&ops->lock);
    for (size_t i = 0; i < ops->n; i++)
        cap += AW_OPERATOR_NAME_MAX + 24;
    char *out = aw_alloc(cap);
    for (size_t i = 0; i < ops->n; i++) {
        uint64_t t = ops->ops[i].not_before;
        if (t != 0 && t + AW_OPERATOR_SESSION_MS > now_ms)
            n += (size_t)snprintf(out + n, cap - n, "%s %llu\n", ops->ops[i].name, (unsigned long long)t);
    }
    out[n] = '\0';
    pthread_mutex_unlock(&ops->lock);
    return out;
}
