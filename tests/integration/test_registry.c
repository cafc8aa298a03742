/* The schema registry API over HTTP (DESIGN.md §4, Confluent's REST subset):
 * the built-in schemas with the ids the topics carry, registration by a
 * connector with compatibility checks (BACKWARD_TRANSITIVE by default),
 * per-subject levels, and Confluent's error codes. */
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>

#include "harness.h"
#include "tl_codec.h"
#include "tl_schemas.h"

static tl_stack_t stack;
static char connector[80], analyst[80];

#define SUBJECT "trialog.ingest.octdevice.v1-org.example.OctScan"
#define REC(fields)                                                                                \
    "{\"type\":\"record\",\"name\":\"OctScan\",\"namespace\":\"org.example\",\"fields\":[" fields  \
    "]}"
#define F_CODE "{\"name\":\"participant_code\",\"type\":\"string\"}"
#define F_CST "{\"name\":\"cst_um\",\"type\":\"int\"}"
#define F_EYE_OPT "{\"name\":\"eye\",\"type\":[\"null\",\"string\"],\"default\":null}"
#define F_EYE_DEF "{\"name\":\"eye\",\"type\":\"string\",\"default\":\"OD\"}"
#define F_EYE_REQ "{\"name\":\"eye\",\"type\":\"string\"}"

static int setup(void **state)
{
    (void)state;
    tl_stack_start(&stack, "registry");
    tl_stack_token(&stack, "connector", NULL, connector);
    char study[40], site[40]; /* an analyst is granted a study */
    tl_stack_study(&stack, "REG-1", study, site);
    tl_stack_token(&stack, "analyst", study, analyst);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tl_stack_stop(&stack);
    return 0;
}

/* A registry call: asserts the status and Confluent's content type; the
 * body (caller json_decref()s). */
static json_t *reg(const char *token, const char *method, const char *path, const char *body,
                   long want)
{
    static const char *const ct[] = {"Content-Type: application/vnd.schemaregistry.v1+json", NULL};
    tl_http_resp_t r = tl_http_as(&stack, token, method, path, body, body ? ct : NULL);
    if (r.status != want)
        fail_msg("%s %s: %ld, want %ld", method, path, r.status, want);
    if (!strstr(r.ctype, "application/vnd.schemaregistry.v1+json"))
        fail_msg("%s %s: content type %s", method, path, r.ctype);
    json_t *b = r.body;
    r.body = NULL;
    tl_http_free(&r);
    return b;
}

static long code_of(const json_t *b)
{
    return (long)json_integer_value(json_object_get(b, "error_code"));
}

/* {"schema": "<schema as a string>"} */
static char *body_of(const char *schema)
{
    json_t *b = json_pack("{s:s}", "schema", schema);
    char *s = json_dumps(b, JSON_COMPACT);
    json_decref(b);
    return s;
}

static long register_schema(const char *token, const char *subject, const char *schema, long want,
                            json_t **out)
{
    char path[300], *body = body_of(schema);
    snprintf(path, sizeof path, "/registry/subjects/%s/versions", subject);
    json_t *b = reg(token, "POST", path, body, want);
    free(body);
    long id = (long)json_integer_value(json_object_get(b, "id"));
    if (out)
        *out = b;
    else
        json_decref(b);
    return id;
}

static void test_builtins_by_id(void **state)
{
    (void)state;
    json_t *subjects = reg(analyst, "GET", "/registry/subjects", NULL, 200);
    const char *subject = "trialog.participant.v1-org.trialog.FormSubmitted";
    bool listed = false;
    size_t i;
    json_t *s;
    json_array_foreach(subjects, i, s) listed = listed || !strcmp(json_string_value(s), subject);
    assert_true(listed);
    json_decref(subjects);

    char path[300];
    snprintf(path, sizeof path, "/registry/subjects/%s/versions", subject);
    json_t *v = reg(analyst, "GET", path, NULL, 200);
    assert_int_equal(json_array_size(v), 1);
    json_decref(v);
    snprintf(path, sizeof path, "/registry/subjects/%s/versions/latest", subject);
    json_t *latest = reg(analyst, "GET", path, NULL, 200);
    long id = (long)json_integer_value(json_object_get(latest, "id"));
    assert_int_equal(json_integer_value(json_object_get(latest, "version")), 1);
    /* the id is the one the topic's frames carry */
    snprintf(path, sizeof path,
             "SELECT id FROM registry_subjects v JOIN registry_schemas s ON s.id = v.schema_id"
             " WHERE v.subject = '%s'",
             subject);
    assert_int_equal(tl_sql_int(&stack, path), id);
    snprintf(path, sizeof path, "/registry/schemas/ids/%ld", id);
    json_t *by_id = reg(connector, "GET", path, NULL, 200);
    assert_string_equal(json_string_value(json_object_get(by_id, "schema")),
                        json_string_value(json_object_get(latest, "schema")));
    json_t *parsed = json_loads(json_string_value(json_object_get(by_id, "schema")), 0, NULL);
    assert_string_equal(json_string_value(json_object_get(parsed, "name")), "FormSubmitted");
    json_decref(parsed);
    json_decref(by_id);
    json_decref(latest);

    /* Confluent's error codes */
    json_t *e = reg(analyst, "GET", "/registry/subjects/no.such-subject/versions", NULL, 404);
    assert_int_equal(code_of(e), 40401);
    json_decref(e);
    snprintf(path, sizeof path, "/registry/subjects/%s/versions/99", subject);
    e = reg(analyst, "GET", path, NULL, 404);
    assert_int_equal(code_of(e), 40402);
    json_decref(e);
    snprintf(path, sizeof path, "/registry/subjects/%s/versions/first", subject);
    e = reg(analyst, "GET", path, NULL, 422);
    assert_int_equal(code_of(e), 42202);
    json_decref(e);
    e = reg(analyst, "GET", "/registry/schemas/ids/999999", NULL, 404);
    assert_int_equal(code_of(e), 40403);
    json_decref(e);
    /* no credentials: 401 in the same shape */
    e = reg(NULL, "GET", "/registry/subjects", NULL, 401);
    assert_int_equal(code_of(e), 40101);
    json_decref(e);
}

static void test_register_and_evolve(void **state)
{
    (void)state;
    char path[300];
    long v1 = register_schema(connector, SUBJECT, REC(F_CODE "," F_CST), 200, NULL);
    assert_true(v1 > 0);
    /* the same schema again: the same id, no new version */
    assert_int_equal(register_schema(connector, SUBJECT, REC(F_CODE "," F_CST), 200, NULL), v1);
    /* a field with a default: compatible, version 2 */
    long v2 = register_schema(connector, SUBJECT, REC(F_CODE "," F_CST "," F_EYE_DEF), 200, NULL);
    assert_true(v2 > v1);
    snprintf(path, sizeof path, "/registry/subjects/%s/versions", SUBJECT);
    json_t *versions = reg(analyst, "GET", path, NULL, 200);
    assert_int_equal(json_array_size(versions), 2);
    json_decref(versions);

    /* a new field without a default cannot read version 1's data: 409 */
    json_t *e = NULL;
    register_schema(connector, SUBJECT, REC(F_CODE "," F_CST "," F_EYE_REQ), 409, &e);
    assert_int_equal(code_of(e), 409);
    assert_non_null(strstr(json_string_value(json_object_get(e, "message")), "eye"));
    json_decref(e);
    /* the compatibility check says the same without registering; against
     * version 2 alone it would do (it has the field) */
    char *body = body_of(REC(F_CODE "," F_CST "," F_EYE_REQ));
    snprintf(path, sizeof path, "/registry/compatibility/subjects/%s/versions/1", SUBJECT);
    json_t *c = reg(connector, "POST", path, body, 200);
    assert_false(json_is_true(json_object_get(c, "is_compatible")));
    json_decref(c);
    snprintf(path, sizeof path, "/registry/compatibility/subjects/%s/versions/latest", SUBJECT);
    c = reg(connector, "POST", path, body, 200);
    assert_true(json_is_true(json_object_get(c, "is_compatible")));
    json_decref(c);

    /* BACKWARD_TRANSITIVE is the default; BACKWARD (the latest only) for
     * this subject lets it through */
    json_t *cfg = reg(analyst, "GET", "/registry/config", NULL, 200);
    assert_string_equal(json_string_value(json_object_get(cfg, "compatibilityLevel")),
                        "BACKWARD_TRANSITIVE");
    json_decref(cfg);
    snprintf(path, sizeof path, "/registry/config/%s", SUBJECT);
    e = reg(analyst, "GET", path, NULL, 404);
    assert_int_equal(code_of(e), 40408);
    json_decref(e);
    e = reg(connector, "PUT", path, "{\"compatibility\":\"BACKWARD\"}", 403);
    assert_int_equal(code_of(e), 40301);
    json_decref(e);
    e = reg(stack.token, "PUT", path, "{\"compatibility\":\"SIDEWAYS\"}", 422);
    assert_int_equal(code_of(e), 42203);
    json_decref(e);
    cfg = reg(stack.token, "PUT", path, "{\"compatibility\":\"BACKWARD\"}", 200);
    assert_string_equal(json_string_value(json_object_get(cfg, "compatibility")), "BACKWARD");
    json_decref(cfg);
    cfg = reg(analyst, "GET", path, NULL, 200);
    assert_string_equal(json_string_value(json_object_get(cfg, "compatibilityLevel")), "BACKWARD");
    json_decref(cfg);
    long v3 = register_schema(connector, SUBJECT, REC(F_CODE "," F_CST "," F_EYE_REQ), 200, NULL);
    assert_true(v3 > v2);

    /* the lookup of a schema under the subject */
    snprintf(path, sizeof path, "/registry/subjects/%s", SUBJECT);
    json_t *found = reg(analyst, "POST", path, body, 200);
    assert_int_equal(json_integer_value(json_object_get(found, "id")), v3);
    assert_int_equal(json_integer_value(json_object_get(found, "version")), 3);
    json_decref(found);
    free(body);
}

static void test_refusals(void **state)
{
    (void)state;
    json_t *e = NULL;
    /* not a schema; not Avro; a type the platform does not read */
    register_schema(connector, SUBJECT, "{\"type\":\"record\"", 422, &e);
    assert_int_equal(code_of(e), 42201);
    json_decref(e);
    e = reg(connector, "POST", "/registry/subjects/" SUBJECT "/versions",
            "{\"schema\":\"syntax = \\\"proto3\\\";\",\"schemaType\":\"PROTOBUF\"}", 422);
    assert_int_equal(code_of(e), 42201);
    json_decref(e);
    register_schema(connector, "trialog.ingest.x.v1-org.example.Raw",
                    "{\"type\":\"record\",\"name\":\"Raw\",\"fields\":[{\"name\":\"b\",\"type\":"
                    "\"bytes\"}]}",
                    422, &e);
    assert_int_equal(code_of(e), 42201);
    json_decref(e);
    /* a connector never changes Trialog's own events; an analyst registers nothing */
    register_schema(connector, "trialog.participant.v1-org.trialog.FormSubmitted", REC(F_CODE), 403,
                    &e);
    assert_int_equal(code_of(e), 40301);
    json_decref(e);
    register_schema(analyst, SUBJECT, REC(F_CODE), 403, &e);
    assert_int_equal(code_of(e), 40301);
    json_decref(e);
}

/* Kafka clients send the token as a Basic password (basic.auth.user.info). */
static void test_basic_auth(void **state)
{
    (void)state;
    char userpass[128], header[256];
    tl_buf_t b64;
    snprintf(userpass, sizeof userpass, "analyst:%s", analyst);
    tl_buf_init(&b64, 1024);
    assert_int_equal(tl_b64_encode(&b64, userpass, strlen(userpass)), TL_OK);
    assert_int_equal(tl_buf_append(&b64, "", 1), TL_OK);
    snprintf(header, sizeof header, "Authorization: Basic %s", b64.data);
    tl_buf_cleanup(&b64);
    const char *const headers[] = {header, NULL};
    tl_http_resp_t r = tl_http_as(&stack, NULL, "GET", "/registry/subjects", NULL, headers);
    assert_int_equal(r.status, 200);
    tl_http_free(&r);
    const char *const wrong[] = {"Authorization: Basic YW5hbHlzdDpub3BlOm5vcGU=", NULL};
    r = tl_http_as(&stack, NULL, "GET", "/registry/subjects", NULL, wrong);
    assert_int_equal(r.status, 401);
    tl_http_free(&r);
}

/* TRIALOG_SCHEMA_REGISTRY_URL: a second gateway on the same database and
 * log, whose schemas come from the first one's registry API over HTTP; and
 * the registry client itself, with its failures. */
static void test_external_registry(void **state)
{
    (void)state;
    char url[128], info[128], sub[600];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/registry", stack.port);
    snprintf(info, sizeof info, "trialog:%s", stack.token);
    tl_registry_cfg_t cfg = {.url = url, .user_info = info};
    tl_registry_t *reg = NULL;
    assert_int_equal(tl_registry_open_with(NULL, &cfg, &reg), TL_OK);
    /* the same ids as the store's */
    const tl_event_type_t *t = tl_registry_type(reg, "StudyRegistered");
    assert_non_null(t);
    assert_int_equal(t->id, tl_sql_int(&stack, "SELECT v.schema_id FROM registry_subjects v"
                                               " WHERE v.subject = 'trialog.protocol.v1-"
                                               "org.trialog.StudyRegistered'"));
    /* an id it has not seen: fetched; one nobody has: unknown */
    long id = register_schema(connector, "trialog.ingest.ext.v1-org.example.OctScan",
                              REC(F_CODE "," F_CST), 200, NULL);
    const tl_avro_schema_t *s = NULL;
    assert_int_equal(tl_registry_resolve(reg, NULL, (uint32_t)id, &s), TL_OK);
    assert_string_equal(tl_avro_schema_fullname(s), "org.example.OctScan");
    assert_int_equal(tl_registry_resolve(reg, NULL, 999999, &s), TL_ERR_UNKNOWN_SCHEMA);
    tl_registry_destroy(reg);
    /* a registry that refuses (no such token), or is not there */
    tl_registry_cfg_t bad = {.url = url, .user_info = "trialog:tlk_nope"};
    assert_int_equal(tl_registry_open_with(NULL, &bad, &reg), TL_ERR_CONFLICT);
    assert_null(reg);
    char closed[64];
    snprintf(closed, sizeof closed, "http://127.0.0.1:%d/registry", tl_free_port());
    tl_registry_cfg_t gone = {.url = closed};
    assert_int_equal(tl_registry_open_with(NULL, &gone, &reg), TL_ERR_UNAVAILABLE);

    /* a whole gateway so configured: commands and reads end to end */
    tl_stack_t b = stack;
    b.port = tl_free_port();
    snprintf(b.dir + strlen(b.dir), sizeof b.dir - strlen(b.dir), "/external");
    mkdir(b.dir, 0755);
    snprintf(b.gateway_env[0], sizeof b.gateway_env[0], "TRIALOG_SCHEMA_REGISTRY_URL=%s", url);
    snprintf(b.gateway_env[1], sizeof b.gateway_env[1], "TRIALOG_SCHEMA_REGISTRY_USER_INFO=%s",
             info);
    tl_stack_start_gateway(&b);
    char study[40], site[40];
    tl_stack_study(&b, "EXT-1", study, site);
    assert_int_equal(tl_stack_enrol(&b, study, site, "EXT-00001", false), 201);
    snprintf(sub, sizeof sub,
             "SELECT count(*) FROM audit_log WHERE event_type = 'org.trialog.ParticipantEnrolled'"
             " AND key = convert_to((SELECT id::text FROM participants"
             " WHERE participant_code = 'EXT-00001'), 'UTF8')");
    assert_true(tl_wait_count(&stack, sub, 1, 20000));
    char path[200], pid[40];
    tl_pg_res_t *res = NULL;
    assert_int_equal(tl_pg_exec(stack.pg,
                                "SELECT id::text FROM participants WHERE participant_code ="
                                " 'EXT-00001'",
                                0, NULL, &res),
                     TL_OK);
    snprintf(pid, sizeof pid, "%s", tl_pg_get(res, 0, 0));
    tl_pg_res_free(res);
    snprintf(path, sizeof path, "/v1/participants/%s/history", pid);
    tl_http_resp_t r = tl_http(&b, "GET", path, NULL, NULL, true);
    assert_int_equal(r.status, 200);
    assert_int_equal(json_array_size(json_object_get(r.body, "items")), 1);
    tl_http_free(&r);
    assert_int_equal(tl_stack_kill(&b.gateway, SIGTERM), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_builtins_by_id),
        cmocka_unit_test(test_register_and_evolve),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_basic_auth),
        cmocka_unit_test(test_external_registry),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
