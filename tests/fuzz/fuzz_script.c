/*
 * Fuzz target for the script file compiler: any bytes either compile into a
 * bot or give one error line naming a place; never a crash, leak or hang.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "actors/script.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[600];
    err[0] = '\0';
    aw_bot_t *bot = NULL;
    if (aw_script_compile(&bot, "fuzz.json", (const char *)data, size, err, sizeof(err)) != 0 &&
        (bot != NULL || strncmp(err, "fuzz.json: at ", 14) != 0))
        abort();
    aw_bot_free(bot);
    return 0;
}
