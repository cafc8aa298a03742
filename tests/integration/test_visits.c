/* Protocols, schedules and visits over HTTP (DESIGN.md §5): the four-visit
 * protocol, visit windows and deviations, baseline first, baseline changes,
 * amendments reaching enrolled participants, lock and unlock, the visit
 * lists and metrics of a seeded cohort, and a rebuild of the schedules
 * projection from offset 0. */
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

static tl_stack_t stack;
static char study[40], site[40];
/* visit type ids of the four-visit protocol */
static char vt_base[40], vt_m1[40], vt_m3[40], vt_m6[40];

/* One request; path and body are printf formats sharing the arguments in
 * order (path first). Fails the test unless the status is want. */
static tl_http_resp_t call(long want, const char *method, const char *body, const char *fmt, ...)
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

static void problem_is(const tl_http_resp_t *r, const char *type)
{
    char want[128];
    snprintf(want, sizeof want, "/problems/%s", type);
    assert_string_equal(str(r->body, "type"), want);
    assert_string_equal(r->ctype, "application/problem+json");
}

static void define_visit_type(const char *st, const char *body, char *id_out)
{
    tl_http_resp_t r = call(201, "POST", body, "/v1/studies/%s/visit-types", st);
    if (id_out)
        snprintf(id_out, 40, "%s", str(r.body, "id"));
    tl_http_free(&r);
}

static void enrol(const char *st, const char *si, const char *code, const char *baseline,
                  char *id_out)
{
    char body[400];
    snprintf(body, sizeof body,
             "{\"participant_code\":\"%s\",\"site_id\":\"%s\",\"consent_date\":\"2025-12-01\","
             "\"baseline_date\":\"%s\"}",
             code, si, baseline);
    tl_http_resp_t r = call(201, "POST", body, "/v1/studies/%s/participants", st);
    snprintf(id_out, 40, "%s", str(r.body, "id"));
    tl_http_free(&r);
}

/* The visit named name in a schedule or list answer. */
static const json_t *visit_named(const json_t *sched, const char *name)
{
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(sched, "visits"), i,
                       v) if (!strcmp(str(v, "name"), name)) return v;
    fail_msg("no visit %s", name);
    return NULL;
}

static void assert_visit(const json_t *sched, const char *name, const char *due, const char *ws,
                         const char *we, const char *status)
{
    const json_t *v = visit_named(sched, name);
    assert_string_equal(str(v, "due_date"), due);
    assert_string_equal(str(v, "window_start"), ws);
    assert_string_equal(str(v, "window_end"), we);
    assert_string_equal(str(v, "status"), status);
}

static json_t *schedule(const char *pid, const char *as_of)
{
    tl_http_resp_t r = call(200, "GET", NULL, "/v1/participants/%s/schedule?as_of=%s", pid, as_of);
    json_t *j = json_incref(r.body);
    tl_http_free(&r);
    return j;
}

static long long num(const json_t *o, const char *k)
{
    const json_t *v = json_object_get(o, k);
    if (!json_is_integer(v))
        fail_msg("no integer member %s", k);
    return json_integer_value(v);
}

static int setup(void **state)
{
    (void)state;
    tl_stack_start(&stack, "visits");
    tl_stack_study(&stack, "VIS-1", study, site);
    /* a visit type lists only templates the study has: published first */
    char path[128];
    snprintf(path, sizeof path, "/v1/studies/%s/form-templates", study);
    const char *const templates[] = {"demographics", "visual_acuity"};
    for (int i = 0; i < 2; i++) {
        char body[200];
        snprintf(body, sizeof body,
                 "{\"name\":\"%s\",\"title\":\"T\",\"fields\":[{\"name\":\"x\","
                 "\"type\":\"integer\"}]}",
                 templates[i]);
        tl_http_resp_t r = call(201, "POST", body, "%s", path);
        tl_http_free(&r);
    }
    define_visit_type(
        study,
        "{\"name\":\"Baseline\",\"target_day\":0,\"window_before_days\":0,"
        "\"window_after_days\":0,\"required\":true,\"form_templates\":[\"demographics\"]}",
        vt_base);
    define_visit_type(study,
                      "{\"name\":\"Month 1\",\"target_day\":30,\"window_before_days\":7,"
                      "\"window_after_days\":14,\"required\":true,"
                      "\"form_templates\":[\"visual_acuity\"]}",
                      vt_m1);
    define_visit_type(study,
                      "{\"name\":\"Month 3\",\"target_day\":90,\"window_before_days\":14,"
                      "\"window_after_days\":21,\"required\":true}",
                      vt_m3);
    define_visit_type(study,
                      "{\"name\":\"Month 6\",\"target_day\":180,\"window_before_days\":21,"
                      "\"window_after_days\":30,\"required\":false}",
                      vt_m6);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tl_stack_stop(&stack);
    return 0;
}

static void test_protocol_validation(void **state)
{
    (void)state;
    char path[128];
    snprintf(path, sizeof path, "/v1/studies/%s/visit-types", study);
    tl_http_resp_t r = call(409, "POST",
                            "{\"name\":\"month 1\",\"target_day\":31,\"window_before_days\":1,"
                            "\"window_after_days\":1}",
                            "%s", path);
    problem_is(&r, "duplicate-visit-type-name");
    tl_http_free(&r);
    r = call(422, "POST",
             "{\"name\":\"Screening\",\"target_day\":0,\"window_before_days\":0,"
             "\"window_after_days\":0}",
             "%s", path);
    problem_is(&r, "second-baseline");
    tl_http_free(&r);
    r = call(422, "POST",
             "{\"name\":\"Week 1\",\"target_day\":7,\"window_before_days\":8,"
             "\"window_after_days\":0}",
             "%s", path);
    problem_is(&r, "invalid-visit-type");
    tl_http_free(&r);
    r = call(400, "POST",
             "{\"name\":\"Week 2\",\"target_day\":-1,\"window_before_days\":0,"
             "\"window_after_days\":0,\"form_templates\":[\"Bad Name\"]}",
             "%s", path);
    problem_is(&r, "validation-failed");
    assert_int_equal(json_array_size(json_object_get(r.body, "errors")), 2);
    tl_http_free(&r);

    r = call(200, "GET", NULL, "%s", path);
    json_t *items = json_object_get(r.body, "items");
    assert_int_equal(json_array_size(items), 4);
    assert_string_equal(str(json_array_get(items, 1), "name"), "Month 1");
    assert_int_equal(num(json_array_get(items, 1), "window_after_days"), 14);
    tl_http_free(&r);
    r = call(200, "GET", NULL, "%s/%s", path, vt_m1);
    assert_string_equal(str(r.body, "name"), "Month 1");
    assert_int_equal(num(r.body, "revision"), 1);
    tl_http_free(&r);
    r = call(404, "GET", NULL, "%s/%s", path, "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b");
    tl_http_free(&r);
}

/* DESIGN.md §5: baseline 2026-01-01; Month 1 (30, -7/+14) is due 2026-01-31
 * with window 2026-01-24 .. 2026-02-14; Month 3 (90, -14/+21) is due
 * 2026-04-01 with window 2026-03-18 .. 2026-04-22. */
static void test_visits_windows_and_deviations(void **state)
{
    (void)state;
    char p[40];
    enrol(study, site, "VIS-001", "2026-01-01", p);
    json_t *s = schedule(p, "2026-01-20");
    assert_int_equal(json_array_size(json_object_get(s, "visits")), 4);
    assert_visit(s, "Baseline", "2026-01-01", "2026-01-01", "2026-01-01", "overdue");
    assert_visit(s, "Month 1", "2026-01-31", "2026-01-24", "2026-02-14", "upcoming");
    assert_visit(s, "Month 3", "2026-04-01", "2026-03-18", "2026-04-22", "upcoming");
    assert_visit(s, "Month 6", "2026-06-30", "2026-06-09", "2026-07-30", "upcoming");
    json_decref(s);
    s = schedule(p, "2026-01-24");
    assert_visit(s, "Month 1", "2026-01-31", "2026-01-24", "2026-02-14", "open");
    json_decref(s);

    /* follow-up before baseline */
    tl_http_resp_t r = call(422, "POST", "{\"actual_date\":\"2026-01-26\"}",
                            "/v1/participants/%s/visits/%s/complete", p, vt_m1);
    problem_is(&r, "baseline-not-completed");
    tl_http_free(&r);
    r = call(200, "POST", "{\"actual_date\":\"2026-01-01\"}",
             "/v1/participants/%s/visits/Baseline/complete", p);
    assert_string_equal(str(r.body, "status"), "completed");
    tl_http_free(&r);

    /* 2026-02-15 is a day past the window: a deviation, needs a reason */
    r = call(422, "POST", "{\"actual_date\":\"2026-02-15\"}",
             "/v1/participants/%s/visits/month%%201/complete", p);
    problem_is(&r, "deviation-reason-required");
    tl_http_free(&r);
    r = call(200, "POST",
             "{\"actual_date\":\"2026-02-15\",\"deviation_reason\":\"participant travelling\"}",
             "/v1/participants/%s/visits/%s/complete", p, vt_m1);
    assert_string_equal(str(r.body, "status"), "completed_out_of_window");
    assert_true(json_is_true(json_object_get(r.body, "protocol_deviation")));
    assert_string_equal(str(r.body, "deviation_reason"), "participant travelling");
    tl_http_free(&r);
    r = call(409, "POST", "{\"actual_date\":\"2026-02-10\"}",
             "/v1/participants/%s/visits/%s/complete", p, vt_m1);
    problem_is(&r, "visit-already-completed");
    tl_http_free(&r);

    /* corrections are their own command, with a reason */
    r = call(422, "POST", "{\"actual_date\":\"2026-02-10\"}",
             "/v1/participants/%s/visits/%s/correct", p, vt_m1);
    problem_is(&r, "reason-required");
    tl_http_free(&r);
    r = call(422, "POST", "{\"actual_date\":\"2026-06-30\",\"reason\":\"x\"}",
             "/v1/participants/%s/visits/%s/correct", p, vt_m6);
    problem_is(&r, "visit-not-completed");
    tl_http_free(&r);
    r = call(200, "POST", "{\"actual_date\":\"2026-02-10\",\"reason\":\"transcription error\"}",
             "/v1/participants/%s/visits/%s/correct", p, vt_m1);
    assert_string_equal(str(r.body, "status"), "completed");
    assert_string_equal(str(r.body, "actual_date"), "2026-02-10");
    assert_false(json_is_true(json_object_get(r.body, "protocol_deviation")));
    assert_true(json_is_null(json_object_get(r.body, "deviation_reason")));
    tl_http_free(&r);

    /* in window, by id; Month 6 missed */
    r = call(200, "POST", "{\"actual_date\":\"2026-03-18\",\"notes\":\"OCT done\"}",
             "/v1/participants/%s/visits/%s/complete", p, vt_m3);
    assert_string_equal(str(r.body, "status"), "completed");
    tl_http_free(&r);
    r = call(422, "POST", "{}", "/v1/participants/%s/visits/%s/miss", p, vt_m6);
    problem_is(&r, "reason-required");
    tl_http_free(&r);
    r = call(200, "POST", "{\"reason\":\"lost to follow-up\"}",
             "/v1/participants/%s/visits/%s/miss", p, vt_m6);
    assert_string_equal(str(r.body, "status"), "missed");
    tl_http_free(&r);
    r = call(404, "POST", "{\"actual_date\":\"2026-03-18\"}",
             "/v1/participants/%s/visits/Month%%209/complete", p);
    tl_http_free(&r);

    s = schedule(p, "2026-08-01");
    assert_visit(s, "Baseline", "2026-01-01", "2026-01-01", "2026-01-01", "completed");
    assert_visit(s, "Month 1", "2026-01-31", "2026-01-24", "2026-02-14", "completed");
    assert_visit(s, "Month 3", "2026-04-01", "2026-03-18", "2026-04-22", "completed");
    assert_visit(s, "Month 6", "2026-06-30", "2026-06-09", "2026-07-30", "missed");
    assert_string_equal(str(visit_named(s, "Month 3"), "notes"), "OCT done");
    assert_int_equal(num(s, "version"), 6);
    json_decref(s);

    /* all required visits done: the participant completes */
    r = call(200, "POST", "{\"completion_date\":\"2026-08-01\"}", "/v1/participants/%s/complete",
             p);
    assert_string_equal(str(r.body, "status"), "completed");
    tl_http_free(&r);
    r = call(422, "POST", "{\"reason\":\"x\"}", "/v1/participants/%s/withdraw", p);
    problem_is(&r, "participant-not-active");
    tl_http_free(&r);
}

/* Sends a request that must answer want and frees the answer. */
#define EXPECT(want, method, body, ...)                                                            \
    do {                                                                                           \
        tl_http_resp_t r_ = call(want, method, body, __VA_ARGS__);                                 \
        tl_http_free(&r_);                                                                         \
    } while (0)

static void test_baseline_change_and_withdrawal(void **state)
{
    (void)state;
    char p[40];
    enrol(study, site, "VIS-002", "2026-01-01", p);
    EXPECT(200, "POST", "{\"actual_date\":\"2026-01-01\"}",
           "/v1/participants/%s/visits/Baseline/complete", p);
    EXPECT(200, "POST", "{\"actual_date\":\"2026-01-26\"}",
           "/v1/participants/%s/visits/Month%%201/complete", p);
    tl_http_resp_t r =
        call(422, "POST", "{\"baseline_date\":\"2026-01-11\"}", "/v1/participants/%s/baseline", p);
    problem_is(&r, "reason-required");
    tl_http_free(&r);
    r = call(422, "POST", "{\"baseline_date\":\"2026-01-01\",\"reason\":\"x\"}",
                            "/v1/participants/%s/baseline", p);
    problem_is(&r, "baseline-unchanged");
    tl_http_free(&r);
    /* both completed visits fall out of their windows: each needs a
     * deviation reason */
    r = call(
        422, "POST",
        "{\"baseline_date\":\"2026-01-11\",\"reason\":\"baseline visit date entered wrongly\"}",
        "/v1/participants/%s/baseline", p);
    problem_is(&r, "deviation-reasons-required");
    assert_non_null(strstr(str(r.body, "detail"), "Baseline"));
    assert_non_null(strstr(str(r.body, "detail"), "Month 1"));
    tl_http_free(&r);
    r = call(200, "POST",
             "{\"baseline_date\":\"2026-01-11\",\"reason\":\"baseline visit date entered "
             "wrongly\",\"deviation_reasons\":{\"baseline\":\"seen before the corrected "
             "baseline\",\"Month 1\":\"seen early\"}}",
             "/v1/participants/%s/baseline", p);
    assert_string_equal(str(r.body, "baseline_date"), "2026-01-11");
    tl_http_free(&r);

    /* visits not done move; done ones keep their date and are judged again */
    json_t *s = schedule(p, "2026-02-01");
    assert_visit(s, "Baseline", "2026-01-11", "2026-01-11", "2026-01-11",
                 "completed_out_of_window");
    assert_visit(s, "Month 1", "2026-02-10", "2026-02-03", "2026-02-24", "completed_out_of_window");
    assert_string_equal(str(visit_named(s, "Month 1"), "actual_date"), "2026-01-26");
    assert_string_equal(str(visit_named(s, "Month 1"), "deviation_reason"), "seen early");
    assert_string_equal(str(visit_named(s, "Baseline"), "deviation_reason"),
                        "seen before the corrected baseline");
    assert_visit(s, "Month 3", "2026-04-11", "2026-03-28", "2026-05-02", "upcoming");
    assert_visit(s, "Month 6", "2026-07-10", "2026-06-19", "2026-08-09", "upcoming");
    json_decref(s);
    r = call(200, "GET", NULL, "/v1/participants/%s", p);
    assert_string_equal(str(r.body, "baseline_date"), "2026-01-11");
    tl_http_free(&r);

    /* withdrawal cancels what is not done, and ends the stream's changes */
    r = call(200, "POST", "{\"reason\":\"moved away\",\"withdrawal_date\":\"2026-02-01\"}",
             "/v1/participants/%s/withdraw", p);
    assert_string_equal(str(r.body, "status"), "withdrawn");
    tl_http_free(&r);
    s = schedule(p, "2026-09-01");
    assert_visit(s, "Month 1", "2026-02-10", "2026-02-03", "2026-02-24", "completed_out_of_window");
    assert_visit(s, "Month 3", "2026-04-11", "2026-03-28", "2026-05-02", "cancelled");
    assert_visit(s, "Month 6", "2026-07-10", "2026-06-19", "2026-08-09", "cancelled");
    json_decref(s);
    r = call(422, "POST", "{\"actual_date\":\"2026-04-11\"}",
             "/v1/participants/%s/visits/Month%%203/complete", p);
    problem_is(&r, "participant-not-active");
    tl_http_free(&r);
    r = call(200, "GET", NULL, "/v1/participants/%s", p);
    assert_string_equal(str(r.body, "status"), "withdrawn");
    tl_http_free(&r);
}

/* Another deployment's projectors in the same database notify on the same
 * channel: their progress must not pass for ours (a 201 before our
 * projection had the event would read back nothing). */
static void test_progress_of_other_schemas_is_ignored(void **state)
{
    (void)state;
    for (int part = 0; part < 64; part++) {
        char sql[300];
        snprintf(sql, sizeof sql,
                 "SELECT pg_notify('trialog_projected', 'some_other_schema participants"
                 " trialog.participant.v1:%d:999999999 trialog.protocol.v1:%d:999999999'),"
                 " pg_notify('trialog_projected', 'some_other_schema schedules"
                 " trialog.participant.v1:%d:999999999'), 1",
                 part, part, part);
        tl_sql_int(&stack, sql);
    }
    char p[40];
    enrol(study, site, "VIS-OTHER", "2026-01-01", p);
    json_t *s = schedule(p, "2026-01-01");
    assert_int_equal(json_array_size(json_object_get(s, "visits")), 4);
    json_decref(s);
    EXPECT(200, "POST", "{\"actual_date\":\"2026-01-01\"}",
           "/v1/participants/%s/visits/Baseline/complete", p);
}

/* A study of its own with a baseline visit only, and one participant
 * enrolled with baseline 2026-01-01 (ids into st, si, p). */
static void baseline_study(const char *protocol_id, char *st, char *si, char *p)
{
    char code[64];
    tl_stack_study(&stack, protocol_id, st, si);
    define_visit_type(st,
                      "{\"name\":\"Baseline\",\"target_day\":0,\"window_before_days\":0,"
                      "\"window_after_days\":0}",
                      NULL);
    snprintf(code, sizeof code, "%s-001", protocol_id);
    enrol(st, si, code, "2026-01-01", p);
}

/* The gateway caches a study's visit types for planning enrolments
 * (vtcache.c): a visit type defined between two enrolments is in the
 * second's schedule at once, not after the cache's age limit. */
static void test_the_next_enrolment_has_a_new_visit_type(void **state)
{
    (void)state;
    char st[40], si[40], p1[40], p2[40];
    baseline_study("VIS-VTCACHE", st, si, p1);
    define_visit_type(st,
                      "{\"name\":\"Month 1\",\"target_day\":30,\"window_before_days\":7,"
                      "\"window_after_days\":14,\"reason\":\"amendment 1\"}",
                      NULL);
    enrol(st, si, "VC-002", "2026-01-01", p2);
    tl_http_resp_t r = call(200, "GET", NULL, "/v1/participants/%s/schedule", p2);
    assert_int_equal(json_array_size(json_object_get(r.body, "visits")), 2);
    assert_string_equal(str(visit_named(r.body, "Month 1"), "due_date"), "2026-01-31");
    tl_http_free(&r);
}

static void *resume_folds(void *arg)
{
    const pid_t *folds = arg;
    tl_sleep_ms(1500); /* the second command is waiting by then */
    for (int i = 0; i < 3; i++)
        kill(folds[i], SIGCONT);
    return NULL;
}

/* DESIGN.md §2: two commands checked against the same state make the same
 * stream version; every fold applies the first and refuses the second
 * (version_conflict), and the gateway waiting on the second answers 409. */
static void test_a_command_the_folds_refuse_answers_409(void **state)
{
    (void)state;
    char st[40], si[40], p[40], path[200];
    baseline_study("VIS-REFUSED", st, si, p);
    /* the participant stream's folds stand still: both completions are
     * checked against the enrolment's version */
    pid_t folds[] = {stack.projector, stack.schedules, stack.forms};
    for (int i = 0; i < 3; i++)
        assert_int_equal(kill(folds[i], SIGSTOP), 0);
    /* resumed whatever happens below, so no later test finds them stopped */
    pthread_t resumer;
    assert_int_equal(pthread_create(&resumer, NULL, resume_folds, folds), 0);
    snprintf(path, sizeof path, "/v1/participants/%s/visits/Baseline/complete", p);
    const char *async[] = {"Prefer: respond-async", NULL};
    tl_http_resp_t r =
        tl_http(&stack, "POST", path, "{\"actual_date\":\"2026-01-01\"}", async, true);
    long first = r.status;
    tl_http_free(&r);
    r = tl_http(&stack, "POST", path, "{\"actual_date\":\"2026-01-01\"}", NULL, true);
    pthread_join(resumer, NULL);
    assert_int_equal(first, 202);
    assert_int_equal(r.status, 409);
    problem_is(&r, "concurrent-change");
    tl_http_free(&r);
    /* the first stands, and every fold refused the second alike */
    r = call(200, "GET", NULL, "/v1/participants/%s/schedule", p);
    assert_string_equal(str(visit_named(r.body, "Baseline"), "status"), "completed");
    tl_http_free(&r);
    char sql[300];
    snprintf(sql, sizeof sql,
             "SELECT count(DISTINCT projection) FROM projection_rejections"
             " WHERE reason = 'version_conflict' AND aggregate_id = '%s'",
             p);
    assert_true(tl_wait_count(&stack, sql, 3, 10000));
}

static void test_lock(void **state)
{
    (void)state;
    char p[40];
    enrol(study, site, "VIS-003", "2026-01-01", p);
    tl_http_resp_t r = call(422, "POST", "{}", "/v1/studies/%s/lock", study);
    problem_is(&r, "reason-required");
    tl_http_free(&r);
    r = call(200, "POST", "{\"reason\":\"database lock for interim analysis\"}",
             "/v1/studies/%s/lock", study);
    assert_true(json_is_true(json_object_get(r.body, "locked")));
    tl_http_free(&r);
    r = call(409, "POST", "{\"reason\":\"again\"}", "/v1/studies/%s/lock", study);
    problem_is(&r, "already-locked");
    tl_http_free(&r);

    /* nothing changes while locked */
    char body[300];
    snprintf(body, sizeof body,
             "{\"participant_code\":\"VIS-004\",\"site_id\":\"%s\",\"consent_date\":\"2025-12-01\","
             "\"baseline_date\":\"2026-01-01\"}",
             site);
    r = call(422, "POST", body, "/v1/studies/%s/participants", study);
    problem_is(&r, "study-locked");
    tl_http_free(&r);
    r = call(422, "POST", "{\"actual_date\":\"2026-01-01\"}",
             "/v1/participants/%s/visits/Baseline/complete", p);
    problem_is(&r, "study-locked");
    tl_http_free(&r);
    r = call(422, "POST",
             "{\"name\":\"Month 9\",\"target_day\":270,\"window_before_days\":0,"
             "\"window_after_days\":0}",
             "/v1/studies/%s/visit-types", study);
    problem_is(&r, "study-locked");
    tl_http_free(&r);
    r = call(422, "POST", "{\"code\":\"S9\",\"name\":\"Nine\"}", "/v1/studies/%s/sites", study);
    problem_is(&r, "study-locked");
    tl_http_free(&r);

    /* unlock needs a reason, then changes go through again */
    r = call(422, "POST", "{\"reason\":\"\"}", "/v1/studies/%s/unlock", study);
    problem_is(&r, "reason-required");
    tl_http_free(&r);
    r = call(200, "POST", "{\"reason\":\"query resolution\"}", "/v1/studies/%s/unlock", study);
    assert_false(json_is_true(json_object_get(r.body, "locked")));
    assert_string_equal(str(r.body, "lock_reason"), "query resolution");
    tl_http_free(&r);
    r = call(200, "POST", "{\"actual_date\":\"2026-01-01\"}",
             "/v1/participants/%s/visits/Baseline/complete", p);
    tl_http_free(&r);
}

static void test_amendments_reach_enrolled_participants(void **state)
{
    (void)state;
    char p[40];
    enrol(study, site, "VIS-005", "2026-01-01", p);
    tl_http_resp_t r = call(200, "GET", NULL, "/v1/studies/%s/participants?status=enrolled", study);
    size_t enrolled = json_array_size(json_object_get(r.body, "items"));
    tl_http_free(&r);
    assert_true(enrolled >= 2);

    /* a new visit type reaches every enrolled participant; its window
     * crosses the year end */
    r = call(201, "POST",
             "{\"name\":\"Month 12\",\"target_day\":365,\"window_before_days\":30,"
             "\"window_after_days\":30,\"required\":false,\"reason\":\"amendment 1: a year\"}",
             "/v1/studies/%s/visit-types", study);
    assert_int_equal(num(r.body, "participants_rescheduled"), (long long)enrolled);
    assert_int_equal(num(r.body, "participants_pending"), 0);
    tl_http_free(&r);
    json_t *s = schedule(p, "2026-12-15");
    assert_visit(s, "Month 12", "2027-01-01", "2026-12-02", "2027-01-31", "open");
    json_decref(s);

    /* an amended window moves visits not done, not done ones */
    r = call(422, "PATCH", "{\"window_after_days\":28}", "/v1/studies/%s/visit-types/%s", study,
             vt_m3);
    problem_is(&r, "reason-required");
    tl_http_free(&r);
    r = call(422, "PATCH", "{\"window_after_days\":21,\"reason\":\"same\"}",
             "/v1/studies/%s/visit-types/%s", study, vt_m3);
    problem_is(&r, "nothing-to-amend");
    tl_http_free(&r);
    r = call(200, "PATCH", "{\"window_after_days\":28,\"reason\":\"amendment 2: wider window\"}",
             "/v1/studies/%s/visit-types/%s", study, vt_m3);
    assert_int_equal(num(r.body, "revision"), 2);
    assert_int_equal(num(r.body, "window_after_days"), 28);
    assert_int_equal(num(r.body, "participants_rescheduled"), (long long)enrolled);
    tl_http_free(&r);
    s = schedule(p, "2026-04-25");
    assert_visit(s, "Month 3", "2026-04-01", "2026-03-18", "2026-04-29", "open");
    json_decref(s);
    /* VIS-001 completed Month 3 before: it keeps its window */
    tl_pg_res_t *res = NULL;
    assert_int_equal(tl_pg_exec(stack.pg,
                                "SELECT window_end::text FROM participant_visits v"
                                " JOIN schedule_participants p ON p.id = v.participant_id"
                                " WHERE p.participant_code = 'VIS-001' AND v.name = 'Month 3'",
                                0, NULL, &res),
                     TL_OK);
    assert_string_equal(tl_pg_get(res, 0, 0), "2026-04-22");
    tl_pg_res_free(res);
}

static void test_metrics_and_visit_lists(void **state)
{
    (void)state;
    char st[40], s1[40], s2[40], a[40], b[40], c[40], d[40];
    tl_stack_study(&stack, "VIS-M", st, s1);
    tl_http_resp_t r =
        call(201, "POST", "{\"code\":\"S2\",\"name\":\"Site two\"}", "/v1/studies/%s/sites", st);
    snprintf(s2, sizeof s2, "%s", str(r.body, "id"));
    tl_http_free(&r);
    define_visit_type(st,
                      "{\"name\":\"Baseline\",\"target_day\":0,\"window_before_days\":0,"
                      "\"window_after_days\":0}",
                      NULL);
    define_visit_type(st,
                      "{\"name\":\"Month 1\",\"target_day\":30,\"window_before_days\":7,"
                      "\"window_after_days\":14}",
                      NULL);
    enrol(st, s1, "M-A", "2026-01-01", a);
    enrol(st, s1, "M-B", "2026-01-01", b);
    enrol(st, s2, "M-C", "2026-01-01", c);
    enrol(st, s2, "M-D", "2026-01-01", d);
    const char *in_window = "{\"actual_date\":\"2026-01-01\"}";
    EXPECT(200, "POST", in_window, "/v1/participants/%s/visits/Baseline/complete", a);
    EXPECT(200, "POST", in_window, "/v1/participants/%s/visits/Baseline/complete", b);
    EXPECT(200, "POST", in_window, "/v1/participants/%s/visits/Baseline/complete", c);
    EXPECT(200, "POST", "{\"actual_date\":\"2026-01-03\",\"deviation_reason\":\"snow\"}",
           "/v1/participants/%s/visits/Baseline/complete", d);
    EXPECT(200, "POST", "{\"actual_date\":\"2026-01-30\"}",
           "/v1/participants/%s/visits/Month%%201/complete", a);
    EXPECT(200, "POST", "{\"reason\":\"hospitalised\"}",
           "/v1/participants/%s/visits/Month%%201/miss", b);

    /* by hand, as of 2026-03-01: 8 visits due; baselines 4 done (D's late),
     * Month 1: A in window, B missed, C and D overdue (window ended 02-14) */
    r = call(200, "GET", NULL, "/v1/studies/%s/metrics?as_of=2026-03-01", st);
    const json_t *m = r.body, *tot = json_object_get(m, "visits");
    assert_int_equal(num(json_object_get(m, "participants"), "enrolled"), 4);
    assert_int_equal(num(tot, "expected"), 8);
    assert_int_equal(num(tot, "completed"), 5);
    assert_int_equal(num(tot, "completed_in_window"), 4);
    assert_true(json_real_value(json_object_get(tot, "in_window_rate")) == 0.8 ||
                json_number_value(json_object_get(tot, "in_window_rate")) == 0.8);
    assert_int_equal(num(tot, "missed"), 1);
    assert_int_equal(num(tot, "overdue"), 2);
    assert_int_equal(num(tot, "open"), 0);
    const json_t *vts = json_object_get(m, "visit_types");
    assert_int_equal(json_array_size(vts), 2);
    const json_t *base = json_array_get(vts, 0), *m1 = json_array_get(vts, 1);
    assert_string_equal(str(base, "name"), "Baseline");
    assert_int_equal(num(base, "expected"), 4);
    assert_int_equal(num(base, "completed"), 4);
    assert_int_equal(num(base, "completed_in_window"), 3);
    assert_true(json_number_value(json_object_get(base, "in_window_rate")) == 0.75);
    assert_int_equal(num(base, "overdue"), 0);
    assert_string_equal(str(m1, "name"), "Month 1");
    assert_int_equal(num(m1, "completed"), 1);
    assert_int_equal(num(m1, "missed"), 1);
    assert_int_equal(num(m1, "overdue"), 2);
    assert_true(json_number_value(json_object_get(m1, "in_window_rate")) == 1.0);
    const json_t *sites = json_object_get(m, "sites");
    assert_int_equal(json_array_size(sites), 2);
    const json_t *x1 = json_array_get(sites, 0), *x2 = json_array_get(sites, 1);
    assert_string_equal(str(x1, "code"), "S1");
    assert_int_equal(num(json_object_get(x1, "participants"), "enrolled"), 2);
    assert_int_equal(num(x1, "completed"), 3);
    assert_int_equal(num(x1, "missed"), 1);
    assert_int_equal(num(x1, "overdue"), 0);
    assert_string_equal(str(x2, "code"), "S2");
    assert_int_equal(num(x2, "completed"), 2);
    assert_int_equal(num(x2, "completed_in_window"), 1);
    assert_true(json_number_value(json_object_get(x2, "in_window_rate")) == 0.5);
    assert_int_equal(num(x2, "overdue"), 2);
    tl_http_free(&r);

    /* everything overdue; everything due in a week; one site; pages */
    r = call(200, "GET", NULL, "/v1/studies/%s/visits?status=overdue&as_of=2026-03-01", st);
    json_t *items = json_object_get(r.body, "items");
    assert_int_equal(json_array_size(items), 2);
    for (size_t i = 0; i < 2; i++) {
        const json_t *v = json_array_get(items, i);
        const char *code = str(v, "participant_code");
        assert_true(!strcmp(code, "M-C") || !strcmp(code, "M-D"));
        assert_string_equal(str(v, "name"), "Month 1");
        assert_string_equal(str(v, "status"), "overdue");
    }
    tl_http_free(&r);
    r = call(200, "GET", NULL, "/v1/studies/%s/visits?from=2026-01-26&to=2026-02-01", st);
    assert_int_equal(json_array_size(json_object_get(r.body, "items")), 4);
    tl_http_free(&r);
    r = call(200, "GET", NULL, "/v1/studies/%s/visits?site=%s&as_of=2026-03-01&status=overdue", st,
             s2);
    assert_int_equal(json_array_size(json_object_get(r.body, "items")), 2);
    tl_http_free(&r);
    r = call(200, "GET", NULL, "/v1/studies/%s/visits?site=%s&as_of=2026-03-01&status=overdue", st,
             s1);
    assert_int_equal(json_array_size(json_object_get(r.body, "items")), 0);
    tl_http_free(&r);
    size_t seen = 0;
    char next[200] = "";
    for (int page = 0; page < 10; page++) {
        r = call(200, "GET", NULL, "/v1/studies/%s/visits?limit=3%s%s", st,
                 next[0] ? "&after=" : "", next);
        seen += json_array_size(json_object_get(r.body, "items"));
        const char *n = json_string_value(json_object_get(r.body, "next"));
        snprintf(next, sizeof next, "%s", n ? n : "");
        tl_http_free(&r);
        if (!next[0])
            break;
    }
    assert_int_equal(seen, 8);
    r = call(400, "GET", NULL, "/v1/studies/%s/visits?status=late&from=x&limit=0&after=y", st);
    assert_int_equal(json_array_size(json_object_get(r.body, "errors")), 4);
    tl_http_free(&r);
    EXPECT(404, "GET", NULL, "/v1/studies/%s/visits", "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b");
}

/* Both folds of the participant stream took the same decisions, and the
 * schedules projection rebuilt from offset 0 equals the live one. */
static void test_rebuild_schedules_equals_live(void **state)
{
    (void)state;
#define STREAM_REJECTIONS(p)                                                                       \
    "SELECT partition, \"offset\", reason FROM projection_rejections"                                \
    " WHERE projection = '" p "' AND topic = 'trialog.participant.v1'"
    assert_int_equal(tl_sql_int(&stack, "SELECT count(*) FROM ((" STREAM_REJECTIONS("participants")
                                        " EXCEPT " STREAM_REJECTIONS("schedules") ") UNION ALL ("
                                        STREAM_REJECTIONS("schedules") " EXCEPT "
                                        STREAM_REJECTIONS("participants") ")) d"),
                     0);
    /* the one a test made on purpose */
    assert_int_equal(tl_sql_int(&stack, "SELECT count(*) FROM (" STREAM_REJECTIONS("schedules") ") r"),
                     1);
    assert_int_equal(tl_sql_int(&stack, "SELECT count(*) FROM participants p"
                                        " FULL JOIN schedule_participants s ON s.id = p.id"
                                        " WHERE s.version IS DISTINCT FROM p.version"
                                        " OR s.status IS DISTINCT FROM p.status"
                                        " OR s.baseline_date IS DISTINCT FROM p.baseline_date"),
                     0);
    tl_sql_int(&stack, "CREATE TABLE live_visits AS SELECT * FROM participant_visits;"
                       " CREATE TABLE live_sched AS SELECT * FROM schedule_participants; SELECT 1");
    tl_indexes_snap(&stack, "live_indexes");
    char *out = NULL;
    int rc = tl_stack_cli(&stack, "rebuild schedules", &out);
    if (rc)
        fail_msg("rebuild failed (%d):\n%s", rc, out);
    free(out);
    tl_indexes_same(&stack, "live_indexes");
    const char *cols = "participant_id, visit_type_id, study_id, site_id, name, target_day,"
                       " required, due_date, window_start, window_end, state, actual_date,"
                       " in_window, deviation_reason, missed_reason, notes, version, updated_at,"
                       " last_event_id";
    char sql[1400];
    snprintf(sql, sizeof sql,
             "SELECT (SELECT count(*) FROM (SELECT %s FROM live_visits EXCEPT"
             " SELECT %s FROM participant_visits) a) + (SELECT count(*) FROM (SELECT %s FROM"
             " participant_visits EXCEPT SELECT %s FROM live_visits) b)",
             cols, cols, cols, cols);
    assert_int_equal(tl_sql_int(&stack, sql), 0);
    assert_int_equal(tl_sql_int(&stack, "SELECT count(*) FROM participant_visits"),
                     tl_sql_int(&stack, "SELECT count(*) FROM live_visits"));
    assert_true(tl_sql_int(&stack, "SELECT count(*) FROM participant_visits") > 20);
    assert_int_equal(tl_sql_int(&stack, "SELECT count(*) FROM (SELECT * FROM live_sched EXCEPT"
                                        " SELECT * FROM schedule_participants) a"),
                     0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_protocol_validation),
        cmocka_unit_test(test_visits_windows_and_deviations),
        cmocka_unit_test(test_baseline_change_and_withdrawal),
        cmocka_unit_test(test_progress_of_other_schemas_is_ignored),
        cmocka_unit_test(test_the_next_enrolment_has_a_new_visit_type),
        cmocka_unit_test(test_a_command_the_folds_refuse_answers_409),
        cmocka_unit_test(test_lock),
        cmocka_unit_test(test_amendments_reach_enrolled_participants),
        cmocka_unit_test(test_metrics_and_visit_lists),
        cmocka_unit_test(test_rebuild_schedules_equals_live),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
