/* The API answers as docs/openapi.yaml says: schemathesis, a property-based
 * API tester (tests/contract/schemathesis.sh, pinned in
 * tests/contract/requirements.txt), generates requests from the document,
 * valid and invalid, and sends them as an administrator to a live stack that
 * holds a small study (half of the requests name its study, participant,
 * visit types and template; the others ids nobody has). It fails
 * on any 5xx, any status the document does not list for the operation, any
 * other content type and any body the documented schema refuses. A fixed
 * seed and a fixed number of examples per operation bound it (~3 minutes). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "harness.h"

static tl_stack_t stack;

static int setup(void **state)
{
    (void)state;
    tl_stack_start(&stack, "contract");
    tl_stack_start_releases(&stack);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tl_stack_stop(&stack);
    return 0;
}

/* POSTs as the admin, asserting a 200 or 201 (which of the two a route
 * answers is not what this test is about). */
static void post_ok(const char *path, const char *body)
{
    tl_http_resp_t r = tl_http(&stack, "POST", path, body, NULL, true);
    if (r.status != 200 && r.status != 201)
        fail_msg("POST %s answered %ld", path, r.status);
    tl_http_free(&r);
}

/* A small study of its own (not the demo's script: this test must not
 * break when the demo changes): a form template, two visit types listing
 * it, one participant whose baseline is done and its form entered. */
static void seed(char *study, char *site, char *participant)
{
    char path[160];
    tl_stack_study(&stack, "CONTRACT-1", study, site);
    snprintf(path, sizeof path, "/v1/studies/%s/form-templates", study);
    tl_stack_post(&stack, path,
                  "{\"name\":\"vitals\",\"title\":\"Vitals\",\"fields\":["
                  "{\"name\":\"heart_rate\",\"type\":\"integer\",\"required\":true,"
                  "\"min\":20,\"max\":250,\"unit\":\"bpm\"},"
                  "{\"name\":\"notes\",\"type\":\"text\",\"max_length\":200}]}",
                  201, NULL);
    snprintf(path, sizeof path, "/v1/studies/%s/visit-types", study);
    tl_stack_post(&stack, path,
                  "{\"name\":\"Baseline\",\"target_day\":0,\"window_before_days\":0,"
                  "\"window_after_days\":0,\"form_templates\":[\"vitals\"]}",
                  201, NULL);
    tl_stack_post(&stack, path,
                  "{\"name\":\"Month 1\",\"target_day\":30,\"window_before_days\":7,"
                  "\"window_after_days\":14,\"form_templates\":[\"vitals\"]}",
                  201, NULL);
    assert_int_equal(tl_stack_enrol_id(&stack, study, site, "CON-001", false, participant), 201);
    snprintf(path, sizeof path, "/v1/participants/%s/visits/Baseline/complete", participant);
    post_ok(path, "{\"actual_date\":\"2026-01-01\"}");
    snprintf(path, sizeof path, "/v1/participants/%s/visits/Baseline/forms", participant);
    post_ok(path, "{\"template\":\"vitals\",\"answers\":{\"heart_rate\":72}}");
}

static void test_contract(void **state)
{
    (void)state;
    char study[40], site[40], participant[40];
    seed(study, site, participant);
    char path[160];
    tl_http_resp_t r;

    /* the history's times are RFC 3339 date-times, as the document says
     * (they were SQL's "YYYY-MM-DD HH:MM:SS.ffffff+00") */
    snprintf(path, sizeof path, "/v1/participants/%s/history", participant);
    r = tl_http(&stack, "GET", path, NULL, NULL, true);
    assert_int_equal(r.status, 200);
    const json_t *ev = json_array_get(json_object_get(r.body, "items"), 0);
    const char *when[] = {"occurred_at", "recorded_at"};
    for (size_t i = 0; i < 2; i++) {
        const char *t = json_string_value(json_object_get(ev, when[i]));
        assert_non_null(t);
        if (strlen(t) != 32 || t[10] != 'T' || strcmp(t + 26, "+00:00"))
            fail_msg("history %s is not an RFC 3339 date-time: %s", when[i], t);
    }
    tl_http_free(&r);

    /* the report goes beside the build's logs, not under tests/logs (which
     * the log scan reads): it holds request bodies */
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "%s/tests/contract/schemathesis.sh http://127.0.0.1:%d %s/admin.token "
             "%s/tests/contract/%s %s %s %s 2>&1",
             TL_SOURCE_DIR, stack.port, stack.dir, TL_BIN_DIR, stack.schema, study, site,
             participant);
    fflush(stdout);
    int st = system(cmd);
    if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
        fail_msg("schemathesis found answers that contradict docs/openapi.yaml (status %d): "
                 "see its output above",
                 st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_contract)};
    return cmocka_run_group_tests(tests, setup, teardown);
}
