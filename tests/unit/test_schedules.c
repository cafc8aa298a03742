/* Unit tests for visit schedules (projections/schedules.c) and the stream
 * decision they share with the other participant folds (projections/
 * stream.c): the dates of DESIGN.md §5 (due, window, in-window judgement,
 * leap years, year ends), the checks of a protocol's visit types, and the
 * fold of one participant's schedule: enrolment, completion, missed visits,
 * baseline changes, amendments, withdrawal and completion, the version rule
 * of §2, skipped visit events, refusals, and replay determinism. Events are
 * built as jansson objects shaped like the decoded Avro records of
 * schemas/participant/. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "schedules.h"
#include "tl_date.h"

#define STUDY "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"
#define STUDY2 "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5c"
#define SITE "0190a1b2-c3d4-7e5f-8a9b-111111111111"
#define PART "0190a1b2-c3d4-7e5f-8a9b-222222222222"
#define EV1 "0190a1b2-c3d4-7e5f-8a9b-aaaaaaaaaaa1"
#define EV2 "0190a1b2-c3d4-7e5f-8a9b-aaaaaaaaaaa2"
#define EV3 "0190a1b2-c3d4-7e5f-8a9b-aaaaaaaaaaa3"
#define EV4 "0190a1b2-c3d4-7e5f-8a9b-aaaaaaaaaaa4"
#define EV5 "0190a1b2-c3d4-7e5f-8a9b-aaaaaaaaaaa5"
#define EV6 "0190a1b2-c3d4-7e5f-8a9b-aaaaaaaaaaa6"
#define EV7 "0190a1b2-c3d4-7e5f-8a9b-aaaaaaaaaaa7"
#define EV8 "0190a1b2-c3d4-7e5f-8a9b-aaaaaaaaaaa8"
#define EV9 "0190a1b2-c3d4-7e5f-8a9b-aaaaaaaaaaa9"

/* visit types; the last digits recall the target day */
#define VT_BASE "0190a1b2-c3d4-7e5f-8a9b-b00000000000"
#define VT_W2 "0190a1b2-c3d4-7e5f-8a9b-b00000000014"
#define VT_M1 "0190a1b2-c3d4-7e5f-8a9b-b00000000030"
#define VT_M3 "0190a1b2-c3d4-7e5f-8a9b-b00000000090"
#define VT_M6 "0190a1b2-c3d4-7e5f-8a9b-b00000000180"
#define VT_M9 "0190a1b2-c3d4-7e5f-8a9b-b00000000270"
#define VT_M12 "0190a1b2-c3d4-7e5f-8a9b-b00000000365"
#define VT_D366 "0190a1b2-c3d4-7e5f-8a9b-b00000000366"
#define VT_D730 "0190a1b2-c3d4-7e5f-8a9b-b00000000730"
#define VT_UNKNOWN "0190a1b2-c3d4-7e5f-8a9b-b0000000dead"

#define T_OCCURRED 1767225600000000LL /* 2026-01-01T00:00:00Z in microseconds */
#define T_RECORDED 1767225601234567LL

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

/* A refusal: the reason is non-NULL and exactly want. */
#define assert_reason(got, want)                                                                   \
    do {                                                                                           \
        const char *reason_ = (got);                                                               \
        assert_non_null(reason_);                                                                  \
        assert_string_equal(reason_, want);                                                        \
    } while (0)

/* The four-visit protocol of the examples (DESIGN.md §5). */
static const tl_visit_type_t PROTOCOL[] = {
    {VT_BASE, "Baseline", 0, 0, 0, true},
    {VT_M1, "Month 1", 30, 7, 14, true},
    {VT_M3, "Month 3", 90, 14, 21, true},
    {VT_M6, "Month 6", 180, 21, 30, false},
};

static int32_t day(int y, unsigned m, unsigned d)
{
    return tl_date_from_civil(y, m, d);
}

/* Dates are compared as text so that a failure shows the calendar date. */
static void assert_date(int32_t got, const char *want)
{
    char s[TL_DATE_STRLEN];
    tl_date_format(got, s);
    assert_string_equal(s, want);
}

static void assert_dates(const tl_visit_t *v, const char *due, const char *start, const char *end)
{
    assert_date(v->due, due);
    assert_date(v->window_start, start);
    assert_date(v->window_end, end);
}

static void assert_str_or_null_equal(const char *got, const char *want)
{
    if (want)
        assert_non_null(got);
    if (!want)
        assert_null(got);
    else
        assert_string_equal(got, want);
}

static tl_visit_type_t visit_type(const char *id, const char *name, int32_t target_day,
                                  int32_t before, int32_t after)
{
    tl_visit_type_t vt;
    memset(&vt, 0, sizeof vt);
    snprintf(vt.id, sizeof vt.id, "%s", id);
    snprintf(vt.name, sizeof vt.name, "%s", name);
    vt.target_day = target_day;
    vt.window_before = before;
    vt.window_after = after;
    vt.required = true;
    return vt;
}

/* ---- events ---- */

/* Common metadata of every event (DESIGN.md §3). version < 0: null. */
static json_t *meta(const char *event_id, long long version)
{
    json_t *ev =
        json_pack("{s:s, s:I, s:I, s:s, s:s, s:n, s:n, s:s, s:n, s:s}", "event_id", event_id,
                  "occurred_at", (json_int_t)T_OCCURRED, "recorded_at", (json_int_t)T_RECORDED,
                  "actor_id", "coordinator-7", "actor_role", "coordinator", "site_id", "reason",
                  "correlation_id", "corr-1", "causation_id", "source", "gateway");
    assert_non_null(ev);
    json_object_set_new(ev, "stream_version",
                        version < 0 ? json_null() : json_integer((json_int_t)version));
    return ev;
}

/* A participant event: metadata, participant and study. */
static json_t *participant_ev(const char *event_id, long long version)
{
    json_t *ev = meta(event_id, version);
    json_object_set_new(ev, "participant_id", json_string(PART));
    json_object_set_new(ev, "study_id", json_string(STUDY));
    return ev;
}

static void set_reason(json_t *ev, const char *reason)
{
    json_object_set_new(ev, "reason", reason ? json_string(reason) : json_null());
}

/* One visit of an event's visits array, written out by hand. */
static json_t *visit_json(const char *id, const char *name, int target_day, bool required,
                          int32_t due, int32_t start, int32_t end)
{
    json_t *o = json_pack("{s:s, s:s, s:i, s:b, s:i, s:i, s:i}", "visit_type_id", id, "name", name,
                          "target_day", target_day, "required", required, "due_date", (int)due,
                          "window_start", (int)start, "window_end", (int)end);
    assert_non_null(o);
    return o;
}

/* The visits array the gateway would compute for vts from a baseline. */
static json_t *planned(const tl_visit_type_t *vts, size_t n, int32_t baseline)
{
    tl_visit_t v[TL_VISIT_TYPES_MAX + 8];
    assert_true(n <= N_OF(v));
    for (size_t i = 0; i < n; i++)
        tl_visit_plan(&vts[i], baseline, &v[i]);
    json_t *arr = tl_visits_event_json(v, n);
    assert_non_null(arr);
    assert_int_equal(json_array_size(arr), n);
    return arr;
}

/* ParticipantEnrolled; takes ownership of schedule (NULL: none, an event
 * from before schedules existed). */
static json_t *enrolled_ev(const char *event_id, long long version, int32_t baseline,
                           json_t *schedule)
{
    json_t *ev = participant_ev(event_id, version);
    json_object_set_new(ev, "site_id", json_string(SITE));
    json_object_set_new(ev, "participant_code", json_string("AMD-00042"));
    json_object_set_new(ev, "birth_year", json_integer(1958));
    json_object_set_new(ev, "sex", json_string("F"));
    json_object_set_new(ev, "consent_date", json_integer(baseline - 5));
    json_object_set_new(ev, "baseline_date", json_integer(baseline));
    if (schedule)
        json_object_set_new(ev, "schedule", schedule);
    return ev;
}

/* VisitCompleted; deviation_reason and notes may be NULL (null). */
static json_t *completed_ev(const char *event_id, long long version, const char *visit_type_id,
                            int32_t actual, const char *deviation_reason, const char *notes)
{
    json_t *ev = participant_ev(event_id, version);
    json_object_set_new(ev, "visit_type_id", json_string(visit_type_id));
    json_object_set_new(ev, "actual_date", json_integer(actual));
    json_object_set_new(ev, "deviation_reason",
                        deviation_reason ? json_string(deviation_reason) : json_null());
    json_object_set_new(ev, "notes", notes ? json_string(notes) : json_null());
    return ev;
}

static json_t *missed_ev(const char *event_id, long long version, const char *visit_type_id,
                         const char *reason)
{
    json_t *ev = participant_ev(event_id, version);
    json_object_set_new(ev, "visit_type_id", json_string(visit_type_id));
    set_reason(ev, reason);
    return ev;
}

/* BaselineChanged; takes ownership of visits. */
static json_t *baseline_ev(const char *event_id, long long version, int32_t baseline,
                           int32_t previous, json_t *visits, const char *reason)
{
    json_t *ev = participant_ev(event_id, version);
    json_object_set_new(ev, "baseline_date", json_integer(baseline));
    json_object_set_new(ev, "previous_baseline_date", json_integer(previous));
    json_object_set_new(ev, "visits", visits);
    set_reason(ev, reason);
    return ev;
}

/* VisitScheduleChanged; takes ownership of visits. */
static json_t *amended_ev(const char *event_id, long long version, json_t *visits,
                          const char *reason)
{
    json_t *ev = participant_ev(event_id, version);
    json_object_set_new(ev, "visits", visits);
    set_reason(ev, reason);
    return ev;
}

static json_t *withdrawn_ev(const char *event_id, long long version, int32_t date,
                            const char *reason)
{
    json_t *ev = participant_ev(event_id, version);
    json_object_set_new(ev, "withdrawal_date", json_integer(date));
    set_reason(ev, reason);
    return ev;
}

static json_t *finished_ev(const char *event_id, long long version, int32_t date)
{
    json_t *ev = participant_ev(event_id, version);
    json_object_set_new(ev, "completion_date", json_integer(date));
    return ev;
}

/* ---- applying ---- */

/* Applies ev (and frees it): it must apply and not be skipped. */
static void apply_ok(tl_schedule_t *s, const char *type, json_t *ev)
{
    const char *skipped = "not set";
    const char *why = tl_schedule_apply(s, type, ev, &skipped);
    json_decref(ev);
    assert_null(why);
    assert_null(skipped);
}

/* Applies ev (and frees it): accepted by the stream, skipped for want. */
static void apply_skipped(tl_schedule_t *s, const char *type, json_t *ev, const char *want)
{
    const char *skipped = NULL;
    const char *why = tl_schedule_apply(s, type, ev, &skipped);
    json_decref(ev);
    assert_null(why);
    assert_reason(skipped, want);
}

static void assert_visit_equal(const tl_visit_t *a, const tl_visit_t *b)
{
    assert_string_equal(a->visit_type_id, b->visit_type_id);
    assert_string_equal(a->name, b->name);
    assert_int_equal(a->target_day, b->target_day);
    assert_int_equal(a->required, b->required);
    assert_int_equal(a->due, b->due);
    assert_int_equal(a->window_start, b->window_start);
    assert_int_equal(a->window_end, b->window_end);
    assert_int_equal(a->state, b->state);
    assert_int_equal(a->actual_date, b->actual_date);
    assert_int_equal(a->in_window, b->in_window);
    assert_str_or_null_equal(a->deviation_reason, b->deviation_reason);
    assert_str_or_null_equal(a->missed_reason, b->missed_reason);
    assert_str_or_null_equal(a->notes, b->notes);
    assert_int_equal(a->version, b->version);
    assert_int_equal(a->updated_at_us, b->updated_at_us);
    assert_string_equal(a->last_event_id, b->last_event_id);
}

/* Field by field: the struct holds pointers, so raw memory cannot say. */
static void assert_schedule_equal(const tl_schedule_t *a, const tl_schedule_t *b)
{
    assert_int_equal(a->exists, b->exists);
    assert_string_equal(a->id, b->id);
    assert_string_equal(a->study_id, b->study_id);
    assert_string_equal(a->site_id, b->site_id);
    assert_string_equal(a->code, b->code);
    assert_string_equal(a->status, b->status);
    assert_int_equal(a->baseline_date, b->baseline_date);
    assert_int_equal(a->version, b->version);
    assert_int_equal(a->updated_at_us, b->updated_at_us);
    assert_string_equal(a->last_event_id, b->last_event_id);
    assert_int_equal(a->nvisits, b->nvisits);
    for (size_t i = 0; i < a->nvisits; i++)
        assert_visit_equal(&a->visits[i], &b->visits[i]);
}

/* Applies ev (and frees it): refused with want, *s unchanged. */
static void assert_refused(tl_schedule_t *s, const char *type, json_t *ev, const char *want)
{
    tl_schedule_t before;
    assert_true(tl_schedule_copy(&before, s));
    const tl_visit_t *visits = s->visits;
    const char *skipped = "not set";
    const char *why = tl_schedule_apply(s, type, ev, &skipped);
    json_decref(ev);
    assert_reason(why, want);
    assert_null(skipped);
    assert_ptr_equal(s->visits, visits);
    assert_schedule_equal(s, &before);
    tl_schedule_cleanup(&before);
}

/* The visit of id, which must exist. */
static tl_visit_t *visit(tl_schedule_t *s, const char *id)
{
    tl_visit_t *v = tl_schedule_visit(s, id);
    assert_non_null(v);
    return v;
}

/* Visits must be in target day order. */
static void assert_sorted(const tl_schedule_t *s)
{
    for (size_t i = 1; i < s->nvisits; i++)
        assert_true(s->visits[i - 1].target_day <= s->visits[i].target_day);
}

/* A participant enrolled at version 1 on PROTOCOL from baseline. */
static void enrolled_schedule(tl_schedule_t *s, int32_t baseline)
{
    memset(s, 0, sizeof *s);
    apply_ok(s, "ParticipantEnrolled",
             enrolled_ev(EV1, 1, baseline, planned(PROTOCOL, N_OF(PROTOCOL), baseline)));
    assert_int_equal(s->version, 1);
    assert_int_equal(s->nvisits, N_OF(PROTOCOL));
}

/* ---- dates ---- */

static void test_plan_design_example(void **state)
{
    (void)state;
    int32_t baseline = day(2026, 1, 1);
    tl_visit_t v;

    tl_visit_plan(&PROTOCOL[0], baseline, &v);
    assert_string_equal(v.visit_type_id, VT_BASE);
    assert_string_equal(v.name, "Baseline");
    assert_int_equal(v.target_day, 0);
    assert_true(v.required);
    assert_int_equal(v.state, TL_VISIT_SCHEDULED);
    assert_dates(&v, "2026-01-01", "2026-01-01", "2026-01-01");
    assert_true(tl_visit_in_window(&v, day(2026, 1, 1)));
    assert_false(tl_visit_in_window(&v, day(2025, 12, 31)));
    assert_false(tl_visit_in_window(&v, day(2026, 1, 2)));

    tl_visit_plan(&PROTOCOL[1], baseline, &v);
    assert_string_equal(v.visit_type_id, VT_M1);
    assert_string_equal(v.name, "Month 1");
    assert_int_equal(v.target_day, 30);
    assert_int_equal(v.state, TL_VISIT_SCHEDULED);
    assert_null(v.deviation_reason);
    assert_null(v.missed_reason);
    assert_null(v.notes);
    assert_dates(&v, "2026-01-31", "2026-01-24", "2026-02-14");
    assert_true(tl_visit_in_window(&v, day(2026, 1, 26)));
    assert_true(tl_visit_in_window(&v, day(2026, 2, 10)));
    assert_false(tl_visit_in_window(&v, day(2026, 2, 15)));
    /* both ends inclusive */
    assert_true(tl_visit_in_window(&v, day(2026, 1, 24)));
    assert_true(tl_visit_in_window(&v, day(2026, 2, 14)));
    assert_false(tl_visit_in_window(&v, day(2026, 1, 23)));

    tl_visit_plan(&PROTOCOL[2], baseline, &v);
    assert_dates(&v, "2026-04-01", "2026-03-18", "2026-04-22");
    assert_true(tl_visit_in_window(&v, day(2026, 3, 18)));
    assert_true(tl_visit_in_window(&v, day(2026, 4, 22)));
    assert_false(tl_visit_in_window(&v, day(2026, 3, 17)));
    assert_false(tl_visit_in_window(&v, day(2026, 4, 23)));

    tl_visit_plan(&PROTOCOL[3], baseline, &v);
    assert_false(v.required);
    assert_dates(&v, "2026-06-30", "2026-06-09", "2026-07-30");
}

/* The same example through the fold: a schedule written out by hand (the
 * gateway's dates), then a completion. */
static void test_fold_design_example(void **state)
{
    (void)state;
    static const struct {
        const char *visit_type_id, *actual, *deviation_reason;
        bool in_window;
    } cases[] = {
        {VT_M1, "2026-01-26", NULL, true},
        {VT_M1, "2026-02-10", NULL, true},
        {VT_M1, "2026-01-24", NULL, true},
        {VT_M1, "2026-02-14", NULL, true},
        {VT_M1, "2026-02-15", "participant was travelling", false},
        {VT_M1, "2026-01-23", "seen early by mistake", false},
        {VT_M3, "2026-03-18", NULL, true},
        {VT_M3, "2026-04-22", NULL, true},
        {VT_M3, "2026-04-23", "clinic closed", false},
    };
    for (size_t i = 0; i < N_OF(cases); i++) {
        json_t *sched = json_array();
        json_array_append_new(sched, visit_json(VT_M3, "Month 3", 90, true, day(2026, 4, 1),
                                                day(2026, 3, 18), day(2026, 4, 22)));
        json_array_append_new(sched, visit_json(VT_BASE, "Baseline", 0, true, day(2026, 1, 1),
                                                day(2026, 1, 1), day(2026, 1, 1)));
        json_array_append_new(sched, visit_json(VT_M1, "Month 1", 30, true, day(2026, 1, 31),
                                                day(2026, 1, 24), day(2026, 2, 14)));
        tl_schedule_t s;
        memset(&s, 0, sizeof s);
        apply_ok(&s, "ParticipantEnrolled", enrolled_ev(EV1, 1, day(2026, 1, 1), sched));

        assert_true(s.exists);
        assert_string_equal(s.id, PART);
        assert_string_equal(s.study_id, STUDY);
        assert_string_equal(s.site_id, SITE);
        assert_string_equal(s.code, "AMD-00042");
        assert_string_equal(s.status, "enrolled");
        assert_date(s.baseline_date, "2026-01-01");
        assert_int_equal(s.version, 1);
        assert_int_equal(s.updated_at_us, T_RECORDED);
        assert_string_equal(s.last_event_id, EV1);
        /* sorted by target day whatever the event's order */
        assert_int_equal(s.nvisits, 3);
        assert_string_equal(s.visits[0].visit_type_id, VT_BASE);
        assert_string_equal(s.visits[1].visit_type_id, VT_M1);
        assert_string_equal(s.visits[2].visit_type_id, VT_M3);
        for (size_t j = 0; j < s.nvisits; j++) {
            assert_int_equal(s.visits[j].state, TL_VISIT_SCHEDULED);
            assert_int_equal(s.visits[j].version, 1);
            assert_string_equal(s.visits[j].last_event_id, EV1);
        }
        assert_dates(&s.visits[1], "2026-01-31", "2026-01-24", "2026-02-14");
        assert_dates(&s.visits[2], "2026-04-01", "2026-03-18", "2026-04-22");

        int32_t actual;
        assert_int_equal(tl_date_parse(cases[i].actual, &actual), TL_OK);
        apply_ok(&s, "VisitCompleted",
                 completed_ev(EV2, 2, cases[i].visit_type_id, actual, cases[i].deviation_reason,
                              "VA 72 letters"));
        assert_int_equal(s.version, 2);
        assert_string_equal(s.last_event_id, EV2);
        tl_visit_t *v = visit(&s, cases[i].visit_type_id);
        assert_int_equal(v->state, TL_VISIT_COMPLETED);
        assert_date(v->actual_date, cases[i].actual);
        assert_int_equal(v->in_window, cases[i].in_window);
        assert_str_or_null_equal(v->deviation_reason, cases[i].deviation_reason);
        assert_string_equal(v->notes, "VA 72 letters");
        assert_null(v->missed_reason);
        assert_int_equal(v->version, 2);
        assert_int_equal(v->updated_at_us, T_RECORDED);
        assert_string_equal(v->last_event_id, EV2);
        /* the dates do not move with a completion */
        assert_date(v->due, strcmp(cases[i].visit_type_id, VT_M1) ? "2026-04-01" : "2026-01-31");
        /* the other visits are untouched */
        assert_int_equal(visit(&s, VT_BASE)->state, TL_VISIT_SCHEDULED);
        assert_int_equal(visit(&s, VT_BASE)->version, 1);
        tl_schedule_cleanup(&s);
    }
}

static void test_plan_leap_year_baseline(void **state)
{
    (void)state;
    /* worked out on a calendar: 2028 is a leap year, 2029 is not */
    const tl_visit_type_t vts[] = {
        visit_type(VT_BASE, "Baseline", 0, 0, 0),
        visit_type(VT_M1, "Month 1", 30, 7, 14),
        visit_type(VT_M3, "Month 3", 90, 14, 21),
        visit_type(VT_M6, "Month 6", 180, 21, 30),
        visit_type(VT_M12, "Month 12", 365, 30, 30),
        visit_type(VT_D366, "Year 1 + 1 day", 366, 0, 0),
        visit_type(VT_D730, "Year 2", 730, 0, 0),
    };
    static const char *const want[][3] = {
        {"2028-02-29", "2028-02-29", "2028-02-29"}, {"2028-03-30", "2028-03-23", "2028-04-13"},
        {"2028-05-29", "2028-05-15", "2028-06-19"}, {"2028-08-27", "2028-08-06", "2028-09-26"},
        {"2029-02-28", "2029-01-29", "2029-03-30"}, {"2029-03-01", "2029-03-01", "2029-03-01"},
        {"2030-02-28", "2030-02-28", "2030-02-28"},
    };
    assert_null(tl_visit_types_check(vts, N_OF(vts)));
    int32_t baseline = day(2028, 2, 29);
    assert_date(baseline, "2028-02-29");
    for (size_t i = 0; i < N_OF(vts); i++) {
        tl_visit_t v;
        tl_visit_plan(&vts[i], baseline, &v);
        assert_dates(&v, want[i][0], want[i][1], want[i][2]);
    }

    /* a window across 29 February, and the same one in a common year */
    tl_visit_t v;
    tl_visit_plan(&vts[1], day(2028, 2, 1), &v);
    assert_dates(&v, "2028-03-02", "2028-02-24", "2028-03-16");
    assert_true(tl_visit_in_window(&v, day(2028, 2, 29)));
    tl_visit_plan(&vts[1], day(2027, 2, 1), &v);
    assert_dates(&v, "2027-03-03", "2027-02-24", "2027-03-17");
    tl_visit_plan(&vts[1], day(2028, 1, 31), &v);
    assert_dates(&v, "2028-03-01", "2028-02-23", "2028-03-15");

    /* and through the fold: the dates travel in the event unchanged */
    tl_schedule_t s;
    memset(&s, 0, sizeof s);
    apply_ok(&s, "ParticipantEnrolled",
             enrolled_ev(EV1, 1, baseline, planned(vts, N_OF(vts), baseline)));
    assert_int_equal(s.nvisits, N_OF(vts));
    for (size_t i = 0; i < N_OF(vts); i++)
        assert_dates(visit(&s, vts[i].id), want[i][0], want[i][1], want[i][2]);
    assert_sorted(&s);
    apply_ok(&s, "VisitCompleted", completed_ev(EV2, 2, VT_M12, day(2029, 3, 30), NULL, NULL));
    assert_true(visit(&s, VT_M12)->in_window);
    assert_null(visit(&s, VT_M12)->notes);
    tl_schedule_cleanup(&s);
}

static void test_plan_window_across_year_end(void **state)
{
    (void)state;
    tl_visit_t v;
    /* the window ends in the next year */
    tl_visit_plan(&PROTOCOL[1], day(2026, 12, 1), &v);
    assert_dates(&v, "2026-12-31", "2026-12-24", "2027-01-14");
    assert_true(tl_visit_in_window(&v, day(2026, 12, 31)));
    assert_true(tl_visit_in_window(&v, day(2027, 1, 1)));
    assert_true(tl_visit_in_window(&v, day(2027, 1, 14)));
    assert_false(tl_visit_in_window(&v, day(2027, 1, 15)));
    assert_false(tl_visit_in_window(&v, day(2026, 12, 23)));
    tl_visit_plan(&PROTOCOL[2], day(2026, 12, 1), &v);
    assert_dates(&v, "2027-03-01", "2027-02-15", "2027-03-22");

    /* the window opens in the old year, the visit is due in the new one */
    tl_visit_plan(&PROTOCOL[1], day(2026, 12, 5), &v);
    assert_dates(&v, "2027-01-04", "2026-12-28", "2027-01-18");
    assert_true(tl_visit_in_window(&v, day(2026, 12, 28)));
    assert_false(tl_visit_in_window(&v, day(2026, 12, 27)));

    /* a year of follow-up ending on New Year's Eve */
    tl_visit_type_t m12 = visit_type(VT_M12, "Month 12", 365, 30, 30);
    tl_visit_plan(&m12, day(2026, 12, 1), &v);
    assert_dates(&v, "2027-12-01", "2027-11-01", "2027-12-31");
    tl_visit_plan(&m12, day(2026, 12, 5), &v);
    assert_dates(&v, "2027-12-05", "2027-11-05", "2028-01-04");

    /* through the fold, completed on New Year's Day */
    tl_schedule_t s;
    enrolled_schedule(&s, day(2026, 12, 1));
    assert_dates(visit(&s, VT_M1), "2026-12-31", "2026-12-24", "2027-01-14");
    apply_ok(&s, "VisitCompleted", completed_ev(EV2, 2, VT_M1, day(2027, 1, 1), NULL, NULL));
    assert_true(visit(&s, VT_M1)->in_window);
    tl_schedule_cleanup(&s);
}

/* ---- visit types ---- */

static void assert_check_fails(const char *why, const char *mentions)
{
    assert_non_null(why);
    if (!strstr(why, mentions))
        fail_msg("\"%s\" does not mention \"%s\"", why, mentions);
}

static void test_visit_types_check(void **state)
{
    (void)state;
    /* the four-visit protocol passes, whole and one by one */
    assert_null(tl_visit_types_check(PROTOCOL, N_OF(PROTOCOL)));
    for (size_t i = 0; i < N_OF(PROTOCOL); i++)
        assert_null(tl_visit_type_check(&PROTOCOL[i]));
    assert_null(tl_visit_types_check(PROTOCOL, 0));

    /* names unique ignoring case */
    tl_visit_type_t vts[4];
    memcpy(vts, PROTOCOL, sizeof vts);
    snprintf(vts[3].name, sizeof vts[3].name, "MONTH 1");
    assert_check_fails(tl_visit_types_check(vts, 4), "unique");
    snprintf(vts[3].name, sizeof vts[3].name, "month 3");
    assert_check_fails(tl_visit_types_check(vts, 4), "unique");
    snprintf(vts[3].name, sizeof vts[3].name, "Month 6");
    assert_null(tl_visit_types_check(vts, 4));

    /* one baseline */
    vts[3] = visit_type(VT_M6, "Screening", 0, 0, 0);
    assert_null(tl_visit_type_check(&vts[3]));
    assert_check_fails(tl_visit_types_check(vts, 4), "baseline");

    /* one visit type at a time */
    static const struct {
        int32_t target_day, before, after;
        const char *mentions; /* NULL: passes */
    } one[] = {
        {0, 0, 1, "baseline"},
        {0, 1, 0, "baseline"},
        {0, 365, 365, "baseline"},
        {-1, 0, 0, "target_day"},
        {TL_TARGET_DAY_MAX + 1, 0, 0, "target_day"},
        {INT32_MIN, 0, 0, "target_day"},
        {30, -1, 14, "window"},
        {30, 7, -1, "window"},
        {400, TL_WINDOW_DAYS_MAX + 1, 0, "window"},
        {30, 0, TL_WINDOW_DAYS_MAX + 1, "window"},
        {30, 31, 0, "before baseline"},
        {1, 2, 0, "before baseline"},
        /* the limits themselves */
        {30, 30, 0, NULL},
        {1, 1, 1, NULL},
        {TL_TARGET_DAY_MAX, TL_WINDOW_DAYS_MAX, TL_WINDOW_DAYS_MAX, NULL},
        {0, 0, 0, NULL},
    };
    for (size_t i = 0; i < N_OF(one); i++) {
        tl_visit_type_t vt =
            visit_type(VT_M1, "Visit", one[i].target_day, one[i].before, one[i].after);
        const char *why = tl_visit_type_check(&vt);
        if (one[i].mentions)
            assert_check_fails(why, one[i].mentions);
        else
            assert_null(why);
        /* and the protocol check finds it too */
        tl_visit_type_t with[2] = {PROTOCOL[1], vt};
        if (!one[i].mentions)
            assert_null(tl_visit_types_check(&with[1], 1));
        else
            assert_non_null(tl_visit_types_check(with, 2));
    }

    /* at most TL_VISIT_TYPES_MAX visit types */
    tl_visit_type_t many[TL_VISIT_TYPES_MAX + 1];
    for (int i = 0; i <= TL_VISIT_TYPES_MAX; i++) {
        char name[32];
        snprintf(name, sizeof name, "Visit %d", i);
        many[i] = visit_type(VT_M1, name, i, 0, 0);
    }
    assert_null(tl_visit_types_check(many, TL_VISIT_TYPES_MAX));
    assert_check_fails(tl_visit_types_check(many, TL_VISIT_TYPES_MAX + 1), "64");
}

static void test_visit_state_names(void **state)
{
    (void)state;
    static const char *const names[] = {"scheduled", "completed", "missed", "cancelled"};
    for (int i = 0; i < 4; i++) {
        assert_string_equal(tl_visit_state_name((tl_visit_state_t)i), names[i]);
        assert_int_equal(tl_visit_state_parse(names[i]), i);
    }
    assert_int_equal(tl_visit_state_parse("Completed"), -1);
    assert_int_equal(tl_visit_state_parse("upcoming"), -1);
    assert_int_equal(tl_visit_state_parse(NULL), -1);
}

/* ---- the fold ---- */

static void test_enrol_without_schedule(void **state)
{
    (void)state;
    /* an enrolment from before schedules existed */
    tl_schedule_t s;
    memset(&s, 0, sizeof s);
    apply_ok(&s, "ParticipantEnrolled", enrolled_ev(EV1, -1, day(2026, 1, 1), NULL));
    assert_true(s.exists);
    assert_int_equal(s.version, 1);
    assert_int_equal(s.nvisits, 0);
    assert_null(tl_schedule_visit(&s, VT_M1));
    /* a visit event names a visit it does not have */
    apply_skipped(&s, "VisitCompleted", completed_ev(EV2, 2, VT_M1, day(2026, 1, 31), NULL, NULL),
                  "unknown_visit");
    assert_int_equal(s.version, 2);
    assert_int_equal(s.nvisits, 0);
    tl_schedule_cleanup(&s);
}

static void test_baseline_change_mixed_visits(void **state)
{
    (void)state;
    const tl_visit_type_t vts[] = {
        PROTOCOL[0], visit_type(VT_W2, "Week 2", 14, 3, 3), PROTOCOL[1], PROTOCOL[2], PROTOCOL[3],
    };
    int32_t old_baseline = day(2026, 1, 1), new_baseline = day(2026, 1, 11);
    tl_schedule_t s;
    memset(&s, 0, sizeof s);
    apply_ok(&s, "ParticipantEnrolled",
             enrolled_ev(EV1, 1, old_baseline, planned(vts, N_OF(vts), old_baseline)));
    assert_dates(visit(&s, VT_W2), "2026-01-15", "2026-01-12", "2026-01-18");

    /* baseline seen ten days late (a deviation), Week 2 missed, Month 1 in
     * its window, Month 3 and Month 6 still to come */
    apply_ok(&s, "VisitCompleted",
             completed_ev(EV2, 2, VT_BASE, new_baseline, "baseline visit postponed", NULL));
    apply_ok(&s, "VisitMissed", missed_ev(EV3, 3, VT_W2, "participant ill"));
    apply_ok(&s, "VisitCompleted", completed_ev(EV4, 4, VT_M1, day(2026, 1, 26), NULL, "ok"));
    assert_false(visit(&s, VT_BASE)->in_window);
    assert_true(visit(&s, VT_M1)->in_window);
    assert_int_equal(visit(&s, VT_W2)->state, TL_VISIT_MISSED);

    apply_ok(&s, "BaselineChanged",
             baseline_ev(EV5, 5, new_baseline, old_baseline, planned(vts, N_OF(vts), new_baseline),
                         "baseline visit was late"));
    assert_int_equal(s.version, 5);
    assert_string_equal(s.last_event_id, EV5);
    assert_date(s.baseline_date, "2026-01-11");
    assert_string_equal(s.status, "enrolled");
    assert_int_equal(s.nvisits, 5);
    assert_sorted(&s);

    /* completed on the new baseline: now in its window */
    tl_visit_t *v = visit(&s, VT_BASE);
    assert_int_equal(v->state, TL_VISIT_COMPLETED);
    assert_dates(v, "2026-01-11", "2026-01-11", "2026-01-11");
    assert_date(v->actual_date, "2026-01-11");
    assert_true(v->in_window);
    assert_string_equal(v->deviation_reason, "baseline visit postponed");
    assert_int_equal(v->version, 5);

    /* missed stays missed, with its reason, on the new dates */
    v = visit(&s, VT_W2);
    assert_int_equal(v->state, TL_VISIT_MISSED);
    assert_string_equal(v->missed_reason, "participant ill");
    assert_dates(v, "2026-01-25", "2026-01-22", "2026-01-28");

    /* completed on 26 January: the new window opens on 3 February */
    v = visit(&s, VT_M1);
    assert_int_equal(v->state, TL_VISIT_COMPLETED);
    assert_dates(v, "2026-02-10", "2026-02-03", "2026-02-24");
    assert_date(v->actual_date, "2026-01-26");
    assert_false(v->in_window);
    assert_null(v->deviation_reason);
    assert_string_equal(v->notes, "ok");

    /* the visits to come move */
    v = visit(&s, VT_M3);
    assert_int_equal(v->state, TL_VISIT_SCHEDULED);
    assert_dates(v, "2026-04-11", "2026-03-28", "2026-05-02");
    assert_int_equal(v->version, 5);
    assert_string_equal(v->last_event_id, EV5);
    v = visit(&s, VT_M6);
    assert_int_equal(v->state, TL_VISIT_SCHEDULED);
    assert_dates(v, "2026-07-10", "2026-06-19", "2026-08-09");

    /* a visit completed after the change is judged on the new window */
    apply_ok(&s, "VisitCompleted", completed_ev(EV6, 6, VT_M3, day(2026, 3, 27), "early", NULL));
    assert_false(visit(&s, VT_M3)->in_window);
    tl_schedule_cleanup(&s);
}

static void test_baseline_change_back_rejudges_again(void **state)
{
    (void)state;
    /* moving the baseline back restores the in-window flag */
    int32_t b0 = day(2026, 1, 1), b1 = day(2026, 1, 11);
    tl_schedule_t s;
    enrolled_schedule(&s, b0);
    apply_ok(&s, "VisitCompleted", completed_ev(EV2, 2, VT_M1, day(2026, 1, 26), NULL, NULL));
    apply_ok(&s, "BaselineChanged",
             baseline_ev(EV3, 3, b1, b0, planned(PROTOCOL, N_OF(PROTOCOL), b1), "typo"));
    assert_false(visit(&s, VT_M1)->in_window);
    apply_ok(&s, "BaselineChanged",
             baseline_ev(EV4, -1, b0, b1, planned(PROTOCOL, N_OF(PROTOCOL), b0), "typo undone"));
    assert_int_equal(s.version, 4);
    assert_true(visit(&s, VT_M1)->in_window);
    assert_date(visit(&s, VT_M1)->actual_date, "2026-01-26");
    assert_dates(visit(&s, VT_M1), "2026-01-31", "2026-01-24", "2026-02-14");
    assert_dates(visit(&s, VT_M3), "2026-04-01", "2026-03-18", "2026-04-22");
    tl_schedule_cleanup(&s);
}

static void test_amendment_adds_and_updates(void **state)
{
    (void)state;
    int32_t baseline = day(2026, 1, 1);
    tl_schedule_t s;
    enrolled_schedule(&s, baseline);
    apply_ok(&s, "VisitCompleted", completed_ev(EV2, 2, VT_BASE, baseline, NULL, NULL));
    apply_ok(&s, "VisitCompleted", completed_ev(EV3, 3, VT_M1, day(2026, 2, 12), NULL, NULL));
    tl_schedule_t before;
    assert_true(tl_schedule_copy(&before, &s));

    /* the amendment: a new Month 9 and Week 2, narrower windows for Month 1
     * (would put 12 February out) and Month 3; Month 6 not mentioned */
    const tl_visit_type_t amended[] = {
        visit_type(VT_M9, "Month 9", 270, 30, 30),
        visit_type(VT_M1, "Month 1 (amended)", 30, 5, 10),
        visit_type(VT_W2, "Week 2", 14, 3, 3),
        visit_type(VT_M3, "Month 3 (amended)", 90, 10, 10),
    };
    apply_ok(&s, "VisitScheduleChanged",
             amended_ev(EV4, 4, planned(amended, N_OF(amended), baseline), "protocol v2"));
    assert_int_equal(s.version, 4);
    assert_string_equal(s.last_event_id, EV4);
    assert_date(s.baseline_date, "2026-01-01");

    /* sorted by target day: Baseline, Week 2, Month 1, Month 3, Month 6, Month 9 */
    static const char *const order[] = {VT_BASE, VT_W2, VT_M1, VT_M3, VT_M6, VT_M9};
    assert_int_equal(s.nvisits, N_OF(order));
    for (size_t i = 0; i < N_OF(order); i++)
        assert_string_equal(s.visits[i].visit_type_id, order[i]);

    /* the new visits are scheduled */
    tl_visit_t *v = visit(&s, VT_W2);
    assert_string_equal(v->name, "Week 2");
    assert_int_equal(v->state, TL_VISIT_SCHEDULED);
    assert_dates(v, "2026-01-15", "2026-01-12", "2026-01-18");
    assert_int_equal(v->version, 4);
    assert_string_equal(v->last_event_id, EV4);
    assert_int_equal(v->updated_at_us, T_RECORDED);
    v = visit(&s, VT_M9);
    assert_int_equal(v->state, TL_VISIT_SCHEDULED);
    assert_int_equal(v->target_day, 270);
    assert_dates(v, "2026-09-28", "2026-08-29", "2026-10-28");
    assert_int_equal(v->version, 4);

    /* completed visits are left exactly as they were */
    assert_visit_equal(visit(&s, VT_M1), tl_schedule_visit(&before, VT_M1));
    assert_visit_equal(visit(&s, VT_BASE), tl_schedule_visit(&before, VT_BASE));
    assert_string_equal(visit(&s, VT_M1)->name, "Month 1");
    assert_true(visit(&s, VT_M1)->in_window);

    /* a scheduled visit takes the new dates */
    v = visit(&s, VT_M3);
    assert_int_equal(v->state, TL_VISIT_SCHEDULED);
    assert_string_equal(v->name, "Month 3 (amended)");
    assert_dates(v, "2026-04-01", "2026-03-22", "2026-04-11");
    assert_int_equal(v->version, 4);
    assert_string_equal(v->last_event_id, EV4);

    /* a visit it does not mention is untouched */
    assert_visit_equal(visit(&s, VT_M6), tl_schedule_visit(&before, VT_M6));

    /* and the added visits take events like the others */
    apply_ok(&s, "VisitCompleted", completed_ev(EV5, 5, VT_W2, day(2026, 1, 19), "late", NULL));
    assert_false(visit(&s, VT_W2)->in_window);
    apply_ok(&s, "VisitMissed", missed_ev(EV6, 6, VT_M9, "moved away"));
    assert_int_equal(visit(&s, VT_M9)->state, TL_VISIT_MISSED);
    tl_schedule_cleanup(&before);
    tl_schedule_cleanup(&s);
}

static void test_amendment_on_missed_visit(void **state)
{
    (void)state;
    int32_t baseline = day(2026, 1, 1);
    tl_schedule_t s;
    enrolled_schedule(&s, baseline);
    apply_ok(&s, "VisitMissed", missed_ev(EV2, 2, VT_M1, "no show"));
    const tl_visit_type_t amended[] = {visit_type(VT_M1, "Month 1", 30, 5, 10)};
    apply_ok(&s, "VisitScheduleChanged",
             amended_ev(EV3, 3, planned(amended, 1, baseline), "protocol v2"));
    /* not completed: takes the new dates, and stays missed */
    tl_visit_t *v = visit(&s, VT_M1);
    assert_int_equal(v->state, TL_VISIT_MISSED);
    assert_string_equal(v->missed_reason, "no show");
    assert_dates(v, "2026-01-31", "2026-01-26", "2026-02-10");
    assert_int_equal(s.nvisits, N_OF(PROTOCOL));
    tl_schedule_cleanup(&s);
}

static void test_amendment_moves_target_day(void **state)
{
    (void)state;
    int32_t baseline = day(2026, 1, 1);
    tl_schedule_t s;
    enrolled_schedule(&s, baseline);
    /* Month 6 brought forward to day 60: the order follows */
    const tl_visit_type_t amended[] = {visit_type(VT_M6, "Month 2", 60, 7, 14)};
    apply_ok(&s, "VisitScheduleChanged",
             amended_ev(EV2, 2, planned(amended, 1, baseline), "protocol v3"));
    static const char *const order[] = {VT_BASE, VT_M1, VT_M6, VT_M3};
    assert_int_equal(s.nvisits, N_OF(order));
    for (size_t i = 0; i < N_OF(order); i++)
        assert_string_equal(s.visits[i].visit_type_id, order[i]);
    tl_visit_t *v = visit(&s, VT_M6);
    assert_string_equal(v->name, "Month 2");
    assert_int_equal(v->target_day, 60);
    assert_true(v->required);
    assert_dates(v, "2026-03-02", "2026-02-23", "2026-03-16");
    tl_schedule_cleanup(&s);
}

/* Visits on the same target day: ordered by id, whatever the event's order,
 * so two replays (and two projections) list them alike. */
static void test_same_target_day_ordered_by_id(void **state)
{
    (void)state;
    int32_t baseline = day(2026, 1, 1);
    static const char *const ids[] = {VT_M9, VT_M3, VT_W2}; /* all on day 60 */
    tl_schedule_t a, b;
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    json_t *fwd = json_array(), *rev = json_array();
    for (size_t i = 0; i < N_OF(ids); i++) {
        tl_visit_type_t vt = visit_type(ids[i], ids[i], 60, 0, 0);
        tl_visit_type_t vt2 = visit_type(ids[N_OF(ids) - 1 - i], ids[N_OF(ids) - 1 - i], 60, 0, 0);
        json_t *one = planned(&vt, 1, baseline), *two = planned(&vt2, 1, baseline);
        json_array_extend(fwd, one);
        json_array_extend(rev, two);
        json_decref(one);
        json_decref(two);
    }
    apply_ok(&a, "ParticipantEnrolled", enrolled_ev(EV1, 1, baseline, fwd));
    apply_ok(&b, "ParticipantEnrolled", enrolled_ev(EV1, 1, baseline, rev));
    assert_schedule_equal(&a, &b);
    assert_int_equal(a.nvisits, 3);
    assert_string_equal(a.visits[0].visit_type_id, VT_W2);
    assert_string_equal(a.visits[1].visit_type_id, VT_M3);
    assert_string_equal(a.visits[2].visit_type_id, VT_M9);
    tl_schedule_cleanup(&a);
    tl_schedule_cleanup(&b);
}

static void test_withdrawal_cancels_open_visits(void **state)
{
    (void)state;
    int32_t baseline = day(2026, 1, 1);
    tl_schedule_t s;
    enrolled_schedule(&s, baseline);
    apply_ok(&s, "VisitCompleted", completed_ev(EV2, 2, VT_BASE, baseline, NULL, NULL));
    apply_ok(&s, "VisitMissed", missed_ev(EV3, 3, VT_M1, "no show"));
    tl_schedule_t before;
    assert_true(tl_schedule_copy(&before, &s));

    /* the rules' dates travel with the schedule (rules.h) */
    assert_true(s.has_consent);
    assert_int_equal(s.consent_date, baseline - 5);
    assert_int_equal(s.end_date, 0);
    apply_ok(&s, "ParticipantWithdrawn",
             withdrawn_ev(EV4, 4, day(2026, 2, 20), "withdrew consent"));
    assert_string_equal(s.status, "withdrawn");
    assert_int_equal(s.end_date, day(2026, 2, 20));
    assert_int_equal(s.version, 4);
    assert_string_equal(s.last_event_id, EV4);
    assert_visit_equal(visit(&s, VT_BASE), tl_schedule_visit(&before, VT_BASE));
    assert_visit_equal(visit(&s, VT_M1), tl_schedule_visit(&before, VT_M1));
    static const char *const open_ids[] = {VT_M3, VT_M6};
    for (size_t i = 0; i < N_OF(open_ids); i++) {
        tl_visit_t *v = visit(&s, open_ids[i]);
        assert_int_equal(v->state, TL_VISIT_CANCELLED);
        assert_int_equal(v->version, 4);
        assert_string_equal(v->last_event_id, EV4);
        /* the dates stay, for the record */
        assert_int_equal(v->due, tl_schedule_visit(&before, open_ids[i])->due);
    }

    /* nothing else changes a participant who left */
    assert_refused(&s, "VisitCompleted", completed_ev(EV5, 5, VT_M3, day(2026, 4, 1), NULL, NULL),
                   "participant_not_active");
    assert_refused(&s, "VisitMissed", missed_ev(EV5, 5, VT_M3, "left"), "participant_not_active");
    assert_refused(&s, "BaselineChanged",
                   baseline_ev(EV5, 5, day(2026, 1, 5), baseline,
                               planned(PROTOCOL, N_OF(PROTOCOL), day(2026, 1, 5)), "late"),
                   "participant_not_active");
    assert_refused(&s, "VisitScheduleChanged",
                   amended_ev(EV5, 5, planned(PROTOCOL, 2, baseline), "protocol v2"),
                   "participant_not_active");
    assert_refused(&s, "ParticipantWithdrawn", withdrawn_ev(EV5, 5, day(2026, 3, 1), "again"),
                   "participant_not_active");
    assert_refused(&s, "ParticipantCompleted", finished_ev(EV5, -1, day(2026, 7, 1)),
                   "participant_not_active");
    /* a visit event that would only be skipped is refused as well */
    assert_refused(&s, "VisitCompleted",
                   completed_ev(EV5, 5, VT_UNKNOWN, day(2026, 4, 1), NULL, NULL),
                   "participant_not_active");
    /* the version rule still comes first */
    assert_refused(&s, "VisitCompleted", completed_ev(EV5, 4, VT_M3, day(2026, 4, 1), NULL, NULL),
                   "version_conflict");

    /* consent can still be recorded (DESIGN.md §2: every fold decides alike) */
    json_t *ev = participant_ev(EV6, 5);
    json_object_set_new(ev, "consent_date", json_integer(day(2026, 3, 1)));
    apply_ok(&s, "ConsentRecorded", ev);
    assert_int_equal(s.version, 5);
    assert_int_equal(s.consent_date, day(2026, 3, 1));
    assert_string_equal(s.status, "withdrawn");
    assert_int_equal(visit(&s, VT_M3)->state, TL_VISIT_CANCELLED);
    tl_schedule_cleanup(&before);
    tl_schedule_cleanup(&s);
}

static void test_completion_cancels_open_visits(void **state)
{
    (void)state;
    int32_t baseline = day(2026, 1, 1);
    tl_schedule_t s;
    enrolled_schedule(&s, baseline);
    apply_ok(&s, "VisitCompleted", completed_ev(EV2, 2, VT_BASE, baseline, NULL, NULL));
    apply_ok(&s, "VisitCompleted", completed_ev(EV3, 3, VT_M1, day(2026, 2, 1), NULL, NULL));
    apply_ok(&s, "VisitMissed", missed_ev(EV4, 4, VT_M3, "no show"));
    /* no reason needed to finish */
    apply_ok(&s, "ParticipantCompleted", finished_ev(EV5, 5, day(2026, 7, 1)));
    assert_string_equal(s.status, "completed");
    assert_int_equal(s.version, 5);
    assert_int_equal(visit(&s, VT_BASE)->state, TL_VISIT_COMPLETED);
    assert_int_equal(visit(&s, VT_BASE)->version, 2);
    assert_int_equal(visit(&s, VT_M1)->state, TL_VISIT_COMPLETED);
    assert_int_equal(visit(&s, VT_M1)->version, 3);
    assert_int_equal(visit(&s, VT_M3)->state, TL_VISIT_MISSED);
    assert_int_equal(visit(&s, VT_M3)->version, 4);
    assert_int_equal(visit(&s, VT_M6)->state, TL_VISIT_CANCELLED);
    assert_int_equal(visit(&s, VT_M6)->version, 5);
    assert_string_equal(visit(&s, VT_M6)->last_event_id, EV5);

    assert_refused(&s, "VisitCompleted", completed_ev(EV6, 6, VT_M6, day(2026, 7, 1), NULL, NULL),
                   "participant_not_active");
    assert_refused(&s, "ParticipantCompleted", finished_ev(EV6, 6, day(2026, 7, 2)),
                   "participant_not_active");
    assert_refused(&s, "ParticipantWithdrawn", withdrawn_ev(EV6, 6, day(2026, 7, 2), "why"),
                   "participant_not_active");
    assert_refused(&s, "VisitScheduleChanged",
                   amended_ev(EV6, 6, planned(PROTOCOL, 1, baseline), "protocol v2"),
                   "participant_not_active");
    tl_schedule_cleanup(&s);
}

static void test_version_rule(void **state)
{
    (void)state;
    int32_t baseline = day(2026, 1, 1);
    tl_schedule_t s;
    memset(&s, 0, sizeof s);

    /* nothing before the enrolment */
    assert_refused(&s, "VisitCompleted", completed_ev(EV2, 1, VT_M1, baseline, NULL, NULL),
                   "unknown_participant");
    assert_refused(&s, "ParticipantEnrolled",
                   enrolled_ev(EV1, 2, baseline, planned(PROTOCOL, N_OF(PROTOCOL), baseline)),
                   "version_conflict");
    assert_refused(&s, "ParticipantEnrolled",
                   enrolled_ev(EV1, 0, baseline, planned(PROTOCOL, N_OF(PROTOCOL), baseline)),
                   "version_conflict");
    assert_false(s.exists);

    enrolled_schedule(&s, baseline);
    apply_ok(&s, "VisitCompleted", completed_ev(EV2, 2, VT_BASE, baseline, NULL, NULL));

    /* stale, repeated, ahead, zero, far ahead: refused, nothing changes */
    static const long long wrong[] = {1, 2, 4, 0, 100};
    for (size_t i = 0; i < N_OF(wrong); i++) {
        assert_refused(&s, "VisitCompleted",
                       completed_ev(EV3, wrong[i], VT_M1, day(2026, 1, 30), NULL, NULL),
                       "version_conflict");
        assert_refused(&s, "VisitMissed", missed_ev(EV3, wrong[i], VT_M1, "no show"),
                       "version_conflict");
        assert_refused(&s, "BaselineChanged",
                       baseline_ev(EV3, wrong[i], day(2026, 1, 2), baseline,
                                   planned(PROTOCOL, N_OF(PROTOCOL), day(2026, 1, 2)), "late"),
                       "version_conflict");
        assert_refused(&s, "ParticipantWithdrawn",
                       withdrawn_ev(EV3, wrong[i], day(2026, 2, 1), "left"), "version_conflict");
    }
    json_t *ev = completed_ev(EV3, 0, VT_M1, day(2026, 1, 30), NULL, NULL);
    json_object_set_new(ev, "stream_version", json_integer(-1));
    assert_refused(&s, "VisitCompleted", ev, "version_conflict");
    /* enrolled again, with the next version or none */
    assert_refused(&s, "ParticipantEnrolled", enrolled_ev(EV3, 3, baseline, NULL),
                   "version_conflict");
    assert_refused(&s, "ParticipantEnrolled", enrolled_ev(EV3, -1, baseline, NULL),
                   "version_conflict");
    assert_int_equal(s.version, 2);
    assert_int_equal(visit(&s, VT_M1)->state, TL_VISIT_SCHEDULED);

    /* null takes the next version, an absent one too, then numbers go on */
    apply_ok(&s, "VisitCompleted", completed_ev(EV3, -1, VT_M1, day(2026, 1, 30), NULL, NULL));
    assert_int_equal(s.version, 3);
    assert_int_equal(visit(&s, VT_M1)->version, 3);
    assert_string_equal(s.last_event_id, EV3);
    ev = missed_ev(EV4, -1, VT_M3, "no show");
    json_object_del(ev, "stream_version");
    apply_ok(&s, "VisitMissed", ev);
    assert_int_equal(s.version, 4);
    apply_ok(&s, "VisitScheduleChanged",
             amended_ev(EV5, 5, planned(PROTOCOL, N_OF(PROTOCOL), baseline), "v2"));
    assert_int_equal(s.version, 5);

    /* an event type the fold does not know takes its version, changes nothing else */
    tl_schedule_t before;
    assert_true(tl_schedule_copy(&before, &s));
    ev = participant_ev(EV6, 6);
    json_object_set_new(ev, "visits", json_string("not an array"));
    apply_ok(&s, "ObservationNoted", ev);
    assert_int_equal(s.version, 6);
    assert_string_equal(s.last_event_id, EV6);
    before.version = 6;
    memcpy(before.last_event_id, EV6, sizeof EV6);
    assert_schedule_equal(&s, &before);
    tl_schedule_cleanup(&before);

    /* another study's event is refused */
    ev = completed_ev(EV7, 7, VT_M6, day(2026, 7, 1), NULL, NULL);
    json_object_set_new(ev, "study_id", json_string(STUDY2));
    assert_refused(&s, "VisitCompleted", ev, "wrong_study");
    tl_schedule_cleanup(&s);
}

/* VisitCorrected: a completed visit's date (judged against the window
 * again), deviation reason replaced, notes kept unless sent; a reason is
 * required; a visit not completed is skipped. */
static void test_correction(void **state)
{
    (void)state;
    int32_t baseline = day(2026, 1, 1);
    tl_schedule_t s;
    enrolled_schedule(&s, baseline);
    apply_ok(&s, "VisitCompleted",
             completed_ev(EV2, 2, VT_M1, day(2026, 2, 15), "participant travelling", "first"));
    assert_false(visit(&s, VT_M1)->in_window);

    json_t *ev = completed_ev(EV3, 3, VT_M1, day(2026, 2, 10), NULL, NULL);
    assert_refused(&s, "VisitCorrected", ev, "reason_required");
    ev = completed_ev(EV3, 3, VT_M1, day(2026, 2, 10), NULL, NULL);
    set_reason(ev, "transcription error");
    apply_ok(&s, "VisitCorrected", ev);
    const tl_visit_t *v = visit(&s, VT_M1);
    assert_int_equal(v->state, TL_VISIT_COMPLETED);
    assert_date(v->actual_date, "2026-02-10");
    assert_true(v->in_window);
    assert_null(v->deviation_reason);
    assert_string_equal(v->notes, "first");
    assert_int_equal(v->version, 3);

    ev = completed_ev(EV4, 4, VT_M1, day(2026, 2, 16), "snow", "second");
    set_reason(ev, "wrong date");
    apply_ok(&s, "VisitCorrected", ev);
    v = visit(&s, VT_M1);
    assert_false(v->in_window);
    assert_string_equal(v->deviation_reason, "snow");
    assert_string_equal(v->notes, "second");

    /* a scheduled visit is not corrected: skipped, the version advances */
    ev = completed_ev(EV5, 5, VT_M3, day(2026, 4, 1), NULL, NULL);
    set_reason(ev, "x");
    apply_skipped(&s, "VisitCorrected", ev, "visit_not_completed");
    assert_int_equal(s.version, 5);
    assert_int_equal(visit(&s, VT_M3)->state, TL_VISIT_SCHEDULED);
    tl_schedule_cleanup(&s);
}

static void test_skipped_visit_events(void **state)
{
    (void)state;
    int32_t baseline = day(2026, 1, 1);
    tl_schedule_t s, before;
    enrolled_schedule(&s, baseline);
    assert_true(tl_schedule_copy(&before, &s));

    /* a visit the schedule does not have: accepted, the version advances */
    apply_skipped(&s, "VisitCompleted",
                  completed_ev(EV2, 2, VT_UNKNOWN, day(2026, 1, 31), NULL, "n"), "unknown_visit");
    assert_int_equal(s.version, 2);
    assert_string_equal(s.last_event_id, EV2);
    for (size_t i = 0; i < s.nvisits; i++)
        assert_visit_equal(&s.visits[i], &before.visits[i]);
    apply_skipped(&s, "VisitMissed", missed_ev(EV3, -1, VT_UNKNOWN, "no show"), "unknown_visit");
    assert_int_equal(s.version, 3);
    for (size_t i = 0; i < s.nvisits; i++)
        assert_visit_equal(&s.visits[i], &before.visits[i]);
    tl_schedule_cleanup(&before);

    /* completing twice: the first completion stands */
    apply_ok(&s, "VisitCompleted", completed_ev(EV4, 4, VT_M1, day(2026, 1, 30), NULL, "first"));
    assert_true(tl_schedule_copy(&before, &s));
    apply_skipped(&s, "VisitCompleted",
                  completed_ev(EV5, 5, VT_M1, day(2026, 2, 20), "late", "second"),
                  "visit_already_completed");
    assert_int_equal(s.version, 5);
    assert_string_equal(s.last_event_id, EV5);
    assert_visit_equal(visit(&s, VT_M1), tl_schedule_visit(&before, VT_M1));
    assert_date(visit(&s, VT_M1)->actual_date, "2026-01-30");
    assert_string_equal(visit(&s, VT_M1)->notes, "first");
    assert_null(visit(&s, VT_M1)->deviation_reason);
    /* missing a completed visit */
    apply_skipped(&s, "VisitMissed", missed_ev(EV6, 6, VT_M1, "no show"),
                  "visit_already_completed");
    assert_visit_equal(visit(&s, VT_M1), tl_schedule_visit(&before, VT_M1));
    tl_schedule_cleanup(&before);

    /* completing or missing a missed visit */
    apply_ok(&s, "VisitMissed", missed_ev(EV7, 7, VT_M3, "no show"));
    assert_true(tl_schedule_copy(&before, &s));
    apply_skipped(&s, "VisitCompleted", completed_ev(EV8, 8, VT_M3, day(2026, 4, 1), NULL, NULL),
                  "visit_not_scheduled");
    apply_skipped(&s, "VisitMissed", missed_ev(EV9, 9, VT_M3, "again"), "visit_not_scheduled");
    assert_int_equal(s.version, 9);
    assert_visit_equal(visit(&s, VT_M3), tl_schedule_visit(&before, VT_M3));
    assert_string_equal(visit(&s, VT_M3)->missed_reason, "no show");
    tl_schedule_cleanup(&before);

    /* a visit id in capitals is the same visit */
    apply_ok(&s, "VisitCompleted",
             completed_ev(EV1, 10, "0190A1B2-C3D4-7E5F-8A9B-B00000000180", day(2026, 6, 30), NULL,
                          NULL));
    assert_int_equal(visit(&s, VT_M6)->state, TL_VISIT_COMPLETED);
    assert_true(visit(&s, VT_M6)->in_window);
    tl_schedule_cleanup(&s);
}

static void test_reason_required(void **state)
{
    (void)state;
    int32_t baseline = day(2026, 1, 1);
    tl_schedule_t s;
    enrolled_schedule(&s, baseline);
    static const char *const none[] = {NULL, ""};
    for (size_t i = 0; i < N_OF(none); i++) {
        assert_refused(&s, "VisitMissed", missed_ev(EV2, 2, VT_M1, none[i]), "reason_required");
        assert_refused(&s, "BaselineChanged",
                       baseline_ev(EV2, 2, day(2026, 1, 5), baseline,
                                   planned(PROTOCOL, N_OF(PROTOCOL), day(2026, 1, 5)), none[i]),
                       "reason_required");
        assert_refused(&s, "ParticipantWithdrawn", withdrawn_ev(EV2, 2, day(2026, 2, 1), none[i]),
                       "reason_required");
        assert_refused(&s, "VisitScheduleChanged",
                       amended_ev(EV2, 2, planned(PROTOCOL, N_OF(PROTOCOL), baseline), none[i]),
                       "reason_required");
    }
    /* absent like null */
    json_t *ev = missed_ev(EV2, 2, VT_M1, "x");
    json_object_del(ev, "reason");
    assert_refused(&s, "VisitMissed", ev, "reason_required");
    /* too long: more bytes than a reason of TL_REASON_MAX characters takes */
    char long_reason[TL_BYTES(TL_REASON_MAX) + 1];
    memset(long_reason, 'r', sizeof long_reason - 1);
    long_reason[sizeof long_reason - 1] = '\0';
    assert_refused(&s, "VisitMissed", missed_ev(EV2, 2, VT_M1, long_reason), "reason_required");
    /* a completion on time needs none */
    apply_ok(&s, "VisitCompleted", completed_ev(EV2, 2, VT_BASE, baseline, NULL, NULL));
    assert_int_equal(s.version, 2);
    tl_schedule_cleanup(&s);
}

/* A visits array of n distinct, valid visits from 2026-01-01. */
static json_t *n_visits(size_t n)
{
    json_t *arr = json_array();
    int32_t baseline = day(2026, 1, 1);
    for (size_t i = 0; i < n; i++) {
        char id[TL_UUID_STRLEN], name[32];
        snprintf(id, sizeof id, "0190a1b2-c3d4-7e5f-8a9b-c000000000%02x", (unsigned)(i & 0xff));
        snprintf(name, sizeof name, "Visit %zu", i);
        json_array_append_new(arr, visit_json(id, name, (int)i, true, baseline + (int32_t)i,
                                              baseline + (int32_t)i, baseline + (int32_t)i));
    }
    return arr;
}

/* Each way a visits array can be malformed: the array for case i. */
static json_t *bad_visits(size_t i, bool *more)
{
    int32_t b = day(2026, 1, 1);
    json_t *arr = planned(PROTOCOL, N_OF(PROTOCOL), b);
    json_t *m1 = json_array_get(arr, 1);
    *more = true;
    switch (i) {
    case 0: /* window opens after the due date */
        json_object_set_new(m1, "window_start", json_integer(day(2026, 2, 1)));
        break;
    case 1: /* window closes before the due date */
        json_object_set_new(m1, "window_end", json_integer(day(2026, 1, 30)));
        break;
    case 2: /* the same visit twice */
        json_array_append_new(arr, visit_json(VT_M1, "Month 1 again", 30, true, day(2026, 1, 31),
                                              day(2026, 1, 24), day(2026, 2, 14)));
        break;
    case 3: /* the same visit twice, in other case */
        json_array_append_new(arr,
                              visit_json("0190A1B2-C3D4-7E5F-8A9B-B00000000030", "M1", 30, true,
                                         day(2026, 1, 31), day(2026, 1, 24), day(2026, 2, 14)));
        break;
    case 4: /* more visits than a study can have */
        json_decref(arr);
        arr = n_visits(TL_VISIT_TYPES_MAX + 1);
        break;
    case 5: /* not a date */
        json_object_set_new(m1, "due_date", json_integer(TL_DATE_MAX + 1));
        break;
    case 6:
        json_object_set_new(m1, "name", json_string(""));
        break;
    case 7:
        json_object_set_new(m1, "visit_type_id", json_string("month-1"));
        break;
    case 8:
        json_object_set_new(m1, "target_day", json_integer(-1));
        break;
    case 9:
        json_object_del(m1, "required");
        break;
    case 10:
        json_decref(arr);
        arr = json_object();
        break;
    default:
        *more = false;
        break;
    }
    return arr;
}

static void test_invalid_visits_arrays(void **state)
{
    (void)state;
    int32_t baseline = day(2026, 1, 1);
    tl_schedule_t s, empty;
    enrolled_schedule(&s, baseline);
    memset(&empty, 0, sizeof empty);
    bool more = true;
    for (size_t i = 0; more; i++) {
        json_t *arr = bad_visits(i, &more);
        if (!more) {
            json_decref(arr);
            break;
        }
        assert_false(tl_visits_event_valid(arr));
        assert_refused(&s, "BaselineChanged",
                       baseline_ev(EV2, 2, baseline, baseline, json_deep_copy(arr), "r"),
                       "invalid_event");
        /* invalid comes before a missing reason */
        assert_refused(&s, "BaselineChanged",
                       baseline_ev(EV2, 2, baseline, baseline, json_deep_copy(arr), NULL),
                       "invalid_event");
        assert_refused(&s, "VisitScheduleChanged", amended_ev(EV2, 2, json_deep_copy(arr), "r"),
                       "invalid_event");
        assert_refused(&empty, "ParticipantEnrolled", enrolled_ev(EV1, 1, baseline, arr),
                       "invalid_event");
    }
    /* a BaselineChanged without its visits or dates */
    json_t *ev = baseline_ev(EV2, 2, baseline, baseline, json_array(), "r");
    json_object_del(ev, "visits");
    assert_refused(&s, "BaselineChanged", ev, "invalid_event");
    ev = baseline_ev(EV2, 2, baseline, baseline, json_array(), "r");
    json_object_del(ev, "previous_baseline_date");
    assert_refused(&s, "BaselineChanged", ev, "invalid_event");

    /* TL_VISIT_TYPES_MAX visits are fine, and kept in target day order */
    json_t *arr = n_visits(TL_VISIT_TYPES_MAX);
    assert_true(tl_visits_event_valid(arr));
    json_t *reversed = json_array();
    for (size_t i = json_array_size(arr); i-- > 0;)
        json_array_append(reversed, json_array_get(arr, i));
    json_decref(arr);
    apply_ok(&empty, "ParticipantEnrolled", enrolled_ev(EV1, 1, baseline, reversed));
    assert_int_equal(empty.nvisits, TL_VISIT_TYPES_MAX);
    assert_sorted(&empty);
    assert_int_equal(empty.visits[0].target_day, 0);
    assert_int_equal(empty.visits[TL_VISIT_TYPES_MAX - 1].target_day, TL_VISIT_TYPES_MAX - 1);
    /* an empty array changes nothing but is valid */
    apply_ok(&empty, "VisitScheduleChanged", amended_ev(EV2, 2, json_array(), "nothing"));
    assert_int_equal(empty.nvisits, TL_VISIT_TYPES_MAX);
    tl_schedule_cleanup(&empty);
    tl_schedule_cleanup(&s);
}

static void test_visits_event_json_round_trip(void **state)
{
    (void)state;
    int32_t baseline = day(2026, 1, 1);
    tl_visit_t v[N_OF(PROTOCOL)];
    for (size_t i = 0; i < N_OF(PROTOCOL); i++)
        tl_visit_plan(&PROTOCOL[i], baseline, &v[i]);
    json_t *arr = tl_visits_event_json(v, N_OF(v));
    assert_true(tl_visits_event_valid(arr));
    json_t *m3 = json_array_get(arr, 2);
    assert_string_equal(json_string_value(json_object_get(m3, "visit_type_id")), VT_M3);
    assert_string_equal(json_string_value(json_object_get(m3, "name")), "Month 3");
    assert_int_equal(json_integer_value(json_object_get(m3, "target_day")), 90);
    assert_true(json_is_true(json_object_get(m3, "required")));
    assert_true(json_is_false(json_object_get(json_array_get(arr, 3), "required")));
    assert_int_equal(json_integer_value(json_object_get(m3, "due_date")), day(2026, 4, 1));
    assert_int_equal(json_integer_value(json_object_get(m3, "window_start")), day(2026, 3, 18));
    assert_int_equal(json_integer_value(json_object_get(m3, "window_end")), day(2026, 4, 22));

    tl_schedule_t s;
    memset(&s, 0, sizeof s);
    apply_ok(&s, "ParticipantEnrolled", enrolled_ev(EV1, 1, baseline, arr));
    for (size_t i = 0; i < N_OF(v); i++) {
        v[i].version = 1;
        v[i].updated_at_us = T_RECORDED;
        memcpy(v[i].last_event_id, EV1, sizeof EV1);
        assert_visit_equal(&s.visits[i], &v[i]);
    }

    /* a copy is deep and equal */
    tl_schedule_t c;
    assert_true(tl_schedule_copy(&c, &s));
    assert_schedule_equal(&c, &s);
    assert_true(c.visits != s.visits);
    tl_schedule_cleanup(&s);
    assert_true(c.exists);
    assert_int_equal(c.nvisits, N_OF(v));
    tl_schedule_cleanup(&c);
    assert_false(c.exists);
    assert_null(c.visits);
    assert_int_equal(c.nvisits, 0);
}

/* ---- replay ---- */

enum { N_REPLAY = 13 };

typedef struct {
    tl_schedule_t s;
    const char *reasons[N_REPLAY], *skipped[N_REPLAY];
} world_t;

static void replay(world_t *w, json_t *const *events, const char *const *types, size_t n)
{
    memset(w, 0, sizeof *w);
    for (size_t i = 0; i < n; i++)
        w->reasons[i] = tl_schedule_apply(&w->s, types[i], events[i], &w->skipped[i]);
}

static void test_replay_is_deterministic(void **state)
{
    (void)state;
    static const char *const types[N_REPLAY] = {
        "ParticipantEnrolled", "VisitCompleted",   "VisitCompleted",       "VisitCompleted",
        "VisitMissed",         "VisitCompleted",   "BaselineChanged",      "VisitScheduleChanged",
        "VisitMissed",         "ObservationNoted", "ParticipantWithdrawn", "VisitCompleted",
        "VisitCompleted",
    };
    const tl_visit_type_t extra[] = {visit_type(VT_W2, "Week 2", 14, 3, 3),
                                     visit_type(VT_M9, "Month 9", 270, 30, 30)};
    int32_t b0 = day(2026, 1, 1), b1 = day(2026, 1, 4);
    json_t *events[N_REPLAY];
    events[0] = enrolled_ev(EV1, 1, b0, planned(PROTOCOL, N_OF(PROTOCOL), b0));
    events[1] = completed_ev(EV2, 2, VT_BASE, b0, NULL, NULL);
    events[2] = completed_ev(EV3, 2, VT_M1, day(2026, 2, 1), NULL, NULL);         /* stale */
    events[3] = completed_ev(EV3, -1, VT_M1, day(2026, 2, 15), "travel", "late"); /* 3 */
    events[4] = missed_ev(EV4, 4, VT_M3, "no show");
    events[5] = completed_ev(EV5, 5, VT_UNKNOWN, day(2026, 5, 1), NULL, NULL); /* skipped */
    events[6] = baseline_ev(EV6, 6, b1, b0, planned(PROTOCOL, N_OF(PROTOCOL), b1), "late");
    events[7] = amended_ev(EV7, 7, planned(extra, N_OF(extra), b1), "protocol v2");
    events[8] = missed_ev(EV8, 8, VT_W2, NULL); /* no reason */
    events[9] = participant_ev(EV8, -1);        /* unknown type: version 8 */
    events[10] = withdrawn_ev(EV9, 9, day(2026, 3, 1), "moved away");
    events[11] = completed_ev(EV1, 10, VT_M6, day(2026, 6, 30), NULL, NULL); /* not active */
    events[12] = completed_ev(EV1, 10, VT_M1, day(2026, 6, 30), NULL, NULL); /* not active */

    world_t *a = test_malloc(sizeof *a), *b = test_malloc(sizeof *b);
    replay(a, events, types, N_REPLAY);
    replay(b, events, types, N_REPLAY);
    assert_schedule_equal(&a->s, &b->s);

    /* the decisions themselves are the expected ones, and the same twice */
    static const char *const want[N_REPLAY] = {
        [2] = "version_conflict",
        [8] = "reason_required",
        [11] = "participant_not_active",
        [12] = "participant_not_active",
    };
    for (size_t i = 0; i < N_REPLAY; i++) {
        if (want[i])
            assert_reason(a->reasons[i], want[i]);
        else
            assert_null(a->reasons[i]);
        assert_str_or_null_equal(b->reasons[i], a->reasons[i]);
        assert_str_or_null_equal(b->skipped[i], a->skipped[i]);
        if (i == 5)
            assert_reason(a->skipped[i], "unknown_visit");
        else
            assert_null(a->skipped[i]);
    }

    tl_schedule_t *s = &a->s;
    assert_int_equal(s->version, 9);
    assert_string_equal(s->last_event_id, EV9);
    assert_string_equal(s->status, "withdrawn");
    assert_date(s->baseline_date, "2026-01-04");
    static const struct {
        const char *id;
        tl_visit_state_t state;
    } final[] = {
        {VT_BASE, TL_VISIT_COMPLETED}, {VT_W2, TL_VISIT_CANCELLED}, {VT_M1, TL_VISIT_COMPLETED},
        {VT_M3, TL_VISIT_MISSED},      {VT_M6, TL_VISIT_CANCELLED}, {VT_M9, TL_VISIT_CANCELLED},
    };
    assert_int_equal(s->nvisits, N_OF(final));
    for (size_t i = 0; i < N_OF(final); i++) {
        assert_string_equal(s->visits[i].visit_type_id, final[i].id);
        assert_int_equal(s->visits[i].state, final[i].state);
    }
    /* baseline completed on the old baseline day: out of the moved window;
     * Month 1 on 15 February: in the moved one (27 Jan to 17 Feb) */
    assert_false(visit(s, VT_BASE)->in_window);
    assert_dates(visit(s, VT_M1), "2026-02-03", "2026-01-27", "2026-02-17");
    assert_true(visit(s, VT_M1)->in_window);
    assert_string_equal(visit(s, VT_M1)->deviation_reason, "travel");
    assert_string_equal(visit(s, VT_M3)->missed_reason, "no show");

    /* a replay of a prefix, copied and continued, ends the same */
    world_t *c = test_malloc(sizeof *c);
    replay(c, events, types, 7);
    tl_schedule_t cont;
    assert_true(tl_schedule_copy(&cont, &c->s));
    tl_schedule_cleanup(&c->s);
    for (size_t i = 7; i < N_REPLAY; i++) {
        const char *skipped;
        const char *why = tl_schedule_apply(&cont, types[i], events[i], &skipped);
        assert_str_or_null_equal(why, a->reasons[i]);
    }
    assert_schedule_equal(&cont, &a->s);
    tl_schedule_cleanup(&cont);

    tl_schedule_cleanup(&a->s);
    tl_schedule_cleanup(&b->s);
    test_free(a);
    test_free(b);
    test_free(c);
    for (size_t i = 0; i < N_REPLAY; i++)
        json_decref(events[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plan_design_example),
        cmocka_unit_test(test_fold_design_example),
        cmocka_unit_test(test_plan_leap_year_baseline),
        cmocka_unit_test(test_plan_window_across_year_end),
        cmocka_unit_test(test_visit_types_check),
        cmocka_unit_test(test_visit_state_names),
        cmocka_unit_test(test_enrol_without_schedule),
        cmocka_unit_test(test_baseline_change_mixed_visits),
        cmocka_unit_test(test_baseline_change_back_rejudges_again),
        cmocka_unit_test(test_amendment_adds_and_updates),
        cmocka_unit_test(test_amendment_on_missed_visit),
        cmocka_unit_test(test_amendment_moves_target_day),
        cmocka_unit_test(test_same_target_day_ordered_by_id),
        cmocka_unit_test(test_withdrawal_cancels_open_visits),
        cmocka_unit_test(test_completion_cancels_open_visits),
        cmocka_unit_test(test_version_rule),
        cmocka_unit_test(test_skipped_visit_events),
        cmocka_unit_test(test_correction),
        cmocka_unit_test(test_reason_required),
        cmocka_unit_test(test_invalid_visits_arrays),
        cmocka_unit_test(test_visits_event_json_round_trip),
        cmocka_unit_test(test_replay_is_deterministic),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
