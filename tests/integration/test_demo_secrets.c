/* A new token can retire the old ones.
 *
 * `trialog admin bootstrap|issue-token … --revoke-others REASON` revokes the
 * principal's other live tokens once the new one is written, each with a
 * TokenRevoked event carrying the reason; without the option nothing is
 * revoked, and no other principal's token ever is. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_revoke_others),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
