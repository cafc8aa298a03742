/* The demo's secrets are its user's alone, and a new demo token retires the
 * old ones.
 *
 * `trialog admin bootstrap|issue-token … --revoke-others REASON` revokes the
 * principal's other live tokens once the new one is written, each with a
 * TokenRevoked event carrying the reason; without the option nothing is
 * revoked, and no other principal's token ever is.
 *
 * The demo's own path (scripts/lib.sh: tl_demo_admins, tl_secret_key; then
 * scripts/demo-seed.sh), run into a directory of this test as `make demo`
 * runs it into var/demo: the two admin tokens, the clinician's token and the
 * research key are plain files of ours, mode 0600; a second run leaves only
 * the newest admin tokens valid and keeps the key. (The PostgreSQL cluster's
 * password file and socket: tests/local/test_local_pg.py.) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"

static tl_stack_t stack;

static int setup(void **state)
{
    (void)state;
    tl_stack_start(&stack, "demo_secrets");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tl_stack_stop(&stack);
    return 0;
}

/* The first line of path (a token, or the research key) into out. */
static void read_line(const char *path, char *out, size_t size)
{
    FILE *f = fopen(path, "r");
    if (!f)
        fail_msg("cannot open %s", path);
    assert_non_null(fgets(out, (int)size, f));
    fclose(f);
    out[strcspn(out, "\n")] = '\0';
}

/* Runs `trialog admin …` (args, printf-style) and returns its exit code. */
static int admin(const char *fmt, ...)
{
    char args[1600], *out = NULL;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    int rc = tl_stack_cli(&stack, args, &out);
    free(out);
    return rc;
}

static long me(const char *token)
{
    tl_http_resp_t r = tl_http_as(&stack, token, "GET", "/v1/me", NULL, NULL);
    long status = r.status;
    tl_http_free(&r);
    return status;
}

/* A plain file of ours that nobody else may read or write. */
static void assert_secret_file(const char *path)
{
    struct stat st;
    if (lstat(path, &st))
        fail_msg("%s is missing", path);
    if (!S_ISREG(st.st_mode) || (st.st_mode & 07777) != 0600 || st.st_uid != getuid())
        fail_msg("%s: mode %o, owner %d; want a plain file, mode 600, owner %d", path,
                 (unsigned)(st.st_mode & 07777), (int)st.st_uid, (int)getuid());
}

static void test_revoke_others(void **state)
{
    (void)state;
    char path[700], t1[80], t2[80], t3[80], t4[80], t5[80];
    snprintf(path, sizeof path, "%s/rotating.token", stack.dir);
    const char *revoking = "admin bootstrap rotating-admin --out %s --revoke-others rotated";
    assert_int_equal(admin(revoking, path), 0);
    read_line(path, t1, sizeof t1);
    assert_int_equal(me(t1), 200);
    /* a new token: the one before answers 401 from then on */
    assert_int_equal(admin(revoking, path), 0);
    read_line(path, t2, sizeof t2);
    assert_int_equal(me(t1), 401);
    assert_int_equal(me(t2), 200);
    /* a revocation with its reason, as the event said */
    assert_int_equal(tl_sql_int(&stack, "SELECT count(*) FROM access_tokens t"
                                        " JOIN principals p ON p.id = t.principal_id"
                                        " WHERE p.name = 'rotating-admin'"
                                        " AND t.revoke_reason = 'rotated'"),
                     1);
    /* without the option: both stay valid */
    assert_int_equal(admin("admin bootstrap rotating-admin --out %s", path), 0);
    read_line(path, t3, sizeof t3);
    assert_int_equal(me(t2), 200);
    assert_int_equal(me(t3), 200);
    /* with it: every other one goes, and nobody else's */
    assert_int_equal(admin(revoking, path), 0);
    read_line(path, t4, sizeof t4);
    assert_int_equal(me(t2), 401);
    assert_int_equal(me(t3), 401);
    assert_int_equal(me(t4), 200);
    assert_int_equal(me(stack.token), 200);
    /* issue-token does the same */
    assert_int_equal(
        admin("admin issue-token rotating-admin --out %s --revoke-others 'key rotation'", path),
        0);
    read_line(path, t5, sizeof t5);
    assert_int_equal(me(t4), 401);
    assert_int_equal(me(t5), 200);
    assert_int_equal(tl_sql_int(&stack, "SELECT count(*) FROM access_tokens"
                                        " WHERE revoke_reason = 'key rotation'"),
                     1);
    /* refused, changing nothing: no reason; a command that issues no token */
    assert_int_equal(admin("admin bootstrap rotating-admin --out %s --revoke-others ''", path), 2);
    assert_int_equal(admin("admin disable rotating-admin --reason gone --revoke-others x"), 2);
    assert_int_equal(me(t5), 200);
}

/* The demo's administrators (scripts/lib.sh tl_demo_admins) and research key
 * (tl_secret_key, made once) into dir, with the stack's settings. */
static void demo_admins(const char *dir)
{
    char cmd[4000];
    size_t len = 0;
    snprintf(cmd, sizeof cmd,
             "TL_BUILD='%s' TRIALOG_PG_DSN=\"%s\" TRIALOG_PG_SCHEMA=%s TRIALOG_KAFKA_BROKERS='%s'"
             " bash -c 'source \"%s/scripts/lib.sh\" && tl_demo_admins \"%s\" &&"
             " { [ -s \"%s/research.key\" ] || tl_secret_key \"%s/research.key\"; }' 2>&1",
             TL_BIN_DIR, getenv("TRIALOG_TEST_PG_DSN"), stack.schema, stack.brokers,
             TL_SOURCE_DIR, dir, dir, dir);
    free(tl_run(cmd, &len));
}

static void assert_demo_files(const char *dir)
{
    const char *names[] = {"admin.token", "admin2.token", "clinician.token", "research.key"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char path[800];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        assert_secret_file(path);
    }
}

static void test_demo_files(void **state)
{
    (void)state;
    char dir[600], path[700], cmd[2000], admin1[80], admin2[80], key[80], again[80];
    size_t len = 0;
    snprintf(dir, sizeof dir, "%s/demo", stack.dir);
    assert_int_equal(mkdir(dir, 0700), 0);
    demo_admins(dir);
    /* the demo study, as make demo loads it: the clinician's token too */
    snprintf(cmd, sizeof cmd, "%s/scripts/demo-seed.sh http://127.0.0.1:%d %s/admin.token 2>&1",
             TL_SOURCE_DIR, stack.port, dir);
    free(tl_run(cmd, &len));
    assert_demo_files(dir);
    snprintf(path, sizeof path, "%s/admin.token", dir);
    read_line(path, admin1, sizeof admin1);
    snprintf(path, sizeof path, "%s/admin2.token", dir);
    read_line(path, admin2, sizeof admin2);
    snprintf(path, sizeof path, "%s/research.key", dir);
    read_line(path, key, sizeof key);
    assert_int_equal(strlen(key), 64);
    assert_int_equal(me(admin1), 200);
    assert_int_equal(me(admin2), 200);

    /* make demo again: new admin tokens, the old ones revoked, the key kept */
    demo_admins(dir);
    assert_demo_files(dir);
    assert_int_equal(me(admin1), 401);
    assert_int_equal(me(admin2), 401);
    snprintf(path, sizeof path, "%s/admin.token", dir);
    read_line(path, again, sizeof again);
    assert_int_equal(me(again), 200);
    snprintf(path, sizeof path, "%s/admin2.token", dir);
    read_line(path, again, sizeof again);
    assert_int_equal(me(again), 200);
    snprintf(path, sizeof path, "%s/research.key", dir);
    read_line(path, again, sizeof again);
    assert_true(!strcmp(again, key)); /* not printed: a secret */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_revoke_others),
        cmocka_unit_test(test_demo_files),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
