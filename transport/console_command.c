/*
 * Console frames and POST /api/handoff bodies (console_command.h): yajl's
 * tree behind the depth check, each field checked for its type and bounds.
 */
#include "transport/console_command.h"

#include <string.h>
#include "actors/handoff.h"
#include "actors/json.h"
#include "runtime/error.h"

static int get_int(yajl_val obj, const char *key, int64_t *out)
{
    const char *path[] = {key, NULL};
    yajl_val v = yajl_tree_get(obj, path, yajl_t_any);
    if (v == NULL || YAJL_IS_NULL(v))
        return 0;
    if (!YAJL_IS_INTEGER(v) || YAJL_GET_INTEGER(v) < 0)
        return -1;
    *out = YAJL_GET_INTEGER(v);
    return 0;
}

/* Copies a string of 0..max bytes; -1 when it is longer. */
static int copy(char *dst, size_t max, const char *src, size_t *len)
{
    size_t n = src != NULL ? strlen(src) : 0;
    if (n > max)
        return -1;
    if (n != 0)
        memcpy(dst, src, n);
    dst[n] = '\0';
    if (len != NULL)
        *len = n;
    return 0;
}

static int op_of(const char *type)
{
    static const struct {
        const char *name;
        int op;
    } ops[] = {{"take", AW_HANDOFF_OP_TAKE},     {"send", AW_HANDOFF_OP_SEND},
               {"typing", AW_HANDOFF_OP_TYPING}, {"release", AW_HANDOFF_OP_RELEASE},
               {"open", AW_CONSOLE_OPEN},        {"close", AW_HANDOFF_OP_UNWATCH},
               {"history", AW_CONSOLE_HISTORY}};
    for (size_t i = 0; type != NULL && i < sizeof(ops) / sizeof(ops[0]); i++)
        if (strcmp(type, ops[i].name) == 0)
            return ops[i].op;
    return -1;
}

/* The tree of an object, or NULL (AW_EBADJSON). */
static yajl_val parse_object(const char *json, size_t len)
{
    yajl_val root = aw_json_parse_tree(json, len);
    if (root != NULL && !YAJL_IS_OBJECT(root)) {
        yajl_tree_free(root);
        root = NULL;
    }
    return root;
}

static int read_user(aw_console_command_t *cmd, yajl_val root, int *bad)
{
    const char *user = aw_json_get_string(root, "user", bad);
    if (user == NULL || user[0] == '\0' || copy(cmd->user, AW_MAX_USER_LEN, user, &cmd->user_len) != 0)
        return -1;
    return 0;
}

int aw_console_command_parse(aw_console_command_t *cmd, const char *json, size_t len)
{
    memset(cmd, 0, sizeof(*cmd));
    yajl_val root = parse_object(json, len);
    if (root == NULL)
        return AW_EBADJSON;
    int bad = 0;
    cmd->op = op_of(aw_json_get_string(root, "type", &bad));
    const char *text = aw_json_get_string(root, "text", &bad);
    cmd->before = INT64_MAX;
    if (cmd->op < 0 || read_user(cmd, root, &bad) != 0 || get_int(root, "before", &cmd->before) != 0)
        bad = 1;
    if (cmd->op == AW_HANDOFF_OP_SEND &&
        (text == NULL || text[0] == '\0' || copy(cmd->text, AW_CONSOLE_TEXT_MAX, text, NULL) != 0))
        bad = 1;
    yajl_tree_free(root);
    return bad ? AW_EBADMSG : 0;
}

int aw_console_command_parse_api(aw_console_command_t *cmd, const char *json, size_t len)
{
    memset(cmd, 0, sizeof(*cmd));
    yajl_val root = parse_object(json, len);
    if (root == NULL)
        return AW_EBADJSON;
    int bad = 0;
    const char *action = aw_json_get_string(root, "action", &bad);
    const char *reason = aw_json_get_string(root, "reason", &bad);
    if (action == NULL || strcmp(action, "request") == 0)
        cmd->op = AW_HANDOFF_OP_REQUEST;
    else if (strcmp(action, "release") == 0)
        cmd->op = AW_HANDOFF_OP_RELEASE;
    else
        bad = 1;
    /* a reason is kept cut to AW_HANDOFF_REASON_MAX; longer is refused here */
    if (read_user(cmd, root, &bad) != 0 || copy(cmd->text, AW_HANDOFF_REASON_MAX, reason, NULL) != 0)
        bad = 1;
    cmd->before = INT64_MAX;
    yajl_tree_free(root);
    return bad ? AW_EBADMSG : 0;
}
