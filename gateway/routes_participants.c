/* Participants: enrolment, reads, the study's participant list. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gateway.h"
#include "participants.h"
#include "participants_store.h"
#include "rules.h"
#include "tl_date.h"
#include "tl_json.h"

#define PARTICIPANT_JSON                                                                           \
    "json_build_object('id', p.id, 'study_id', p.study_id, 'site_id', p.site_id,"                  \
    " 'participant_code', p.participant_code, 'status', p.status, 'birth_year', p.birth_year,"     \
    " 'sex', p.sex, 'consent_date', p.consent_date, 'baseline_date', p.baseline_date,"             \
    " 'withdrawal_date', CASE WHEN p.status = 'withdrawn' THEN p.end_date END,"                    \
    " 'completion_date', CASE WHEN p.status = 'completed' THEN p.end_date END,"                    \
    " 'enrolled_at', p.enrolled_at, 'updated_at', p.updated_at, 'version', p.version)"

#define SQL_PARTICIPANT "SELECT " PARTICIPANT_JSON "::text FROM participants p WHERE p.id = $1"
static const char *const sql_participant = SQL_PARTICIPANT;

/* An enrolment's checks, one row: $1 participant id, $2 study, $3 code, $4
 * site; then whether the study is locked. The visit types (the schedule the
 * participant gets) come from their cache (vtcache.c). */
static const char *const sql_enrol_check =
    "SELECT (" SQL_PARTICIPANT "),"
    " (SELECT id::text FROM participants WHERE study_id = $2 AND participant_code = $3),"
    " EXISTS (SELECT 1 FROM studies WHERE id = $2),"
    " EXISTS (SELECT 1 FROM sites WHERE id = $4 AND study_id = $2),"
    " EXISTS (SELECT 1 FROM studies WHERE id = $2 AND locked)";

#define LIST_DEFAULT 50
#define LIST_MAX 500

static const char *const sex_options[] = {"M", "F", "O", "U", NULL};
static const char *const status_options[] = {"screened",  "enrolled",      "completed",
                                             "withdrawn", "screen_failed", NULL};

static bool code_chars_ok(const char *s)
{
    for (const char *p = s; *p; p++) {
        bool ok = (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
                  (*p >= '0' && *p <= '9') || (p != s && (*p == '-' || *p == '_' || *p == '.'));
        if (!ok)
            return false;
    }
    return true;
}

static int current_year(void)
{
    int y;
    unsigned m, d;
    tl_date_to_civil(tl_date_today(), &y, &m, &d);
    return y;
}

static bool column_true(const tl_pg_res_t *res, int col)
{
    const char *v = tl_pg_get(res, 0, col);
    return v && !strcmp(v, "t");
}

/* Domain rules of an enrolment, on the body and the check row (violations:
 * 422; an unknown study: 404). Returns false with resp set. */
typedef struct {
    tl_gw_t *gw;
    const char *study_id;
    const json_t *body;
    json_t *payload; /* gets the schedule */
} enrol_ctx_t;

static bool enrol_rules(const void *ctx_in, const tl_pg_res_t *check, tl_resp_t *resp)
{
    const enrol_ctx_t *ctx = ctx_in;
    const json_t *body = ctx->body;
    if (!column_true(check, 2)) {
        tl_problem_r(resp, TL_R(not_found), "study not found", NULL);
        return false;
    }
    int32_t consent = 0, baseline = 0;
    tl_verdict_t v;
    tl_date_parse(tl_json_str(body, "baseline_date"), &baseline);
    bool has_consent = tl_json_str(body, "consent_date") != NULL;
    if (has_consent)
        tl_date_parse(tl_json_str(body, "consent_date"), &consent);
    if (!tl_rule_enrol(column_true(check, 4), column_true(check, 3), has_consent, consent, baseline,
                       tl_date_today(), &v)) {
        tl_problem_r(resp, v.why, v.detail, NULL);
        return false;
    }
    size_t n = 0;
    /* on the stack (29 KiB of the thread's 512): a block that size from
     * malloc made glibc consolidate its fast bins on every enrolment */
    tl_visit_type_t vts[TL_VISIT_TYPES_MAX];
    tl_err_t err = tl_gw_visit_types(ctx->gw, ctx->study_id, vts, &n);
    json_t *schedule = err ? NULL : tl_gw_plan_visits(vts, n, baseline);
    if (!schedule || json_object_set_new(ctx->payload, "schedule", schedule)) {
        tl_problem_from_err(resp, err ? err : TL_ERR_INTERNAL);
        return false;
    }
    return true;
}

static json_t *enrol_payload(const json_t *body, const char *pid, const char *study_id)
{
    int32_t consent = 0, baseline = 0;
    tl_date_parse(tl_json_str(body, "consent_date"), &consent);
    tl_date_parse(tl_json_str(body, "baseline_date"), &baseline);
    const json_t *by = json_object_get(body, "birth_year");
    const json_t *sex = json_object_get(body, "sex");
    return json_pack("{s:s, s:s, s:s, s:O, s:O, s:i, s:i}", "participant_id", pid, "study_id",
                     study_id, "participant_code", tl_json_str(body, "participant_code"),
                     "birth_year", by ? by : json_null(), "sex", sex ? sex : json_null(),
                     "consent_date", consent, "baseline_date", baseline);
}

void tl_h_participant_enrol(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp)
{
    const tl_json_field_t fields[] = {
        {"participant_code", TL_JF_STRING, true, 1, TL_CODE_MAX, NULL},
        {"site_id", TL_JF_UUID, true, 0, 0, NULL},
        {"birth_year", TL_JF_INTEGER, false, 1900, current_year(), NULL},
        {"sex", TL_JF_ENUM, false, 0, 0, sex_options},
        {"consent_date", TL_JF_DATE, false, 0, 0, NULL},
        {"baseline_date", TL_JF_DATE, true, 0, 0, NULL},
    };
    tl_cmd_t cmd = {.type = "ParticipantEnrolled", .projection = TL_PROJECTION_PARTICIPANTS};
    json_t *body = tl_gw_body(req, resp, fields, sizeof fields / sizeof fields[0]);
    json_t *payload = NULL;
    tl_uuid_t study;
    if (!body || !tl_cmd_init(gw, req, &cmd, resp))
        goto out;
    const char *code = tl_json_str(body, "participant_code");
    if (!code_chars_ok(code)) {
        json_t *errors = json_array();
        tl_json_error(errors, "participant_code",
                      "letters, digits and - _ . only, starting with a letter or digit");
        tl_problem_r(resp, TL_R(validation_failed), NULL, errors);
        goto out;
    }
    if (tl_uuid_parse(req->params[0], &study)) {
        tl_problem_r(resp, TL_R(not_found), "study not found", NULL);
        goto out;
    }
    if (!tl_auth_has_site(req, tl_json_str(body, "site_id"))) {
        tl_problem_r(resp, TL_R(site_not_allowed), "you enrol participants at your own sites only",
                     NULL);
        goto out;
    }
    if (!(payload = enrol_payload(body, cmd.resource_id.s, study.s))) {
        tl_problem_from_err(resp, TL_ERR_NOMEM);
        goto out;
    }
    const char *check[] = {study.s, code, tl_json_str(body, "site_id")};
    enrol_ctx_t ctx = {gw, study.s, body, payload};
    const tl_create_t spec = {
        .read_sql = sql_participant,
        .check_sql = sql_enrol_check,
        .check_params = check,
        .ncheck = 3,
        .dup = TL_R(duplicate_participant_code),
        .dup_detail = "the study has a participant with this code",

        .rules = enrol_rules,
        .ctx = &ctx,
    };
    char lock_key[TL_UUID_STRLEN + TL_BYTES(TL_CODE_MAX) + 2];
    snprintf(lock_key, sizeof lock_key, "%s|%s", study.s, code);
    snprintf(cmd.location, sizeof cmd.location, "/v1/participants/%s", cmd.resource_id.s);
    cmd.meta.site_id = tl_json_str(body, "site_id");
    cmd.meta.stream_version = 1;
    cmd.key = cmd.resource_id.s;
    cmd.payload = payload;
    tl_gw_create(gw, req, &cmd, &spec, tl_gw_stripe(gw, lock_key), resp);
out:
    json_decref(payload);
    json_decref(body);
}

void tl_h_participant_get(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp)
{
    bool failed = false;
    json_t *j = tl_uuid_valid(req->params[0])
                    ? tl_gw_query_json(gw, resp, sql_participant, 1, req->params, &failed)
                    : NULL;
    tl_gw_found(resp, j, failed, "participant not found");
}

static const char *const sql_list =
    "SELECT json_build_object('items', COALESCE(json_agg(x.j ORDER BY x.c), '[]'::json),"
    "  'next', CASE WHEN count(*) = $5::int THEN max(x.c) END)::text"
    " FROM (SELECT " PARTICIPANT_JSON " AS j, p.participant_code COLLATE \"C\" AS c"
    "       FROM participants p WHERE p.study_id = $1"
    "        AND ($2::uuid IS NULL OR p.site_id = $2::uuid)"
    "        AND ($3::text IS NULL OR p.status = $3)"
    "        AND ($4::text IS NULL OR p.participant_code COLLATE \"C\" > $4)"
    "        AND ($6::uuid[] IS NULL OR p.site_id = ANY($6::uuid[]))"
    "        AND ($7::text IS NULL OR starts_with(lower(p.participant_code), lower($7)))"
    "       ORDER BY p.participant_code COLLATE \"C\" LIMIT $5::int) x";

void tl_h_participant_list(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp)
{
    const char *site = req->query(req->conn, "site");
    const char *status = req->query(req->conn, "status");
    const char *after = req->query(req->conn, "after");
    /* a search by code: codes starting with it, in any case (README "Lists") */
    const char *code = req->query(req->conn, "code");
    json_t *errors = json_array(), *study = NULL;
    bool failed = false;
    if (site && !tl_uuid_valid(site))
        tl_json_error(errors, "site", "must be a UUID");
    if (status) {
        bool ok = false;
        for (const char *const *o = status_options; *o; o++)
            ok = ok || !strcmp(*o, status);
        if (!ok)
            tl_json_error(errors, "status", "is not a participant status");
    }
    if (after && (strlen(after) > TL_CODE_MAX || !*after || !code_chars_ok(after)))
        tl_json_error(errors, "after", "is not a cursor");
    if (code && (strlen(code) > TL_CODE_MAX || !*code || !code_chars_ok(code)))
        tl_json_error(errors, "code", "is not (the start of) a participant code");
    long limit = tl_gw_query_limit(req, LIST_DEFAULT, LIST_MAX, errors);
    if (json_array_size(errors)) {
        tl_problem_query(resp, errors);
        return;
    }
    json_decref(errors);
    if (!tl_uuid_valid(req->params[0]) ||
        !(study = tl_gw_query_json(gw, resp, "SELECT to_json(id)::text FROM studies WHERE id = $1",
                                   1, req->params, &failed))) {
        if (!failed)
            tl_problem_r(resp, TL_R(not_found), "study not found", NULL);
        return;
    }
    json_decref(study);
    char lim[16];
    snprintf(lim, sizeof lim, "%ld", limit);
    char sites[TL_SITES_PARAM_LEN];
    const char *params[] = {req->params[0],
                            site,
                            status,
                            after,
                            lim,
                            tl_auth_sites_param(req, sites, sizeof sites),
                            code};
    json_t *j = tl_gw_query_json(gw, resp, sql_list, 7, params, &failed);
    if (j) {
        resp->status = 200;
        resp->body = j;
    }
}
