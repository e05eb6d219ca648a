/*
 * Unit tests of actors/identity.c: tokens against known HMAC-SHA256 values
 * (RFC 4231's, and others computed with Python's hmac module), verification
 * that accepts the token and nothing near it, and the secret file: made with
 * mode 0600 when missing, read back without its line end, refused when
 * empty, and the same secret for every loader when several start at once.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>
#include "actors/identity.h"
#include "runtime/error.h"
#include "tests/check.h"

static char dir[] = "/tmp/aw-test-identity-XXXXXX";

typedef struct vector {
    const char *secret;
    size_t secret_len;
    const char *user;
    size_t user_len;
    const char *token;
} vector_t;

#define S(lit) lit, sizeof(lit) - 1

/* hmac.new(secret, user, hashlib.sha256).hexdigest() in Python 3. */
static const vector_t vectors[] = {
    {S("key"), S("The quick brown fox jumps over the lazy dog"),
     "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"},
    {S("key"), S(""), "5d5d139563c95b5967b9bd9a8c9b233a9dedb45072794cd232dc1b74832607d0"},
    /* RFC 4231, test cases 1 and 2 */
    {S("\x0b\x0b\x0b\x0b\x0b\x0b\x0b\x0b\x0b\x0b\x0b\x0b\x0b\x0b\x0b\x0b\x0b\x0b\x0b\x0b"), S("Hi There"),
     "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"},
    {S("Jefe"), S("what do ya want for nothing?"),
     "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"},
    /* a secret with a NUL byte, a user id in UTF-8 */
    {S("s3cr\0t"), S("zo\xc3\xab-42"), "950a746b8437f6560fae920401062cce0c1a793d4181b4aa3f19fbddc2bc5ba6"},
    /* a secret as the server makes one (64 hex characters), and neighbouring ids */
    {S("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"), S("user-1"),
     "3e5afb86270fcc2d5b9ff623e4d663b18b8d34e9f62272d4566b9498148afe09"},
    {S("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"), S("user-2"),
     "5a02307c280c03ba15c1bc32e7f27476befb771c60fc8be6b5314bace33ae699"},
    /* the id's length counts, not its NUL */
    {S("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"), S("u\0ser"),
     "4bbe168e453e2ac5edce61a269b2aa82c07d9d30e761c4b425f399d6b14f2baa"},
};

static void test_vectors(void)
{
    for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
        const vector_t *v = &vectors[i];
        char tok[AW_TOKEN_LEN + 1];
        memset(tok, 'x', sizeof(tok));
        aw_identity_token((const unsigned char *)v->secret, v->secret_len, v->user, v->user_len, tok);
        if (strcmp(tok, v->token) != 0)
            fprintf(stderr, "vector %zu: got %s, want %s\n", i, tok, v->token);
        CHECK(strcmp(tok, v->token) == 0);
        CHECK(aw_identity_verify((const unsigned char *)v->secret, v->secret_len, v->user, v->user_len,
                                 v->token) == 1);
    }

    /* RFC 4231, test case 6: a key longer than SHA-256's block is hashed first */
    unsigned char big[131];
    memset(big, 0xaa, sizeof(big));
    const char *user = "Test Using Larger Than Block-Size Key - Hash Key First";
    char tok[AW_TOKEN_LEN + 1];
    aw_identity_token(big, sizeof(big), user, strlen(user), tok);
    CHECK(strcmp(tok, "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54") == 0);
}

/* Only the token itself is accepted: not in capitals, not a character more
 * or less, not with any one character changed, not another user's, not
 * under another secret. */
static void test_verify(void)
{
    const vector_t *v = &vectors[5];
    const unsigned char *sec = (const unsigned char *)v->secret;
    char tok[AW_TOKEN_LEN + 2];
    CHECK(aw_identity_verify(sec, v->secret_len, v->user, v->user_len, v->token) == 1);

    snprintf(tok, sizeof(tok), "%s", v->token);
    for (size_t i = 0; i < AW_TOKEN_LEN; i++)
        if (tok[i] >= 'a' && tok[i] <= 'f')
            tok[i] = (char)(tok[i] - 'a' + 'A');
    CHECK(strcmp(tok, v->token) != 0);
    CHECK(aw_identity_verify(sec, v->secret_len, v->user, v->user_len, tok) == 0);

    snprintf(tok, sizeof(tok), "%.63s", v->token);
    CHECK(aw_identity_verify(sec, v->secret_len, v->user, v->user_len, tok) == 0);
    snprintf(tok, sizeof(tok), "%s0", v->token);
    CHECK(strlen(tok) == AW_TOKEN_LEN + 1);
    CHECK(aw_identity_verify(sec, v->secret_len, v->user, v->user_len, tok) == 0);
    CHECK(aw_identity_verify(sec, v->secret_len, v->user, v->user_len, "") == 0);
    CHECK(aw_identity_verify(sec, v->secret_len, v->user, v->user_len, NULL) == 0);

    int accepted = 0;
    for (size_t i = 0; i < AW_TOKEN_LEN; i++) {
        snprintf(tok, sizeof(tok), "%s", v->token);
        tok[i] = tok[i] == '0' ? '1' : '0';
        accepted += aw_identity_verify(sec, v->secret_len, v->user, v->user_len, tok);
    }
    CHECK(accepted == 0);

    CHECK(aw_identity_verify(sec, v->secret_len, vectors[6].user, vectors[6].user_len, v->token) == 0);
    CHECK(aw_identity_verify(sec, v->secret_len - 1, v->user, v->user_len, v->token) == 0);
    CHECK(aw_identity_verify((const unsigned char *)"other", 5, v->user, v->user_len, v->token) == 0);
}

static void path_of(char *out, size_t size, const char *name)
{
    snprintf(out, size, "%s/%s", dir, name);
}

static void write_file(const char *path, const char *bytes, size_t len)
{
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    if (f == NULL)
        return;
    CHECK(fwrite(bytes, 1, len, f) == len);
    fclose(f);
}

static int is_hex(const unsigned char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return 1;
}

static void test_secret_file(void)
{
    char path[256];
    unsigned char a[AW_SECRET_MAX], b[AW_SECRET_MAX];
    size_t a_len = 0, b_len = 0;
    struct stat sb;

    /* missing: made, private, random, and read back the same next time */
    path_of(path, sizeof(path), "made.secret");
    CHECK(aw_identity_load_secret(path, a, &a_len) == 0);
    CHECK(a_len == 64 && is_hex(a, a_len));
    CHECK(stat(path, &sb) == 0 && (sb.st_mode & 0777) == 0600 && sb.st_size == 64);
    CHECK(aw_identity_load_secret(path, b, &b_len) == 0);
    CHECK(b_len == a_len && memcmp(a, b, a_len) == 0);
    path_of(path, sizeof(path), "other.secret");
    CHECK(aw_identity_load_secret(path, b, &b_len) == 0);
    CHECK(b_len == 64 && memcmp(a, b, 64) != 0);

    /* an operator's secret: kept as written, without its line end */
    path_of(path, sizeof(path), "mine.secret");
    write_file(path, "correct horse\n", 14);
    CHECK(aw_identity_load_secret(path, a, &a_len) == 0);
    CHECK(a_len == 13 && memcmp(a, "correct horse", 13) == 0);
    write_file(path, "battery staple\r\n", 16);
    CHECK(aw_identity_load_secret(path, a, &a_len) == 0);
    CHECK(a_len == 14 && memcmp(a, "battery staple", 14) == 0);
    write_file(path, "no newline", 10);
    CHECK(aw_identity_load_secret(path, a, &a_len) == 0);
    CHECK(a_len == 10 && memcmp(a, "no newline", 10) == 0);

    /* nothing to sign with: refused, never an empty key */
    path_of(path, sizeof(path), "empty.secret");
    write_file(path, "", 0);
    CHECK(aw_identity_load_secret(path, a, &a_len) == AW_EIO);
    write_file(path, "\n", 1);
    CHECK(aw_identity_load_secret(path, a, &a_len) == AW_EIO);
    path_of(path, sizeof(path), "no/such/folder/x.secret");
    CHECK(aw_identity_load_secret(path, a, &a_len) == AW_EIO);
}

/* Several loaders of one missing file at once, as threads. */
typedef struct loader {
    uv_barrier_t *start;
    const char *path;
    int err;
    unsigned char secret[AW_SECRET_MAX];
    size_t len;
} loader_t;

static void load_thread(void *arg)
{
    loader_t *l = arg;
    uv_barrier_wait(l->start);
    l->err = aw_identity_load_secret(l->path, l->secret, &l->len);
}

enum { LOADERS = 4, THREAD_ROUNDS = 100, PROCESS_ROUNDS = 30 };

/* Returns the number of rounds in which a loader failed or loaders
 * disagreed. */
static int race_threads(void)
{
    int bad = 0;
    for (int round = 0; round < THREAD_ROUNDS; round++) {
        char path[256];
        snprintf(path, sizeof(path), "%s/threads-%d.secret", dir, round);
        uv_barrier_t start;
        uv_barrier_init(&start, LOADERS);
        loader_t l[LOADERS];
        uv_thread_t t[LOADERS];
        for (int i = 0; i < LOADERS; i++) {
            memset(&l[i], 0, sizeof(l[i]));
            l[i].start = &start;
            l[i].path = path;
            CHECK(uv_thread_create(&t[i], load_thread, &l[i]) == 0);
        }
        int same = 1;
        for (int i = 0; i < LOADERS; i++) {
            uv_thread_join(&t[i]);
            same &= l[i].err == 0 && l[i].len == l[0].len && memcmp(l[i].secret, l[0].secret, l[0].len) == 0;
        }
        uv_barrier_destroy(&start);
        bad += !same;
    }
    return bad;
}

/* The same with processes: each child writes what it loaded, or "ERR", to
 * `out`; all start when the parent closes `go`. */
static int race_processes(void)
{
    int bad = 0;
    for (int round = 0; round < PROCESS_ROUNDS; round++) {
        char path[256];
        snprintf(path, sizeof(path), "%s/processes-%d.secret", dir, round);
        int go[2], out[LOADERS][2];
        pid_t pid[LOADERS];
        CHECK(pipe(go) == 0);
        for (int i = 0; i < LOADERS; i++) {
            CHECK(pipe(out[i]) == 0);
            pid[i] = fork();
            if (pid[i] == 0) {
                char c;
                close(go[1]);
                close(out[i][0]);
                (void)!read(go[0], &c, 1); /* returns 0 once the parent closes it */
                unsigned char s[AW_SECRET_MAX];
                size_t len = 0;
                if (aw_identity_load_secret(path, s, &len) != 0)
                    _exit(write(out[i][1], "ERR", 3) == 3 ? 0 : 1);
                _exit(write(out[i][1], s, len) == (ssize_t)len ? 0 : 1);
            }
            close(out[i][1]);
        }
        close(go[0]);
        close(go[1]);
        char got[LOADERS][AW_SECRET_MAX + 1];
        ssize_t n[LOADERS];
        int same = 1;
        for (int i = 0; i < LOADERS; i++) {
            int status = 0;
            n[i] = read(out[i][0], got[i], AW_SECRET_MAX);
            close(out[i][0]);
            CHECK(waitpid(pid[i], &status, 0) == pid[i] && WIFEXITED(status) && WEXITSTATUS(status) == 0);
            same &= n[i] == 64 && n[i] == n[0] && memcmp(got[i], got[0], (size_t)n[0]) == 0;
        }
        bad += !same;
    }
    return bad;
}

/* Two servers starting at once on one data folder must end with one secret:
 * otherwise tokens one issues are refused by the other after a restart. */
static void test_concurrent_loaders(void)
{
    int bad_processes = race_processes();
    int bad_threads = race_threads();
    if (bad_processes != 0 || bad_threads != 0)
        fprintf(stderr, "loaders failed or disagreed in %d of %d rounds of processes, %d of %d of threads\n",
                bad_processes, PROCESS_ROUNDS, bad_threads, THREAD_ROUNDS);
    CHECK(bad_processes == 0);
    CHECK(bad_threads == 0);
}

/* With no argument, every test but the concurrent loaders; with
 * "concurrent-loaders", only those (see CMakeLists.txt). */
int main(int argc, char **argv)
{
    int loaders = argc > 1 && strcmp(argv[1], "concurrent-loaders") == 0;
    if (mkdtemp(dir) == NULL)
        return 1;
    if (loaders) {
        test_concurrent_loaders();
    } else {
        test_vectors();
        test_verify();
        test_secret_file();
    }
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return check_exit(loaders ? "test_identity concurrent-loaders" : "test_identity");
}
