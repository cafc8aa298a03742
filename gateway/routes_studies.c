/* Studies and sites, health and readiness. */
#include <stdio.h>
#include <string.h>

#include "gateway.h"
#include "participants.h"
#include "participants_store.h"
#include "tl_json.h"

/* A study s as JSON, its sites and participant counts those of the sites
 * in the uuid[] parameter `sites` (NULL: every site): a site-scoped role
 * sees its own sites and their counts only. */
#define STUDY_OBJ(s, sites)                                                                       \
    "json_build_object('id', " s ".id, 'protocol_id', " s ".protocol_id, 'name', " s ".name,"     \
    "  'description', " s ".description, 'registered_at', " s ".registered_at,"                   \
    "  'locked', " s ".locked, 'lock_reason', " s ".lock_reason,"                                 \
    "  'lock_changed_at', " s ".lock_changed_at,"                                                 \
    "  'sites', COALESCE((SELECT json_agg(json_build_object('id', x.id, 'code', x.code,"           \
    "                     'name', x.name, 'added_at', x.added_at) ORDER BY x.code)"               \
    "            FROM sites x WHERE x.study_id = " s ".id"                                        \
    "             AND (" sites "::uuid[] IS NULL OR x.id = ANY(" sites "::uuid[]))), '[]'::json)," \
    "  'participants', COALESCE((SELECT json_object_agg(status, n) FROM"                          \
    "            (SELECT status, count(*) AS n FROM participants p WHERE p.study_id = " s ".id"   \
    "              AND (" sites "::uuid[] IS NULL OR p.site_id = ANY(" sites "::uuid[]))"         \
    "             GROUP BY status) c), '{}'::json))"
#define SQL_STUDY_JSON "SELECT " STUDY_OBJ("s", "NULL") "::text FROM studies s WHERE s.id = $1"

#define SQL_SITE_JSON                                                                              \
    "SELECT json_build_object('id', id, 'study_id', study_id, 'code', code, 'name', name,"         \
    "  'added_at', added_at)::text FROM sites WHERE id = $1"

void tl_h_healthz(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp)
{
    (void)gw;
    (void)req;
    resp->status = 200;
    resp->body = json_pack("{s:s}", "status", "ok");
}

void tl_h_readyz(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp)
{
    (void)req;
    bool db = tl_gw_exec(gw, "SELECT 1", 0, NULL, NULL) == TL_OK;
    bool log = tl_kafka_producer_ping(gw->kafka, 2000) == TL_OK;
    int64_t lag = 0;
    bool archive = !tl_bp_engaged(gw->bp, &lag);
    bool ok = db && log && archive;
    resp->status = ok ? 200 : 503;
    resp->body =
        json_pack("{s:s, s:{s:s, s:s, s:s}, s:I}", "status", ok ? "ready" : "unavailable", "checks",
                  "database", db ? "ok" : "unavailable", "event_log", log ? "ok" : "unavailable",
                  "archive", archive ? "ok" : "lagging", "archive_lag", (json_int_t)lag);
    if (resp->status == 503)
        resp->retry_after = 1;
}

/* Prometheus text format (0.0.4): counters of the whole process, no ids and
 * nothing of any request (docs/SECURITY.md: public like /readyz). */
/* The HTTP edge's refusals: the router's 401 and 403, and what never
 * reached it (libmicrohttpd's own answers, headers past their deadline). */
static tl_err_t http_metrics(tl_gw_t *gw, tl_buf_t *b)
{
    tl_err_t err = tl_buf_printf(
        b,
        "# HELP trialog_http_refused_total Requests the router refused for want of credentials"
        " (401) or of permission (403).\n"
        "# TYPE trialog_http_refused_total counter\n"
        "trialog_http_refused_total{status=\"401\"} %llu\n"
        "trialog_http_refused_total{status=\"403\"} %llu\n"
        "# HELP trialog_http_header_timeouts_total Connections closed because a request's headers"
        " were not whole within TRIALOG_HTTP_HEADER_TIMEOUT_S.\n"
        "# TYPE trialog_http_header_timeouts_total counter\n"
        "trialog_http_header_timeouts_total %llu\n"
        "# HELP trialog_http_library_answers_total Answers libmicrohttpd made itself (a malformed"
        " request line, headers past its memory, a bad chunk), by status class.\n"
        "# TYPE trialog_http_library_answers_total counter\n",
        (unsigned long long)atomic_load(&gw->refused[0]),
        (unsigned long long)atomic_load(&gw->refused[1]),
        (unsigned long long)atomic_load(&gw->http.header_timeouts));
    for (int c = 1; c <= 5 && !err; c++)
        err = tl_buf_printf(b, "trialog_http_library_answers_total{class=\"%dxx\"} %llu\n", c,
                            (unsigned long long)atomic_load(&gw->http.library_answers[c]));
    return err;
}

void tl_h_metrics(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp)
{
    (void)req;
    uint64_t statements = 0, round_trips = 0;
    int64_t lag = 0;
    tl_gw_pool_stats(gw, &statements, &round_trips);
    if (gw->bp)
        tl_bp_engaged(gw->bp, &lag);
    tl_buf_t b;
    tl_buf_init(&b, 8192);
    tl_err_t err = tl_buf_printf(&b, "# HELP trialog_gateway_responses_total Responses of the "
                                     "gateway's router, by status class.\n"
                                     "# TYPE trialog_gateway_responses_total counter\n");
    for (int c = 1; c <= 5 && !err; c++)
        err = tl_buf_printf(&b, "trialog_gateway_responses_total{class=\"%dxx\"} %llu\n", c,
                            (unsigned long long)atomic_load(&gw->answered[c]));
    if (!err)
        err = tl_buf_printf(
            &b,
            "# HELP trialog_gateway_pg_statements_total Commands' checks and outcome reads run.\n"
            "# TYPE trialog_gateway_pg_statements_total counter\n"
            "trialog_gateway_pg_statements_total %llu\n"
            "# HELP trialog_gateway_pg_round_trips_total Round trips those statements took, "
            "combined.\n"
            "# TYPE trialog_gateway_pg_round_trips_total counter\n"
            "trialog_gateway_pg_round_trips_total %llu\n"
            "# HELP trialog_gateway_archive_lag_messages How far the audit archive is behind "
            "the log, at most over partitions.\n"
            "# TYPE trialog_gateway_archive_lag_messages gauge\n"
            "trialog_gateway_archive_lag_messages %lld\n",
            (unsigned long long)statements, (unsigned long long)round_trips, (long long)lag);
    if (!err)
        err = http_metrics(gw, &b);
    if (err) {
        tl_buf_cleanup(&b);
        tl_problem_from_err(resp, err);
        return;
    }
    resp->status = 200;
    resp->content_type = "text/plain; version=0.0.4; charset=utf-8";
    resp->text = tl_buf_steal(&b, NULL);
}

/* Loads a study as JSON; on absence fills a 404. */
static json_t *study_or_404(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp)
{
    bool failed = false;
    if (!tl_uuid_valid(req->params[0])) {
        tl_problem_r(resp, TL_R(not_found), "study not found", NULL);
        return NULL;
    }
    json_t *j = tl_gw_query_json(gw, resp, SQL_STUDY_JSON, 1, req->params, &failed);
    if (!j && !failed)
        tl_problem_r(resp, TL_R(not_found), "study not found", NULL);
    return j;
}

void tl_h_study_get(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp)
{
    bool failed = false;
    char sites[TL_SITES_PARAM_LEN];
    const char *params[] = {req->params[0], tl_auth_sites_param(req, sites, sizeof sites)};
    json_t *j = tl_uuid_valid(req->params[0])
                    ? tl_gw_query_json(gw, resp,
                                       "SELECT " STUDY_OBJ("s", "$2") "::text FROM studies s"
                                       " WHERE s.id = $1",
                                       2, params, &failed)
                    : NULL;
    tl_gw_found(resp, j, failed, "study not found");
}

#define STUDY_KEY(a) a ".protocol_id COLLATE \"C\", " a ".id"
#define SITE_KEY(a) a ".code COLLATE \"C\", " a ".id"

/* $1 the caller's sites, $4 its studies (NULL: no such bound) */
static const char *const sql_study_list = TL_SQL_PAGE(
    STUDY_OBJ("t", "$1"), STUDY_KEY, "studies",
    "($1::uuid[] IS NULL OR EXISTS (SELECT 1 FROM sites y WHERE y.study_id = t.id"
    "  AND y.id = ANY($1::uuid[]))) AND ($4::uuid[] IS NULL OR t.id = ANY($4::uuid[]))");

void tl_h_study_list(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp)
{
    char lim[16], after[TL_UUID_STRLEN], sites[TL_SITES_PARAM_LEN], studies[TL_STUDIES_PARAM_LEN];
    bool has_after = false;
    if (!tl_gw_page(req, 100, 500, lim, after, &has_after, resp))
        return;
    const char *params[] = {tl_auth_sites_param(req, sites, sizeof sites), lim,
                            has_after ? after : NULL,
                            tl_auth_studies_param(req, studies, sizeof studies)};
    bool failed = false;
    json_t *j = tl_gw_query_json(gw, resp, sql_study_list, 4, params, &failed);
    tl_gw_found(resp, j, failed, "studies not found");
}

/* $1 study, $4 the caller's sites */
static const char *const sql_site_list =
    "SELECT CASE WHEN EXISTS (SELECT 1 FROM studies WHERE id = $1) THEN (" TL_SQL_PAGE(
        "json_build_object('id', t.id, 'study_id', t.study_id, 'code', t.code, 'name', t.name,"
        " 'added_at', t.added_at)",
        SITE_KEY, "sites", "t.study_id = $1 AND ($4::uuid[] IS NULL OR t.id = ANY($4::uuid[]))")
    ") END";

void tl_h_site_list(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp)
{
    char lim[16], after[TL_UUID_STRLEN], sites[TL_SITES_PARAM_LEN];
    bool has_after = false;
    if (!tl_gw_page(req, 100, 500, lim, after, &has_after, resp))
        return;
    const char *params[] = {req->params[0], lim, has_after ? after : NULL,
                            tl_auth_sites_param(req, sites, sizeof sites)};
    bool failed = false;
    json_t *j = tl_uuid_valid(req->params[0])
                    ? tl_gw_query_json(gw, resp, sql_site_list, 4, params, &failed)
                    : NULL;
    tl_gw_found(resp, j, failed, "study not found");
}

static const tl_json_field_t study_fields[] = {
    {"protocol_id", TL_JF_STRING, true, 1, TL_PROTOCOL_ID_MAX, NULL},
    {"name", TL_JF_STRING, true, 1, TL_NAME_MAX, NULL},
    {"description", TL_JF_STRING, false, 0, TL_DESCRIPTION_MAX, NULL},
};

void tl_h_study_create(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp)
{
    tl_cmd_t cmd = {.type = "StudyRegistered", .projection = TL_PROJECTION_PARTICIPANTS};
    json_t *body = tl_gw_body(req, resp, study_fields, 3);
    if (!body || !tl_cmd_init(gw, req, &cmd, resp))
        goto out;
    const char *pid[] = {tl_json_str(body, "protocol_id")};
    const tl_create_t spec = {
        .read_sql = SQL_STUDY_JSON,
        .check_sql = "SELECT (" SQL_STUDY_JSON "),"
                     " (SELECT id::text FROM studies WHERE protocol_id = $2)",
        .check_params = pid,
        .ncheck = 1,
        .dup = TL_R(duplicate_protocol_id),
        .dup_detail = "a study with this protocol_id exists",

    };
    json_object_set_new(body, "study_id", json_string(cmd.resource_id.s));
    if (!json_object_get(body, "description"))
        json_object_set_new(body, "description", json_null());
    snprintf(cmd.location, sizeof cmd.location, "/v1/studies/%s", cmd.resource_id.s);
    cmd.key = cmd.resource_id.s;
    cmd.payload = body;
    tl_gw_create(gw, req, &cmd, &spec, tl_gw_stripe(gw, pid[0]), resp);
out:
    json_decref(body);
}

static const tl_json_field_t site_fields[] = {
    {"code", TL_JF_STRING, true, 1, TL_CODE_MAX, NULL},
    {"name", TL_JF_STRING, true, 1, TL_NAME_MAX, NULL},
};

static bool site_rules(const void *ctx, const tl_pg_res_t *check, tl_resp_t *resp)
{
    (void)ctx;
    const char *locked = tl_pg_get(check, 0, 2);
    if (locked && !strcmp(locked, "t")) {
        tl_problem_locked(resp);
        return false;
    }
    return true;
}

void tl_h_site_create(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp)
{
    tl_cmd_t cmd = {.type = "SiteAdded", .projection = TL_PROJECTION_PARTICIPANTS};
    json_t *body = tl_gw_body(req, resp, site_fields, 2), *study = NULL;
    if (!body || !tl_cmd_init(gw, req, &cmd, resp) || !(study = study_or_404(gw, req, resp)))
        goto out;
    const char *study_id = tl_json_str(study, "id"); /* canonical form */
    const char *dup[] = {study_id, tl_json_str(body, "code")};
    const tl_create_t spec = {
        .read_sql = SQL_SITE_JSON,
        .check_sql = "SELECT (" SQL_SITE_JSON "),"
                     " (SELECT id::text FROM sites WHERE study_id = $2 AND code = $3),"
                     " EXISTS (SELECT 1 FROM studies WHERE id = $2 AND locked)",
        .check_params = dup,
        .ncheck = 2,
        .rules = site_rules,
        .dup = TL_R(duplicate_site_code),
        .dup_detail = "the study has a site with this code",

    };
    json_object_set_new(body, "study_id", json_string(study_id));
    snprintf(cmd.location, sizeof cmd.location, "/v1/studies/%s/sites/%s", study_id,
             cmd.resource_id.s);
    cmd.meta.site_id = cmd.resource_id.s;
    cmd.key = study_id;
    cmd.payload = body;
    tl_gw_create(gw, req, &cmd, &spec, tl_gw_stripe(gw, study_id), resp);
out:
    json_decref(study);
    json_decref(body);
}
