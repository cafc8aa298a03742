/* The README's demo study, loaded by its own script (scripts/demo-seed.sh),
 * and the data-quality report it must give, computed by hand from the
 * script. Change the two together.
 *
 * The demo: 7 participants (AMD-00041 to AMD-00047; 1-3 at STL, 4-7 at
 * BOS), visits completed as the script says, forms entered against
 * visual_acuity version 1 (only participant 1's say how the pressure was
 * measured), then version 2 makes "iop_method" required and narrows the pressure
 * range to 5-60 mmHg. So:
 *
 *   missing_form      P2 Month 3 oct (STL), P6 Baseline visual_acuity (BOS),
 *                     and at Month 1, which lists adverse_events and
 *                     medication_changes: P1 medication_changes, P3
 *                     adverse_events (STL), P4 both (BOS)
 *   missing_required  "iop_method" in the 7 acuity forms of P2-P5, P7 still on
 *                     version 1 (P3's Baseline one was moved to version 2 by
 *                     an amendment that answered it): Baseline P2 P4 P5 P7,
 *                     Month 1 P3 P4, Month 3 P2; each names the fix, upgrade
 *   out_of_range      P4 Baseline iop_od_mmhg 4 (BOS), fine on version 1,
 *                     below version 2's minimum: fix upgrade
 *   unsigned_form     22 forms, 8 signed (P1's six, P2's two Baseline ones):
 *                     STL 6 (P2 2, P3 4), BOS 8; Baseline 9, Month 1 3,
 *                     Month 3 1, Month 6 1 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "harness.h"

static tl_stack_t stack;
static char study[40], stl[40];

static int setup(void **state)
{
    (void)state;
    tl_stack_start(&stack, "demo");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tl_stack_stop(&stack);
    return 0;
}

static void seed(void)
{
    tl_stack_demo_seed(&stack, study, stl);
}

static json_t *get(const char *token, const char *path, long want)
{
    tl_http_resp_t r = tl_http_as(&stack, token, "GET", path, NULL, NULL);
    if (r.status != want)
        fail_msg("GET %s: %ld, want %ld", path, r.status, want);
    json_t *body = r.body;
    r.body = NULL;
    tl_http_free(&r);
    return body;
}

static long counter(const json_t *o, const char *name)
{
    const json_t *v = json_object_get(o, name);
    if (!json_is_integer(v))
        fail_msg("no counter %s", name);
    return (long)json_integer_value(v);
}

/* missing_forms, missing_required, out_of_range, invalid_values, unsigned_forms */
static void expect_counts(const json_t *o, long mf, long mr, long oor, long inv, long uns)
{
    assert_int_equal(counter(o, "missing_forms"), mf);
    assert_int_equal(counter(o, "missing_required"), mr);
    assert_int_equal(counter(o, "out_of_range"), oor);
    assert_int_equal(counter(o, "invalid_values"), inv);
    assert_int_equal(counter(o, "unsigned_forms"), uns);
}

static const json_t *by(const json_t *arr, const char *key, const char *value)
{
    size_t i;
    json_t *e;
    json_array_foreach(arr, i, e)
    {
        if (!strcmp(json_string_value(json_object_get(e, key)), value))
            return e;
    }
    fail_msg("no %s %s", key, value);
    return NULL;
}

static const char *str(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "";
}

/* A day from today, UTC, as YYYY-MM-DD. */
static void day(int from_today, char out[11])
{
    time_t t = time(NULL) + (time_t)from_today * 86400;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 11, "%Y-%m-%d", &tm);
}

static void check_report(const char *token)
{
    char path[300], later[11];
    day(30, later);
    snprintf(path, sizeof path, "/v1/studies/%s/data-quality?as_of=%s&unsigned_days=14", study,
             later);
    json_t *r = get(token, path, 200);
    expect_counts(json_object_get(r, "totals"), 6, 7, 1, 0, 14);
    const json_t *sites = json_object_get(r, "sites");
    assert_int_equal(json_array_size(sites), 2);
    expect_counts(by(sites, "code", "STL"), 3, 3, 0, 0, 6);
    expect_counts(by(sites, "code", "BOS"), 3, 4, 1, 0, 8);
    const json_t *vts = json_object_get(r, "visit_types");
    expect_counts(by(vts, "name", "Baseline"), 1, 4, 1, 0, 9);
    expect_counts(by(vts, "name", "Month 1"), 4, 2, 0, 0, 3);
    expect_counts(by(vts, "name", "Month 3"), 1, 1, 0, 0, 1);
    expect_counts(by(vts, "name", "Month 6"), 0, 0, 0, 0, 1);

    /* the work list, item by item where it matters */
    const json_t *items = json_object_get(r, "items");
    assert_int_equal(json_array_size(items), 6 + 7 + 1 + 14);
    assert_false(json_is_true(json_object_get(r, "items_truncated")));
    int missing = 0, required = 0, range = 0;
    size_t i;
    json_t *e;
    json_array_foreach(items, i, e)
    {
        const char *kind = str(e, "kind"), *code = str(e, "participant_code");
        if (!strcmp(kind, "missing_form")) {
            bool p2 = !strcmp(code, "AMD-00042") && !strcmp(str(e, "visit"), "Month 3") &&
                      !strcmp(str(e, "template"), "oct");
            bool p6 = !strcmp(code, "AMD-00046") && !strcmp(str(e, "visit"), "Baseline") &&
                      !strcmp(str(e, "template"), "visual_acuity");
            bool m1 = !strcmp(str(e, "visit"), "Month 1") &&
                      ((!strcmp(code, "AMD-00041") &&
                        !strcmp(str(e, "template"), "medication_changes")) ||
                       (!strcmp(code, "AMD-00043") &&
                        !strcmp(str(e, "template"), "adverse_events")) ||
                       !strcmp(code, "AMD-00044"));
            assert_true(p2 || p6 || m1);
            missing++;
        } else if (!strcmp(kind, "missing_required")) {
            assert_string_equal(str(e, "field"), "iop_method");
            assert_string_equal(str(e, "template"), "visual_acuity");
            /* version 2 asks for it, the form is on version 1: upgrade it */
            assert_int_equal(json_integer_value(json_object_get(e, "template_version")), 2);
            assert_int_equal(json_integer_value(json_object_get(e, "form_template_version")), 1);
            assert_string_equal(str(e, "fix"), "upgrade");
            assert_string_not_equal(code, "AMD-00041");
            /* P3's Baseline form was upgraded: its finding cleared */
            assert_false(!strcmp(code, "AMD-00043") && !strcmp(str(e, "visit"), "Baseline"));
            required++;
        } else if (!strcmp(kind, "out_of_range")) {
            assert_string_equal(code, "AMD-00044");
            assert_string_equal(str(e, "field"), "iop_od_mmhg");
            assert_string_equal(str(e, "code"), "below_min");
            assert_string_equal(str(e, "fix"), "upgrade");
            assert_int_equal(json_number_value(json_object_get(e, "value")), 4);
            range++;
        } else {
            assert_string_equal(kind, "unsigned_form");
            assert_int_equal(json_integer_value(json_object_get(e, "days_unsigned")), 30);
        }
    }
    assert_int_equal(missing, 6);
    assert_int_equal(required, 7);
    assert_int_equal(range, 1);
    /* ordered by participant code */
    for (i = 1; i < json_array_size(items); i++)
        assert_true(strcmp(str(json_array_get(items, i - 1), "participant_code"),
                           str(json_array_get(items, i), "participant_code")) <= 0);
    json_decref(r);

    /* today, nothing has waited for a signature for more than a day */
    snprintf(path, sizeof path, "/v1/studies/%s/data-quality?unsigned_days=1", study);
    r = get(token, path, 200);
    expect_counts(json_object_get(r, "totals"), 6, 7, 1, 0, 0);
    json_decref(r);
}

static void test_demo_data_quality(void **state)
{
    (void)state;
    seed();
    assert_int_equal(tl_sql_int(&stack, "SELECT count(*) FROM forms"), 22);
    assert_int_equal(tl_sql_int(&stack, "SELECT count(*) FROM forms WHERE status = 'signed'"), 8);
    assert_int_equal(tl_sql_int(&stack, "SELECT count(*) FROM form_templates"), 6);
    check_report(stack.token);

    /* a coordinator of STL sees STL alone */
    char coord[80];
    tl_stack_token(&stack, "coordinator", stl, coord);
    char path[300];
    snprintf(path, sizeof path, "/v1/studies/%s/data-quality?unsigned_days=0", study);
    json_t *r = get(coord, path, 200);
    assert_int_equal(json_array_size(json_object_get(r, "sites")), 1);
    expect_counts(json_object_get(r, "totals"), 3, 3, 0, 0, 0);
    json_t *e;
    size_t i;
    json_array_foreach(json_object_get(r, "items"), i, e)
        assert_string_equal(str(e, "site_id"), stl);
    json_decref(r);

    /* hostile parameters: 400 with the field named */
    snprintf(path, sizeof path, "/v1/studies/%s/data-quality?unsigned_days=-1", study);
    json_decref(get(stack.token, path, 400));
    snprintf(path, sizeof path, "/v1/studies/%s/data-quality?as_of=2026-02-30", study);
    json_decref(get(stack.token, path, 400));
    json_decref(
        get(stack.token, "/v1/studies/0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b/data-quality", 404));

    /* the script is idempotent: a second run changes nothing */
    seed();
    assert_int_equal(tl_sql_int(&stack, "SELECT count(*) FROM forms"), 22);
    assert_int_equal(tl_sql_int(&stack, "SELECT count(*) FROM form_templates"), 6);
    check_report(stack.token);
}

/* After every kind of command the demo makes, run twice with the same
 * Idempotency-Keys (studies, sites, principals, enrolments, visits, forms,
 * amendments, signatures, a two-person signing enrolment): no event id
 * twice in the log, and the archive verifies against the broker. */
static void test_no_event_id_twice(void **state)
{
    (void)state;
    char *out = NULL;
    int rc = tl_stack_cli(&stack, "audit verify", &out);
    if (rc)
        fail_msg("audit verify exited %d:\n%s", rc, out);
    free(out);
    assert_true(tl_sql_int(&stack, "SELECT count(*) FROM " TL_LOG_ROWS) > 50);
    assert_int_equal(tl_sql_int(&stack, "SELECT count(*) FROM (SELECT event_id FROM audit_log"
                                        " WHERE event_id IS NOT NULL GROUP BY event_id"
                                        " HAVING count(*) > 1) d"),
                     0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_demo_data_quality),
        cmocka_unit_test(test_no_event_id_twice),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
