/* A real broker killed (SIGKILL) and restarted keeps its log: nothing to
 * re-seed, everything carries on. A cluster lost with its disks and formatted
 * afresh (disaster recovery): `trialog reseed` gives it its log back from the
 * archive, offsets continue exactly, and the projections and new commands
 * carry on with nothing lost or doubled; without the re-seed the projector
 * refuses to start. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define N 30

static tl_stack_t stack;
static char study[40], site[40];

static int setup(void **state)
{
    (void)state;
    tl_stack_start(&stack, "reseed");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tl_stack_stop(&stack);
    return 0;
}

static long enrol(int i)
{
    char code[32];
    snprintf(code, sizeof code, "RS-%03d", i);
    return tl_stack_enrol(&stack, study, site, code, false);
}

static void test_broker_restart_keeps_the_log(void **state)
{
    (void)state;
    tl_stack_study(&stack, "RS-1", study, site);
    for (int i = 0; i < N / 2; i++)
        assert_int_equal(enrol(i), 201);
    tl_stack_stop_programs(&stack);
    tl_stack_kill(&stack.broker[0], SIGKILL);
    tl_stack_start_broker(&stack);
    char *out = NULL;
    assert_int_equal(tl_stack_cli(&stack, "reseed", &out), 0);
    if (!strstr(out, "reseed done: 0 messages re-produced"))
        fail_msg("a restarted broker should have its log:\n%s", out);
    free(out);
    tl_stack_start_projector(&stack);
    tl_stack_start_audit(&stack);
    tl_stack_start_gateway(&stack);
    for (int i = N / 2; i < N; i++)
        assert_int_equal(enrol(i), 201);
    assert_int_equal(tl_sql_int(&stack, "SELECT count(*) FROM participants"), N);
}

static void test_broker_restart_with_reseed(void **state)
{
    (void)state;
    long long want = N + 2 + TL_STACK_BOOT_EVENTS;
    assert_true(tl_wait_count(&stack, "SELECT count(*) FROM " TL_LOG_ROWS, want, 20000));

    /* the cluster is lost with its disks: a new one, formatted afresh */
    tl_stack_stop_programs(&stack);
    tl_stack_wipe_broker(&stack);
    tl_stack_start_broker(&stack);

    /* every archived message, the archive's signed checkpoints included */
    char done[80];
    snprintf(done, sizeof done, "reseed done: %lld messages re-produced",
             tl_sql_int(&stack, "SELECT count(*) FROM audit_log"));
    char *out = NULL;
    if (tl_stack_cli(&stack, "reseed", &out) || !strstr(out, done))
        fail_msg("unexpected reseed output (want \"%s\"):\n%s", done, out);
    free(out);
    /* a second run finds nothing to do */
    assert_int_equal(tl_stack_cli(&stack, "reseed", &out), 0);
    assert_non_null(strstr(out, "reseed done: 0 messages re-produced"));
    free(out);

    tl_stack_start_projector(&stack);
    tl_stack_start_audit(&stack);
    tl_stack_start_gateway(&stack);
    assert_int_equal(enrol(N), 201);
    want = N + 3 + TL_STACK_BOOT_EVENTS;
    assert_true(tl_wait_count(&stack, "SELECT count(*) FROM " TL_LOG_ROWS, want, 20000));
    assert_int_equal(tl_sql_int(&stack, "SELECT count(*) FROM participants"), N + 1);
    assert_int_equal(tl_sql_int(&stack, "SELECT count(*) FROM " TL_LOG_ROWS),
                     N + 3 + TL_STACK_BOOT_EVENTS);
    assert_int_equal(tl_sql_int(&stack, "SELECT count(*) FROM projection_rejections"), 0);
    assert_int_equal(tl_sql_int(&stack, "SELECT sum(next_offset) FROM projection_offsets"
                                        " WHERE projection = 'participants'"
                                        " AND topic = 'trialog.participant.v1'"),
                     N + 1);
    int rc = tl_stack_cli(&stack, "audit verify", &out);
    if (rc)
        fail_msg("audit verify after the reseed exited %d:\n%s", rc, out);
    free(out);
}

static void test_reset_broker_without_reseed_is_refused(void **state)
{
    (void)state;
    /* the projector must not start on a cluster that lost what it applied */
    tl_stack_stop_programs(&stack);
    tl_stack_wipe_broker(&stack);
    tl_stack_start_broker(&stack);
    assert_int_not_equal(tl_stack_projector_exit(&stack, 30000), 0);
    assert_true(tl_stack_log_contains(&stack, "participants", "trialog reseed"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_broker_restart_keeps_the_log),
        cmocka_unit_test(test_broker_restart_with_reseed),
        cmocka_unit_test(test_reset_broker_without_reseed_is_refused),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
