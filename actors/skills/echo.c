/*
 * The echo bot used by benchmarks: every message is answered at once with its
 * own text, and events get no answer, so a load test measures the server and
 * nothing else.
 */
#include "actors/bot.h"

static void on_message(aw_turn_t *turn, const aw_message_t *msg, void *data)
{
    aw_turn_say(turn, msg->text != NULL ? msg->text : "");
}

aw_bot_t *aw_bot_echo(void)
{
    aw_bot_t *bot = aw_bot_new("echo");
    aw_bot_on(bot, "message", on_message, NULL);
    return bot;
}
