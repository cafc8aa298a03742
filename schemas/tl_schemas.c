#include "tl_schemas.h"

#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tl_codec.h"
#include "tl_http_client.h"
#include "tl_log.h"
#include "tl_map.h"

struct tl_registry {
    char *url;           /* an external registry's base URL; NULL: the store */
    char *authorization; /* its Authorization header value, or NULL */
    tl_event_type_t *types;
    size_t ntypes;
    pthread_mutex_t lock; /* guards by_id */
    tl_map_t by_id;       /* "id" -> tl_avro_schema_t*, owned */
};

/* The stored form: compact, key-sorted JSON, so equal schemas get one id. */
static char *schema_normal_form(const char *text, size_t len)
{
    json_t *j = json_loadb(text, len, 0, NULL);
    char *s = j ? json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(j);
    return s;
}

static void sha256_hex(const char *s, char out[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    EVP_Digest(s, strlen(s), md, &n, EVP_sha256(), NULL);
    for (unsigned int i = 0; i < n && i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

static const char *const sql_register =
    "WITH s AS (INSERT INTO registry_schemas(schema, fingerprint) VALUES ($1, $2) "
    "           ON CONFLICT (fingerprint) DO UPDATE SET fingerprint = EXCLUDED.fingerprint "
    "           RETURNING id), "
    "v AS (INSERT INTO registry_subjects(subject, version, schema_id) "
    "      SELECT $3, COALESCE((SELECT max(version) FROM registry_subjects WHERE subject = $3), 0) + 1, s.id "
    "      FROM s WHERE NOT EXISTS (SELECT 1 FROM registry_subjects x WHERE x.subject = $3 AND x.schema_id = s.id)) "
    "SELECT id FROM s";

static tl_err_t register_one(tl_pg_t *pg, tl_event_type_t *t, const char *normal)
{
    char fp[65] = {0}, subject[256];
    sha256_hex(normal, fp);
    snprintf(subject, sizeof subject, "%s-%s", t->topic, t->fullname);
    const char *params[] = {normal, fp, subject};
    tl_pg_res_t *res = NULL;
    tl_err_t err = tl_pg_exec(pg, sql_register, 3, params, &res);
    if (!err) {
        const char *id = tl_pg_get(res, 0, 0);
        t->id = id ? (uint32_t)strtoul(id, NULL, 10) : 0;
        err = id ? TL_OK : TL_ERR_DB;
    }
    tl_pg_res_free(res);
    return err;
}

#define REGISTRY_TIMEOUT_MS 10000

/* "<url><before><arg><after>" into buf; false when it does not fit. */
static bool registry_url(const tl_registry_t *r, char *buf, size_t size, const char *before,
                         const char *arg, const char *after)
{
    int n = snprintf(buf, size, "%s%s%s%s", r->url, before, arg, after);
    return n >= 0 && (size_t)n < size;
}

/* A built-in's registration with the external registry: its id. */
static tl_err_t register_remote(tl_registry_t *r, tl_event_type_t *t, const char *normal)
{
    char subject[256], url[1200];
    long status = 0;
    json_t *answer = NULL, *body = json_pack("{s:s}", "schema", normal);
    snprintf(subject, sizeof subject, "%s-%s", t->topic, t->fullname);
    tl_err_t err = body && registry_url(r, url, sizeof url, "/subjects/", subject, "/versions")
                       ? tl_http_client_json("POST", url, body, r->authorization,
                                             REGISTRY_TIMEOUT_MS, &status, &answer)
                       : TL_ERR_NOMEM;
    json_int_t id = json_integer_value(json_object_get(answer, "id"));
    if (!err && (status != 200 || id < 1 || id > INT32_MAX)) {
        /* a refusal (409 incompatible, 401/403) is no passing failure */
        tl_log_error("schema_register_refused",
                     json_pack("{s:s, s:i, s:I}", "subject", subject, "status", (int)status,
                               "error_code", json_integer_value(json_object_get(answer, "error_code"))));
        err = status >= 500 ? TL_ERR_UNAVAILABLE : TL_ERR_CONFLICT;
    }
    if (!err)
        t->id = (uint32_t)id;
    json_decref(body);
    json_decref(answer);
    return err;
}

tl_err_t tl_registry_open(tl_pg_t *pg, tl_registry_t **out)
{
    return tl_registry_open_with(pg, NULL, out);
}

tl_err_t tl_registry_open_with(tl_pg_t *pg, const tl_registry_cfg_t *cfg, tl_registry_t **out)
{
    tl_err_t err = TL_OK;
    bool in_tx = false;
    tl_registry_t *r = calloc(1, sizeof *r);
    if (!r)
        return TL_ERR_NOMEM;
    pthread_mutex_init(&r->lock, NULL);
    tl_map_init(&r->by_id);
    r->types = calloc(tl_schema_source_count, sizeof *r->types);
    if (!r->types) {
        err = TL_ERR_NOMEM;
        goto out;
    }
    if (cfg && cfg->url && *cfg->url) {
        size_t len = strlen(cfg->url);
        while (len && cfg->url[len - 1] == '/')
            len--;
        if (!(r->url = strndup(cfg->url, len))) {
            err = TL_ERR_NOMEM;
            goto out;
        }
        if (cfg->user_info && *cfg->user_info) { /* Confluent's basic.auth.user.info */
            tl_buf_t b;
            tl_buf_init(&b, 4096);
            err = tl_buf_puts(&b, "Basic ");
            if (!err)
                err = tl_b64_encode(&b, cfg->user_info, strlen(cfg->user_info));
            if (!err)
                err = tl_buf_append(&b, "", 1);
            r->authorization = err ? NULL : tl_buf_steal(&b, NULL);
            tl_buf_cleanup(&b);
            if (err)
                goto out;
        }
    }
    /* Serialise registrations across programs starting together. */
    if (!r->url &&
        (err = tl_pg_exec(pg, "BEGIN; SELECT pg_advisory_xact_lock(7201001)", 0, NULL, NULL)))
        goto out;
    in_tx = !r->url;
    for (size_t i = 0; i < tl_schema_source_count; i++) {
        const tl_schema_source_t *src = &tl_schema_sources[i];
        tl_event_type_t *t = &r->types[r->ntypes++];
        char *normal = schema_normal_form(src->avsc, src->len);
        t->name = src->name;
        snprintf(t->topic, sizeof t->topic, "trialog.%s.v1", src->area);
        err = normal ? tl_avro_schema_parse(normal, strlen(normal), &t->schema) : TL_ERR_MALFORMED;
        if (!err) {
            t->fullname = tl_avro_schema_fullname(t->schema);
            err = r->url ? register_remote(r, t, normal) : register_one(pg, t, normal);
        }
        free(normal);
        if (err) {
            tl_log_error("schema_register_failed", json_pack("{s:s}", "schema", src->name));
            goto out;
        }
    }
    if (in_tx)
        err = tl_pg_exec(pg, "COMMIT", 0, NULL, NULL);
    in_tx = false;
    /* the built-ins resolve by id without a query */
    for (size_t i = 0; !err && i < r->ntypes; i++) {
        const tl_schema_source_t *src = &tl_schema_sources[i];
        char *normal = schema_normal_form(src->avsc, src->len), key[16];
        tl_avro_schema_t *s = NULL;
        snprintf(key, sizeof key, "%u", r->types[i].id);
        err = normal ? tl_avro_schema_parse(normal, strlen(normal), &s) : TL_ERR_NOMEM;
        if (!err && tl_map_get(&r->by_id, key))
            tl_avro_schema_destroy(s); /* two built-ins with one text share an id */
        else if (!err && (err = tl_map_put(&r->by_id, key, s)))
            tl_avro_schema_destroy(s);
        free(normal);
    }
out:
    if (in_tx)
        tl_pg_exec(pg, "ROLLBACK", 0, NULL, NULL);
    if (err) {
        tl_registry_destroy(r);
        r = NULL;
    }
    *out = r;
    return err;
}

void tl_registry_destroy(tl_registry_t *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->ntypes; i++)
        tl_avro_schema_destroy(r->types[i].schema);
    for (size_t i = 0; i < r->by_id.cap; i++)
        if (r->by_id.keys[i])
            tl_avro_schema_destroy(r->by_id.vals[i]);
    tl_map_cleanup(&r->by_id);
    pthread_mutex_destroy(&r->lock);
    free(r->types);
    free(r->url);
    free(r->authorization);
    free(r);
}

const tl_event_type_t *tl_registry_type(const tl_registry_t *r, const char *name)
{
    for (size_t i = 0; i < r->ntypes; i++)
        if (!strcmp(r->types[i].name, name))
            return &r->types[i];
    return NULL;
}

static tl_err_t fetch_stored(tl_pg_t *pg, const char *key, tl_avro_schema_t **s)
{
    const char *params[] = {key};
    tl_pg_res_t *res = NULL;
    tl_err_t err =
        tl_pg_exec(pg, "SELECT schema FROM registry_schemas WHERE id = $1", 1, params, &res);
    if (!err) {
        const char *text = tl_pg_get(res, 0, 0);
        err = text ? tl_avro_schema_parse(text, strlen(text), s) : TL_ERR_UNKNOWN_SCHEMA;
    }
    tl_pg_res_free(res);
    return err;
}

/* GET <url>/schemas/ids/<id>: 404 is an unknown id; no answer, or a 5xx,
 * is the registry unavailable (retriable) */
static tl_err_t fetch_remote(const tl_registry_t *r, const char *key, tl_avro_schema_t **s)
{
    char url[1200];
    long status = 0;
    json_t *answer = NULL;
    tl_err_t err = registry_url(r, url, sizeof url, "/schemas/ids/", key, "")
                       ? tl_http_client_json("GET", url, NULL, r->authorization,
                                             REGISTRY_TIMEOUT_MS, &status, &answer)
                       : TL_ERR_NOMEM;
    const char *text = json_string_value(json_object_get(answer, "schema"));
    if (!err && status == 200 && text)
        err = tl_avro_schema_parse(text, strlen(text), s);
    else if (!err)
        err = status == 404 ? TL_ERR_UNKNOWN_SCHEMA : TL_ERR_UNAVAILABLE;
    json_decref(answer);
    return err;
}

tl_err_t tl_registry_resolve(tl_registry_t *r, tl_pg_t *pg, uint32_t id,
                             const tl_avro_schema_t **schema)
{
    char key[16];
    if (id == 0 || id > INT32_MAX) /* ids are positive int4 in the store */
        return TL_ERR_UNKNOWN_SCHEMA;
    snprintf(key, sizeof key, "%u", id);
    pthread_mutex_lock(&r->lock);
    tl_avro_schema_t *s = tl_map_get(&r->by_id, key);
    pthread_mutex_unlock(&r->lock);
    if (s) {
        *schema = s;
        return TL_OK;
    }
    tl_err_t err = r->url ? fetch_remote(r, key, &s) : fetch_stored(pg, key, &s);
    if (err)
        return err;
    pthread_mutex_lock(&r->lock);
    tl_avro_schema_t *other = tl_map_get(&r->by_id, key);
    if (other) {
        tl_avro_schema_destroy(s);
        s = other;
    } else if (tl_map_put(&r->by_id, key, s)) {
        tl_avro_schema_destroy(s);
        s = NULL;
    }
    pthread_mutex_unlock(&r->lock);
    if (!s)
        return TL_ERR_NOMEM;
    *schema = s;
    return TL_OK;
}

tl_err_t tl_registry_decode(tl_registry_t *r, tl_pg_t *pg, const void *msg, size_t len,
                            json_t **out, const char **fullname)
{
    uint32_t id;
    const void *datum;
    size_t dlen;
    const tl_avro_schema_t *schema = NULL;
    tl_err_t err = tl_frame_parse(msg, len, &id, &datum, &dlen);
    if (!err)
        err = tl_registry_resolve(r, pg, id, &schema);
    if (!err)
        err = tl_avro_decode(schema, datum, dlen, out);
    if (!err)
        *fullname = tl_avro_schema_fullname(schema);
    return err;
}

/* ---- the registry API's store: registration, compatibility, config ---- */

static const char *const levels[] = {"NONE",    "BACKWARD",           "BACKWARD_TRANSITIVE",
                                     "FORWARD", "FORWARD_TRANSITIVE", "FULL",
                                     "FULL_TRANSITIVE"};

bool tl_compat_level_valid(const char *level)
{
    for (size_t i = 0; level && i < sizeof levels / sizeof levels[0]; i++)
        if (!strcmp(levels[i], level))
            return true;
    return false;
}

tl_err_t tl_registry_level(tl_pg_t *pg, const char *subject, char level[TL_COMPAT_LEVEL_MAX],
                           bool *own)
{
    const char *params[] = {subject ? subject : ""};
    tl_pg_res_t *res = NULL;
    tl_err_t err = tl_pg_exec(pg,
                              "SELECT compatibility, subject <> '' FROM registry_config"
                              " WHERE subject IN ($1, '') ORDER BY subject DESC LIMIT 1",
                              1, params, &res);
    const char *v = err ? NULL : tl_pg_get(res, 0, 0);
    snprintf(level, TL_COMPAT_LEVEL_MAX, "%s", v ? v : TL_COMPAT_DEFAULT);
    if (own)
        *own = v && subject && *subject && !strcmp(tl_pg_get(res, 0, 1), "t");
    tl_pg_res_free(res);
    return err;
}

tl_err_t tl_registry_set_level(tl_pg_t *pg, const char *subject, const char *level)
{
    if (!tl_compat_level_valid(level))
        return TL_ERR_INVALID;
    const char *params[] = {subject ? subject : "", level};
    return tl_pg_exec(pg,
                      "INSERT INTO registry_config (subject, compatibility) VALUES ($1, $2)"
                      " ON CONFLICT (subject) DO UPDATE SET compatibility = EXCLUDED.compatibility,"
                      " updated_at = now()",
                      2, params, NULL);
}

/* Whether candidate may follow each of the schemas in res (column 0) under
 * level: backward (candidate reads them), forward (they read candidate).
 * The rows are in version order; a non-transitive level checks the last. */
static tl_err_t compatible_with(const char *level, const char *candidate, const tl_pg_res_t *res,
                                char *why, size_t why_size)
{
    bool backward = strstr(level, "BACKWARD") || strstr(level, "FULL");
    bool forward = strstr(level, "FORWARD") || strstr(level, "FULL");
    bool transitive = strstr(level, "TRANSITIVE") != NULL;
    int n = tl_pg_nrows(res);
    tl_err_t err = TL_OK;
    for (int i = transitive ? 0 : n - 1; i >= 0 && i < n && !err; i++) {
        const char *old = tl_pg_get(res, i, 0);
        if (backward)
            err = tl_avro_can_read(candidate, strlen(candidate), old, strlen(old), why, why_size);
        if (!err && forward)
            err = tl_avro_can_read(old, strlen(old), candidate, strlen(candidate), why, why_size);
    }
    return err;
}

/* Parses text as a schema the platform can use, into its normal form
 * (caller frees); NULL with why filled when it cannot. */
static char *usable_schema(const char *text, size_t len, char *why, size_t why_size)
{
    char *normal = schema_normal_form(text, len);
    tl_avro_schema_t *s = NULL;
    if (!normal || tl_avro_schema_parse(normal, strlen(normal), &s)) {
        snprintf(why, why_size, "%s",
                 normal ? "not an Avro schema this platform reads (bytes and fixed are not)"
                        : "not JSON");
        free(normal);
        return NULL;
    }
    tl_avro_schema_destroy(s);
    return normal;
}

static const char *const sql_versions =
    "SELECT s.schema, v.version, s.id FROM registry_subjects v"
    " JOIN registry_schemas s ON s.id = v.schema_id WHERE v.subject = $1 ORDER BY v.version";

tl_err_t tl_registry_register(tl_pg_t *pg, const char *subject, const char *text, size_t len,
                              tl_registered_t *out, char *why, size_t why_size)
{
    char level[TL_COMPAT_LEVEL_MAX], fp[65] = {0};
    char *normal = usable_schema(text, len, why, why_size);
    tl_pg_res_t *res = NULL;
    bool in_tx = false;
    tl_err_t err = normal ? TL_OK : TL_ERR_INVALID;
    memset(out, 0, sizeof *out);
    if (err)
        goto out;
    sha256_hex(normal, fp);
    const char *lock[] = {subject};
    /* one registration of a subject at a time, so versions stay dense and
     * every new one was checked against all before it */
    if ((err = tl_pg_exec(pg, "BEGIN", 0, NULL, NULL)))
        goto out;
    in_tx = true;
    err = tl_pg_exec(pg, "SELECT pg_advisory_xact_lock(7201002, hashtext($1))", 1, lock, NULL);
    if (!err)
        err = tl_registry_level(pg, subject, level, NULL);
    if (!err)
        err = tl_pg_exec(pg, sql_versions, 1, lock, &res);
    for (int i = 0; !err && i < tl_pg_nrows(res); i++) {
        if (!strcmp(tl_pg_get(res, i, 0), normal)) { /* registered already */
            out->version = (int)tl_pg_get_int(res, i, 1);
            out->id = (uint32_t)tl_pg_get_int(res, i, 2);
            out->existed = true;
            goto out;
        }
    }
    if (!err && strcmp(level, "NONE"))
        err = compatible_with(level, normal, res, why, why_size);
    if (!err) {
        const char *params[] = {normal, fp, subject};
        tl_pg_res_t *ins = NULL;
        err = tl_pg_exec(pg, sql_register, 3, params, &ins);
        out->id = err ? 0 : (uint32_t)tl_pg_get_int(ins, 0, 0);
        out->version = tl_pg_nrows(res) + 1;
        tl_pg_res_free(ins);
    }
    if (!err) {
        err = tl_pg_exec(pg, "COMMIT", 0, NULL, NULL);
        in_tx = err != TL_OK;
    }
out:
    if (in_tx)
        tl_pg_exec(pg, "ROLLBACK", 0, NULL, NULL);
    tl_pg_res_free(res);
    free(normal);
    return err;
}

tl_err_t tl_registry_check(tl_pg_t *pg, const char *subject, int version, const char *text,
                           size_t len, char *why, size_t why_size)
{
    char level[TL_COMPAT_LEVEL_MAX], v[16];
    char *normal = usable_schema(text, len, why, why_size);
    tl_pg_res_t *res = NULL;
    if (!normal)
        return TL_ERR_INVALID;
    snprintf(v, sizeof v, "%d", version);
    const char *params[] = {subject, v};
    /* the version asked for (0: the latest), as the only row */
    tl_err_t err = tl_registry_level(pg, subject, level, NULL);
    if (!err)
        err = tl_pg_exec(pg,
                         "SELECT s.schema FROM registry_subjects v"
                         " JOIN registry_schemas s ON s.id = v.schema_id WHERE v.subject = $1"
                         " AND ($2::int = 0 OR v.version = $2::int)"
                         " ORDER BY v.version DESC LIMIT 1",
                         2, params, &res);
    if (!err && !tl_pg_nrows(res))
        err = TL_ERR_NOT_FOUND;
    if (!err && strcmp(level, "NONE")) {
        /* against that one version, whatever the level's transitivity */
        char *one = strstr(level, "_TRANSITIVE");
        if (one)
            *one = '\0';
        err = compatible_with(level, normal, res, why, why_size);
    }
    tl_pg_res_free(res);
    free(normal);
    return err;
}
