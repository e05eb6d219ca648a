/*
 * Fuzz target for what reaches the handoff from outside: an operator
 * console's frames and POST /api/handoff bodies (transport/console_command.h),
 * an operators file and a sign-in cookie (actors/operators.h), and a
 * handoff record read back from the store (actors/handoff.h). The first
 * byte picks the parser.
 * Whatever the bytes: no crash, leak or hang; an accepted command names a
 * user of 1..256 bytes and, to send, a text of 1..4096; an accepted record
 * writes back to the same state.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "actors/handoff.h"
#include "actors/operators.h"
#include "transport/console_command.h"

static void command(const char *s, size_t n, int api)
{
    aw_console_command_t cmd;
    int r = api ? aw_console_command_parse_api(&cmd, s, n) : aw_console_command_parse(&cmd, s, n);
    if (r != 0)
        return;
    if (cmd.user_len == 0 || cmd.user_len > AW_MAX_USER_LEN || strlen(cmd.user) > cmd.user_len)
        abort();
    if (cmd.op == AW_HANDOFF_OP_SEND && (cmd.text[0] == '\0' || strlen(cmd.text) > AW_CONSOLE_TEXT_MAX))
        abort();
    if (api && cmd.op != AW_HANDOFF_OP_REQUEST && cmd.op != AW_HANDOFF_OP_RELEASE)
        abort();
}

static void operators(const char *s, size_t n)
{
    char err[256];
    aw_operators_t *ops = NULL;
    if (aw_operators_parse(s, n, &ops, err, sizeof(err)) == 0) {
        if (ops == NULL)
            abort();
        aw_operators_free(ops);
    } else if (ops != NULL || strncmp(err, "line ", 5) != 0) {
        abort();
    }
}

/* The input as the console's cookie: no bytes but a sign-in the key made
 * name an operator, and a sign-in changed anywhere by the input names none. */
static void sign_in(const char *s, size_t n)
{
    static aw_operators_t *ops;
    static char real[AW_OPERATOR_SESSION_MAX + 1];
    char name[AW_OPERATOR_NAME_MAX + 1], err[256];
    if (ops == NULL) {
        char line[512];
        if (aw_operators_entry("ann", "a password", line, sizeof(line)) != 0 ||
            aw_operators_parse(line, strlen(line), &ops, err, sizeof(err)) != 0)
            abort();
        aw_operators_set_key(ops, (const unsigned char *)"fuzz secret", 11);
        if (aw_operators_sign_in(ops, "ann", 1000000, real) != 0)
            abort();
    }
    int same = n == strlen(real) && memcmp(s, real, n) == 0;
    if (aw_operators_session(ops, s, n, 1000000, name) != same)
        abort();
    if (n != 0) { /* the real one with one byte of the input put in */
        char forged[AW_OPERATOR_SESSION_MAX + 1];
        size_t len = strlen(real), at = (unsigned char)s[0] % len;
        memcpy(forged, real, len + 1);
        forged[at] = n > 1 ? s[1] : s[0];
        if (aw_operators_session(ops, forged, len, 1000000, name) != (forged[at] == real[at]))
            abort();
    }
}

static void record(const char *s, size_t n)
{
    aw_handoff_t h, again;
    if (aw_handoff_parse(&h, s, n) != 0) {
        if (h.state != AW_HANDOFF_BOT)
            abort();
        return;
    }
    aw_buf_t *b = aw_handoff_write(&h);
    if (aw_handoff_parse(&again, b->data, b->len) != 0 || again.state != h.state ||
        strcmp(again.reason, h.reason) != 0 || strcmp(again.operator_name, h.operator_name) != 0)
        abort();
    aw_buf_release(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    const char *s = (const char *)data + 1;
    size_t n = size - 1;
    switch (data[0] & 3) {
    case 0:
        command(s, n, 0);
        break;
    case 1:
        command(s, n, 1);
        break;
    case 2:
        if (data[0] & 4)
            sign_in(s, n);
        else
            operators(s, n);
        break;
    default:
        record(s, n);
        break;
    }
    return 0;
}
