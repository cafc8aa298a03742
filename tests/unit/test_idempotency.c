/* The Idempotency-Key rule (gateway/idempotency.h): what a request bringing
 * a key gets, from the key's row alone. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "idempotency.h"

#define ALICE "0190a3c0-0000-7000-8000-000000000001"
#define BOB "0190a3c0-0000-7000-8000-000000000002"
#define SHA_A "aaaa"
#define SHA_B "bbbb"

static tl_idem_row_t row(bool answered, bool produced, bool lease_active)
{
    return (tl_idem_row_t){ALICE, "POST", "/v1/studies", SHA_A, answered, produced, lease_active};
}

static void test_another_request_is_refused(void **state)
{
    (void)state;
    /* whatever state the row is in */
    for (int i = 0; i < 8; i++) {
        tl_idem_row_t r = row(i & 1, i & 2, i & 4);
        assert_int_equal(tl_idem_judge(&r, BOB, "POST", "/v1/studies", SHA_A), TL_IDEM_REUSED);
        assert_int_equal(tl_idem_judge(&r, ALICE, "PATCH", "/v1/studies", SHA_A),
                         TL_IDEM_REUSED);
        assert_int_equal(tl_idem_judge(&r, ALICE, "POST", "/v1/studies/x/sites", SHA_A),
                         TL_IDEM_REUSED);
        assert_int_equal(tl_idem_judge(&r, ALICE, "POST", "/v1/studies", SHA_B), TL_IDEM_REUSED);
    }
}

static void test_same_request(void **state)
{
    (void)state;
    tl_idem_row_t r = row(true, true, false);
    assert_int_equal(tl_idem_judge(&r, ALICE, "POST", "/v1/studies", SHA_A), TL_IDEM_REPLAY);
    r = row(true, false, true); /* a refusal before anything was sent is an answer too */
    assert_int_equal(tl_idem_judge(&r, ALICE, "POST", "/v1/studies", SHA_A), TL_IDEM_REPLAY);
    /* the log has the event: never written again, whether or not its
     * request still runs */
    r = row(false, true, true);
    assert_int_equal(tl_idem_judge(&r, ALICE, "POST", "/v1/studies", SHA_A), TL_IDEM_WAIT);
    r = row(false, true, false);
    assert_int_equal(tl_idem_judge(&r, ALICE, "POST", "/v1/studies", SHA_A), TL_IDEM_WAIT);
    r = row(false, false, true);
    assert_int_equal(tl_idem_judge(&r, ALICE, "POST", "/v1/studies", SHA_A),
                     TL_IDEM_IN_PROGRESS);
    r = row(false, false, false);
    assert_int_equal(tl_idem_judge(&r, ALICE, "POST", "/v1/studies", SHA_A), TL_IDEM_TAKE_OVER);
    /* principal ids compare as UUIDs */
    r = row(true, false, false);
    assert_int_equal(
        tl_idem_judge(&r, "0190A3C0-0000-7000-8000-000000000001", "POST", "/v1/studies", SHA_A),
        TL_IDEM_REPLAY);
}

static void test_final_answers(void **state)
{
    (void)state;
    assert_true(tl_idem_final(200, NULL));
    assert_true(tl_idem_final(201, NULL));
    assert_false(tl_idem_final(202, NULL)); /* in doubt: a retry finds out */
    assert_true(tl_idem_final(409, "concurrent-change"));
    assert_true(tl_idem_final(422, "study-locked"));
    assert_false(tl_idem_final(409, "idempotency-key-in-progress"));
    assert_false(tl_idem_final(408, NULL));
    assert_false(tl_idem_final(429, NULL));
    assert_false(tl_idem_final(500, NULL));
    assert_false(tl_idem_final(503, NULL));
    assert_false(tl_idem_final(304, NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_another_request_is_refused),
        cmocka_unit_test(test_same_request),
        cmocka_unit_test(test_final_answers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
