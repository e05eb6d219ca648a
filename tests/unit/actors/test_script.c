/*
 * Unit tests of script bots (actors/script.c): every trigger kind, replies
 * with quick replies, files, links and typing, a branching conversation with
 * variables, the shipped examples, and each kind of script error with the
 * place it names.
 */
#include <stdio.h>
#include <string.h>
#include "actors/internal.h"
#include "actors/script.h"
#include "runtime/error.h"
#include "tests/check.h"

/* One user's state across turns, as the session keeps it. */
typedef struct user {
    aw_vars_t vars;
    aw_ask_t ask;
    char out[2048]; /* the texts of the last turn's replies, joined by " | " */
    aw_reply_t *first;
} user_t;

static void turn(const aw_bot_t *bot, user_t *u, const char *type, const char *text)
{
    char json[512];
    aw_message_t m;
    snprintf(json, sizeof(json), "{\"type\":\"%s\",\"user\":\"ann\",\"text\":\"%s\"}", type, text);
    if (aw_message_parse(&m, json, strlen(json)) != 0) {
        fprintf(stderr, "bad test message %s\n", json);
        check_failures++;
        return;
    }
    aw_turn_t t = {.user = "ann", .user_len = 3, .vars = &u->vars, .ask = &u->ask};
    aw_ask_t asked = u->ask;
    if (strcmp(type, "message") == 0 && asked.cb != NULL) {
        memset(&u->ask, 0, sizeof(u->ask));
        asked.cb(&t, &m, asked.data);
    } else {
        aw_bot_dispatch(bot, &t, &m);
    }
    u->out[0] = '\0';
    for (size_t i = 0; i < t.n_replies; i++) {
        if (i != 0)
            strncat(u->out, " | ", sizeof(u->out) - strlen(u->out) - 1);
        if (aw_reply_is_handoff(t.replies[i]))
            strncat(u->out, "[handoff] ", sizeof(u->out) - strlen(u->out) - 1);
        strncat(u->out, t.replies[i]->text != NULL ? t.replies[i]->text : "",
                sizeof(u->out) - strlen(u->out) - 1);
    }
    aw_reply_free(u->first);
    u->first = NULL;
    if (t.n_replies != 0) {
        u->first = t.replies[0];
        t.replies[0] = aw_reply_new(NULL);
    }
    aw_turn__clear(&t);
    aw_message_dispose(&m);
}

static void expect(const aw_bot_t *bot, user_t *u, const char *type, const char *text, const char *want)
{
    turn(bot, u, type, text);
    if (strcmp(u->out, want) != 0)
        fprintf(stderr, "%s \"%s\":\n  got  \"%s\"\n  want \"%s\"\n", type, text, u->out, want);
    CHECK(strcmp(u->out, want) == 0);
}

static void done(user_t *u)
{
    aw_vars__clear(&u->vars);
    aw_reply_free(u->first);
    memset(u, 0, sizeof(*u));
}

static void test_triggers(void)
{
    char err[512];
    aw_bot_t *bot = NULL;
    if (aw_script_load(&bot, AW_EXAMPLES "/faq.json", err, sizeof(err)) != 0)
        fprintf(stderr, "%s\n", err);
    CHECK(bot != NULL);
    if (bot == NULL)
        return;
    user_t u = {0};
    expect(bot, &u, "hello", "",
           "Hi! I answer questions about our shop. Ask about opening hours, delivery or returns.");
    CHECK(u.first->n_quick_replies == 3 && strcmp(u.first->quick_replies[1].payload, "delivery") == 0);
    expect(bot, &u, "welcome_back", "", "Welcome back! What would you like to know?");
    expect(bot, &u, "message", "what are your HOURS?", "We are open Monday to Saturday, 9:00 to 18:00.");
    expect(bot, &u, "message", "Shipping costs?",
           "We deliver in 2 to 3 working days. | Orders over 50 EUR ship for free.");
    CHECK(u.first->typing_ms == 400);
    expect(bot, &u, "message", "returns", "You can return anything within 30 days.");
    CHECK(strcmp(u.first->open_link, "https://example.org/returns") == 0);
    expect(bot, &u, "message", " Thanks ", "You are welcome, ann!");
    expect(bot, &u, "message", "thanks a lot", "Sorry, I only know about hours, delivery and returns.");
    expect(bot, &u, "custom_event", "", "");
    done(&u);
    aw_bot_free(bot);
}

static void test_conversation(void)
{
    char err[512];
    aw_bot_t *bot = NULL;
    if (aw_script_load(&bot, AW_EXAMPLES "/booking.json", err, sizeof(err)) != 0)
        fprintf(stderr, "%s\n", err);
    CHECK(bot != NULL);
    if (bot == NULL)
        return;
    user_t u = {0};
    expect(bot, &u, "message", "I want to book", "What name should the booking be under?");
    expect(bot, &u, "message", "Ann", "For how many people, Ann?");
    CHECK(u.first->n_quick_replies == 2);
    expect(bot, &u, "message", "lots",
           "Please answer with a number from 1 to 99. | For how many people, Ann?");
    expect(bot, &u, "message", "4", "Lunch or dinner?");
    expect(bot, &u, "message", "breakfast", "Lunch or dinner, please. | Lunch or dinner?");
    expect(bot, &u, "message", "dinner please",
           "A table for 4 at dinner please, under Ann. Shall I book it?");
    expect(bot, &u, "message", "no", "Let us start again. | For how many people, Ann?");
    expect(bot, &u, "message", "2", "Lunch or dinner?");
    expect(bot, &u, "message", "Lunch", "A table for 2 at Lunch, under Ann. Shall I book it?");
    expect(bot, &u, "message", "yes", "Booked! See you soon, Ann.");
    CHECK(u.first->typing_ms == 500);
    expect(bot, &u, "message", "hello?", "Type \"book\" to book a table.");
    done(&u);
    aw_bot_free(bot);
}

static void expect_error(const char *json, const char *want)
{
    char err[512] = "";
    aw_bot_t *bot = NULL;
    CHECK(aw_script_compile(&bot, "bot.json", json, strlen(json), err, sizeof(err)) == AW_EINVAL);
    CHECK(bot == NULL);
    aw_bot_free(bot);
    if (strstr(err, want) == NULL)
        fprintf(stderr, "script %s\n  got error  \"%s\"\n  want within \"%s\"\n", json, err, want);
    CHECK(strstr(err, want) != NULL);
}

static void test_errors(void)
{
    expect_error("", "bot.json: at line 1, column 1:");
    expect_error("{\"triggers\": [\n  {\"exact\": \"hi\" \"say\": \"x\"}]}", "bot.json: at line 2, column");
    expect_error("[]", "bot.json: at the top level: a script is an object");
    expect_error("[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
                 "bot.json: at the top level: arrays and objects nest deeper than 32");
    expect_error("{}", "at triggers: expected a non-empty array");
    expect_error("{\"triggers\":[{\"exact\":\"a\",\"say\":\"x\"}],\"extra\":1}",
                 "at the top level: unknown field \"extra\"");
    expect_error("{\"triggers\":[{\"say\":\"x\"}]}", "at triggers[0]: a trigger needs exactly one of");
    expect_error("{\"triggers\":[{\"exact\":\"a\",\"event\":\"hello\",\"say\":\"x\"}]}",
                 "at triggers[0]: a trigger needs exactly one");
    expect_error("{\"triggers\":[{\"exact\":\"a\"}]}",
                 "at triggers[0]: a trigger needs \"say\", \"conversation\" or \"handoff\"");
    expect_error("{\"triggers\":[{\"exact\":\"a\",\"handoff\":7}]}",
                 "at triggers[0].handoff: expected true or a reason (a string)");
    expect_error(
        "{\"triggers\":[{\"exact\":\"a\",\"handoff\":true,\"conversation\":\"c\"}],\"conversations\":{"
        "\"c\":[{\"say\":\"x\"}]}}",
        "at triggers[0]: a trigger hands over to a person or starts a conversation, not both");
    expect_error("{\"triggers\":[{\"exact\":\"a\",\"say\":\"x\"}],\"handoff\":true}",
                 "at handoff: expected false, or an object of");
    expect_error("{\"triggers\":[{\"exact\":\"a\",\"say\":\"x\"}],\"handoff\":{\"words\":[]}}",
                 "at handoff: unknown field \"words\"");
    expect_error("{\"triggers\":[{\"exact\":\"a\",\"say\":\"x\"}],\"handoff\":{\"phrases\":[\"\"]}}",
                 "at handoff.phrases: expected an array of 1 to 32 words or phrases");
    expect_error("{\"triggers\":[{\"regex\":\"([\",\"say\":\"x\"}]}",
                 "at triggers[0].regex: not a valid regular expression");
    expect_error("{\"triggers\":[{\"exact\":\"a\",\"say\":{\"text\":\"x\",\"typing\":\"slow\"}}]}",
                 "at triggers[0].say.typing: \"typing\" must be milliseconds");
    expect_error("{\"triggers\":[{\"exact\":\"a\",\"say\":[\"x\",{\"txt\":\"y\"}]}]}",
                 "at triggers[0].say[1]: unknown field \"txt\"");
    expect_error(
        "{\"triggers\":[{\"exact\":\"a\",\"say\":{\"text\":\"x\",\"quick_replies\":[{\"payload\":\"p\"}]}}]}",
        "at triggers[0].say.quick_replies[0]: a quick reply needs a \"title\"");
    expect_error("{\"triggers\":[{\"exact\":\"a\",\"conversation\":\"nope\"}]}",
                 "at triggers[0]: no conversation named \"nope\"");
    expect_error(
        "{\"triggers\":[{\"exact\":\"a\",\"conversation\":\"c\"}],\"conversations\":{\"c\":[{\"ask\":\"q\","
        "\"branches\":[{\"exact\":\"y\",\"goto\":\"missing\"}]}]}}",
        "at conversations.c[0]: goto \"missing\": no step with that id");
    expect_error("{\"triggers\":[{\"exact\":\"a\",\"conversation\":\"c\"}],\"conversations\":{\"c\":[{"
                 "\"var\":\"v\",\"say\":\"x\"}]}}",
                 "at conversations.c[0]: \"branches\", \"else\" and \"var\" belong to an \"ask\" step");
    expect_error("{\"triggers\":[{\"exact\":\"a\",\"conversation\":\"c\"}],\"conversations\":{\"c\":[]}}",
                 "at conversations.c: expected a non-empty array of steps");
    expect_error("{\"triggers\":[{\"exact\":\"a\",\"conversation\":\"c\"}],\"conversations\":{\"c\":[{"
                 "\"ask\":\"q\",\"else\":{\"exact\":\"z\"}}]}}",
                 "at conversations.c[0].else: \"else\" takes no pattern");
}

/* A place deeper than the path buffer (a conversation named with 600
 * letters) is named with its end cut and marked, not cut silently. */
static void test_error_long_path_is_marked(void)
{
    char name[601], json[800], err[1024] = "";
    memset(name, 'x', 600);
    name[600] = '\0';
    snprintf(json, sizeof(json),
             "{\"triggers\":[{\"exact\":\"a\",\"conversation\":\"c\"}],\"conversations\":{\"%s\":[]}}", name);
    aw_bot_t *bot = NULL;
    CHECK(aw_script_compile(&bot, "bot.json", json, strlen(json), err, sizeof(err)) == AW_EINVAL);
    CHECK(bot == NULL);
    aw_bot_free(bot);
    CHECK(strstr(err, "bot.json: at conversations.xxx") == err);
    CHECK(strstr(err, "xxx...: expected a non-empty array of steps") != NULL);
}

/* A script asks for a person from a trigger, from a branch of a
 * conversation, and on the built-in words, which it may change or turn
 * off; its own triggers come first. */
static void test_handoff(void)
{
    static const char script[] =
        "{\"triggers\":["
        "{\"keyword\":\"refund\",\"say\":\"Refunds are for people.\",\"handoff\":\"refund\"},"
        "{\"keyword\":\"agent smith\",\"say\":\"A film.\"},"
        "{\"exact\":\"survey\",\"conversation\":\"s\"},"
        "{\"event\":\"handoff_end\",\"say\":\"Back.\"}],"
        "\"conversations\":{\"s\":[{\"ask\":\"Happy?\",\"branches\":[{\"exact\":\"no\",\"say\":\"Sorry.\","
        "\"handoff\":true}],\"else\":{\"say\":\"Good.\",\"goto\":\"end\"}}]}}";
    char err[512];
    aw_bot_t *bot = NULL;
    CHECK(aw_script_compile(&bot, "bot.json", script, strlen(script), err, sizeof(err)) == 0);
    if (bot == NULL) {
        fprintf(stderr, "%s\n", err);
        return;
    }
    user_t u = {0};
    expect(bot, &u, "message", "I want a refund", "Refunds are for people. | [handoff] refund");
    expect(bot, &u, "message", "a human please",
           "I will get a person for you. Someone will be with you shortly. | [handoff] asked for a person");
    expect(bot, &u, "message", "who is agent smith", "A film.");
    expect(bot, &u, "message", "survey", "Happy?");
    expect(bot, &u, "message", "no", "Sorry. | [handoff] ");
    expect(bot, &u, "handoff_end", "", "Back.");
    done(&u);
    aw_bot_free(bot);

    static const char off[] = "{\"triggers\":[{\"event\":\"message\",\"say\":\"echo\"}],\"handoff\":false}";
    CHECK(aw_script_compile(&bot, "bot.json", off, strlen(off), err, sizeof(err)) == 0);
    expect(bot, &u, "message", "a human please", "echo");
    done(&u);
    aw_bot_free(bot);

    static const char own[] = "{\"triggers\":[{\"event\":\"message\",\"say\":\"echo\"}],"
                              "\"handoff\":{\"phrases\":[\"mensch\",\"talk to someone\"],\"say\":\"Moment.\","
                              "\"reason\":\"wants someone\"}}";
    CHECK(aw_script_compile(&bot, "bot.json", own, strlen(own), err, sizeof(err)) == 0);
    expect(bot, &u, "message", "a human please", "echo");
    expect(bot, &u, "message", "can I talk to someone", "Moment. | [handoff] wants someone");
    expect(bot, &u, "message", "Mensch", "Moment. | [handoff] wants someone");
    done(&u);
    aw_bot_free(bot);

    /* the shipped example */
    bot = NULL;
    if (aw_script_load(&bot, AW_EXAMPLES "/support.json", err, sizeof(err)) != 0)
        fprintf(stderr, "%s\n", err);
    CHECK(bot != NULL);
    if (bot == NULL)
        return;
    expect(bot, &u, "message", "return", "Was the item damaged?");
    expect(bot, &u, "message", "yes",
           "Sorry about that. A colleague will arrange a replacement. | [handoff] damaged item, replacement");
    expect(bot, &u, "message", "this is broken",
           "I am sorry to hear that. Let me bring in a colleague. | [handoff] a complaint");
    expect(bot, &u, "message", "agent",
           "I will get a person for you. Someone will be with you shortly. | [handoff] asked for a person");
    expect(bot, &u, "handoff_end", "", "Thanks for waiting. I am back: anything else I can do?");
    done(&u);
    aw_bot_free(bot);
}

int main(void)
{
    test_triggers();
    test_handoff();
    test_conversation();
    test_errors();
    test_error_long_path_is_marked();
    char err[256];
    aw_bot_t *none = NULL;
    CHECK(aw_script_load(&none, "/nonexistent/bot.json", err, sizeof(err)) == AW_EIO && none == NULL &&
          strstr(err, "cannot open") != NULL);
    return check_exit("test_script");
}
