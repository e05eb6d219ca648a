/* The cluster's messages (wire.h): signing, building and reading them. */
#include "cluster/wire.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include "actors/message.h"
#include "runtime/error.h"

#define MAX_LINE 200 /* the header line's bytes at most: 8 + 65 + 5 numbers of 20 + spaces */

int aw_wire_node_ok(const char *id, size_t len)
{
    if (len == 0 || len > AW_WIRE_MAX_NODE)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char ch = id[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '-' ||
              ch == '_'))
            return 0;
    }
    return 1;
}

static void hmac_failed(void)
{
    fprintf(stderr, "anywhere: HMAC failed\n");
    abort();
}

/* The subjects' keys each thread derived last: a thread sends to, and
 * reads from, a few subjects again and again (the members', the nodes'),
 * and a key is two hashes of its own. */
#define SUBKEYS 8
#define SUBJECT_CACHED 96 /* bytes of a subject kept; a longer one is derived every time */

typedef struct subkey {
    unsigned char key[AW_WIRE_KEY_LEN];
    char subject[SUBJECT_CACHED];
    unsigned char subkey[AW_WIRE_KEY_LEN];
} subkey_t;

static __thread subkey_t subkeys[SUBKEYS];
static __thread unsigned int n_subkeys, next_subkey;

static void subkey_of(const unsigned char key[AW_WIRE_KEY_LEN], const char *subject,
                      unsigned char out[AW_WIRE_KEY_LEN])
{
    size_t len = strlen(subject);
    for (unsigned int i = 0; len < SUBJECT_CACHED && i < n_subkeys; i++) {
        if (strcmp(subkeys[i].subject, subject) == 0 && memcmp(subkeys[i].key, key, AW_WIRE_KEY_LEN) == 0) {
            memcpy(out, subkeys[i].subkey, AW_WIRE_KEY_LEN);
            return;
        }
    }
    unsigned int n = 0;
    if (HMAC(EVP_sha256(), key, AW_WIRE_KEY_LEN, (const unsigned char *)subject, len, out, &n) == NULL ||
        n != AW_WIRE_KEY_LEN)
        hmac_failed();
    if (len < SUBJECT_CACHED) {
        subkey_t *k = &subkeys[next_subkey];
        next_subkey = (next_subkey + 1) % SUBKEYS;
        if (n_subkeys < SUBKEYS)
            n_subkeys++;
        memcpy(k->key, key, AW_WIRE_KEY_LEN);
        memcpy(k->subject, subject, len + 1);
        memcpy(k->subkey, out, AW_WIRE_KEY_LEN);
    }
}

/* The MAC of a message for `subject`: under a key derived for the subject,
 * so that a message cannot be replayed to another node's subject. */
static void mac_of(const unsigned char key[AW_WIRE_KEY_LEN], const char *subject, const char *signed_part,
                   size_t len, unsigned char mac[AW_WIRE_MAC_LEN])
{
    unsigned char subkey[AW_WIRE_KEY_LEN];
    unsigned int m = 0;
    subkey_of(key, subject, subkey);
    if (HMAC(EVP_sha256(), subkey, AW_WIRE_KEY_LEN, (const unsigned char *)signed_part, len, mac, &m) ==
            NULL ||
        m != AW_WIRE_MAC_LEN)
        hmac_failed();
}

void aw_wire_build(aw_bytes_t *out, const unsigned char key[AW_WIRE_KEY_LEN], const char *subject,
                   const char *kind, const char *node, uint64_t incarnation, int64_t a, int64_t b, int64_t c,
                   const char *user, size_t user_len, const void *body, size_t body_len)
{
    size_t start = out->len;
    aw_bytes_reserve(out, AW_WIRE_MAC_LEN + MAX_LINE + user_len + body_len);
    out->len += AW_WIRE_MAC_LEN;
    aw_bytes_appendf(out, "%s %s %llu %lld %lld %lld %zu\n", kind, node, (unsigned long long)incarnation,
                     (long long)a, (long long)b, (long long)c, user_len);
    aw_bytes_append(out, user, user_len);
    aw_bytes_append(out, body, body_len);
    unsigned char mac[AW_WIRE_MAC_LEN];
    char *base = out->buf->data + start;
    mac_of(key, subject, base + AW_WIRE_MAC_LEN, out->len - start - AW_WIRE_MAC_LEN, mac);
    memcpy(base, mac, AW_WIRE_MAC_LEN);
}

/* Takes one space- or newline-ended word of 1..max bytes from the line. */
static int word(const char **p, const char *end, char stop, const char **w, size_t *n, size_t max)
{
    const char *s = *p, *e = memchr(s, stop, (size_t)(end - s));
    if (e == NULL || e == s || (size_t)(e - s) > max)
        return AW_EBADMSG;
    *w = s;
    *n = (size_t)(e - s);
    *p = e + 1;
    return 0;
}

static int number(const char **p, const char *end, char stop, int is_signed, int64_t *v)
{
    const char *w;
    size_t n;
    if (word(p, end, stop, &w, &n, 20) != 0)
        return AW_EBADMSG;
    char tmp[21];
    memcpy(tmp, w, n);
    tmp[n] = '\0';
    size_t i = (is_signed && tmp[0] == '-') ? 1 : 0;
    if (i == n)
        return AW_EBADMSG;
    for (; i < n; i++)
        if (tmp[i] < '0' || tmp[i] > '9')
            return AW_EBADMSG;
    errno = 0;
    char *endp;
    if (is_signed) {
        long long x = strtoll(tmp, &endp, 10);
        *v = x;
    } else {
        unsigned long long x = strtoull(tmp, &endp, 10);
        *v = (int64_t)x;
    }
    return errno != 0 ? AW_EBADMSG : 0;
}

int aw_wire_parse(const unsigned char key[AW_WIRE_KEY_LEN], const char *subject, const char *data, size_t len,
                  aw_wire_msg_t *out)
{
    if (len < AW_WIRE_MAC_LEN + 1)
        return AW_EBADMSG;
    unsigned char mac[AW_WIRE_MAC_LEN];
    mac_of(key, subject, data + AW_WIRE_MAC_LEN, len - AW_WIRE_MAC_LEN, mac);
    if (CRYPTO_memcmp(mac, data, AW_WIRE_MAC_LEN) != 0)
        return AW_EUNAUTHORIZED;
    const char *p = data + AW_WIRE_MAC_LEN, *end = data + len;
    const char *line_end = memchr(p, '\n', (size_t)(end - p) < MAX_LINE ? (size_t)(end - p) : MAX_LINE);
    if (line_end == NULL)
        return AW_EBADMSG;
    const char *w;
    size_t n;
    int64_t inc, ulen;
    memset(out, 0, sizeof(*out));
    if (word(&p, line_end, ' ', &w, &n, sizeof(out->kind) - 1) != 0)
        return AW_EBADMSG;
    memcpy(out->kind, w, n);
    if (word(&p, line_end, ' ', &w, &n, AW_WIRE_MAX_NODE) != 0 || !aw_wire_node_ok(w, n))
        return AW_EBADMSG;
    memcpy(out->node, w, n);
    if (number(&p, line_end, ' ', 0, &inc) != 0 || number(&p, line_end, ' ', 1, &out->a) != 0 ||
        number(&p, line_end, ' ', 1, &out->b) != 0 || number(&p, line_end, ' ', 1, &out->c) != 0 ||
        number(&p, line_end + 1, '\n', 0, &ulen) != 0)
        return AW_EBADMSG;
    if (p != line_end + 1 || ulen < 0 || ulen > AW_MAX_USER_LEN || (size_t)(end - p) < (size_t)ulen)
        return AW_EBADMSG;
    out->incarnation = (uint64_t)inc;
    out->user = p;
    out->user_len = (size_t)ulen;
    out->body = p + ulen;
    out->body_len = (size_t)(end - out->body);
    return 0;
}

void aw_wire_put_item(aw_bytes_t *out, const void *p, size_t len)
{
    aw_bytes_appendf(out, "%zu\n", len);
    aw_bytes_append(out, p, len);
}

int aw_wire_next_item(const char **p, size_t *left, const char **item, size_t *item_len)
{
    const char *s = *p, *end = *p + *left;
    int64_t n;
    if (number(&s, end, '\n', 0, &n) != 0 || n < 0 || (size_t)(end - s) < (size_t)n)
        return AW_EBADMSG;
    *item = s;
    *item_len = (size_t)n;
    s += n;
    *left = (size_t)(end - s);
    *p = s;
    return 0;
}
