/* The protocol's rules over real HTTP (issue 26, docs/SCHEDULES.md): each
 * test is a hole a study team found, and fails on a gateway without the
 * rule. The baseline stays the one day-0 visit type, defined first; a missed
 * visit is reopened with a reason; no date before consent or out of order;
 * a baseline change that puts completed visits out of window says why for
 * each; a visit type lists only templates the study has; a change that
 * reschedules enrolled participants carries a reason, and a missing, empty
 * or blank reason answers 422 reason-required alike; a withdrawn
 * participant's visit dates are still corrected, nothing new is done, and
 * the withdrawal date is kept, in the resource, the history and a rebuild.
 * Each test has a study of its own. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

static tl_stack_t stack;
/* the participant test_dates_are_bounded_by_consent_and_order withdraws */
static char withdrawn[40];

/* One request; path is a printf format. Fails the test unless the status is
 * want; the caller frees the answer. */
#if defined(__GNUC__)
__attribute__((format(printf, 4, 5)))
#endif
static tl_http_resp_t
call(long want, const char *method, const char *body, const char *fmt, ...)
{
    char path[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(path, sizeof path, fmt, ap);
    va_end(ap);
    tl_http_resp_t r = tl_http(&stack, method, path, body, NULL, true);
    if (r.status != want) {
        char *dump = r.body ? json_dumps(r.body, JSON_COMPACT) : NULL;
        fail_msg("%s %s: status %ld, want %ld: %s", method, path, r.status, want,
                 dump ? dump : "(no body)");
    }
    return r;
}

static const char *str(const json_t *o, const char *k)
{
    const char *v = json_string_value(json_object_get(o, k));
    if (!v)
        fail_msg("no string member %s", k);
    return v;
}

/* The request answers want with the problem type (a slug); freed. */
#define PROBLEM(want, slug, method, body_, ...)                                                    \
    do {                                                                                           \
        tl_http_resp_t r_ = call(want, method, body_, __VA_ARGS__);                                \
        assert_string_equal(str(r_.body, "type"), "/problems/" slug);                              \
        assert_string_equal(r_.ctype, "application/problem+json");                                 \
        tl_http_free(&r_);                                                                         \
    } while (0)

/* The request answers want; freed. */
#define EXPECT(want, method, body_, ...)                                                           \
    do {                                                                                           \
        tl_http_resp_t r_ = call(want, method, body_, __VA_ARGS__);                                \
        tl_http_free(&r_);                                                                         \
    } while (0)

static void detail_has(const tl_http_resp_t *r, const char *needle)
{
    const char *d = str(r->body, "detail");
    if (!strstr(d, needle))
        fail_msg("detail \"%s\" does not mention \"%s\"", d, needle);
}

/* A visit type defined (201); its id into id_out unless NULL. */
static void define(const char *study, const char *body, char *id_out)
{
    tl_http_resp_t r = call(201, "POST", body, "/v1/studies/%s/visit-types", study);
    if (id_out)
        snprintf(id_out, 40, "%s", str(r.body, "id"));
    tl_http_free(&r);
}

#define BASELINE                                                                                   \
    "{\"name\":\"Baseline\",\"target_day\":0,\"window_before_days\":0,\"window_after_days\":0}"
/* due on day 30, window day 23 to day 44 */
#define MONTH1                                                                                     \
    "{\"name\":\"Month 1\",\"target_day\":30,\"window_before_days\":7,\"window_after_days\":14}"

/* A study of its own with Baseline and Month 1; ids into study, site and
 * (unless NULL) the visit types'. */
static void two_visit_study(const char *protocol_id, char *study, char *site, char *vt_base,
                            char *vt_m1)
{
    tl_stack_study(&stack, protocol_id, study, site);
    define(study, BASELINE, vt_base);
    define(study, MONTH1, vt_m1);
}

static void enrol(const char *study, const char *site, const char *code, const char *consent,
                  const char *baseline, char *id_out)
{
    char body[400];
    snprintf(body, sizeof body,
             "{\"participant_code\":\"%s\",\"site_id\":\"%s\",\"consent_date\":\"%s\","
             "\"baseline_date\":\"%s\"}",
             code, site, consent, baseline);
    tl_http_resp_t r = call(201, "POST", body, "/v1/studies/%s/participants", study);
    snprintf(id_out, 40, "%s", str(r.body, "id"));
    tl_http_free(&r);
}

/* The visit named name of the participant's schedule (a new reference). */
static json_t *visit_of(const char *pid, const char *name)
{
    tl_http_resp_t r = call(200, "GET", NULL, "/v1/participants/%s/schedule", pid);
    size_t i;
    json_t *v, *found = NULL;
    json_array_foreach(json_object_get(r.body, "visits"), i, v)
    {
        if (!strcmp(str(v, "name"), name))
            found = json_incref(v);
    }
    tl_http_free(&r);
    if (!found)
        fail_msg("no visit %s", name);
    return found;
}

typedef struct {
    const char *pid;
    const char *type; /* the event type of the history entry */
    json_t *item;     /* found: a new reference */
} history_probe_t;

static bool history_has(tl_stack_t *s, void *arg)
{
    history_probe_t *h = arg;
    char path[200];
    snprintf(path, sizeof path, "/v1/participants/%s/history", h->pid);
    tl_http_resp_t r = tl_http(s, "GET", path, NULL, NULL, true);
    size_t i;
    json_t *it;
    json_array_foreach(json_object_get(r.body, "items"), i, it)
    {
        const char *t = json_string_value(json_object_get(it, "type"));
        if (t && !strcmp(t, h->type)) {
            json_decref(h->item);
            h->item = json_incref(it);
        }
    }
    tl_http_free(&r);
    return h->item != NULL;
}

/* The participant's last history entry of type, once the archive has it. */
static json_t *history_entry(const char *pid, const char *type)
{
    history_probe_t h = {pid, type, NULL};
    if (!tl_wait_for(history_has, &stack, &h, 30000))
        fail_msg("no %s in the history of %s", type, pid);
    return h.item;
}

/* The change of field in a history entry, or NULL. */
static const json_t *change_of(const json_t *item, const char *field)
{
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(item, "changes"), i, c)
    {
        if (!strcmp(str(c, "field"), field))
            return c;
    }
    return NULL;
}

static int setup(void **state)
{
    (void)state;
    tl_stack_start(&stack, "protocol_rules");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tl_stack_stop(&stack);
    return 0;
}

/* Hole 1: an amendment moved the baseline to day 5 (200), or made another
 * visit type day 0; the baseline-first rule then had nothing to hold on. */
static void test_the_baseline_stays_day_0(void **state)
{
    (void)state;
    char st[40], si[40], base[40], m1[40];
    two_visit_study("PR-BASE", st, si, base, m1);
    PROBLEM(422, "baseline-fixed", "PATCH", "{\"target_day\":5,\"reason\":\"amendment 3\"}",
            "/v1/studies/%s/visit-types/%s", st, base);
    /* the baseline stayed: another visit type at day 0 would be a second */
    PROBLEM(422, "second-baseline", "PATCH",
            "{\"target_day\":0,\"window_before_days\":0,\"window_after_days\":0,"
            "\"reason\":\"amendment 3\"}",
            "/v1/studies/%s/visit-types/%s", st, m1);
    /* its window and name are not its day: those amend */
    tl_http_resp_t r = call(200, "PATCH", "{\"name\":\"Day 0\",\"reason\":\"renamed\"}",
                            "/v1/studies/%s/visit-types/%s", st, base);
    assert_int_equal(json_integer_value(json_object_get(r.body, "target_day")), 0);
    tl_http_free(&r);
}

/* Hole 1: a follow-up defined with no baseline in the protocol (201), so a
 * follow-up completed with no baseline. */
static void test_the_baseline_is_defined_first(void **state)
{
    (void)state;
    char st[40], si[40];
    tl_stack_study(&stack, "PR-FIRST", st, si);
    PROBLEM(422, "no-baseline", "POST", MONTH1, "/v1/studies/%s/visit-types", st);
    define(st, BASELINE, NULL);
    define(st, MONTH1, NULL);
}

/* Hole 2: a missed baseline dead-ended the participant (every follow-up
 * baseline-not-completed, and nothing could undo the miss). */
static void test_a_missed_baseline_is_reopened(void **state)
{
    (void)state;
    char st[40], si[40], p[40];
    two_visit_study("PR-REOPEN", st, si, NULL, NULL);
    enrol(st, si, "PR-R-001", "2026-01-01", "2026-01-01", p);
    EXPECT(200, "POST", "{\"reason\":\"participant unwell\"}",
           "/v1/participants/%s/visits/Baseline/miss", p);
    tl_http_resp_t r = call(422, "POST", "{\"actual_date\":\"2026-01-30\"}",
                            "/v1/participants/%s/visits/Month%%201/complete", p);
    assert_string_equal(str(r.body, "type"), "/problems/baseline-not-completed");
    detail_has(&r, "reopen");
    tl_http_free(&r);
    /* a missed visit is completed only once reopened, with a reason */
    PROBLEM(409, "visit-not-scheduled", "POST", "{\"actual_date\":\"2026-01-01\"}",
            "/v1/participants/%s/visits/Baseline/complete", p);
    PROBLEM(422, "reason-required", "POST", "{}", "/v1/participants/%s/visits/Baseline/reopen",
            p);
    r = call(200, "POST", "{\"reason\":\"seen after all, on the day\"}",
             "/v1/participants/%s/visits/Baseline/reopen", p);
    assert_string_not_equal(str(r.body, "status"), "missed");
    assert_true(json_is_null(json_object_get(r.body, "missed_reason")));
    tl_http_free(&r);
    PROBLEM(409, "visit-not-missed", "POST", "{\"reason\":\"again\"}",
            "/v1/participants/%s/visits/Baseline/reopen", p);
    r = call(200, "POST", "{\"actual_date\":\"2026-01-01\"}",
             "/v1/participants/%s/visits/Baseline/complete", p);
    assert_string_equal(str(r.body, "status"), "completed");
    tl_http_free(&r);
    r = call(200, "POST", "{\"actual_date\":\"2026-01-30\"}",
             "/v1/participants/%s/visits/Month%%201/complete", p);
    assert_string_equal(str(r.body, "status"), "completed");
    tl_http_free(&r);
}

/* Hole 2: a missed follow-up could be neither completed nor corrected. */
static void test_a_missed_visit_is_reopened_and_completed(void **state)
{
    (void)state;
    char st[40], si[40], p[40];
    two_visit_study("PR-MISSED", st, si, NULL, NULL);
    enrol(st, si, "PR-M-001", "2026-01-01", "2026-01-01", p);
    EXPECT(200, "POST", "{\"actual_date\":\"2026-01-01\"}",
           "/v1/participants/%s/visits/Baseline/complete", p);
    tl_http_resp_t r = call(200, "POST", "{\"reason\":\"no answer on the phone\"}",
                            "/v1/participants/%s/visits/Month%%201/miss", p);
    assert_string_equal(str(r.body, "status"), "missed");
    tl_http_free(&r);
    EXPECT(200, "POST", "{\"reason\":\"the visit took place, entered late\"}",
           "/v1/participants/%s/visits/Month%%201/reopen", p);
    r = call(200, "POST", "{\"actual_date\":\"2026-01-30\"}",
             "/v1/participants/%s/visits/Month%%201/complete", p);
    assert_string_equal(str(r.body, "status"), "completed");
    assert_string_equal(str(r.body, "actual_date"), "2026-01-30");
    tl_http_free(&r);
    json_t *v = visit_of(p, "Month 1");
    assert_string_equal(str(v, "status"), "completed");
    json_decref(v);
}

/* Hole 3: dates had no lower bound (a visit on 2020-01-01 for a participant
 * consented later, a baseline corrected or changed to before consent, a
 * withdrawal before consent and before a visit that took place), and the
 * withdrawal date was in no resource and no history entry. Hole 9: a
 * withdrawn participant's visit dates could not be corrected. */
static void test_dates_are_bounded_by_consent_and_order(void **state)
{
    (void)state;
    char st[40], si[40], p[40];
    two_visit_study("PR-DATES", st, si, NULL, NULL);
    enrol(st, si, "PR-D-001", "2026-03-01", "2026-03-01", p);
    /* a visit before consent, even with a deviation reason */
    PROBLEM(422, "date-before-consent", "POST",
            "{\"actual_date\":\"2026-01-01\",\"deviation_reason\":\"entered as seen\"}",
            "/v1/participants/%s/visits/Baseline/complete", p);
    PROBLEM(422, "date-before-consent", "POST",
            "{\"baseline_date\":\"2026-02-01\",\"reason\":\"moved\"}",
            "/v1/participants/%s/baseline", p);
    /* the baseline visit, two days late (a deviation) */
    EXPECT(200, "POST", "{\"actual_date\":\"2026-03-03\",\"deviation_reason\":\"snow\"}",
           "/v1/participants/%s/visits/Baseline/complete", p);
    /* corrected to before consent */
    PROBLEM(422, "date-before-consent", "POST",
            "{\"actual_date\":\"2026-02-20\",\"reason\":\"typo\",\"deviation_reason\":\"x\"}",
            "/v1/participants/%s/visits/Baseline/correct", p);
    /* a follow-up before the baseline visit took place */
    PROBLEM(422, "date-out-of-order", "POST",
            "{\"actual_date\":\"2026-03-02\",\"deviation_reason\":\"early\"}",
            "/v1/participants/%s/visits/Month%%201/complete", p);
    /* withdrawal before consent, and before the visit that took place */
    PROBLEM(422, "date-before-consent", "POST",
            "{\"reason\":\"moved away\",\"withdrawal_date\":\"2026-02-01\"}",
            "/v1/participants/%s/withdraw", p);
    tl_http_resp_t r = call(422, "POST",
                            "{\"reason\":\"moved away\",\"withdrawal_date\":\"2026-03-02\"}",
                            "/v1/participants/%s/withdraw", p);
    assert_string_equal(str(r.body, "type"), "/problems/date-out-of-order");
    detail_has(&r, "Baseline");
    tl_http_free(&r);
    r = call(200, "POST", "{\"reason\":\"moved away\",\"withdrawal_date\":\"2026-04-01\"}",
             "/v1/participants/%s/withdraw", p);
    assert_string_equal(str(r.body, "status"), "withdrawn");
    tl_http_free(&r);
    snprintf(withdrawn, sizeof withdrawn, "%s", p);

    /* the withdrawal date is in the resource and in the history */
    r = call(200, "GET", NULL, "/v1/participants/%s", p);
    assert_string_equal(str(r.body, "withdrawal_date"), "2026-04-01");
    assert_true(json_is_null(json_object_get(r.body, "completion_date")));
    tl_http_free(&r);
    json_t *h = history_entry(p, "ParticipantWithdrawn");
    const json_t *c = change_of(h, "withdrawal_date");
    assert_non_null(c);
    assert_true(json_is_null(json_object_get(c, "before")));
    assert_string_equal(str(c, "after"), "2026-04-01");
    assert_string_equal(str(h, "reason"), "moved away");
    json_decref(h);

    /* after withdrawal: what took place is corrected, nothing new is done */
    r = call(200, "POST",
             "{\"actual_date\":\"2026-03-01\",\"reason\":\"date misread from the chart\"}",
             "/v1/participants/%s/visits/Baseline/correct", p);
    assert_string_equal(str(r.body, "status"), "completed");
    assert_string_equal(str(r.body, "actual_date"), "2026-03-01");
    tl_http_free(&r);
    PROBLEM(422, "participant-not-active", "POST", "{\"actual_date\":\"2026-03-30\"}",
            "/v1/participants/%s/visits/Month%%201/complete", p);
    PROBLEM(422, "participant-not-active", "POST", "{\"reason\":\"x\"}",
            "/v1/participants/%s/visits/Month%%201/miss", p);
}

/* Hole 4: a baseline change made completed visits protocol deviations with
 * no reason (deviation_reason null). */
static void test_a_baseline_change_needs_deviation_reasons(void **state)
{
    (void)state;
    char st[40], si[40], base[40], m1[40], p[40], body[600];
    two_visit_study("PR-DEV", st, si, base, m1);
    enrol(st, si, "PR-V-001", "2026-01-01", "2026-01-01", p);
    EXPECT(200, "POST", "{\"actual_date\":\"2026-01-01\"}",
           "/v1/participants/%s/visits/Baseline/complete", p);
    /* Month 1's window is 2026-01-24 .. 2026-02-14: in it */
    EXPECT(200, "POST", "{\"actual_date\":\"2026-01-26\"}",
           "/v1/participants/%s/visits/Month%%201/complete", p);
    /* baseline 2026-01-11: Month 1's window becomes 02-03 .. 02-24 */
    tl_http_resp_t r = call(422, "POST",
                            "{\"baseline_date\":\"2026-01-11\",\"reason\":\"entered wrongly\"}",
                            "/v1/participants/%s/baseline", p);
    assert_string_equal(str(r.body, "type"), "/problems/deviation-reasons-required");
    detail_has(&r, "Baseline");
    detail_has(&r, "Month 1");
    tl_http_free(&r);
    /* one of two is not enough */
    snprintf(body, sizeof body,
             "{\"baseline_date\":\"2026-01-11\",\"reason\":\"entered wrongly\","
             "\"deviation_reasons\":{\"%s\":\"seen early, per the old baseline\"}}",
             m1);
    r = call(422, "POST", body, "/v1/participants/%s/baseline", p);
    assert_string_equal(str(r.body, "type"), "/problems/deviation-reasons-required");
    detail_has(&r, "Baseline");
    tl_http_free(&r);
    /* an entry that names no visit is a fault of the body */
    PROBLEM(400, "validation-failed", "POST",
            "{\"baseline_date\":\"2026-01-11\",\"reason\":\"entered wrongly\","
            "\"deviation_reasons\":{\"Month 9\":\"x\"}}",
            "/v1/participants/%s/baseline", p);
    /* by visit type id and by name (any case) */
    snprintf(body, sizeof body,
             "{\"baseline_date\":\"2026-01-11\",\"reason\":\"entered wrongly\","
             "\"deviation_reasons\":{\"%s\":\"seen early, per the old baseline\","
             "\"baseline\":\"seen on the old baseline date\"}}",
             m1);
    r = call(200, "POST", body, "/v1/participants/%s/baseline", p);
    assert_string_equal(str(r.body, "baseline_date"), "2026-01-11");
    tl_http_free(&r);
    json_t *v = visit_of(p, "Month 1");
    assert_string_equal(str(v, "status"), "completed_out_of_window");
    assert_true(json_is_true(json_object_get(v, "protocol_deviation")));
    assert_string_equal(str(v, "deviation_reason"), "seen early, per the old baseline");
    assert_string_equal(str(v, "actual_date"), "2026-01-26");
    json_decref(v);
    v = visit_of(p, "Baseline");
    assert_true(json_is_true(json_object_get(v, "protocol_deviation")));
    assert_string_equal(str(v, "deviation_reason"), "seen on the old baseline date");
    json_decref(v);
}

/* Hole 6: a visit type listed a form template that does not exist (201). */
static void test_a_visit_type_lists_known_templates_only(void **state)
{
    (void)state;
    char st[40], si[40], base[40];
    tl_stack_study(&stack, "PR-FORMS", st, si);
    tl_http_resp_t r = call(422, "POST",
                            "{\"name\":\"Baseline\",\"target_day\":0,\"window_before_days\":0,"
                            "\"window_after_days\":0,\"form_templates\":[\"no_such_form\"]}",
                            "/v1/studies/%s/visit-types", st);
    assert_string_equal(str(r.body, "type"), "/problems/unknown-form-template");
    detail_has(&r, "no_such_form");
    tl_http_free(&r);
    EXPECT(201, "POST",
           "{\"name\":\"vitals\",\"title\":\"Vitals\",\"fields\":[{\"name\":\"sbp\","
           "\"type\":\"integer\"}]}",
           "/v1/studies/%s/form-templates", st);
    define(st,
           "{\"name\":\"Baseline\",\"target_day\":0,\"window_before_days\":0,"
           "\"window_after_days\":0,\"form_templates\":[\"vitals\"]}",
           base);
    PROBLEM(422, "unknown-form-template", "PATCH",
            "{\"form_templates\":[\"vitals\",\"no_such_form\"],\"reason\":\"amendment 1\"}",
            "/v1/studies/%s/visit-types/%s", st, base);
}

/* Hole 11: a visit type added mid-study rescheduled every participant and
 * could not carry a reason. */
static void test_a_visit_type_added_mid_study_needs_a_reason(void **state)
{
    (void)state;
    char st[40], si[40], p[40];
    tl_stack_study(&stack, "PR-ADD", st, si);
    define(st, BASELINE, NULL);
    enrol(st, si, "PR-A-001", "2026-01-01", "2026-01-01", p);
    tl_http_resp_t r = call(422, "POST", MONTH1, "/v1/studies/%s/visit-types", st);
    assert_string_equal(str(r.body, "type"), "/problems/reason-required");
    detail_has(&r, "1 enrolled participant");
    tl_http_free(&r);
    PROBLEM(422, "reason-required", "POST",
            "{\"name\":\"Month 1\",\"target_day\":30,\"window_before_days\":7,"
            "\"window_after_days\":14,\"reason\":\"  \"}",
            "/v1/studies/%s/visit-types", st);
    r = call(201, "POST",
             "{\"name\":\"Month 1\",\"target_day\":30,\"window_before_days\":7,"
             "\"window_after_days\":14,\"reason\":\"amendment 1: a month-1 check\"}",
             "/v1/studies/%s/visit-types", st);
    assert_int_equal(json_integer_value(json_object_get(r.body, "participants_rescheduled")), 1);
    tl_http_free(&r);
    json_t *v = visit_of(p, "Month 1");
    assert_string_equal(str(v, "due_date"), "2026-01-31");
    json_decref(v);
    /* the participant's schedule change says why */
    json_t *h = history_entry(p, "VisitScheduleChanged");
    assert_string_equal(str(h, "reason"), "amendment 1: a month-1 check");
    assert_non_null(change_of(h, "visits.Month 1.due_date"));
    json_decref(h);
}

/* Hole 11: a missing reason answered 400 validation-failed on most routes,
 * and an empty or blank one differently again. */
static void test_a_missing_or_blank_reason_answers_alike(void **state)
{
    (void)state;
    char st[40], si[40], m1[40], p[40];
    two_visit_study("PR-REASON", st, si, NULL, m1);
    enrol(st, si, "PR-N-001", "2026-01-01", "2026-01-01", p);
    /* the reason member: absent, null, empty, blanks */
    const char *const reasons[] = {"", ",\"reason\":null", ",\"reason\":\"\"",
                                   ",\"reason\":\"  \"", ",\"reason\":\"\\t\\n\""};
    for (size_t i = 0; i < sizeof reasons / sizeof reasons[0]; i++) {
        char body[100];
        snprintf(body, sizeof body, "{\"withdrawal_date\":\"2026-02-01\"%s}", reasons[i]);
        PROBLEM(422, "reason-required", "POST", body, "/v1/participants/%s/withdraw", p);
        snprintf(body, sizeof body, "{%s}", reasons[i][0] ? reasons[i] + 1 : "");
        PROBLEM(422, "reason-required", "POST", body,
                "/v1/participants/%s/visits/Month%%201/miss", p);
        /* an amendment with a change in it */
        snprintf(body, sizeof body, "{\"window_after_days\":20%s}", reasons[i]);
        PROBLEM(422, "reason-required", "PATCH", body, "/v1/studies/%s/visit-types/%s", st, m1);
    }
    /* nothing of that changed anything */
    tl_http_resp_t r = call(200, "GET", NULL, "/v1/participants/%s", p);
    assert_string_equal(str(r.body, "status"), "enrolled");
    tl_http_free(&r);
    r = call(200, "GET", NULL, "/v1/studies/%s/visit-types/%s", st, m1);
    assert_int_equal(json_integer_value(json_object_get(r.body, "revision")), 1);
    tl_http_free(&r);
}

/* The participants projection rebuilt from offset 0 keeps the withdrawal
 * date (its table gained a column: the rebuild's tables must have it). */
static void test_a_rebuild_keeps_the_withdrawal_date(void **state)
{
    (void)state;
    assert_true(withdrawn[0]);
    char *out = NULL;
    int rc = tl_stack_cli(&stack, "rebuild participants", &out);
    if (rc)
        fail_msg("rebuild participants (%d):\n%s", rc, out);
    free(out);
    tl_http_resp_t r = call(200, "GET", NULL, "/v1/participants/%s", withdrawn);
    assert_string_equal(str(r.body, "status"), "withdrawn");
    assert_string_equal(str(r.body, "withdrawal_date"), "2026-04-01");
    tl_http_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_the_baseline_stays_day_0),
        cmocka_unit_test(test_the_baseline_is_defined_first),
        cmocka_unit_test(test_a_missed_baseline_is_reopened),
        cmocka_unit_test(test_a_missed_visit_is_reopened_and_completed),
        cmocka_unit_test(test_dates_are_bounded_by_consent_and_order),
        cmocka_unit_test(test_a_baseline_change_needs_deviation_reasons),
        cmocka_unit_test(test_a_visit_type_lists_known_templates_only),
        cmocka_unit_test(test_a_visit_type_added_mid_study_needs_a_reason),
        cmocka_unit_test(test_a_missing_or_blank_reason_answers_alike),
        cmocka_unit_test(test_a_rebuild_keeps_the_withdrawal_date),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
