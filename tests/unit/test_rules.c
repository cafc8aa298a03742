/* Unit tests for the reason table (projections/reasons.c) and the protocol
 * rules (projections/rules.c): every rule's yes and each of its noes, with
 * the reason it answers, on plain structs; no broker, no database. The
 * cases of issue 26's holes are named after them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "reasons.h"
#include "rules.h"
#include "tl_date.h"

#define VT_BASE "0190a1b2-c3d4-7e5f-8a9b-b00000000000"
#define VT_M1 "0190a1b2-c3d4-7e5f-8a9b-b00000000030"
#define VT_M3 "0190a1b2-c3d4-7e5f-8a9b-b00000000090"
#define VT_NEW "0190a1b2-c3d4-7e5f-8a9b-b00000000999"

static int32_t day(const char *s)
{
    int32_t d = 0;
    assert_int_equal(tl_date_parse(s, &d), 0);
    return d;
}

#define assert_reason(v, name)                                                                     \
    do {                                                                                           \
        if ((v).why != TL_R(name))                                                                 \
            fail_msg("reason %s, want %s (%s)", tl_reason_name((v).why), #name, (v).detail);      \
    } while (0)

/* ---- the reason table ---- */

static void test_reason_table_is_one_vocabulary(void **state)
{
    (void)state;
    for (int r = TL_REASON_NONE + 1; r < TL_REASON_COUNT; r++) {
        const tl_reason_info_t *a = tl_reason_info((tl_reason_t)r);
        /* every name is found again, and only at its own row */
        assert_int_equal(tl_reason_parse(a->name), r);
        assert_string_equal(tl_reason_name((tl_reason_t)r), a->name);
        assert_true(a->status >= 400 && a->status <= 599);
        assert_true(a->title[0] >= 'A' && a->title[0] <= 'Z');
        for (const char *c = a->type; *c; c++)
            assert_true((*c >= 'a' && *c <= 'z') || *c == '-');
        for (const char *c = a->name; *c; c++)
            assert_true((*c >= 'a' && *c <= 'z') || *c == '_');
        /* RFC 9457: a type has one status and one title wherever it is used */
        for (int o = r + 1; o < TL_REASON_COUNT; o++) {
            const tl_reason_info_t *b = tl_reason_info((tl_reason_t)o);
            assert_string_not_equal(a->name, b->name);
            if (!strcmp(a->type, b->type)) {
                if (a->status != b->status || strcmp(a->title, b->title))
                    fail_msg("problem type %s: %s and %s answer differently", a->type, a->name,
                             b->name);
            }
        }
    }
}

static void test_reason_parse_unknown(void **state)
{
    (void)state;
    assert_int_equal(tl_reason_parse(NULL), TL_REASON_NONE);
    assert_int_equal(tl_reason_parse(""), TL_REASON_NONE);
    assert_int_equal(tl_reason_parse("no_such_reason"), TL_REASON_NONE);
    /* out of range falls back to the generic refusal */
    assert_string_equal(tl_reason_info(TL_REASON_COUNT)->type, "conflict");
    assert_string_equal(tl_reason_info(TL_REASON_NONE)->type, "conflict");
    /* the folds' words the gateway maps */
    assert_string_equal(tl_reason_info(TL_R(version_conflict))->type, "concurrent-change");
    assert_string_equal(TL_RN(consent_required), "consent_required");
}

/* issue 26, hole 11: one test of whether a reason says anything */
static void test_reason_given(void **state)
{
    (void)state;
    assert_false(tl_reason_given(NULL));
    assert_false(tl_reason_given(""));
    assert_false(tl_reason_given("  \t\r\n"));
    /* NBSP, zero width space, ideographic space, BOM, NEL, thin space */
    assert_false(tl_reason_given("\xc2\xa0\xe2\x80\x8b\xe3\x80\x80\xef\xbb\xbf\xc2\x85\xe2\x80\x89"));
    assert_true(tl_reason_given(" x "));
    assert_true(tl_reason_given("\xc2\xa0\xc3\xa9")); /* an e acute after an NBSP */
    assert_true(tl_reason_given("\xe6\x82\xa3\xe8\x80\x85")); /* CJK text */
}

/* ---- the protocol ---- */

static tl_visit_type_t vt(const char *id, const char *name, int td, int before, int after)
{
    tl_visit_type_t v = {.target_day = td, .window_before = before, .window_after = after};
    snprintf(v.id, sizeof v.id, "%s", id);
    snprintf(v.name, sizeof v.name, "%s", name);
    return v;
}

static void test_protocol_shape(void **state)
{
    (void)state;
    tl_visit_type_t others[2] = {vt(VT_BASE, "Baseline", 0, 0, 0), vt(VT_M1, "Month 1", 30, 7, 14)};
    tl_verdict_t v;
    tl_visit_type_t m3 = vt(VT_M3, "Month 3", 90, 14, 21);
    assert_true(tl_rule_protocol_shape(&m3, others, 2, &v));
    assert_int_equal(v.why, TL_REASON_NONE);
    tl_visit_type_t dup = vt(VT_M3, "MONTH 1", 60, 7, 7);
    assert_false(tl_rule_protocol_shape(&dup, others, 2, &v));
    assert_reason(v, duplicate_visit_type_name);
    tl_visit_type_t base2 = vt(VT_M3, "Screening", 0, 0, 0);
    assert_false(tl_rule_protocol_shape(&base2, others, 2, &v));
    assert_reason(v, second_baseline);
    tl_visit_type_t bad = vt(VT_M3, "Early", 5, 7, 0); /* a window before baseline */
    assert_false(tl_rule_protocol_shape(&bad, others, 2, &v));
    assert_reason(v, invalid_visit_type);
    /* its own row does not clash with itself (an amendment) */
    tl_visit_type_t m1 = vt(VT_M1, "Month 1", 31, 7, 14);
    assert_true(tl_rule_protocol_shape(&m1, others, 2, &v));
    /* at most TL_VISIT_TYPES_MAX */
    static tl_visit_type_t many[TL_VISIT_TYPES_MAX];
    for (int i = 0; i < TL_VISIT_TYPES_MAX; i++) {
        char id[TL_UUID_STRLEN], name[16];
        snprintf(id, sizeof id, "0190a1b2-c3d4-7e5f-8a9b-c000000000%02d", i);
        snprintf(name, sizeof name, "V%d", i);
        many[i] = vt(id, name, i + 1, 0, 0);
    }
    assert_false(tl_rule_protocol_shape(&m3, many, TL_VISIT_TYPES_MAX, &v));
    assert_reason(v, too_many_visit_types);
}

/* issue 26, hole 1: the baseline stays the one day-0 visit type */
static void test_baseline_fixed_and_first(void **state)
{
    (void)state;
    tl_visit_type_t others[2] = {vt(VT_BASE, "Baseline", 0, 0, 0), vt(VT_M1, "Month 1", 30, 7, 14)};
    tl_verdict_t v;
    /* moving the baseline off day 0 */
    tl_visit_type_t was = others[0], moved = vt(VT_BASE, "Baseline", 5, 0, 0);
    tl_protocol_change_t c = {.current = &was, .others = others, .nothers = 2};
    assert_false(tl_rule_visit_type(&moved, &c, &v));
    assert_reason(v, baseline_fixed);
    /* making a follow-up day 0, even in a study without a baseline */
    tl_visit_type_t m1 = others[1], m1_zero = vt(VT_M1, "Month 1", 0, 0, 0);
    c.current = &m1;
    c.others = &others[1];
    c.nothers = 1;
    assert_false(tl_rule_visit_type(&m1_zero, &c, &v));
    assert_reason(v, baseline_fixed);
    /* a follow-up before any baseline */
    tl_visit_type_t first = vt(VT_NEW, "Month 2", 60, 7, 7);
    tl_protocol_change_t none = {0};
    assert_false(tl_rule_visit_type(&first, &none, &v));
    assert_reason(v, no_baseline);
    /* the baseline first, then the follow-up */
    tl_visit_type_t base = vt(VT_BASE, "Baseline", 0, 0, 0);
    assert_true(tl_rule_visit_type(&base, &none, &v));
    tl_protocol_change_t after = {.others = &base, .nothers = 1};
    assert_true(tl_rule_visit_type(&first, &after, &v));
    /* an amendment of the baseline's other fields is fine */
    tl_visit_type_t renamed = vt(VT_BASE, "Day 0", 0, 0, 0);
    tl_protocol_change_t am = {.current = &base, .others = &base, .nothers = 1, .has_reason = true};
    assert_true(tl_rule_visit_type(&renamed, &am, &v));
}

/* issue 26, holes 6 and 11: listed templates exist; a change that
 * reschedules participants says why */
static void test_visit_type_templates_and_reason(void **state)
{
    (void)state;
    tl_visit_type_t base = vt(VT_BASE, "Baseline", 0, 0, 0);
    tl_visit_type_t m1 = vt(VT_M1, "Month 1", 30, 7, 14);
    const char *known[] = {"visual_acuity", "oct"};
    const char *listed[] = {"visual_acuity", "vitals"};
    tl_protocol_change_t c = {.others = &base,
                              .nothers = 1,
                              .forms = listed,
                              .nforms = 2,
                              .known = known,
                              .nknown = 2};
    tl_verdict_t v;
    assert_false(tl_rule_visit_type(&m1, &c, &v));
    assert_reason(v, unknown_form_template);
    assert_non_null(strstr(v.detail, "vitals"));
    c.nforms = 1;
    assert_true(tl_rule_visit_type(&m1, &c, &v));
    c.enrolled = 3;
    assert_false(tl_rule_visit_type(&m1, &c, &v));
    assert_reason(v, reason_required);
    assert_non_null(strstr(v.detail, "3 enrolled participants"));
    c.has_reason = true;
    assert_true(tl_rule_visit_type(&m1, &c, &v));
    /* a template listed before the rule existed does not block an
     * amendment that leaves it alone; a newly listed one still must exist */
    const char *before[] = {"vitals"};
    tl_visit_type_t was = m1;
    c.current = &was;
    c.nforms = 2;
    c.listed_before = before;
    c.nlisted_before = 1;
    assert_true(tl_rule_visit_type(&m1, &c, &v));
    const char *listed2[] = {"vitals", "ecg"};
    c.forms = listed2;
    assert_false(tl_rule_visit_type(&m1, &c, &v));
    assert_reason(v, unknown_form_template);
    assert_non_null(strstr(v.detail, "ecg"));
}

/* ---- a participant ---- */

typedef struct {
    tl_schedule_t s;
    tl_visit_t visits[3];
    tl_participant_facts_t f;
} fixture_t;

/* Consent and baseline 2026-01-01; Baseline (0, 0/0), Month 1 (30, -7/+14),
 * Month 3 (90, -14/+21); today 2026-06-01. */
static void fixture(fixture_t *x)
{
    memset(x, 0, sizeof *x);
    tl_visit_type_t vts[3] = {vt(VT_BASE, "Baseline", 0, 0, 0), vt(VT_M1, "Month 1", 30, 7, 14),
                              vt(VT_M3, "Month 3", 90, 14, 21)};
    int32_t b = day("2026-01-01");
    for (int i = 0; i < 3; i++) {
        tl_visit_plan(&vts[i], b, &x->visits[i]);
        x->visits[i].required = true;
    }
    x->s.exists = true;
    snprintf(x->s.status, sizeof x->s.status, "enrolled");
    x->s.baseline_date = b;
    x->s.visits = x->visits;
    x->s.nvisits = 3;
    x->f = (tl_participant_facts_t){
        .s = &x->s, .locked = false, .today = day("2026-06-01")};
    x->s.has_consent = true;
    x->s.consent_date = b;
}

static void complete(tl_visit_t *v, const char *date)
{
    v->state = TL_VISIT_COMPLETED;
    v->actual_date = day(date);
    v->in_window = tl_visit_in_window(v, v->actual_date);
}

static void test_complete(void **state)
{
    (void)state;
    fixture_t x;
    fixture(&x);
    tl_verdict_t v;
    /* baseline first; a verdict is whole whatever it held before */
    memset(&v, 0xA5, sizeof v);
    assert_false(tl_rule_visit_complete(&x.f, &x.visits[1], day("2026-01-31"), false, &v));
    assert_reason(v, baseline_not_completed);
    assert_int_equal(v.nitems, 0);
    assert_null(v.field);
    assert_true(tl_rule_visit_complete(&x.f, &x.visits[0], day("2026-01-01"), false, &v));
    complete(&x.visits[0], "2026-01-01");
    assert_false(tl_rule_visit_complete(&x.f, &x.visits[0], day("2026-01-01"), false, &v));
    assert_reason(v, visit_already_completed);
    /* in window, out of window with and without a reason */
    assert_true(tl_rule_visit_complete(&x.f, &x.visits[1], day("2026-02-14"), false, &v));
    assert_false(tl_rule_visit_complete(&x.f, &x.visits[1], day("2026-02-15"), false, &v));
    assert_reason(v, deviation_reason_required);
    assert_non_null(strstr(v.detail, "2026-01-24 to 2026-02-14"));
    assert_true(tl_rule_visit_complete(&x.f, &x.visits[1], day("2026-02-15"), true, &v));
    /* the future: today plus a day of slack */
    assert_true(tl_rule_visit_complete(&x.f, &x.visits[2], day("2026-06-02"), true, &v));
    assert_false(tl_rule_visit_complete(&x.f, &x.visits[2], day("2026-06-03"), true, &v));
    assert_reason(v, date_in_future);
}

/* issue 26, hole 3: no date before consent, none before the baseline visit */
static void test_dates_have_a_lower_bound(void **state)
{
    (void)state;
    fixture_t x;
    fixture(&x);
    tl_verdict_t v;
    x.s.consent_date = day("2025-12-20");
    assert_false(tl_rule_visit_complete(&x.f, &x.visits[0], day("2020-01-01"), true, &v));
    assert_reason(v, date_before_consent);
    assert_non_null(strstr(v.detail, "2025-12-20"));
    complete(&x.visits[0], "2026-01-02");
    /* a follow-up dated before the baseline visit took place */
    assert_false(tl_rule_visit_complete(&x.f, &x.visits[1], day("2026-01-01"), true, &v));
    assert_reason(v, date_out_of_order);
    /* corrections: before consent, and a baseline after a follow-up */
    assert_false(tl_rule_visit_correct(&x.f, &x.visits[0], day("2025-12-01"), true, &v));
    assert_reason(v, date_before_consent);
    complete(&x.visits[1], "2026-01-31");
    assert_false(tl_rule_visit_correct(&x.f, &x.visits[0], day("2026-02-01"), true, &v));
    assert_reason(v, date_out_of_order);
    assert_non_null(strstr(v.detail, "Month 1"));
    assert_true(tl_rule_visit_correct(&x.f, &x.visits[0], day("2026-01-01"), false, &v));
    /* withdrawal: before consent, before a completed visit, in the future */
    assert_false(tl_rule_withdraw(&x.f, day("2025-12-01"), &v));
    assert_reason(v, date_before_consent);
    assert_false(tl_rule_withdraw(&x.f, day("2026-01-15"), &v));
    assert_reason(v, date_out_of_order);
    assert_false(tl_rule_withdraw(&x.f, day("2026-07-01"), &v));
    assert_reason(v, date_in_future);
    assert_true(tl_rule_withdraw(&x.f, day("2026-01-31"), &v));
    /* the baseline date itself */
    uint8_t moved[sizeof(tl_visit_t) * 3];
    assert_false(tl_rule_baseline_change(&x.f, day("2025-12-01"), NULL, NULL,
                                         (tl_visit_t *)moved, &v));
    assert_reason(v, date_before_consent);
}

/* issue 26, hole 2: a missed visit is reopened; a missed baseline says how on */
static void test_missed_visits_reopen(void **state)
{
    (void)state;
    fixture_t x;
    fixture(&x);
    tl_verdict_t v;
    assert_true(tl_rule_visit_miss(&x.f, &x.visits[0], &v));
    x.visits[0].state = TL_VISIT_MISSED;
    assert_false(tl_rule_visit_miss(&x.f, &x.visits[0], &v));
    assert_reason(v, visit_not_scheduled);
    assert_false(tl_rule_visit_complete(&x.f, &x.visits[1], day("2026-01-31"), false, &v));
    assert_reason(v, baseline_not_completed);
    assert_non_null(strstr(v.detail, "reopen"));
    assert_false(tl_rule_visit_complete(&x.f, &x.visits[0], day("2026-01-01"), false, &v));
    assert_reason(v, visit_not_scheduled);
    assert_non_null(strstr(v.detail, "reopen"));
    assert_true(tl_rule_visit_reopen(&x.f, &x.visits[0], &v));
    assert_false(tl_rule_visit_reopen(&x.f, &x.visits[1], &v));
    assert_reason(v, visit_not_missed);
    x.visits[0].state = TL_VISIT_SCHEDULED;
    assert_true(tl_rule_visit_complete(&x.f, &x.visits[0], day("2026-01-01"), false, &v));
    complete(&x.visits[0], "2026-01-01");
    x.visits[1].state = TL_VISIT_CANCELLED;
    assert_false(tl_rule_visit_miss(&x.f, &x.visits[1], &v));
    assert_reason(v, visit_not_scheduled);
    assert_false(tl_rule_visit_miss(&x.f, &x.visits[0], &v));
    assert_reason(v, visit_already_completed);
}

/* issue 26, hole 9: what each status allows */
static void test_status_and_lock(void **state)
{
    (void)state;
    fixture_t x;
    fixture(&x);
    tl_verdict_t v;
    complete(&x.visits[0], "2026-01-01");
    snprintf(x.s.status, sizeof x.s.status, "withdrawn");
    for (int k = 0; k < TL_ACT_COUNT; k++) {
        bool open = tl_rule_participant_open(&x.f, (tl_act_t)k, &v);
        assert_int_equal(open, k == TL_ACT_VISIT_CORRECT || k == TL_ACT_FORM);
        if (!open)
            assert_reason(v, participant_not_active);
    }
    assert_true(tl_rule_visit_correct(&x.f, &x.visits[0], day("2026-01-01"), false, &v));
    assert_false(tl_rule_visit_complete(&x.f, &x.visits[1], day("2026-01-31"), false, &v));
    assert_reason(v, participant_not_active);
    assert_false(tl_rule_visit_correct(&x.f, &x.visits[1], day("2026-01-31"), false, &v));
    assert_reason(v, visit_not_completed);
    /* a correction stays before the withdrawal */
    x.s.end_date = day("2026-01-10");
    assert_true(tl_rule_visit_correct(&x.f, &x.visits[0], day("2026-01-01"), false, &v));
    assert_false(tl_rule_visit_correct(&x.f, &x.visits[0], day("2026-01-11"), true, &v));
    assert_reason(v, date_out_of_order);
    assert_non_null(strstr(v.detail, "withdrawn"));
    x.s.end_date = 0;
    /* the lock holds everything, whatever the status */
    x.f.locked = true;
    for (int k = 0; k < TL_ACT_COUNT; k++) {
        assert_false(tl_rule_participant_open(&x.f, (tl_act_t)k, &v));
        assert_reason(v, study_locked);
    }
    snprintf(x.s.status, sizeof x.s.status, "enrolled");
    assert_false(tl_rule_visit_correct(&x.f, &x.visits[0], day("2026-01-01"), false, &v));
    assert_reason(v, study_locked);
}

static bool reason_for_base(const void *ctx, const tl_visit_t *v)
{
    (void)ctx;
    return !strcmp(v->visit_type_id, VT_BASE);
}

static bool reason_for_all(const void *ctx, const tl_visit_t *v)
{
    (void)ctx;
    return v->state == TL_VISIT_COMPLETED;
}

static bool reason_for_m1(const void *ctx, const tl_visit_t *v)
{
    (void)ctx;
    return !strcmp(v->visit_type_id, VT_M1);
}

/* issue 26, hole 4: a baseline change does not make silent deviations */
static void test_baseline_change_needs_deviation_reasons(void **state)
{
    (void)state;
    fixture_t x;
    fixture(&x);
    tl_verdict_t v;
    tl_visit_t moved[3];
    complete(&x.visits[0], "2026-01-01");
    complete(&x.visits[1], "2026-01-31");
    assert_false(tl_rule_baseline_change(&x.f, x.s.baseline_date, NULL, NULL, moved, &v));
    assert_reason(v, baseline_unchanged);
    /* a week later: Month 1's window is 2026-01-31 .. 2026-02-21, still in;
     * the baseline visit (window 0/0) is not on the new baseline any more */
    assert_false(tl_rule_baseline_change(&x.f, day("2026-01-08"), NULL, NULL, moved, &v));
    assert_reason(v, deviations_need_reasons);
    assert_non_null(strstr(v.detail, "Baseline"));
    assert_null(strstr(v.detail, "Month 1"));
    assert_true(tl_rule_baseline_change(&x.f, day("2026-01-08"), reason_for_base, NULL, moved, &v));
    assert_int_equal(moved[1].due, day("2026-02-07"));
    assert_int_equal(moved[2].window_start, day("2026-03-25"));
    /* the baseline visit itself moves too: day 0 of the new baseline */
    assert_int_equal(moved[0].due, day("2026-01-08"));
    /* a month later: Baseline (2026-01-01) and Month 1 (2026-01-31) fall out */
    assert_false(tl_rule_baseline_change(&x.f, day("2026-02-01"), NULL, NULL, moved, &v));
    assert_reason(v, deviations_need_reasons);
    assert_non_null(strstr(v.detail, "Baseline"));
    assert_non_null(strstr(v.detail, "Month 1"));
    assert_int_equal(v.nitems, 2);
    assert_string_equal(v.field, "deviation_reasons");
    assert_false(tl_rule_baseline_change(&x.f, day("2026-02-01"), reason_for_m1, NULL, moved, &v));
    assert_reason(v, deviations_need_reasons);
    assert_null(strstr(v.detail, "Month 1"));
    /* a visit already out of window is no new deviation: no reason for it */
    x.visits[0].in_window = false;
    assert_true(tl_rule_baseline_change(&x.f, day("2026-02-01"), reason_for_m1, NULL, moved, &v));
    assert_false(tl_rule_baseline_change(&x.f, day("2026-02-01"), reason_for_all, NULL, moved, &v));
    assert_reason(v, deviation_reason_unneeded);
    assert_non_null(strstr(v.detail, "Baseline"));
    x.visits[0].in_window = true;
    /* nor for a visit that stays in its window */
    assert_false(tl_rule_baseline_change(&x.f, day("2026-01-08"), reason_for_all, NULL, moved, &v));
    assert_reason(v, deviation_reason_unneeded);
    assert_non_null(strstr(v.detail, "Month 1"));
    /* not after the participant left */
    snprintf(x.s.status, sizeof x.s.status, "completed");
    assert_false(tl_rule_baseline_change(&x.f, day("2026-01-08"), reason_for_base, NULL, moved,
                                         &v));
    assert_reason(v, participant_not_active);
}

static void test_finish(void **state)
{
    (void)state;
    fixture_t x;
    fixture(&x);
    tl_verdict_t v;
    complete(&x.visits[0], "2026-01-01");
    x.visits[2].required = false;
    assert_false(tl_rule_finish(&x.f, day("2026-05-01"), &v));
    assert_reason(v, required_visits_open);
    assert_non_null(strstr(v.detail, "Month 1"));
    assert_null(strstr(v.detail, "Month 3"));
    /* each open visit is an item the answer lists as a field error */
    assert_int_equal(v.nitems, 1);
    assert_string_equal(v.field, "visits");
    assert_string_equal(v.items[0], "Month 1");
    x.visits[1].state = TL_VISIT_MISSED;
    assert_true(tl_rule_finish(&x.f, day("2026-05-01"), &v));
    assert_false(tl_rule_finish(&x.f, day("2025-12-31"), &v));
    assert_reason(v, date_before_consent);
}

/* a detail cut short never ends in half a character */
static void test_detail_cut_on_a_character(void **state)
{
    (void)state;
    fixture_t x;
    fixture(&x);
    tl_verdict_t v;
    /* three required visits with long names of 3-byte characters */
    for (int i = 0; i < 3; i++) {
        char *n = x.visits[i].name;
        size_t len = 0;
        for (int k = 0; k < 60 + i; k++, len += 3)
            memcpy(n + len, "\xe6\x82\xa3", 3);
        n[len] = '\0';
    }
    x.visits[0].state = TL_VISIT_SCHEDULED;
    assert_false(tl_rule_finish(&x.f, day("2026-05-01"), &v));
    assert_reason(v, required_visits_open);
    size_t len = strlen(v.detail);
    assert_true(len < sizeof v.detail);
    /* whole characters only: the text ends with a complete sequence */
    size_t i = len;
    while (i && ((unsigned char)v.detail[i - 1] & 0xC0) == 0x80)
        i--;
    assert_true(i > 0);
    unsigned char lead = (unsigned char)v.detail[i - 1];
    size_t want = lead < 0x80 ? 1 : lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : 2;
    assert_int_equal(len - (i - 1), want);
    assert_int_equal(v.nitems, 3);
}

static void test_enrol(void **state)
{
    (void)state;
    tl_verdict_t v;
    int32_t today = day("2026-06-01"), c = day("2026-05-01");
    assert_true(tl_rule_enrol(false, true, true, c, c, today, &v));
    assert_true(tl_rule_enrol(false, true, true, c, day("2026-07-01"), today, &v)); /* a planned baseline */
    assert_false(tl_rule_enrol(true, true, true, c, c, today, &v));
    assert_reason(v, study_locked);
    assert_false(tl_rule_enrol(false, true, false, 0, c, today, &v));
    assert_reason(v, consent_required);
    assert_false(tl_rule_enrol(false, true, true, day("2026-06-03"), day("2026-06-03"), today, &v));
    assert_reason(v, date_in_future);
    assert_false(tl_rule_enrol(false, true, true, c, day("2026-04-30"), today, &v));
    assert_reason(v, date_before_consent);
    assert_false(tl_rule_enrol(false, false, true, c, c, today, &v));
    assert_reason(v, unknown_site);
    /* consent on day 0 of the calendar is consent too */
    assert_true(tl_rule_enrol(false, true, true, 0, 0, today, &v));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reason_table_is_one_vocabulary),
        cmocka_unit_test(test_reason_parse_unknown),
        cmocka_unit_test(test_protocol_shape),
        cmocka_unit_test(test_baseline_fixed_and_first),
        cmocka_unit_test(test_visit_type_templates_and_reason),
        cmocka_unit_test(test_complete),
        cmocka_unit_test(test_dates_have_a_lower_bound),
        cmocka_unit_test(test_missed_visits_reopen),
        cmocka_unit_test(test_status_and_lock),
        cmocka_unit_test(test_baseline_change_needs_deviation_reasons),
        cmocka_unit_test(test_finish),
        cmocka_unit_test(test_enrol),
        cmocka_unit_test(test_reason_given),
        cmocka_unit_test(test_detail_cut_on_a_character),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
