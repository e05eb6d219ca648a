/*
 * The names and sentences of the AW_E... codes, generated from the one table
 * in error.h so that a code can never lack a message.
 */
#include "runtime/error.h"

#include <stddef.h>

struct errinfo {
    const char *name;
    const char *msg;
};

static const struct errinfo table[] = {
#define AW__ERR_ROW(n, m) {#n, m},
    AW_ERRNO_MAP(AW__ERR_ROW)
#undef AW__ERR_ROW
};

static const struct errinfo *lookup(int err)
{
    int i = err - AW_E__BASE - 1;
    if (i < 0 || (size_t)i >= sizeof(table) / sizeof(table[0]))
        return NULL;
    return &table[i];
}

const char *aw_err_name(int err)
{
    const struct errinfo *e = lookup(err);
    return e != NULL ? e->name : "UNKNOWN";
}

const char *aw_strerror(int err)
{
    const struct errinfo *e = lookup(err);
    return e != NULL ? e->msg : "unknown error";
}
