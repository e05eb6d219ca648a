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

    char id[AW_OPERATOR_SESSION_LEN + 1], name[AW_OPERATOR_NAME_MAX + 1];
    CHECK(aw_operators_sign_in(ops, "ann", 1000, id) == 0 && strlen(id) == AW_OPERATOR_SESSION_LEN);
    CHECK(aw_operators_session(ops, id, strlen(id), 2000, name) == 1 && strcmp(name, "ann") == 0);
    CHECK(aw_operators_session(ops, id, strlen(id) - 1, 2000, name) == 0);
    CHECK(aw_operators_session(ops, id, strlen(id), 1000 + AW_OPERATOR_SESSION_MS, name) == 0); /* expired */
    CHECK(aw_operators_sign_in(ops, "ann", 1000, id) == 0);
    aw_operators_sign_out(ops, id, strlen(id));
    CHECK(aw_operators_session(ops, id, strlen(id), 2000, name) == 0);

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
