/*
 * The demo bot that `make run` starts: it greets new and returning users
 * differently, acknowledges a reconnect, answers `help` with quick replies,
 * shows a typed sequence of several messages, hands the conversation to a
 * person when asked for one ("human", "agent", "person"), says so when it is
 * back, and echoes anything else. Each
 * skill is a short example of the API in actors/bot.h.
 */
#include <stdio.h>
#include <string.h>
#include "actors/bot.h"

static void add_menu(aw_reply_t *r)
{
    aw_reply_add_quick_reply(r, "Help", "help");
    aw_reply_add_quick_reply(r, "Show me a sequence", "sequence");
    aw_reply_add_quick_reply(r, "Ask my name", "ask my name");
}

static void on_hello(aw_turn_t *turn, const aw_message_t *msg, void *data)
{
    aw_reply_t *r =
        aw_turn_say(turn, "Hello! I am the anywhere demo bot. Type **help** to see what I can do.");
    add_menu(r);
}

static void on_welcome_back(aw_turn_t *turn, const aw_message_t *msg, void *data)
{
    const char *name = aw_turn_get_var(turn, "name");
    char text[320];
    snprintf(text, sizeof(text), "Welcome back%s%s! Nice to see you again.", name != NULL ? ", " : "",
             name != NULL ? name : "");
    aw_turn_say(turn, text);
}

static void on_reconnect(aw_turn_t *turn, const aw_message_t *msg, void *data)
{
    aw_turn_say(turn, "You are back online. Nothing was lost.");
}

static void on_help(aw_turn_t *turn, const aw_message_t *msg, void *data)
{
    aw_reply_t *r =
        aw_turn_say(turn, "Here is what I can do. Pick one, or type anything and I will echo it.");
    add_menu(r);
    aw_reply_set_link(r, "https://github.com/howdyai/botkit", "About Botkit");
}

static void on_sequence(aw_turn_t *turn, const aw_message_t *msg, void *data)
{
    aw_turn_say_typing(turn, "This is the first of three messages.", 600);
    aw_turn_say_typing(turn, "Each one is preceded by a typing indicator.", 600);
    aw_reply_t *r = aw_turn_say_typing(turn, "And this is the last one, with a picture.", 600);
    aw_reply_add_file(r, "/logo.svg", 1);
}

static void on_name(aw_turn_t *turn, const aw_message_t *msg, void *data)
{
    const char *name = msg->text != NULL && msg->text[0] != '\0' ? msg->text : "friend";
    char text[320];
    aw_turn_set_var(turn, "name", name);
    snprintf(text, sizeof(text), "Nice to meet you, %.256s!", name);
    aw_turn_say(turn, text);
}

static void on_ask_name(aw_turn_t *turn, const aw_message_t *msg, void *data)
{
    aw_turn_ask(turn, "What is your name?", on_name, NULL);
}

static void on_count_later(aw_turn_t *turn, const aw_message_t *msg, void *data)
{
    static const char *const words[] = {"One.", "Two.", "Three.", "Four.", "Five."};
    aw_turn_say(turn, "I will count to five, slowly, even if you leave.");
    for (unsigned int i = 0; i < 5; i++)
        aw_turn_later(turn, words[i], 1000 + 200 * i);
}

static void on_echo(aw_turn_t *turn, const aw_message_t *msg, void *data)
{
    char text[4200];
    snprintf(text, sizeof(text), "You said: %.4096s", msg->text != NULL ? msg->text : "");
    aw_turn_say(turn, text);
}

/* A person is asked for: the operators' console lists the conversation,
 * and the bot hears nothing more until one hands it back. */
static void on_person(aw_turn_t *turn, const aw_message_t *msg, void *data)
{
    aw_turn_say(turn, "I will get a person for you. Someone will be with you shortly.");
    aw_turn_handoff(turn, "asked for a person");
}

static void on_handoff_end(aw_turn_t *turn, const aw_message_t *msg, void *data)
{
    aw_turn_say(turn, "I am back. Anything else I can do? Type **help** to see what I can do.");
}

aw_bot_t *aw_bot_demo(void)
{
    aw_bot_t *bot = aw_bot_new("demo");
    aw_bot_on(bot, "hello", on_hello, NULL);
    aw_bot_on(bot, "welcome_back", on_welcome_back, NULL);
    aw_bot_on(bot, "reconnect", on_reconnect, NULL);
    aw_bot_hears(bot, AW_HEAR_EXACT, "help", on_help, NULL);
    aw_bot_hears(bot, AW_HEAR_KEYWORD, "sequence", on_sequence, NULL);
    aw_bot_hears(bot, AW_HEAR_REGEX, "^(ask|what is) my name", on_ask_name, NULL);
    aw_bot_hears(bot, AW_HEAR_KEYWORD, "count to five", on_count_later, NULL);
    static const char *const people[] = {"human", "agent", "person", "operator"};
    for (size_t i = 0; i < sizeof(people) / sizeof(people[0]); i++)
        aw_bot_hears(bot, AW_HEAR_KEYWORD, people[i], on_person, NULL);
    aw_bot_on(bot, "handoff_end", on_handoff_end, NULL);
    aw_bot_on(bot, "message", on_echo, NULL);
    return bot;
}
