/* The schema registry API (DESIGN.md §4): the Confluent Schema Registry REST
 * subset under /registry, served from the PostgreSQL schema store with the
 * same ids the topics carry, so any Kafka client with a Confluent Avro
 * deserializer reads Trialog's topics with schema.registry.url pointing here.
 *
 * Confluent's conventions hold on these routes, not the rest of the API's:
 * content type application/vnd.schemaregistry.v1+json, and errors as
 * {"error_code", "message"} (40401 subject not found, 40402 version not
 * found, 40403 schema not found, 409 incompatible, 42201 invalid schema,
 * 42202 invalid version, 42203 invalid compatibility level, 50001 store
 * unavailable); tl_registry_api_error turns the gateway's own problems
 * (401, 403, 415, ...) into the same shape. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway.h"
#include "tl_json.h"
#include "tl_schemas.h"
#include "tl_topics.h"

#define TL_REGISTRY_CT "application/vnd.schemaregistry.v1+json"
#define WHY_MAX 512
#define SUBJECT_MAX 255
/* what a connector may register: its own ingest topics' subjects */

static void answer(tl_resp_t *resp, int status, json_t *body)
{
    resp->status = status;
    resp->body = body;
    resp->problem = false;
    resp->content_type = TL_REGISTRY_CT;
}

static void reg_error(tl_resp_t *resp, int status, int code, const char *message)
{
    json_decref(resp->body);
    answer(resp, status, json_pack("{s:i, s:s}", "error_code", code, "message", message));
}

/* 503 (DESIGN.md §6: never a false success) with Confluent's store error
 * code; the log has the SQLSTATE */
static void store_error(tl_resp_t *resp)
{
    reg_error(resp, 503, 50001, "Error in the backend data store");
}

/* A read of one JSON text column: 200 with it; no row: 404 with code and
 * message; the store failing: 503. */
static void read_one(tl_gw_t *gw, tl_resp_t *resp, const char *sql, int n,
                     const char *const *params, int code, const char *message)
{
    bool failed = false;
    json_t *j = tl_gw_query_json(gw, resp, sql, n, params, &failed);
    if (failed)
        store_error(resp);
    else if (!j)
        reg_error(resp, 404, code, message);
    else
        answer(resp, 200, j);
}

void tl_registry_api_error(tl_resp_t *resp)
{
    if (!resp->problem || !resp->body)
        return;
    const char *title = json_string_value(json_object_get(resp->body, "title"));
    const char *detail = json_string_value(json_object_get(resp->body, "detail"));
    char message[300];
    snprintf(message, sizeof message, "%s%s%s", title ? title : "Error", detail ? ": " : "",
             detail ? detail : "");
    int status = resp->status;
    reg_error(resp, status, status * 100 + 1, message);
    resp->status = status;
}

/* {subject}: printable, bounded; false: resp holds the answer. */
static bool subject_ok(const char *s, tl_resp_t *resp)
{
    bool ok = s && *s && strlen(s) <= SUBJECT_MAX;
    for (const char *p = s; ok && *p; p++)
        ok = (unsigned char)*p > 0x20 && (unsigned char)*p < 0x7f;
    if (!ok)
        reg_error(resp, 404, 40401, "Subject not found.");
    return ok;
}

/* {version}: "latest" (0) or 1 to 2^31-1; false: resp holds 42202. */
static bool version_ok(const char *s, int *version, tl_resp_t *resp)
{
    char *end = NULL;
    long v = s && strcmp(s, "latest") ? strtol(s, &end, 10) : 0;
    if (s && !strcmp(s, "latest")) {
        *version = 0;
        return true;
    }
    if (!s || !*s || *end || v < 1 || v > 2147483647L) {
        reg_error(resp, 422, 42202,
                  "The specified version is not a valid version id. Allowed values are between"
                  " [1, 2^31-1] and the string \"latest\"");
        return false;
    }
    *version = (int)v;
    return true;
}

/* The request body's "schema" (a string); false: resp holds 42201. Only
 * Avro: a "schemaType" other than AVRO is refused. */
static const char *schema_of(tl_req_t *req, json_t **body, tl_resp_t *resp)
{
    *body = json_loadb(req->body ? req->body : "", req->body_len, JSON_REJECT_DUPLICATES, NULL);
    const char *type = json_string_value(json_object_get(*body, "schemaType"));
    const char *schema = json_string_value(json_object_get(*body, "schema"));
    if (!json_is_object(*body))
        reg_error(resp, 400, 400, "The request body is not a JSON object");
    else if (type && strcmp(type, "AVRO"))
        reg_error(resp, 422, 42201, "Invalid schema: only AVRO schemas are supported");
    else if (!schema)
        reg_error(resp, 422, 42201, "Invalid schema: \"schema\" must be the schema as a string");
    else
        return schema;
    return NULL;
}

void tl_h_registry_subjects(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp)
{
    (void)req;
    read_one(gw, resp,
             "SELECT COALESCE(json_agg(s ORDER BY s), '[]')::text"
             " FROM (SELECT DISTINCT subject AS s FROM registry_subjects) x",
             0, NULL, 40401, "Subject not found.");
}

void tl_h_registry_versions(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp)
{
    const char *params[] = {req->params[0]};
    if (subject_ok(params[0], resp))
        read_one(gw, resp,
                 "SELECT json_agg(version ORDER BY version)::text"
                 " FROM registry_subjects WHERE subject = $1 HAVING count(*) > 0",
                 1, params, 40401, "Subject not found.");
}

/* $1 subject, $2 version (0: latest): how many versions the subject has,
 * and the one asked for */
static const char *const sql_version =
    "SELECT (SELECT count(*) FROM registry_subjects WHERE subject = $1),"
    " (SELECT json_build_object('subject', v.subject, 'version', v.version, 'id', s.id,"
    "   'schema', s.schema)::text FROM registry_subjects v"
    "   JOIN registry_schemas s ON s.id = v.schema_id"
    "   WHERE v.subject = $1 AND ($2::int = 0 OR v.version = $2::int)"
    "   ORDER BY v.version DESC LIMIT 1)";

void tl_h_registry_version(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp)
{
    const char *subject = req->params[0];
    int version = 0;
    char v[16];
    if (!subject_ok(subject, resp) || !version_ok(req->params[1], &version, resp))
        return;
    snprintf(v, sizeof v, "%d", version);
    const char *params[] = {subject, v};
    tl_pg_res_t *res = NULL;
    tl_err_t err = tl_gw_exec(gw, sql_version, 2, params, &res);
    const char *text = err ? NULL : tl_pg_get(res, 0, 1);
    if (err)
        store_error(resp);
    else if (!tl_pg_get_int(res, 0, 0))
        reg_error(resp, 404, 40401, "Subject not found.");
    else if (!text)
        reg_error(resp, 404, 40402, "Version not found.");
    else
        answer(resp, 200, json_loads(text, 0, NULL));
    tl_pg_res_free(res);
}

void tl_h_registry_schema(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp)
{
    char *end = NULL, key[16];
    long id = strtol(req->params[0], &end, 10);
    snprintf(key, sizeof key, "%ld", id);
    const char *params[] = {key};
    if (!*req->params[0] || *end || id < 1 || id > 2147483647L)
        reg_error(resp, 404, 40403, "Schema not found");
    else
        read_one(gw, resp,
                 "SELECT json_build_object('schema', schema)::text"
                 " FROM registry_schemas WHERE id = $1::int",
                 1, params, 40403, "Schema not found");
}

/* POST /registry/subjects/{subject}: the version of subject that has this
 * schema (clients that do not register ask this). */
void tl_h_registry_lookup(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp)
{
    json_t *body = NULL;
    const char *subject = req->params[0];
    const char *schema = subject_ok(subject, resp) ? schema_of(req, &body, resp) : NULL;
    if (schema) {
        json_t *parsed = json_loads(schema, JSON_DECODE_ANY, NULL);
        char *normal =
            parsed ? json_dumps(parsed, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY) : NULL;
        const char *params[] = {subject, normal};
        if (!normal)
            reg_error(resp, 422, 42201, "Invalid schema: not JSON");
        else
            read_one(gw, resp,
                     "SELECT json_build_object('subject', v.subject, 'version', v.version,"
                     " 'id', s.id, 'schema', s.schema)::text FROM registry_subjects v"
                     " JOIN registry_schemas s ON s.id = v.schema_id"
                     " WHERE v.subject = $1 AND s.schema = $2",
                     2, params, 40403, "Schema not found");
        free(normal);
        json_decref(parsed);
    }
    json_decref(body);
}

/* The body's schema and a connection to judge it on (release it); NULL:
 * resp holds why not. */
static tl_pg_t *schema_and_pg(tl_gw_t *gw, tl_req_t *req, json_t **body, const char **schema,
                              tl_resp_t *resp)
{
    *schema = schema_of(req, body, resp);
    tl_pg_t *pg = *schema ? tl_gw_pg_acquire(gw) : NULL;
    if (*schema && !pg)
        store_error(resp);
    return pg;
}

static void invalid_schema(tl_resp_t *resp, const char *why)
{
    char message[WHY_MAX + 32];
    snprintf(message, sizeof message, "Invalid schema: %s", why);
    reg_error(resp, 422, 42201, message);
}

void tl_h_registry_register(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp)
{
    json_t *body = NULL;
    const char *subject = req->params[0];
    if (!subject_ok(subject, resp))
        return;
    if (req->actor.role == TL_ROLE_CONNECTOR && strncmp(subject, TL_TOPIC_INGEST_PREFIX, strlen(TL_TOPIC_INGEST_PREFIX))) {
        reg_error(resp, 403, 40301,
                  "A connector registers schemas of its own ingest topics only (trialog.ingest.*)");
        return;
    }
    const char *schema = NULL;
    tl_pg_t *pg = schema_and_pg(gw, req, &body, &schema, resp);
    if (pg) {
        char why[WHY_MAX], message[WHY_MAX + 128];
        tl_registered_t reg;
        tl_err_t err =
            tl_registry_register(pg, subject, schema, strlen(schema), &reg, why, sizeof why);
        tl_gw_pg_release(gw, pg);
        if (err == TL_ERR_INVALID) {
            invalid_schema(resp, why);
        } else if (err == TL_ERR_CONFLICT) {
            snprintf(message, sizeof message,
                     "Schema being registered is incompatible with an earlier schema for"
                     " subject \"%s\": %s",
                     subject, why);
            reg_error(resp, 409, 409, message);
        } else if (err) {
            store_error(resp);
        } else {
            answer(resp, 200, json_pack("{s:I}", "id", (json_int_t)reg.id));
        }
    }
    json_decref(body);
}

void tl_h_registry_compatibility(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp)
{
    json_t *body = NULL;
    const char *subject = req->params[0];
    int version = 0;
    if (!subject_ok(subject, resp) || !version_ok(req->params[1], &version, resp))
        return;
    const char *schema = NULL;
    tl_pg_t *pg = schema_and_pg(gw, req, &body, &schema, resp);
    if (pg) {
        char why[WHY_MAX];
        tl_err_t err =
            tl_registry_check(pg, subject, version, schema, strlen(schema), why, sizeof why);
        tl_gw_pg_release(gw, pg);
        if (err == TL_ERR_INVALID) {
            invalid_schema(resp, why);
        } else if (err == TL_ERR_NOT_FOUND) {
            reg_error(resp, 404, version ? 40402 : 40401,
                      version ? "Version not found." : "Subject not found.");
        } else if (err == TL_OK || err == TL_ERR_CONFLICT) {
            json_t *j = json_pack("{s:b}", "is_compatible", err == TL_OK);
            if (err && why[0])
                json_object_set_new(j, "messages", json_pack("[s]", why));
            answer(resp, 200, j);
        } else {
            store_error(resp);
        }
    }
    json_decref(body);
}

/* GET /registry/config[/{subject}] */
void tl_h_registry_config_get(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp)
{
    const char *subject = req->params[0];
    if (subject && !subject_ok(subject, resp))
        return;
    const char *fallback = req->query(req->conn, "defaultToGlobal");
    tl_pg_t *pg = tl_gw_pg_acquire(gw);
    if (!pg) {
        store_error(resp);
        return;
    }
    char level[TL_COMPAT_LEVEL_MAX];
    bool own = false;
    tl_err_t err = tl_registry_level(pg, subject, level, &own);
    tl_gw_pg_release(gw, pg);
    if (err)
        store_error(resp);
    else if (subject && !own && !(fallback && !strcmp(fallback, "true")))
        reg_error(resp, 404, 40408, "Subject does not have subject-level compatibility configured");
    else
        answer(resp, 200, json_pack("{s:s}", "compatibilityLevel", level));
}

/* PUT /registry/config[/{subject}] {"compatibility"} */
void tl_h_registry_config_put(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp)
{
    const char *subject = req->params[0];
    if (subject && !subject_ok(subject, resp))
        return;
    json_t *body = json_loadb(req->body ? req->body : "", req->body_len, 0, NULL);
    const char *level = json_string_value(json_object_get(body, "compatibility"));
    if (!tl_compat_level_valid(level)) {
        reg_error(resp, 422, 42203,
                  "Invalid compatibility level. Valid values are NONE, BACKWARD, FORWARD, FULL,"
                  " BACKWARD_TRANSITIVE, FORWARD_TRANSITIVE, and FULL_TRANSITIVE");
        json_decref(body);
        return;
    }
    tl_pg_t *pg = tl_gw_pg_acquire(gw);
    tl_err_t err = pg ? tl_registry_set_level(pg, subject, level) : TL_ERR_UNAVAILABLE;
    if (pg)
        tl_gw_pg_release(gw, pg);
    if (err)
        store_error(resp);
    else
        answer(resp, 200, json_pack("{s:s}", "compatibility", level));
    json_decref(body);
}
