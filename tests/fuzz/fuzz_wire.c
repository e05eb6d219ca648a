/*
 * Fuzz target for the cluster's message parser (cluster/wire.c), which reads
 * what arrives on the cluster's NATS subjects: whatever the bytes, parsing
 * must not crash, leak or hang. The input is parsed as it is (almost always
 * refused by its MAC), then signed with a test key and parsed again, so that
 * the parser behind the MAC is reached too: an accepted message has every
 * field within the input, and its body's items, read as a list, stay
 * within the body.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include "cluster/wire.h"
#include "runtime/error.h"

static const unsigned char key[AW_WIRE_KEY_LEN] = "fuzz-key-fuzz-key-fuzz-key-fuzz";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    aw_wire_msg_t m;
    int err = aw_wire_parse(key, "s", (const char *)data, size, &m);
    if (err != 0 && err != AW_EUNAUTHORIZED && err != AW_EBADMSG)
        abort();
    /* sign it as the wire does: under the subject's key */
    unsigned char subkey[AW_WIRE_KEY_LEN], mac[AW_WIRE_MAC_LEN];
    unsigned int n = 0;
    HMAC(EVP_sha256(), key, AW_WIRE_KEY_LEN, (const unsigned char *)"s", 1, subkey, &n);
    HMAC(EVP_sha256(), subkey, (int)n, data, size, mac, &n);
    char *signed_msg = malloc(AW_WIRE_MAC_LEN + size + 1);
    memcpy(signed_msg, mac, AW_WIRE_MAC_LEN);
    if (size != 0)
        memcpy(signed_msg + AW_WIRE_MAC_LEN, data, size);
    const char *lo = signed_msg, *hi = signed_msg + AW_WIRE_MAC_LEN + size;
    err = aw_wire_parse(key, "s", signed_msg, AW_WIRE_MAC_LEN + size, &m);
    if (err == AW_EUNAUTHORIZED)
        abort();
    if (err == 0) {
        if (m.user < lo || m.user + m.user_len > hi || m.body < lo || m.body + m.body_len != hi ||
            m.user_len > 256 || !aw_wire_node_ok(m.node, strlen(m.node)))
            abort();
        const char *p = m.body, *item;
        size_t left = m.body_len, len;
        while (left != 0 && aw_wire_next_item(&p, &left, &item, &len) == 0)
            if (item < m.body || item + len > hi || p > hi)
                abort();
    }
    free(signed_msg);
    return 0;
}
