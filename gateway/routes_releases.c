/* Dataset releases (docs/ANALYSTS.md): request one, read its status and
 * manifest, download its files. The release export worker cuts the files
 * (consumers/release_export.c); the releases table is part of the
 * participants projection (projections/releases_store.c). */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gateway.h"
#include "participants_store.h"
#include "release.h"
#include "release_export.h"
#include "tl_json.h"
#include "tl_log.h"
#include "tl_topics.h"

#define TL_RELEASE_CUT_MAX 256      /* partitions a cut may name */
#define TL_RELEASE_NAME_TRIES 100   /* release_<date>, then _2 .. _99 */
#define TL_RELEASE_METADATA_MS 5000 /* partition counts and ends from the broker */

/* The release's files with their download links, once it is completed:
 * those in the manifest, and the manifest itself. */
#define SQL_RELEASE_FIELDS                                                                         \
    "json_build_object('id', r.id, 'study_id', r.study_id, 'name', r.name, 'status', r.status,"    \
    "  'cut', r.cut, 'requested_by', r.requested_by, 'requested_at', r.requested_at,"              \
    "  'started_at', r.started_at, 'finished_at', r.finished_at, 'error', r.error,"                \
    "  'manifest', r.manifest::json,"                                                              \
    "  'files', CASE WHEN r.status = 'completed' THEN (SELECT json_agg(x) FROM ("                  \
    "     SELECT json_build_object('name', f ->> 'name', 'bytes', (f ->> 'bytes')::bigint,"        \
    "       'sha256', f ->> 'sha256', 'href', '/v1/releases/' || r.id || '/files/' ||"             \
    "       (f ->> 'name')) AS x FROM json_array_elements(r.manifest::json -> 'files') f"          \
    "     UNION ALL SELECT json_build_object('name', 'manifest.json', 'href',"                     \
    "       '/v1/releases/' || r.id || '/files/manifest.json')) y) END)"

#define SQL_RELEASE_JSON "SELECT " SQL_RELEASE_FIELDS "::text FROM releases r WHERE r.id = $1"

static const tl_json_field_t release_fields[] = {
    {"name", TL_JF_NAME, false, 1, TL_RELEASE_NAME_MAX, NULL},
    {"cut", TL_JF_ARRAY, false, 1, TL_RELEASE_CUT_MAX, NULL},
};

/* The topics a release reads, as the cut names them. */
static const char *const cut_topics[] = {TL_TOPIC_PARTICIPANT, TL_TOPIC_PROTOCOL};
#define NCUT_TOPICS (sizeof cut_topics / sizeof cut_topics[0])

typedef struct {
    int partitions;
    int64_t *end; /* the log's end per partition */
    int64_t *at;  /* the cut per partition; -1: not given */
} topic_cut_t;

static void cut_cleanup(topic_cut_t *t)
{
    for (size_t i = 0; i < NCUT_TOPICS; i++) {
        free(t[i].end);
        free(t[i].at);
    }
}

/* Where each partition of the topics ends now. */
static tl_err_t log_ends(tl_gw_t *gw, topic_cut_t *t)
{
    for (size_t i = 0; i < NCUT_TOPICS; i++) {
        int n = tl_kafka_producer_partitions(gw->kafka, cut_topics[i], TL_RELEASE_METADATA_MS);
        if (n <= 0 || n > TL_RELEASE_CUT_MAX)
            return TL_ERR_UNAVAILABLE;
        t[i].partitions = n;
        t[i].end = calloc((size_t)n, sizeof *t[i].end);
        t[i].at = malloc((size_t)n * sizeof *t[i].at);
        if (!t[i].end || !t[i].at)
            return TL_ERR_NOMEM;
        for (int p = 0; p < n; p++) {
            int64_t lo = 0;
            t[i].at[p] = -1;
            if (tl_kafka_producer_watermarks(gw->kafka, cut_topics[i], p, &lo, &t[i].end[p],
                                             TL_RELEASE_METADATA_MS))
                return TL_ERR_UNAVAILABLE;
        }
    }
    return TL_OK;
}

/* The client's cut, checked against the log: every partition of both
 * topics once, at an offset the log has reached. Problems go to errors. */
static void read_cut(const json_t *cut, topic_cut_t *t, json_t *errors)
{
    size_t i;
    const json_t *c;
    json_array_foreach(cut, i, c)
    {
        const char *topic = json_string_value(json_object_get(c, "topic"));
        const json_t *p = json_object_get(c, "partition"), *o = json_object_get(c, "offset");
        size_t k = 0;
        while (topic && k < NCUT_TOPICS && strcmp(topic, cut_topics[k]))
            k++;
        char field[32];
        snprintf(field, sizeof field, "cut[%zu]", i);
        if (!json_is_object(c) || json_object_size(c) != 3 || k == NCUT_TOPICS ||
            !json_is_integer(p) || !json_is_integer(o)) {
            tl_json_error(errors, field,
                          "must be {\"topic\", \"partition\", \"offset\"} of "
                          "trialog.participant.v1 or trialog.protocol.v1");
            continue;
        }
        json_int_t part = json_integer_value(p), off = json_integer_value(o);
        if (part < 0 || part >= t[k].partitions)
            tl_json_error(errors, field, "no such partition");
        else if (t[k].at[part] >= 0)
            tl_json_error(errors, field, "partition named twice");
        else if (off < 0 || off > t[k].end[part])
            tl_json_error(errors, field, "offset beyond the end of the log");
        else
            t[k].at[part] = off;
    }
    for (size_t k = 0; k < NCUT_TOPICS && !json_array_size(errors); k++)
        for (int p = 0; p < t[k].partitions; p++)
            if (t[k].at[p] < 0)
                tl_json_error(errors, "cut", "must name every partition of both topics");
}

/* The cut in its one spelling: topics in name order, partitions in order. */
static json_t *cut_json(const topic_cut_t *t)
{
    json_t *cut = json_array();
    for (size_t k = 0; cut && k < NCUT_TOPICS; k++)
        for (int p = 0; p < t[k].partitions; p++)
            json_array_append_new(
                cut, json_pack("{s:s, s:i, s:I}", "topic", cut_topics[k], "partition", p, "offset",
                               (json_int_t)(t[k].at[p] >= 0 ? t[k].at[p] : t[k].end[p])));
    return cut;
}

/* release_<yyyy>_<mm>_<dd> of today, or the first of _2, _3, ... the study
 * does not use yet. */
static bool default_name(tl_gw_t *gw, const char *study_id, char out[TL_RELEASE_NAME_MAX + 1],
                         tl_resp_t *resp)
{
    char day[TL_DATE_STRLEN], base[32];
    tl_date_format(tl_date_today(), day);
    snprintf(base, sizeof base, "release_%.4s_%.2s_%.2s", day, day + 5, day + 8);
    const char *params[] = {study_id, base};
    tl_pg_res_t *res = NULL;
    tl_err_t err = tl_gw_exec(gw,
                              "SELECT name FROM releases WHERE study_id = $1"
                              " AND (name = $2 OR name LIKE $2 || '\\_%')",
                              2, params, &res);
    bool found = false;
    for (int k = 1; !err && !found && k <= TL_RELEASE_NAME_TRIES; k++) {
        if (k == 1)
            snprintf(out, TL_RELEASE_NAME_MAX + 1, "%s", base);
        else
            snprintf(out, TL_RELEASE_NAME_MAX + 1, "%s_%d", base, k);
        found = true;
        for (int r = 0; found && r < tl_pg_nrows(res); r++)
            found = strcmp(tl_pg_get(res, r, 0), out) != 0;
    }
    tl_pg_res_free(res);
    if (err)
        tl_problem_from_err(resp, err);
    else if (!found)
        tl_problem_r(resp, TL_R(duplicate_release_name), "name the release", NULL);
    return !err && found;
}

static bool release_rules(const void *ctx, const tl_pg_res_t *check, tl_resp_t *resp)
{
    (void)ctx;
    const char *exists = tl_pg_get(check, 0, 2);
    if (!exists || strcmp(exists, "t")) {
        tl_problem_r(resp, TL_R(not_found), "study not found", NULL);
        return false;
    }
    return true;
}

void tl_h_release_create(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp)
{
    tl_cmd_t cmd = {.type = "ReleaseRequested", .projection = TL_PROJECTION_PARTICIPANTS};
    topic_cut_t t[NCUT_TOPICS] = {{0}};
    char name[TL_RELEASE_NAME_MAX + 1] = "";
    tl_uuid_t study;
    json_t *errors = json_array();
    json_t *body = tl_gw_body(req, resp, release_fields, 2);
    if (!body || !errors)
        goto out;
    if (tl_uuid_parse(req->params[0], &study)) {
        tl_problem_r(resp, TL_R(not_found), "study not found", NULL);
        goto out;
    }
    const char *given = tl_json_str(body, "name");
    if (given && !tl_release_name_valid(given))
        tl_json_error(errors, "name", "must start with a letter: a-z, then a-z, 0-9 and _");
    tl_err_t err = log_ends(gw, t);
    if (err) {
        tl_problem_from_err(resp, err);
        goto out;
    }
    if (json_object_get(body, "cut"))
        read_cut(json_object_get(body, "cut"), t, errors);
    if (json_array_size(errors)) {
        tl_problem_r(resp, TL_R(validation_failed), "one or more fields are invalid",
                     json_incref(errors));
        goto out;
    }
    if (!tl_cmd_init(gw, req, &cmd, resp))
        goto out;
    if (given)
        snprintf(name, sizeof name, "%s", given);
    else if (!default_name(gw, study.s, name, resp))
        goto out;
    const char *check[] = {study.s, name};
    const tl_create_t spec = {
        .read_sql = SQL_RELEASE_JSON,
        .check_sql = "SELECT (" SQL_RELEASE_JSON "),"
                     " (SELECT id::text FROM releases WHERE study_id = $2 AND name = $3),"
                     " EXISTS (SELECT 1 FROM studies WHERE id = $2)",
        .check_params = check,
        .ncheck = 2,
        .rules = release_rules,
        .dup = TL_R(duplicate_release_name),
        .dup_detail = "the study has a release with this name",

    };
    json_t *payload = json_pack("{s:s, s:s, s:s, s:o}", "study_id", study.s, "release_id",
                                cmd.resource_id.s, "name", name, "cut", cut_json(t));
    if (!payload) {
        tl_problem_from_err(resp, TL_ERR_NOMEM);
        goto out;
    }
    snprintf(cmd.location, sizeof cmd.location, "/v1/releases/%s", cmd.resource_id.s);
    cmd.key = study.s;
    cmd.payload = payload;
    tl_gw_create(gw, req, &cmd, &spec, tl_gw_stripe(gw, study.s), resp);
    json_decref(payload);
out:
    cut_cleanup(t);
    json_decref(errors);
    json_decref(body);
}

void tl_h_release_get(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp)
{
    bool failed = false;
    json_t *j = tl_uuid_valid(req->params[0])
                    ? tl_gw_query_json(gw, resp, SQL_RELEASE_JSON, 1, req->params, &failed)
                    : NULL;
    if (j && !tl_auth_study_granted(req, tl_json_str(j, "study_id"), resp)) {
        json_decref(j);
        return;
    }
    tl_gw_found(resp, j, failed, "release not found");
}

/* newest first */
#define RELEASE_KEY(a) "-extract(epoch FROM " a ".requested_at), " a ".id"

static const char *const sql_release_list =
    "SELECT CASE WHEN EXISTS (SELECT 1 FROM studies WHERE id = $1) THEN (" TL_SQL_PAGE(
        "json_build_object('id', t.id, 'study_id', t.study_id, 'name', t.name, 'status',"
        " t.status, 'requested_at', t.requested_at, 'finished_at', t.finished_at)",
        RELEASE_KEY, "releases", "t.study_id = $1") ") END";

void tl_h_release_list(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp)
{
    char lim[16], after[TL_UUID_STRLEN];
    bool has_after = false, failed = false;
    if (!tl_gw_page(req, 100, 1000, lim, after, &has_after, resp))
        return;
    const char *params[] = {req->params[0], lim, has_after ? after : NULL};
    json_t *j = tl_uuid_valid(req->params[0])
                    ? tl_gw_query_json(gw, resp, sql_release_list, 3, params, &failed)
                    : NULL;
    tl_gw_found(resp, j, failed, "study not found");
}

void tl_h_release_file(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp)
{
    tl_uuid_t id;
    const char *file = req->params[1];
    const char *type = tl_release_file_type(file);
    if (tl_uuid_parse(req->params[0], &id) || !type) {
        tl_problem_r(resp, TL_R(not_found), "release file not found", NULL);
        return;
    }
    const char *params[] = {id.s};
    tl_pg_res_t *res = NULL;
    tl_err_t err =
        tl_gw_exec(gw, "SELECT status, name, study_id FROM releases WHERE id = $1", 1, params, &res);
    const char *status = err ? NULL : tl_pg_get(res, 0, 0);
    char name[TL_RELEASE_NAME_MAX + 1] = "", study[TL_UUID_STRLEN] = "";
    tl_col_copy(name, sizeof name, err ? NULL : tl_pg_get(res, 0, 1));
    tl_col_copy(study, sizeof study, err ? NULL : tl_pg_get(res, 0, 2));
    bool completed = status && !strcmp(status, "completed");
    tl_pg_res_free(res);
    if (err) {
        tl_problem_from_err(resp, err);
        return;
    }
    if (!status) {
        tl_problem_r(resp, TL_R(not_found), "release not found", NULL);
        return;
    }
    if (!tl_auth_study_granted(req, study, resp))
        return;
    if (!completed) {
        tl_problem_r(resp, TL_R(release_not_ready), "the release has no files: see its status",
                     NULL);
        return;
    }
    char path[4096];
    struct stat st;
    int n = snprintf(path, sizeof path, "%s/%s/%s", gw->cfg.release_dir, id.s, file);
    int fd = n > 0 && (size_t)n < sizeof path ? open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW) : -1;
    if (fd < 0 || fstat(fd, &st) || !S_ISREG(st.st_mode)) {
        if (fd >= 0)
            close(fd);
        tl_log_error("release_file_missing",
                     json_pack("{s:s, s:s}", "release_id", id.s, "file", file));
        tl_problem_r(resp, TL_R(release_file_unavailable),
                     "the release is completed but its file cannot be read here", NULL);
        return;
    }
    resp->status = 200;
    resp->content_type = type;
    resp->file_fd1 = fd + 1;
    resp->file_size = (uint64_t)st.st_size;
    snprintf(resp->disposition, sizeof resp->disposition, "attachment; filename=\"%s_%s\"", name,
             file);
}
