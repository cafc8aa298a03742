/* tl_bp_must_wait: when the gateway stops taking commands so that no event
 * the archive has not stored can leave the broker (DESIGN.md §7). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "backpressure.h"

#define NOW 1800000000000LL /* ms */

static bool wait_for(int64_t ret_ms, int64_t ret_bytes, int64_t lag, int64_t last_ms, long cap)
{
    tl_bp_retention_t r = {ret_ms, ret_bytes};
    tl_bp_partition_t p = {lag, last_ms};
    return tl_bp_must_wait(&r, &p, NOW, cap);
}

static void test_no_lag_never_waits(void **state)
{
    (void)state;
    assert_false(wait_for(0, 0, 0, -1, 1));
    assert_false(wait_for(1000, 4096, 0, NOW - 999999, 1));
}

static void test_topics_that_keep_everything_never_wait(void **state)
{
    (void)state;
    /* however far the archive trails and however old its last row */
    assert_false(wait_for(-1, -1, 10000000, NOW - 365LL * 86400000, 0));
    assert_false(wait_for(-1, -1, 5, -1, 0));
}

static void test_operators_cap(void **state)
{
    (void)state;
    assert_false(wait_for(-1, -1, 200, NOW, 200));
    assert_true(wait_for(-1, -1, 201, NOW, 200));
    assert_false(wait_for(-1, -1, 1000000, NOW, 0)); /* 0: no cap */
}

static void test_retention_bytes_half_counted_at_event_size(void **state)
{
    (void)state;
    int64_t bytes = 100 * 2 * TL_BP_EVENT_BYTES; /* room for 100 */
    assert_false(wait_for(-1, bytes, 100, NOW, 0));
    assert_true(wait_for(-1, bytes, 101, NOW, 0));
    /* a retention smaller than two events: any unarchived message waits */
    assert_true(wait_for(-1, TL_BP_EVENT_BYTES, 1, NOW, 0));
}

static void test_retention_ms_from_the_last_archived_message(void **state)
{
    (void)state;
    int64_t day = 86400000;
    /* the oldest unarchived message is no older than the last archived one */
    assert_false(wait_for(day, -1, 5, NOW - day / 2, 0));
    assert_true(wait_for(day, -1, 5, NOW - day / 2 - 1, 0));
    assert_false(wait_for(day, -1, 5, NOW, 0));
    /* nothing archived yet: its age is unknown */
    assert_true(wait_for(day, -1, 1, -1, 0));
}

static void test_unknown_retention_is_zero_and_waits(void **state)
{
    (void)state;
    /* the monitor's value until the cluster has said: any lag waits */
    assert_true(wait_for(0, 0, 1, NOW, 0));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_lag_never_waits),
        cmocka_unit_test(test_topics_that_keep_everything_never_wait),
        cmocka_unit_test(test_operators_cap),
        cmocka_unit_test(test_retention_bytes_half_counted_at_event_size),
        cmocka_unit_test(test_retention_ms_from_the_last_archived_message),
        cmocka_unit_test(test_unknown_retention_is_zero_and_waits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
