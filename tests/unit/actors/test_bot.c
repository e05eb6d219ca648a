/*
 * Unit tests of actors/bot.c and actors/identity.c: which skill hears which
 * text, events, asks, the limit on a skill's typing pause, and the identity
 * token against a known HMAC-SHA256.
 */
#include <stdio.h>
#include <string.h>
#include "actors/bot.h"
#include "actors/identity.h"
#include "actors/internal.h"
#include "runtime/error.h"
#include "tests/check.h"

static void say_tag(aw_turn_t *turn, const aw_message_t *msg, void *data)
{
    aw_turn_say(turn, data);
}

/* Runs `bot` on one message and returns the first reply's text ("" if none). */
static const char *run(aw_bot_t *bot, const char *json)
{
    static char out[256];
    aw_message_t m;
    aw_vars_t vars = {0};
    aw_ask_t ask = {0};
    aw_turn_t turn = {.user = "u", .user_len = 1, .vars = &vars, .ask = &ask};
    if (aw_message_parse(&m, json, strlen(json)) != 0)
        return "PARSE";
    aw_bot_dispatch(bot, &turn, &m);
    snprintf(out, sizeof(out), "%s", turn.n_replies != 0 ? turn.replies[0]->text : "");
    aw_turn__clear(&turn);
    aw_vars__clear(&vars);
    aw_message_dispose(&m);
    return out;
}

static void test_matching(void)
{
    aw_bot_t *bot = aw_bot_new("t");
    CHECK(aw_bot_hears(bot, AW_HEAR_EXACT, " Help ", say_tag, "exact") == 0);
    CHECK(aw_bot_hears(bot, AW_HEAR_KEYWORD, "price", say_tag, "keyword") == 0);
    CHECK(aw_bot_hears(bot, AW_HEAR_REGEX, "^order [0-9]+$", say_tag, "regex") == 0);
    CHECK(aw_bot_hears(bot, AW_HEAR_REGEX, "([", say_tag, "bad") == AW_EINVAL);
    /* shapes that make the regex compiler run away are refused up front */
    CHECK(aw_bot_hears(bot, AW_HEAR_REGEX, "^(yes|su++++++re)", say_tag, "bad") == AW_EINVAL);
    CHECK(aw_bot_hears(bot, AW_HEAR_REGEX, "a*{3}", say_tag, "bad") == AW_EINVAL);
    CHECK(aw_bot_hears(bot, AW_HEAR_REGEX, "a{300}", say_tag, "bad") == AW_EINVAL);
    CHECK(aw_bot_hears(bot, AW_HEAR_REGEX, "((a{200}){200})", say_tag, "bad") == AW_EINVAL);
    CHECK(aw_bot_hears(bot, AW_HEAR_REGEX, "^[*+?]{1,3} (x|y)? [0-9]{2,4}\\+$", say_tag, "ok") == 0);
    aw_bot_on(bot, "hello", say_tag, "hello");
    aw_bot_on(bot, "custom", say_tag, "custom");
    aw_bot_on(bot, "message", say_tag, "fallback");
    CHECK(strcmp(run(bot, "{\"type\":\"message\",\"user\":\"u\",\"text\":\"  HELP\"}"), "exact") == 0);
    CHECK(strcmp(run(bot, "{\"type\":\"message\",\"user\":\"u\",\"text\":\"help me\"}"), "fallback") == 0);
    CHECK(strcmp(run(bot, "{\"type\":\"message\",\"user\":\"u\",\"text\":\"what's the Price?\"}"),
                 "keyword") == 0);
    CHECK(strcmp(run(bot, "{\"type\":\"message\",\"user\":\"u\",\"text\":\"prices\"}"), "fallback") == 0);
    CHECK(strcmp(run(bot, "{\"type\":\"message\",\"user\":\"u\",\"text\":\"Order 66\"}"), "regex") == 0);
    CHECK(strcmp(run(bot, "{\"type\":\"message\",\"user\":\"u\",\"text\":\"order 66 now\"}"), "fallback") ==
          0);
    CHECK(strcmp(run(bot, "{\"type\":\"hello\",\"user\":\"u\"}"), "hello") == 0);
    CHECK(strcmp(run(bot, "{\"type\":\"custom\",\"user\":\"u\"}"), "custom") == 0);
    CHECK(strcmp(run(bot, "{\"type\":\"unheard\",\"user\":\"u\"}"), "") == 0);
    CHECK(strcmp(run(bot, "{\"type\":\"message\",\"user\":\"u\"}"), "fallback") == 0);
    aw_bot_free(bot);
}

static void test_builtin_bots(void)
{
    aw_bot_t *echo = aw_bot_echo();
    CHECK(strcmp(run(echo, "{\"type\":\"message\",\"user\":\"u\",\"text\":\"abc\"}"), "abc") == 0);
    CHECK(strcmp(run(echo, "{\"type\":\"hello\",\"user\":\"u\"}"), "") == 0);
    aw_bot_free(echo);
    aw_bot_t *demo = aw_bot_demo();
    CHECK(strncmp(run(demo, "{\"type\":\"hello\",\"user\":\"u\"}"), "Hello!", 6) == 0);
    CHECK(strncmp(run(demo, "{\"type\":\"welcome_back\",\"user\":\"u\"}"), "Welcome back!", 13) == 0);
    CHECK(strcmp(run(demo, "{\"type\":\"message\",\"user\":\"u\",\"text\":\"hey\"}"), "You said: hey") == 0);
    aw_bot_free(demo);
}

/* A skill's typing pause is held to the limit of every bot's: a longer one
 * is refused, and the message goes without it. */
static void test_typing_limit(void)
{
    aw_vars_t vars = {0};
    aw_ask_t ask = {0};
    aw_turn_t turn = {.user = "u", .user_len = 1, .vars = &vars, .ask = &ask};
    CHECK(aw_turn_say_typing(&turn, "a", AW_REPLY_MAX_TYPING_MS)->typing_ms == AW_REPLY_MAX_TYPING_MS);
    CHECK(aw_turn_say_typing(&turn, "b", AW_REPLY_MAX_TYPING_MS + 1)->typing_ms == 0);
    CHECK(turn.n_replies == 2);
    aw_turn__clear(&turn);
}

static void test_token(void)
{
    /* HMAC-SHA256("key", "The quick brown fox jumps over the lazy dog"), a published test value. */
    const char *user = "The quick brown fox jumps over the lazy dog";
    char tok[AW_TOKEN_LEN + 1];
    aw_identity_token((const unsigned char *)"key", 3, user, strlen(user), tok);
    CHECK(strcmp(tok, "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8") == 0);
    CHECK(aw_identity_verify((const unsigned char *)"key", 3, user, strlen(user), tok) == 1);
    tok[10] ^= 1;
    CHECK(aw_identity_verify((const unsigned char *)"key", 3, user, strlen(user), tok) == 0);
    CHECK(aw_identity_verify((const unsigned char *)"key", 3, user, strlen(user), "abc") == 0);
    CHECK(aw_identity_verify((const unsigned char *)"key", 3, user, strlen(user), NULL) == 0);
}

int main(void)
{
    test_matching();
    test_builtin_bots();
    test_typing_limit();
    test_token();
    return check_exit("test_bot");
}
