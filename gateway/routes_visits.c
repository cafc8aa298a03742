/* The protocol (visit types, lock), participants' schedules and visits:
 * commands and queries of DESIGN.md §5. The gateway plans every date here,
 * from the visit types it reads, and the events carry them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "gateway.h"
#include "participants.h"
#include "participants_store.h"
#include "rules.h"
#include "schedules.h"
#include "schedules_store.h"
#include "tl_date.h"
#include "tl_json.h"
#include "tl_log.h"
#include "tl_topics.h"

#define VISITS_LIMIT_DEFAULT 200
#define VISITS_LIMIT_MAX 1000
#define FANOUT_ROUNDS 3 /* an amendment retries participants a concurrent command changed */

/* ---- shared pieces ---- */

static bool vt_from_json(const json_t *o, tl_visit_type_t *vt)
{
    memset(vt, 0, sizeof *vt);
    /* "id" in rows; "visit_type_id" in a command body */
    const char *id = json_string_value(json_object_get(o, "id"));
    if (!id)
        id = json_string_value(json_object_get(o, "visit_type_id"));
    const char *name = json_string_value(json_object_get(o, "name"));
    if (!id || !name || strlen(id) >= sizeof vt->id || strlen(name) >= sizeof vt->name)
        return false;
    memcpy(vt->id, id, strlen(id) + 1);
    memcpy(vt->name, name, strlen(name) + 1);
    vt->target_day = (int32_t)json_integer_value(json_object_get(o, "target_day"));
    vt->window_before = (int32_t)json_integer_value(json_object_get(o, "window_before_days"));
    vt->window_after = (int32_t)json_integer_value(json_object_get(o, "window_after_days"));
    vt->required = json_is_true(json_object_get(o, "required"));
    return true;
}

bool tl_gw_visit_types_parse(const char *visit_types_json, tl_visit_type_t *out, size_t *n)
{
    *n = 0;
    if (!visit_types_json)
        return true;
    json_t *vts = json_loads(visit_types_json, 0, NULL);
    for (size_t i = 0; i < json_array_size(vts) && *n < TL_VISIT_TYPES_MAX; i++)
        if (vt_from_json(json_array_get(vts, i), &out[*n]))
            (*n)++;
    json_decref(vts);
    return vts != NULL;
}

json_t *tl_gw_plan_visits(const tl_visit_type_t *vts, size_t n, int32_t baseline)
{
    json_t *out = json_array();
    for (size_t i = 0; out && i < n; i++) {
        tl_visit_t v; /* one at a time: a visit is half a kilobyte */
        tl_visit_plan(&vts[i], baseline, &v);
        json_t *one = tl_visits_event_json(&v, 1);
        if (json_array_extend(out, one)) {
            json_decref(out);
            out = NULL;
        }
        json_decref(one);
    }
    return out;
}

/* as_of: the query parameter or today (UTC). false: not a date. */
static bool body_date(const json_t *body, const char *key, int32_t def, int32_t *out)
{
    const char *s = tl_json_str(body, key);
    *out = def;
    return !s || !tl_date_parse(s, out);
}

/* The status a visit shows as of a date (DESIGN.md §5), over
 * participant_visits v. */
#define VISIT_STATUS(asof)                                                                         \
    "CASE v.state WHEN 'completed' THEN CASE WHEN v.in_window THEN 'completed'"                    \
    " ELSE 'completed_out_of_window' END"                                                          \
    " WHEN 'scheduled' THEN CASE WHEN " asof " < v.window_start THEN 'upcoming'"                   \
    " WHEN " asof " <= v.window_end THEN 'open' ELSE 'overdue' END ELSE v.state END"
#define VISIT_JSON(asof)                                                                           \
    "json_build_object('visit_type_id', v.visit_type_id, 'name', v.name,"                          \
    " 'target_day', v.target_day, 'required', v.required, 'due_date', v.due_date,"                 \
    " 'window_start', v.window_start, 'window_end', v.window_end,"                                 \
    " 'status', " VISIT_STATUS(                                                                    \
        asof) ", 'actual_date', v.actual_date,"                                                    \
              " 'in_window', v.in_window, 'protocol_deviation', v.state = 'completed' AND NOT "    \
              "v.in_window,"                                                                       \
              " 'deviation_reason', v.deviation_reason, 'missed_reason', v.missed_reason,"         \
              " 'notes', v.notes, 'version', v.version, 'updated_at', v.updated_at)"

/* ---- visit types ---- */

#define SQL_VISIT_TYPE_JSON                                                                        \
    "SELECT json_build_object('id', t.id, 'study_id', t.study_id, 'name', t.name,"                 \
    " 'target_day', t.target_day, 'window_before_days', t.window_before_days,"                     \
    " 'window_after_days', t.window_after_days, 'required', t.required,"                           \
    " 'form_templates', t.form_templates, 'revision', t.revision, 'defined_at', t.defined_at,"     \
    " 'updated_at', t.updated_at)::text FROM visit_types t WHERE t.id = $1"

static const tl_json_field_t vt_fields[] = {
    {"name", TL_JF_STRING, true, 1, TL_VISIT_NAME_MAX, NULL},
    {"target_day", TL_JF_INTEGER, true, 0, TL_TARGET_DAY_MAX, NULL},
    {"window_before_days", TL_JF_INTEGER, true, 0, TL_WINDOW_DAYS_MAX, NULL},
    {"window_after_days", TL_JF_INTEGER, true, 0, TL_WINDOW_DAYS_MAX, NULL},
    {"required", TL_JF_BOOL, false, 0, 0, NULL},
    {"form_templates", TL_JF_NAMES, false, 0, TL_FORMS_PER_VISIT_MAX, NULL},
    {"reason", TL_JF_STRING, false, 1, TL_REASON_MAX, NULL},
};
#define NVT_FIELDS (sizeof vt_fields / sizeof vt_fields[0])

/* The names of a JSON array of strings (borrowed from it), at most max. */
static size_t names_of(const json_t *arr, const char **out, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < json_array_size(arr) && n < max; i++)
        if (json_is_string(json_array_get(arr, i)))
            out[n++] = json_string_value(json_array_get(arr, i));
    return n;
}

#define KNOWN_TEMPLATES_MAX 1024 /* template names a protocol check looks at */

/* Whether vt (listing forms, a JSON array) may be defined (cur NULL) or
 * become what it is (cur: as it was) among the study's visit types (JSON
 * text of TL_SQL_VISIT_TYPES_JSON), given the study's template names (JSON
 * text of an array) and enrolled participants: tl_rule_visit_type. false
 * with resp set. */
static bool protocol_fits(const tl_visit_type_t *vt, const tl_visit_type_t *cur,
                          const json_t *forms, const json_t *forms_before, const char *others_json,
                          const char *known_json, long enrolled, bool has_reason, tl_resp_t *resp)
{
    static __thread tl_visit_type_t others[TL_VISIT_TYPES_MAX];
    static __thread const char *known[KNOWN_TEMPLATES_MAX];
    const char *listed[TL_FORMS_PER_VISIT_MAX], *before[TL_FORMS_PER_VISIT_MAX];
    size_t nothers = 0;
    json_t *kn = known_json ? json_loads(known_json, 0, NULL) : NULL;
    tl_gw_visit_types_parse(others_json, others, &nothers);
    tl_protocol_change_t c = {.current = cur,
                              .others = others,
                              .nothers = nothers,
                              .forms = listed,
                              .nforms = names_of(forms, listed, TL_FORMS_PER_VISIT_MAX),
                              .known = known,
                              .nknown = names_of(kn, known, KNOWN_TEMPLATES_MAX),
                              .listed_before = before,
                              .nlisted_before =
                                  names_of(forms_before, before, TL_FORMS_PER_VISIT_MAX),
                              .enrolled = enrolled,
                              .has_reason = has_reason};
    tl_verdict_t v;
    bool ok = tl_rule_visit_type(vt, &c, &v);
    if (!ok)
        tl_problem_r(resp, v.why, v.detail, NULL);
    json_decref(kn);
    return ok;
}

/* Brings every enrolled participant's visit of vt in line with it: a
 * VisitScheduleChanged per participant whose visit is missing or has other
 * dates (completed visits stay). Runs again for participants a concurrent
 * command changed first; counts what it changed and what is left. */
static const char *const sql_fanout =
    "SELECT p.id, p.site_id, p.baseline_date - date '1970-01-01', p.version, v.state,"
    "       v.due_date - date '1970-01-01', v.window_start - date '1970-01-01',"
    "       v.window_end - date '1970-01-01', v.name, v.target_day, v.required"
    "  FROM schedule_participants p"
    "  LEFT JOIN participant_visits v ON v.participant_id = p.id AND v.visit_type_id = $2"
    " WHERE p.study_id = $1 AND p.status = 'enrolled' ORDER BY p.id";

static bool visit_differs(const tl_pg_res_t *res, int r, const tl_visit_t *want)
{
    const char *state = tl_pg_get(res, r, 4);
    if (!state)
        return true;
    if (!strcmp(state, "completed"))
        return false;
    return tl_pg_get_int(res, r, 5) != want->due ||
           tl_pg_get_int(res, r, 6) != want->window_start ||
           tl_pg_get_int(res, r, 7) != want->window_end ||
           strcmp(tl_pg_get(res, r, 8), want->name) ||
           tl_pg_get_int(res, r, 9) != want->target_day ||
           !strcmp(tl_pg_get(res, r, 10), "t") != want->required;
}

static tl_err_t reschedule_one(tl_gw_t *gw, tl_req_t *req, const char *study_id,
                               const tl_pg_res_t *res, int r, const tl_visit_t *want,
                               const char *reason, const char *causation, tl_kafka_pos_t *pos)
{
    const char *pid = tl_pg_get(res, r, 0);
    json_t *visits = tl_visits_event_json(want, 1);
    json_t *payload =
        json_pack("{s:s, s:s, s:o}", "participant_id", pid, "study_id", study_id, "visits", visits);
    tl_event_meta_t meta = {.actor_id = req->actor_id,
                            .actor_role = req->actor_role,
                            .site_id = tl_pg_get(res, r, 1),
                            .reason = reason,
                            .correlation_id = causation,
                            .causation_id = causation,
                            .stream_version = tl_pg_get_int(res, r, 3) + 1};
    tl_err_t err = payload ? tl_uuid_v7(&meta.event_id) : TL_ERR_NOMEM;
    pthread_mutex_t *lock = tl_gw_stripe(gw, pid);
    pthread_mutex_lock(lock);
    if (!err)
        err = tl_producer_send(gw->producer, "VisitScheduleChanged", pid, payload, &meta, pos);
    pthread_mutex_unlock(lock);
    json_decref(payload);
    return err;
}

#define FANOUT_PARTITIONS 256 /* partitions of the participant topic it tracks */

/* Waits until the schedules projection has every event of the round: past
 * the last offset produced on each partition. */
static tl_err_t await_round(tl_gw_t *gw, const char *topic, const int64_t *last)
{
    tl_err_t err = TL_OK;
    for (int32_t p = 0; !err && p < FANOUT_PARTITIONS; p++)
        if (last[p] >= 0)
            err = tl_waiter_wait(gw->waiter, TL_PROJECTION_SCHEDULES, topic, p, last[p],
                                 (int)gw->cfg.ryw_timeout_ms);
    return err;
}

static tl_err_t reschedule(tl_gw_t *gw, tl_req_t *req, const char *study_id,
                           const tl_visit_type_t *vt, const char *reason, const char *causation,
                           long *changed, long *pending)
{
    const tl_event_type_t *t = tl_registry_type(gw->registry, "VisitScheduleChanged");
    const char *params[] = {study_id, vt->id};
    tl_err_t err = t ? TL_OK : TL_ERR_INTERNAL;
    int64_t last[FANOUT_PARTITIONS];
    *changed = *pending = 0;
    /* each round produces for the participants whose visit differs; the
     * last one only counts those still left */
    for (int round = 0; !err && round <= FANOUT_ROUNDS; round++) {
        tl_pg_res_t *res = NULL;
        long differ = 0;
        for (int p = 0; p < FANOUT_PARTITIONS; p++)
            last[p] = -1;
        err = tl_gw_exec(gw, sql_fanout, 2, params, &res);
        for (int r = 0; !err && r < tl_pg_nrows(res); r++) {
            tl_visit_t want;
            tl_kafka_pos_t pos = {0};
            tl_visit_plan(vt, (int32_t)tl_pg_get_int(res, r, 2), &want);
            if (!visit_differs(res, r, &want))
                continue;
            differ++;
            if (round == FANOUT_ROUNDS)
                continue;
            err = reschedule_one(gw, req, study_id, res, r, &want, reason, causation, &pos);
            if (!err && (pos.partition < 0 || pos.partition >= FANOUT_PARTITIONS))
                err = TL_ERR_INTERNAL;
            if (!err && pos.offset > last[pos.partition])
                last[pos.partition] = pos.offset;
        }
        tl_pg_res_free(res);
        if (round == 0)
            *changed = differ;
        *pending = differ;
        if (!differ || round == FANOUT_ROUNDS)
            break;
        /* read-your-writes for the whole round before looking again (a
         * concurrent command may have taken a participant's version first) */
        if (!err)
            err = await_round(gw, t->topic, last);
    }
    return err;
}

/* Rescheduling after a protocol event: the answer says what it did. */
static void fan_out(tl_gw_t *gw, tl_req_t *req, const char *study_id, const char *reason,
                    const char *causation, tl_resp_t *resp)
{
    tl_visit_type_t vt;
    long changed = 0, pending = 0;
    if (resp->status >= 300 || !vt_from_json(resp->body, &vt))
        return;
    tl_err_t err = reschedule(gw, req, study_id, &vt, reason, causation, &changed, &pending);
    if (err) {
        tl_log_warn("reschedule_incomplete",
                    json_pack("{s:s, s:s, s:s}", "study_id", study_id, "visit_type_id", vt.id,
                              "error", tl_err_name(err)));
        pending = pending ? pending : 1;
    }
    json_object_set_new(resp->body, "participants_rescheduled", json_integer(changed));
    /* left for a later amendment (or the same one, sent again) to finish */
    json_object_set_new(resp->body, "participants_pending", json_integer(err ? -1 : pending));
}

/* The study's template names and enrolled participants, for
 * protocol_fits; study as a parameter reference. */
#define SQL_PROTOCOL_FACTS(study)                                                                  \
    " (SELECT json_agg(DISTINCT ft.name)::text FROM form_templates ft WHERE ft.study_id = " study  \
    "),"                                                                                           \
    " (SELECT count(*) FROM schedule_participants sp WHERE sp.study_id = " study                   \
    "   AND sp.status = 'enrolled')"

/* $1 visit type id, $2 study. Names are compared by protocol_fits, as the
 * fold compares them, so the duplicate column stays NULL. */
static const char *const sql_vt_check =
    "SELECT (" SQL_VISIT_TYPE_JSON "), NULL::text,"
    " EXISTS (SELECT 1 FROM studies WHERE id = $2),"
    " EXISTS (SELECT 1 FROM studies WHERE id = $2 AND locked),"
    " (" TL_SQL_VISIT_TYPES_JSON("$2") ")," SQL_PROTOCOL_FACTS("$2");

typedef struct {
    tl_visit_type_t vt;
    const json_t *body;
    bool has_reason;
} vt_ctx_t;

/* A text member with something in it besides blanks. */
static bool has_text(const json_t *o, const char *key)
{
    return tl_reason_given(tl_json_str(o, key));
}

static bool vt_create_rules(const void *ctx_in, const tl_pg_res_t *check, tl_resp_t *resp)
{
    const vt_ctx_t *ctx = ctx_in;
    const char *exists = tl_pg_get(check, 0, 2), *locked = tl_pg_get(check, 0, 3);
    if (!exists || strcmp(exists, "t")) {
        tl_problem_r(resp, TL_R(not_found), "study not found", NULL);
        return false;
    }
    if (locked && !strcmp(locked, "t")) {
        tl_problem_locked(resp);
        return false;
    }
    return protocol_fits(&ctx->vt, NULL, json_object_get(ctx->body, "form_templates"), NULL,
                         tl_pg_get(check, 0, 4), tl_pg_get(check, 0, 5), tl_pg_get_int(check, 0, 6),
                         ctx->has_reason, resp);
}

static bool study_param(tl_req_t *req, tl_uuid_t *study, tl_resp_t *resp)
{
    if (tl_uuid_parse(req->params[0], study)) {
        tl_problem_r(resp, TL_R(not_found), "study not found", NULL);
        return false;
    }
    return true;
}

void tl_h_visit_type_create(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp)
{
    tl_cmd_t cmd = {.type = "VisitTypeDefined", .projection = TL_PROJECTION_PARTICIPANTS};
    json_t *body = tl_gw_body(req, resp, vt_fields, NVT_FIELDS);
    tl_uuid_t study;
    vt_ctx_t ctx = {0};
    if (!body || !tl_cmd_init(gw, req, &cmd, resp) || !study_param(req, &study, resp))
        goto out;
    if (!json_object_get(body, "required"))
        json_object_set_new(body, "required", json_true());
    if (!json_object_get(body, "form_templates"))
        json_object_set_new(body, "form_templates", json_array());
    json_object_set_new(body, "study_id", json_string(study.s));
    json_object_set_new(body, "visit_type_id", json_string(cmd.resource_id.s));
    vt_from_json(body, &ctx.vt);
    ctx.body = body;
    /* the reason travels in the event's envelope, not as a field of it */
    char reason[TL_BYTES(TL_REASON_MAX)] = "";
    if (has_text(body, "reason"))
        snprintf(reason, sizeof reason, "%s", tl_json_str(body, "reason"));
    ctx.has_reason = reason[0] != '\0';
    json_object_del(body, "reason");
    cmd.meta.reason = reason[0] ? reason : NULL;
    const char *check[] = {study.s};
    const tl_create_t spec = {
        .read_sql = SQL_VISIT_TYPE_JSON,
        .check_sql = sql_vt_check,
        .check_params = check,
        .ncheck = 1,
        .dup = TL_R(duplicate_visit_type_name),
        .dup_detail = "the study has a visit type with this name",

        .rules = vt_create_rules,
        .ctx = &ctx,
    };
    snprintf(cmd.location, sizeof cmd.location, "/v1/studies/%s/visit-types/%s", study.s,
             cmd.resource_id.s);
    cmd.key = study.s;
    cmd.payload = body;
    req->prefer = NULL; /* protocol changes answer when the schedules follow them */
    /* one protocol change of a study at a time */
    tl_gw_create(gw, req, &cmd, &spec, tl_gw_stripe(gw, study.s), resp);
    fan_out(gw, req, study.s, reason[0] ? reason : "protocol amendment: visit type added",
            cmd.meta.event_id.s, resp);
out:
    json_decref(body);
}

static const tl_json_field_t amend_fields[] = {
    {"name", TL_JF_STRING, false, 1, TL_VISIT_NAME_MAX, NULL},
    {"target_day", TL_JF_INTEGER, false, 0, TL_TARGET_DAY_MAX, NULL},
    {"window_before_days", TL_JF_INTEGER, false, 0, TL_WINDOW_DAYS_MAX, NULL},
    {"window_after_days", TL_JF_INTEGER, false, 0, TL_WINDOW_DAYS_MAX, NULL},
    {"required", TL_JF_BOOL, false, 0, 0, NULL},
    {"form_templates", TL_JF_NAMES, false, 0, TL_FORMS_PER_VISIT_MAX, NULL},
    {"reason", TL_JF_STRING, true, 1, TL_REASON_MAX, NULL},
};

typedef struct {
    const json_t *body;
    json_t *payload;
    const char *study_id;
} amend_ctx_t;

/* check: $1 visit type id, $2 study: last event, the type, locked, all types */
static const char *const sql_amend_check =
    "SELECT t.last_event_id::text, (" SQL_VISIT_TYPE_JSON "), s.locked,"
    " (" TL_SQL_VISIT_TYPES_JSON("$2") ")," SQL_PROTOCOL_FACTS(
        "$2") " FROM visit_types t JOIN studies s ON s.id = t.study_id WHERE t.id = $1 AND "
              "t.study_id = $2";

static bool amend_decide(void *ctx_in, const tl_pg_res_t *check, tl_cmd_t *cmd, tl_resp_t *resp)
{
    amend_ctx_t *ctx = ctx_in;
    if (!strcmp(tl_pg_get(check, 0, 2), "t")) {
        tl_problem_locked(resp);
        return false;
    }
    json_t *cur = json_loads(tl_pg_get(check, 0, 1), 0, NULL);
    json_t *orig = json_deep_copy(cur);
    if (!cur || !orig) {
        json_decref(cur);
        tl_problem_from_err(resp, TL_ERR_INTERNAL);
        return false;
    }
    const char *keys[] = {"name",     "target_day",    "window_before_days", "window_after_days",
                          "required", "form_templates"};
    bool changed = false;
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        json_t *v = json_object_get(ctx->body, keys[i]);
        if (v && !json_equal(v, json_object_get(cur, keys[i]))) {
            json_object_set(cur, keys[i], v);
            changed = true;
        }
    }
    tl_visit_type_t vt, was;
    bool ok = changed && vt_from_json(cur, &vt) && vt_from_json(orig, &was);
    if (!changed)
        tl_problem_r(resp, TL_R(nothing_to_amend),
                     "the amendment changes none of the visit type's fields", NULL);
    else if (ok)
        ok = protocol_fits(&vt, &was, json_object_get(cur, "form_templates"),
                           json_object_get(orig, "form_templates"), tl_pg_get(check, 0, 3),
                           tl_pg_get(check, 0, 4), tl_pg_get_int(check, 0, 5), true, resp);
    if (ok) {
        json_t *p = ctx->payload;
        json_object_set_new(p, "study_id", json_string(ctx->study_id));
        json_object_set_new(p, "visit_type_id", json_string(vt.id));
        for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
            json_object_set(p, keys[i], json_object_get(cur, keys[i]));
        cmd->meta.reason = tl_json_str(ctx->body, "reason");
    }
    json_decref(orig);
    json_decref(cur);
    return ok;
}

void tl_h_visit_type_amend(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp)
{
    tl_cmd_t cmd = {.type = "VisitTypeAmended", .projection = TL_PROJECTION_PARTICIPANTS};
    json_t *body =
        tl_gw_body(req, resp, amend_fields, sizeof amend_fields / sizeof amend_fields[0]);
    json_t *payload = json_object();
    tl_uuid_t study, vt;
    if (!body || !tl_cmd_init(gw, req, &cmd, resp) || !study_param(req, &study, resp))
        goto out;
    if (tl_uuid_parse(req->params[1], &vt)) {
        tl_problem_r(resp, TL_R(not_found), "visit type not found", NULL);
        goto out;
    }
    amend_ctx_t ctx = {body, payload, study.s};
    const char *check[] = {vt.s, study.s};
    const char *ans[] = {vt.s};
    const tl_update_t spec = {.check_sql = sql_amend_check,
                              .check_params = check,
                              .ncheck = 2,
                              .not_found = "visit type not found",
                              .decide = amend_decide,
                              .ctx = &ctx,
                              .answer_sql = SQL_VISIT_TYPE_JSON,
                              .answer_params = ans,
                              .nanswer = 1,
                              .status = 200};
    snprintf(cmd.location, sizeof cmd.location, "/v1/studies/%s/visit-types/%s", study.s, vt.s);
    cmd.key = study.s;
    cmd.payload = payload;
    req->prefer = NULL; /* protocol changes answer when the schedules follow them */
    tl_gw_update(gw, req, &cmd, &spec, tl_gw_stripe(gw, study.s), resp);
    fan_out(gw, req, study.s, tl_json_str(body, "reason"), cmd.meta.event_id.s, resp);
out:
    json_decref(payload);
    json_decref(body);
}

void tl_h_visit_type_get(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp)
{
    bool failed = false;
    tl_uuid_t study, vt;
    json_t *j = NULL;
    if (!tl_uuid_parse(req->params[0], &study) && !tl_uuid_parse(req->params[1], &vt)) {
        const char *params[] = {vt.s, study.s};
        j = tl_gw_query_json(gw, resp, SQL_VISIT_TYPE_JSON " AND t.study_id = $2", 2, params,
                             &failed);
    }
    tl_gw_found(resp, j, failed, "visit type not found");
}

#define VISIT_TYPE_KEY(a) a ".target_day, " a ".id"

void tl_h_visit_type_list(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp)
{
    bool failed = false, has_after = false;
    char lim[16], after[TL_UUID_STRLEN];
    tl_uuid_t study;
    if (!study_param(req, &study, resp) ||
        !tl_gw_page(req, TL_VISIT_TYPES_MAX, TL_VISIT_TYPES_MAX, lim, after, &has_after, resp))
        return;
    const char *params[] = {study.s, lim, has_after ? after : NULL};
    json_t *j = tl_gw_query_json(
        gw, resp,
        "SELECT CASE WHEN EXISTS (SELECT 1 FROM studies WHERE id = $1) THEN (" TL_SQL_PAGE(
            TL_SQL_VISIT_TYPE_OBJ, VISIT_TYPE_KEY, "visit_types", "t.study_id = $1") ") END",
        3, params, &failed);
    tl_gw_found(resp, j, failed, "study not found");
}

/* ---- lock ---- */

static const tl_json_field_t reason_fields[] = {
    {"reason", TL_JF_STRING, true, 1, TL_REASON_MAX, NULL},
};

typedef struct {
    bool lock;
    const json_t *body;
    json_t *payload;
} lock_ctx_t;

static bool lock_decide(void *ctx_in, const tl_pg_res_t *check, tl_cmd_t *cmd, tl_resp_t *resp)
{
    lock_ctx_t *ctx = ctx_in;
    bool locked = !strcmp(tl_pg_get(check, 0, 1), "t");
    if (locked == ctx->lock) {
        tl_problem_r(resp, locked ? TL_R(already_locked) : TL_R(not_locked), NULL, NULL);
        return false;
    }
    cmd->meta.reason = tl_json_str(ctx->body, "reason");
    return true;
}

static void lock_command(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp, bool lock)
{
    tl_cmd_t cmd = {.type = lock ? "StudyLocked" : "StudyUnlocked",
                    .projection = TL_PROJECTION_PARTICIPANTS};
    json_t *body = tl_gw_body(req, resp, reason_fields, 1), *payload = NULL;
    tl_uuid_t study;
    if (!body || !tl_cmd_init(gw, req, &cmd, resp) || !study_param(req, &study, resp))
        goto out;
    payload = json_pack("{s:s}", "study_id", study.s);
    lock_ctx_t ctx = {lock, body, payload};
    const char *params[] = {study.s};
    const tl_update_t spec = {
        .check_sql = "SELECT last_event_id::text, locked FROM studies WHERE id = $1",
        .check_params = params,
        .ncheck = 1,
        .not_found = "study not found",
        .decide = lock_decide,
        .ctx = &ctx,
        .answer_sql = "SELECT json_build_object('id', id, 'locked', locked, 'lock_reason',"
                      " lock_reason, 'lock_changed_at', lock_changed_at)::text"
                      " FROM studies WHERE id = $1",
        .answer_params = params,
        .nanswer = 1,
        .status = 200};
    snprintf(cmd.location, sizeof cmd.location, "/v1/studies/%s", study.s);
    cmd.key = study.s;
    cmd.payload = payload;
    tl_gw_update(gw, req, &cmd, &spec, tl_gw_stripe(gw, study.s), resp);
out:
    json_decref(payload);
    json_decref(body);
}

void tl_h_study_lock(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp)
{
    lock_command(gw, req, resp, true);
}

void tl_h_study_unlock(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp)
{
    lock_command(gw, req, resp, false);
}

/* ---- the participant's stream: visits, baseline, withdraw, complete ---- */

/* $1 participant: its last event, the study's lock, then its schedule (with
 * its consent and end dates) as the schedules projection loads it, one row
 * per visit: everything the rules judge comes from the one projection the
 * command's version is checked against */
static const char *const sql_stream_state =
    "SELECT p.last_event_id::text, COALESCE(s.locked, false)," TL_SQL_SCHEDULE_COLS
        TL_SQL_SCHEDULE_FROM " LEFT JOIN studies s ON s.id = p.study_id"
    " WHERE p.id = $1 ORDER BY v.target_day, v.visit_type_id";
#define STREAM_STATE_SCHEDULE_COL 2

typedef struct stream_ctx stream_ctx_t;
typedef bool (*stream_rule_fn)(stream_ctx_t *c, tl_resp_t *resp);

struct stream_ctx {
    tl_req_t *req;
    const json_t *body;
    json_t *payload;
    stream_rule_fn rule;
    tl_schedule_t s; /* the participant as the check read it */
    bool locked;
    tl_visit_t *visit; /* the visit the route names, if any */
    char as_of[TL_DATE_STRLEN];
};

static bool load_state(stream_ctx_t *c, const tl_pg_res_t *check)
{
    c->locked = !strcmp(tl_pg_get(check, 0, 1), "t");
    return !tl_schedule_read(&c->s, check, STREAM_STATE_SCHEDULE_COL, 0, tl_pg_nrows(check));
}

/* The visit a route names: its id or its name (any case). */
static tl_visit_t *find_visit(tl_schedule_t *s, const char *ref)
{
    tl_visit_t *v = tl_schedule_visit(s, ref);
    for (size_t i = 0; !v && ref && i < s->nvisits; i++)
        if (!strcasecmp(s->visits[i].name, ref))
            v = &s->visits[i];
    return v;
}

static bool stream_decide(void *ctx_in, const tl_pg_res_t *check, tl_cmd_t *cmd, tl_resp_t *resp)
{
    stream_ctx_t *c = ctx_in;
    if (!load_state(c, check)) {
        tl_problem_from_err(resp, TL_ERR_NOMEM);
        return false;
    }
    /* the lock and the participant's status are each rule's first check
     * (tl_rule_participant_open): corrections outlive the participant */
    if (c->req->params[1]) {
        if (!(c->visit = find_visit(&c->s, c->req->params[1]))) {
            tl_problem_r(resp, TL_R(not_found),
                         "no visit of this participant has this visit type id or name", NULL);
            return false;
        }
        json_object_set_new(c->payload, "visit_type_id", json_string(c->visit->visit_type_id));
    }
    if (!c->rule(c, resp))
        return false;
    json_object_set_new(c->payload, "participant_id", json_string(cmd->key));
    json_object_set_new(c->payload, "study_id", json_string(c->s.study_id));
    cmd->meta.stream_version = c->s.version + 1;
    cmd->meta.site_id = c->s.site_id;
    if (!cmd->meta.reason)
        cmd->meta.reason = tl_json_str(c->body, "reason");
    return true;
}

static tl_participant_facts_t facts(const stream_ctx_t *c)
{
    return (tl_participant_facts_t){.s = &c->s, .locked = c->locked, .today = tl_date_today()};
}

static bool refused(const tl_verdict_t *v, tl_resp_t *resp)
{
    json_t *errors = v->nitems ? json_array() : NULL;
    for (size_t i = 0; errors && i < v->nitems; i++)
        tl_json_error(errors, v->field, v->items[i]);
    tl_problem_r(resp, v->why, v->detail, errors);
    return false;
}

/* The payload of a completion or correction: the date and the optional
 * deviation reason and notes. */
static bool visit_payload(stream_ctx_t *c, int32_t actual)
{
    json_object_set_new(c->payload, "actual_date", json_integer(actual));
    const char *optional[] = {"deviation_reason", "notes"};
    for (int i = 0; i < 2; i++) {
        json_t *o = json_object_get(c->body, optional[i]);
        json_object_set_new(c->payload, optional[i], o ? json_incref(o) : json_null());
    }
    return true;
}

static bool complete_rule(stream_ctx_t *c, tl_resp_t *resp)
{
    int32_t actual = 0;
    tl_verdict_t v;
    tl_participant_facts_t f = facts(c);
    body_date(c->body, "actual_date", 0, &actual);
    if (!tl_rule_visit_complete(&f, c->visit, actual, has_text(c->body, "deviation_reason"), &v))
        return refused(&v, resp);
    return visit_payload(c, actual);
}

/* A correction: of a completed visit, a new actual date (with a deviation
 * reason when outside the window), and a reason for the change. */
static bool correct_rule(stream_ctx_t *c, tl_resp_t *resp)
{
    int32_t actual = 0;
    tl_verdict_t v;
    tl_participant_facts_t f = facts(c);
    body_date(c->body, "actual_date", 0, &actual);
    if (!tl_rule_visit_correct(&f, c->visit, actual, has_text(c->body, "deviation_reason"), &v))
        return refused(&v, resp);
    return visit_payload(c, actual);
}

static bool miss_rule(stream_ctx_t *c, tl_resp_t *resp)
{
    tl_verdict_t v;
    tl_participant_facts_t f = facts(c);
    return tl_rule_visit_miss(&f, c->visit, &v) || refused(&v, resp);
}

static bool reopen_rule(stream_ctx_t *c, tl_resp_t *resp)
{
    tl_verdict_t v;
    tl_participant_facts_t f = facts(c);
    return tl_rule_visit_reopen(&f, c->visit, &v) || refused(&v, resp);
}

/* deviation_reasons: {"<visit type id or name>": "reason"} */
static const char *deviation_for(const json_t *reasons, const tl_visit_t *v)
{
    const char *k;
    json_t *r;
    json_object_foreach((json_t *)reasons, k, r)
    {
        if (!strcasecmp(k, v->visit_type_id) || !strcasecmp(k, v->name))
            return has_text(reasons, k) ? json_string_value(r) : NULL;
    }
    return NULL;
}

static bool has_deviation(const void *reasons, const tl_visit_t *v)
{
    return deviation_for(reasons, v) != NULL;
}

/* Each deviation_reasons entry: a visit of the schedule and a reason like
 * every other (at most TL_REASON_MAX characters of text, something said). */
static bool deviation_entries_ok(const stream_ctx_t *c, const json_t *reasons, tl_resp_t *resp)
{
    const char *k;
    json_t *r;
    json_t *errors = json_array();
    bool blank = false;
    json_object_foreach((json_t *)reasons, k, r)
    {
        bool known = false;
        for (size_t i = 0; !known && i < c->s.nvisits; i++)
            known =
                !strcasecmp(k, c->s.visits[i].visit_type_id) || !strcasecmp(k, c->s.visits[i].name);
        /* each entry checked alone, as the reason field of any route is */
        static const tl_json_field_t entry = {"reason", TL_JF_STRING, true, 1, TL_REASON_MAX, NULL};
        json_t *one = json_pack("{s:O}", "reason", r), *why = json_array();
        if (!known)
            tl_json_error(errors, "deviation_reasons", "an entry names no visit of the schedule");
        else if (!one || !why || tl_json_check(one, &entry, 1, why))
            tl_json_error(errors, "deviation_reasons",
                          "each entry is a reason: text of 1 to 500 characters");
        else if (!has_text(reasons, k))
            blank = true;
        json_decref(one);
        json_decref(why);
    }
    if (!errors || json_array_size(errors) || blank) {
        if (blank)
            tl_json_error(errors, "deviation_reasons", "each entry must say why");
        tl_problem_r(resp,
                     !errors                                 ? TL_R(out_of_memory)
                     : blank && json_array_size(errors) == 1 ? TL_R(reason_required)
                                                             : TL_R(validation_failed),
                     NULL, errors);
        return false;
    }
    json_decref(errors);
    return true;
}

static bool baseline_rule(stream_ctx_t *c, tl_resp_t *resp)
{
    int32_t nb = 0;
    tl_verdict_t v;
    tl_participant_facts_t f = facts(c);
    const json_t *reasons = json_object_get(c->body, "deviation_reasons");
    body_date(c->body, "baseline_date", 0, &nb);
    if (!deviation_entries_ok(c, reasons, resp))
        return false;
    tl_visit_t *moved = calloc(c->s.nvisits + 1, sizeof *moved);
    json_t *visits = NULL, *devs = NULL;
    bool ok = moved != NULL;
    if (ok && !tl_rule_baseline_change(&f, nb, has_deviation, reasons, moved, &v)) {
        free(moved);
        return refused(&v, resp);
    }
    if (ok) {
        visits = tl_visits_event_json(moved, c->s.nvisits);
        devs = json_array();
        ok = visits && devs;
    }
    /* the rule accepted only reasons for visits it puts out of window */
    for (size_t i = 0; ok && i < c->s.nvisits; i++) {
        const tl_visit_t *o = &c->s.visits[i];
        const char *why = o->state == TL_VISIT_COMPLETED ? deviation_for(reasons, o) : NULL;
        if (why)
            ok = !json_array_append_new(
                devs, json_pack("{s:s, s:s}", "visit_type_id", o->visit_type_id, "reason", why));
    }
    free(moved);
    if (ok) {
        json_object_set_new(c->payload, "baseline_date", json_integer(nb));
        json_object_set_new(c->payload, "previous_baseline_date", json_integer(c->s.baseline_date));
        ok = !json_object_set_new(c->payload, "deviation_reasons",
                                  json_array_size(devs) ? json_incref(devs) : json_null()) &&
             !json_object_set_new(c->payload, "visits", visits);
        visits = NULL;
    }
    json_decref(visits);
    json_decref(devs);
    if (!ok)
        tl_problem_from_err(resp, TL_ERR_NOMEM);
    return ok;
}

static bool withdraw_rule(stream_ctx_t *c, tl_resp_t *resp)
{
    int32_t d = 0;
    tl_verdict_t v;
    tl_participant_facts_t f = facts(c);
    body_date(c->body, "withdrawal_date", f.today, &d);
    if (!tl_rule_withdraw(&f, d, &v))
        return refused(&v, resp);
    json_object_set_new(c->payload, "withdrawal_date", json_integer(d));
    return true;
}

static bool finish_rule(stream_ctx_t *c, tl_resp_t *resp)
{
    int32_t d = 0;
    tl_verdict_t v;
    tl_participant_facts_t f = facts(c);
    body_date(c->body, "completion_date", f.today, &d);
    if (!tl_rule_finish(&f, d, &v))
        return refused(&v, resp);
    json_object_set_new(c->payload, "completion_date", json_integer(d));
    return true;
}

/* $2: the visit type's id or name, as in the route */
static const char *const sql_visit_answer = "SELECT " VISIT_JSON(
    "$3::date") "::text FROM participant_visits v"
                " WHERE v.participant_id = $1"
                "   AND (v.visit_type_id::text = lower($2) OR lower(v.name) = lower($2))"
                " ORDER BY v.visit_type_id::text = lower($2) DESC LIMIT 1";
static const char *const sql_participant_answer =
    "SELECT json_build_object('id', p.id, 'study_id', p.study_id, 'site_id', p.site_id,"
    " 'participant_code', p.participant_code, 'status', p.status,"
    " 'baseline_date', p.baseline_date, 'version', p.version, 'updated_at', p.updated_at)::text"
    " FROM schedule_participants p WHERE p.id = $1";

static void stream_command(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp, const char *type,
                           const tl_json_field_t *fields, size_t nfields, stream_rule_fn rule,
                           int status)
{
    tl_cmd_t cmd = {.type = type, .projection = TL_PROJECTION_SCHEDULES};
    stream_ctx_t ctx = {.req = req, .rule = rule, .payload = json_object()};
    json_t *body = tl_gw_body(req, resp, fields, nfields);
    tl_uuid_t pid;
    ctx.body = body;
    if (!body || !ctx.payload || !tl_cmd_init(gw, req, &cmd, resp))
        goto out;
    if (tl_uuid_parse(req->params[0], &pid)) {
        tl_problem_r(resp, TL_R(not_found), "participant not found", NULL);
        goto out;
    }
    tl_date_format(tl_date_today(), ctx.as_of);
    const char *check[] = {pid.s};
    const char *ans[] = {pid.s, req->params[1], ctx.as_of};
    bool visit = req->params[1] != NULL;
    const tl_update_t spec = {.check_sql = sql_stream_state,
                              .check_params = check,
                              .ncheck = 1,
                              .not_found = "participant not found",
                              .decide = stream_decide,
                              .ctx = &ctx,
                              .answer_sql = visit ? sql_visit_answer : sql_participant_answer,
                              .answer_params = ans,
                              .nanswer = visit ? 3 : 1,
                              .status = status};
    snprintf(cmd.location, sizeof cmd.location, "/v1/participants/%s/schedule", pid.s);
    cmd.key = pid.s;
    cmd.payload = ctx.payload;
    tl_gw_update(gw, req, &cmd, &spec, tl_gw_stripe(gw, pid.s), resp);
out:
    tl_schedule_cleanup(&ctx.s);
    json_decref(ctx.payload);
    json_decref(body);
}

void tl_h_visit_complete(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp)
{
    static const tl_json_field_t f[] = {
        {"actual_date", TL_JF_DATE, true, 0, 0, NULL},
        {"deviation_reason", TL_JF_STRING, false, 1, TL_REASON_MAX, NULL},
        {"notes", TL_JF_STRING, false, 1, TL_NOTES_MAX, NULL},
    };
    stream_command(gw, req, resp, "VisitCompleted", f, 3, complete_rule, 200);
}

void tl_h_visit_correct(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp)
{
    static const tl_json_field_t f[] = {
        {"actual_date", TL_JF_DATE, true, 0, 0, NULL},
        {"reason", TL_JF_STRING, true, 1, TL_REASON_MAX, NULL},
        {"deviation_reason", TL_JF_STRING, false, 1, TL_REASON_MAX, NULL},
        {"notes", TL_JF_STRING, false, 1, TL_NOTES_MAX, NULL},
    };
    stream_command(gw, req, resp, "VisitCorrected", f, 4, correct_rule, 200);
}

void tl_h_visit_miss(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp)
{
    stream_command(gw, req, resp, "VisitMissed", reason_fields, 1, miss_rule, 200);
}

void tl_h_visit_reopen(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp)
{
    stream_command(gw, req, resp, "VisitReopened", reason_fields, 1, reopen_rule, 200);
}

void tl_h_baseline_change(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp)
{
    static const tl_json_field_t f[] = {
        {"baseline_date", TL_JF_DATE, true, 0, 0, NULL},
        {"reason", TL_JF_STRING, true, 1, TL_REASON_MAX, NULL},
        {"deviation_reasons", TL_JF_OBJECT, false, 1, TL_VISIT_TYPES_MAX, NULL},
    };
    stream_command(gw, req, resp, "BaselineChanged", f, 3, baseline_rule, 200);
}

void tl_h_participant_withdraw(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp)
{
    static const tl_json_field_t f[] = {
        {"withdrawal_date", TL_JF_DATE, false, 0, 0, NULL},
        {"reason", TL_JF_STRING, true, 1, TL_REASON_MAX, NULL},
    };
    stream_command(gw, req, resp, "ParticipantWithdrawn", f, 2, withdraw_rule, 200);
}

void tl_h_participant_finish(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp)
{
    static const tl_json_field_t f[] = {
        {"completion_date", TL_JF_DATE, false, 0, 0, NULL},
        {"reason", TL_JF_STRING, false, 1, TL_REASON_MAX, NULL},
    };
    stream_command(gw, req, resp, "ParticipantCompleted", f, 2, finish_rule, 200);
}

/* ---- queries ---- */

void tl_h_schedule_get(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp)
{
    char as_of[TL_DATE_STRLEN];
    bool failed = false;
    if (!tl_gw_query_as_of(req, as_of)) {
        json_t *errors = json_array();
        tl_json_error(errors, "as_of", "must be a calendar date YYYY-MM-DD");
        tl_problem_query(resp, errors);
        return;
    }
    const char *params[] = {req->params[0], as_of};
    json_t *j = tl_uuid_valid(req->params[0])
                    ? tl_gw_query_json(
                          gw, resp,
                          "SELECT json_build_object('participant_id', p.id,"
                          " 'participant_code', p.participant_code, 'study_id', p.study_id,"
                          " 'site_id', p.site_id, 'status', p.status,"
                          " 'baseline_date', p.baseline_date, 'version', p.version,"
                          " 'as_of', $2::date,"
                          " 'visits', COALESCE((SELECT json_agg(" VISIT_JSON(
                              "$2::date") " ORDER BY v.target_day, v.visit_type_id) FROM "
                                          "participant_visits v"
                                          "  WHERE v.participant_id = p.id), '[]'::json))::text"
                                          " FROM schedule_participants p WHERE p.id = $1",
                          2, params, &failed)
                    : NULL;
    tl_gw_found(resp, j, failed, "participant not found");
}

static const char *const visit_statuses[] = {
    "upcoming", "open",      "overdue", "completed", "completed_out_of_window",
    "missed",   "cancelled", NULL};

/* $1 study $2 as_of $3 status $4 from $5 to $6 site $7 limit $8-$10 cursor */
static const char *const sql_visits =
    "SELECT json_build_object('as_of', $2::date,"
    " 'items', COALESCE(json_agg(x.j ORDER BY x.due, x.pid, x.vt), '[]'::json),"
    " 'next', CASE WHEN count(*) = $7::int"
    "   THEN max(x.due::text || ',' || x.pid || ',' || x.vt) END)::text"
    " FROM (SELECT " VISIT_JSON(
        "$2::date") "::jsonb"
                    "   || jsonb_build_object('participant_id', p.id, 'participant_code', "
                    "p.participant_code,"
                    "      'site_id', p.site_id) AS j, v.due_date AS due, v.participant_id::text "
                    "AS pid,"
                    "      v.visit_type_id::text AS vt"
                    "   FROM participant_visits v JOIN schedule_participants p ON p.id = "
                    "v.participant_id"
                    "  WHERE v.study_id = $1"
                    "    AND ($3::text IS NULL OR " VISIT_STATUS(
                        "$2::date") " = $3)"
                                    "    AND ($4::date IS NULL OR v.due_date >= $4::date)"
                                    "    AND ($5::date IS NULL OR v.due_date <= $5::date)"
                                    "    AND ($6::uuid IS NULL OR v.site_id = $6::uuid)"
                                    "    AND ($11::uuid[] IS NULL OR v.site_id = ANY($11::uuid[]))"
                                    "    AND ($8::date IS NULL OR (v.due_date, v.participant_id, "
                                    "v.visit_type_id)"
                                    "         > ($8::date, $9::uuid, $10::uuid))"
                                    "  ORDER BY v.due_date, v.participant_id, v.visit_type_id "
                                    "LIMIT $7::int) x";

/* "after" is the "next" of the page before: due date, participant, visit type */
static bool parse_cursor(const char *s, char *due, char *pid, char *vt)
{
    int32_t d;
    if (!s || strlen(s) != 10 + 1 + 36 + 1 + 36 || s[10] != ',' || s[47] != ',')
        return false;
    memcpy(due, s, 10);
    due[10] = '\0';
    memcpy(pid, s + 11, 36);
    pid[36] = '\0';
    memcpy(vt, s + 48, 36);
    vt[36] = '\0';
    return !tl_date_parse(due, &d) && tl_uuid_valid(pid) && tl_uuid_valid(vt);
}

static bool study_exists(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp)
{
    bool failed = false;
    json_t *j =
        tl_uuid_valid(req->params[0])
            ? tl_gw_query_json(gw, resp, "SELECT to_json(id)::text FROM studies WHERE id = $1", 1,
                               req->params, &failed)
            : NULL;
    if (!j && !failed)
        tl_problem_r(resp, TL_R(not_found), "study not found", NULL);
    json_decref(j);
    return j != NULL;
}

void tl_h_study_visits(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp)
{
    const char *status = req->query(req->conn, "status"), *from = req->query(req->conn, "from");
    const char *to = req->query(req->conn, "to"), *site = req->query(req->conn, "site");
    const char *after = req->query(req->conn, "after");
    char as_of[TL_DATE_STRLEN], lim[16], due[11], pid[37], vt[37];
    json_t *errors = json_array();
    int32_t d;
    bool failed = false;
    if (!tl_gw_query_as_of(req, as_of))
        tl_json_error(errors, "as_of", "must be a calendar date YYYY-MM-DD");
    if (status) {
        bool ok = false;
        for (const char *const *o = visit_statuses; *o; o++)
            ok = ok || !strcmp(*o, status);
        if (!ok)
            tl_json_error(errors, "status", "is not a visit status");
    }
    if (from && tl_date_parse(from, &d))
        tl_json_error(errors, "from", "must be a calendar date YYYY-MM-DD");
    if (to && tl_date_parse(to, &d))
        tl_json_error(errors, "to", "must be a calendar date YYYY-MM-DD");
    if (site && !tl_uuid_valid(site))
        tl_json_error(errors, "site", "must be a UUID");
    long limit = tl_gw_query_limit(req, VISITS_LIMIT_DEFAULT, VISITS_LIMIT_MAX, errors);
    if (after && !parse_cursor(after, due, pid, vt))
        tl_json_error(errors, "after", "is not a cursor");
    if (json_array_size(errors)) {
        tl_problem_query(resp, errors);
        return;
    }
    json_decref(errors);
    if (!study_exists(gw, req, resp))
        return;
    snprintf(lim, sizeof lim, "%ld", limit);
    char sites[TL_SITES_PARAM_LEN];
    const char *params[] = {req->params[0],
                            as_of,
                            status,
                            from,
                            to,
                            site,
                            lim,
                            after ? due : NULL,
                            after ? pid : NULL,
                            after ? vt : NULL,
                            tl_auth_sites_param(req, sites, sizeof sites)};
    json_t *j = tl_gw_query_json(gw, resp, sql_visits, 11, params, &failed);
    if (j) {
        resp->status = 200;
        resp->body = j;
    }
}

/* Counts over participant_visits v as of $2. */
#define VISIT_COUNTS                                                                               \
    "'expected', count(*) FILTER (WHERE v.state <> 'cancelled' AND v.due_date <= $2::date),"       \
    " 'completed', count(*) FILTER (WHERE v.state = 'completed'),"                                 \
    " 'completed_in_window', count(*) FILTER (WHERE v.state = 'completed' AND v.in_window),"       \
    " 'in_window_rate', round(count(*) FILTER (WHERE v.state = 'completed' AND v.in_window)"       \
    "   ::numeric / NULLIF(count(*) FILTER (WHERE v.state = 'completed'), 0), 4),"                 \
    " 'missed', count(*) FILTER (WHERE v.state = 'missed'),"                                       \
    " 'overdue', count(*) FILTER (WHERE v.state = 'scheduled' AND v.window_end < $2::date),"       \
    " 'open', count(*) FILTER (WHERE v.state = 'scheduled'"                                        \
    "   AND $2::date BETWEEN v.window_start AND v.window_end),"                                    \
    " 'upcoming', count(*) FILTER (WHERE v.state = 'scheduled' AND v.window_start > $2::date)"
#define BY_STATUS(where)                                                                           \
    "(SELECT COALESCE(json_object_agg(c.status, c.n), '{}'::json) FROM"                            \
    " (SELECT status, count(*) AS n FROM participants WHERE " where " GROUP BY status) c)"

/* $3: the caller's sites (NULL: every site) */
#define MINE(col) "($3::uuid[] IS NULL OR " col " = ANY($3::uuid[]))"
/* clang-format off */
static const char *const sql_metrics =
    "SELECT json_build_object('study_id', s.id, 'as_of', $2::date,"
    " 'participants', " BY_STATUS("study_id = s.id AND " MINE("site_id")) ","
    " 'visits', (SELECT json_build_object(" VISIT_COUNTS ")"
    "   FROM participant_visits v WHERE v.study_id = s.id AND " MINE("v.site_id") "),"
    " 'visit_types', (SELECT COALESCE(json_agg(q.j ORDER BY q.td, q.id), '[]'::json) FROM"
    "   (SELECT t.id, t.target_day AS td, json_build_object('visit_type_id', t.id,"
    "      'name', t.name, 'target_day', t.target_day, 'required', t.required, "
    VISIT_COUNTS ") AS j"
    "    FROM visit_types t LEFT JOIN participant_visits v"
    "      ON v.visit_type_id = t.id AND v.study_id = t.study_id AND " MINE("v.site_id")
    "    WHERE t.study_id = s.id GROUP BY t.id) q),"
    " 'sites', (SELECT COALESCE(json_agg(q.j ORDER BY q.code), '[]'::json) FROM"
    "   (SELECT si.code, json_build_object('site_id', si.id, 'code', si.code,"
    "      'participants', " BY_STATUS("site_id = si.id") ", " VISIT_COUNTS ") AS j"
    "    FROM sites si LEFT JOIN participant_visits v ON v.site_id = si.id"
    "    WHERE si.study_id = s.id AND " MINE("si.id") " GROUP BY si.id) q))::text"
    " FROM studies s WHERE s.id = $1";
/* clang-format on */

void tl_h_study_metrics(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp)
{
    char as_of[TL_DATE_STRLEN];
    bool failed = false;
    if (!tl_gw_query_as_of(req, as_of)) {
        json_t *errors = json_array();
        tl_json_error(errors, "as_of", "must be a calendar date YYYY-MM-DD");
        tl_problem_query(resp, errors);
        return;
    }
    char sites[TL_SITES_PARAM_LEN];
    const char *params[] = {req->params[0], as_of, tl_auth_sites_param(req, sites, sizeof sites)};
    json_t *j = tl_uuid_valid(req->params[0])
                    ? tl_gw_query_json(gw, resp, sql_metrics, 3, params, &failed)
                    : NULL;
    tl_gw_found(resp, j, failed, "study not found");
}
