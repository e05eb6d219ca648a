/*
 * Operators (actors/operators.h): the file's parser refuses every malformed
 * line by number, an entry written by aw_operators_add checks its password
 * and no other, a second add replaces the line, sign-ins and sign-outs, and
 * the brake on failed sign-ins.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "actors/operators.h"
#include "runtime/error.h"
#include "tests/check.h"

static const char salt[] = "000102030405060708090a0b0c0d0e0f";
static const char hash[] = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

static int parses(const char *text, char *err, size_t size)
{
    aw_operators_t *ops = NULL;
    int rc = aw_operators_parse(text, strlen(text), &ops, err, size);
    aw_operators_free(ops);
    return rc;
}

static void test_parse(void)
{
    char line[512], err[256];
    snprintf(line, sizeof(line),
             "# operators\n\nann:pbkdf2-sha256:1000:%s:%s\r\nbob:pbkdf2-sha256:2000:%s:%s", salt, hash, salt,
             hash);
    aw_operators_t *ops = NULL;
    CHECK(aw_operators_parse(line, strlen(line), &ops, err, sizeof(err)) == 0);
    CHECK(ops != NULL && aw_operators_count(ops) == 2);
    aw_operators_free(ops);
    CHECK(aw_operators_parse("", 0, &ops, err, sizeof(err)) == 0 && aw_operators_count(ops) == 0);
    aw_operators_free(ops);
    static const char *const bad[] = {
        "ann",
        "ann:pbkdf2-sha256:1000:%s",
        "a n:pbkdf2-sha256:1000:%s:%s",
        "ann:md5:1000:%s:%s",
        "ann:pbkdf2-sha256:999:%s:%s",
        "ann:pbkdf2-sha256:10000001:%s:%s",
        "ann:pbkdf2-sha256:99999999999999999999999:%s:%s",
        "ann:pbkdf2-sha256:x:%s:%s",
        "ann:pbkdf2-sha256:1000:%sAB:%s",
        "ann:pbkdf2-sha256:1000:%s:%s:extra",
        "ann:pbkdf2-sha256:1000:%s:%s\nann:pbkdf2-sha256:1000:%s:%s",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(line, sizeof(line), bad[i], salt, hash, salt, hash);
        err[0] = '\0';
        CHECK(parses(line, err, sizeof(err)) == AW_EINVAL);
        CHECK(strncmp(err, "line ", 5) == 0);
    }
    snprintf(line, sizeof(line), "# x\nann:pbkdf2-sha256:1000:%s:%s\nbad line", salt, hash);
    CHECK(parses(line, err, sizeof(err)) == AW_EINVAL && strncmp(err, "line 3:", 7) == 0);
}

static void test_add_and_check(void)
{
    char dir[] = "/tmp/aw-test-ops-XXXXXX", path[64], err[256];
    CHECK(mkdtemp(dir) != NULL);
    snprintf(path, sizeof(path), "%s/operators", dir);
    CHECK(aw_operators_add(path, "ann", "correct horse", err, sizeof(err)) == 0);
    CHECK(aw_operators_add(path, "bob", "battery staple", err, sizeof(err)) == 0);
    CHECK(aw_operators_add(path, "a b", "x", err, sizeof(err)) == AW_EINVAL);
    CHECK(aw_operators_add(path, "cat", "", err, sizeof(err)) == AW_EINVAL);
    struct stat st;
    CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600);
    aw_operators_t *ops = NULL;
    CHECK(aw_operators_load(path, &ops, err, sizeof(err)) == 0 && aw_operators_count(ops) == 2);
    CHECK(aw_operators_check(ops, "ann", "correct horse"));
    CHECK(!aw_operators_check(ops, "ann", "battery staple"));
    CHECK(!aw_operators_check(ops, "ann", ""));
    CHECK(!aw_operators_check(ops, "nobody", "correct horse"));
    CHECK(aw_operators_check(ops, "bob", "battery staple"));
    aw_operators_free(ops);
    /* a new password replaces the line: still two operators */
    CHECK(aw_operators_add(path, "ann", "new secret", err, sizeof(err)) == 0);
    CHECK(aw_operators_load(path, &ops, err, sizeof(err)) == 0 && aw_operators_count(ops) == 2);
    CHECK(aw_operators_check(ops, "ann", "new secret") && !aw_operators_check(ops, "ann", "correct horse"));

    char id[AW_OPERATOR_SESSION_MAX + 1], name[AW_OPERATOR_NAME_MAX + 1];
    CHECK(aw_operators_sign_in(ops, "ann", 1000, id) == 0 && strlen(id) == 96 + 3);
    CHECK(strcmp(id + 96, "ann") == 0);
    CHECK(aw_operators_session(ops, id, strlen(id), 2000, name) == 1 && strcmp(name, "ann") == 0);
    CHECK(aw_operators_session(ops, id, strlen(id) - 1, 2000, name) == 0);
    CHECK(aw_operators_session(ops, id, strlen(id), 1000 + AW_OPERATOR_SESSION_MS, name) == 0); /* expired */
    /* made by a node whose clock runs ahead: by a minute at most */
    char ahead[AW_OPERATOR_SESSION_MAX + 1];
    CHECK(aw_operators_sign_in(ops, "ann", 100000, ahead) == 0);
    CHECK(aw_operators_session(ops, ahead, strlen(ahead), 50000, name) == 1);
    CHECK(aw_operators_session(ops, ahead, strlen(ahead), 30000, name) == 0);
    /* any change to it, the name's included, is no sign-in */
    for (size_t i = 0; i < strlen(id); i++) {
        char forged[AW_OPERATOR_SESSION_MAX + 1];
        memcpy(forged, id, sizeof(forged));
        forged[i] = forged[i] == 'a' ? 'b' : 'a';
        CHECK(aw_operators_session(ops, forged, strlen(forged), 2000, name) == 0);
    }
    char bob[AW_OPERATOR_SESSION_MAX + 1];
    memcpy(bob, id, sizeof(bob));
    memcpy(bob + 96, "bob", 4);
    CHECK(aw_operators_session(ops, bob, strlen(bob), 2000, name) == 0);
    /* another process with the same secret reads it; another secret does not */
    aw_operators_t *same = NULL, *other = NULL;
    CHECK(aw_operators_load(path, &same, err, sizeof(err)) == 0 &&
          aw_operators_load(path, &other, err, sizeof(err)) == 0);
    CHECK(aw_operators_session(same, id, strlen(id), 2000, name) ==
          0); /* no key yet: its own sign-ins only */
    aw_operators_set_key(ops, (const unsigned char *)"the secret", 10);
    aw_operators_set_key(same, (const unsigned char *)"the secret", 10);
    aw_operators_set_key(other, (const unsigned char *)"another one", 11);
    CHECK(aw_operators_sign_in(ops, "ann", 1000, id) == 0);
    CHECK(aw_operators_session(same, id, strlen(id), 2000, name) == 1 && strcmp(name, "ann") == 0);
    CHECK(aw_operators_session(other, id, strlen(id), 2000, name) == 0);
    /* signing out ends every sign-in of the operator made until then, not later ones */
    char id2[AW_OPERATOR_SESSION_MAX + 1];
    CHECK(aw_operators_sign_in(ops, "ann", 1500, id2) == 0);
    CHECK(aw_operators_sign_out(ops, id, strlen(id), 3000, name) == 1 && strcmp(name, "ann") == 0);
    CHECK(aw_operators_session(ops, id, strlen(id), 3000, name) == 0);
    CHECK(aw_operators_session(ops, id2, strlen(id2), 3000, name) == 0);
    CHECK(aw_operators_sign_out(ops, "nonsense", 8, 3000, name) == 0);
    char id3[AW_OPERATOR_SESSION_MAX + 1];
    CHECK(aw_operators_sign_in(ops, "ann", 4000, id3) == 0);
    CHECK(aw_operators_session(ops, id3, strlen(id3), 4000, name) == 1);
    /* the other node hears of it, and of a start */
    char *outs = aw_operators_sign_outs(ops, 5000);
    CHECK(strcmp(outs, "ann 3001\n") == 0);
    free(outs);
    CHECK(aw_operators_session(same, id2, strlen(id2), 3000, name) == 1);
    aw_operators_signed_out(same, "ann", 3, 3001);
    CHECK(aw_operators_session(same, id2, strlen(id2), 3000, name) == 0);
    CHECK(aw_operators_session(same, id3, strlen(id3), 4000, name) == 1);
    aw_operators_set_epoch(same, 4500);
    aw_operators_set_epoch(same, 10); /* the later wins */
    CHECK(aw_operators_epoch(same) == 4500);
    CHECK(aw_operators_session(same, id3, strlen(id3), 4600, name) == 0);
    aw_operators_free(same);
    aw_operators_free(other);

    for (int i = 0; i < AW_OPERATOR_FAILURES; i++) {
        CHECK(aw_operators_may_try(ops, "10.0.0.1", 5000));
        aw_operators_failed(ops, "10.0.0.1", 5000);
    }
    CHECK(!aw_operators_may_try(ops, "10.0.0.1", 6000));
    CHECK(aw_operators_may_try(ops, "10.0.0.2", 6000)); /* another address */
    CHECK(aw_operators_may_try(ops, "10.0.0.1", 5001 + AW_OPERATOR_FAILURE_WINDOW_MS));
    aw_operators_free(ops);

    FILE *f = fopen(path, "a");
    fputs("garbage\n", f);
    fclose(f);
    CHECK(aw_operators_add(path, "cat", "x", err, sizeof(err)) ==
          AW_EINVAL); /* never rewrites a file it cannot read */
    CHECK(aw_operators_load("/nonexistent/operators", &ops, err, sizeof(err)) == AW_EIO);
    unlink(path);
    rmdir(dir);
}

int main(void)
{
    test_parse();
    test_add_and_check();
    return check_exit("test_operators");
}
