/* tl_schemas: the built-in event types and the schema store in PostgreSQL.
 *
 * Ids are registry-global (one id per distinct schema text) and versions are
 * per subject, with TopicRecordNameStrategy: "<topic>-org.trialog.<Name>".
 * The store is what the registry REST API serves and what decoders resolve
 * the 4-byte schema id of every framed message against. */
#ifndef TL_SCHEMAS_H
#define TL_SCHEMAS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tl_avro.h"
#include "tl_err.h"
#include "tl_pg.h"

/* Compiled in from schemas/<area>/<Name>.avsc (generated catalog). */
typedef struct {
    const char *area; /* "protocol" -> topic trialog.protocol.v1 */
    const char *name; /* "StudyRegistered" */
    const char *avsc;
    size_t len;
} tl_schema_source_t;

extern const tl_schema_source_t tl_schema_sources[];
extern const size_t tl_schema_source_count;

typedef struct {
    const char *name;     /* "StudyRegistered" */
    const char *fullname; /* "org.trialog.StudyRegistered" */
    char topic[64];       /* "trialog.protocol.v1" */
    uint32_t id;          /* registry id of the built-in version */
    tl_avro_schema_t *schema;
} tl_event_type_t;

typedef struct tl_registry tl_registry_t;

/* Parses the built-in schemas and registers them in the store (idempotent,
 * safe to run from several programs at once). Caller frees with
 * tl_registry_destroy. pg is borrowed for this call only. */
tl_err_t tl_registry_open(tl_pg_t *pg, tl_registry_t **out);
/* Where the schemas live: an external Confluent-compatible registry
 * (TRIALOG_SCHEMA_REGISTRY_URL, e.g. http://host:8081 or another Trialog's
 * http://host:8080/registry) instead of the store. Borrowed. */
typedef struct {
    const char *url;       /* NULL or "": the store in PostgreSQL */
    const char *user_info; /* "user:password" for HTTP Basic (Confluent's
                            * basic.auth.user.info; Trialog takes its token as
                            * the password); NULL: none */
} tl_registry_cfg_t;
/* tl_registry_open with the built-ins registered in, and ids resolved
 * through, the registry cfg names (NULL: the store): one code path for
 * both, so every component frames and decodes with the same ids. A
 * registration the external registry refuses (incompatible, not allowed)
 * is TL_ERR_CONFLICT, one it cannot answer TL_ERR_UNAVAILABLE. */
/* The two settings every program that frames or decodes events takes
 * (entries of its tl_config_var_t table; cfgp a tl_registry_cfg_t *). */
#define TL_REGISTRY_CONFIG_VARS(cfgp)                                                            \
    {"TRIALOG_SCHEMA_REGISTRY_URL", TL_CFG_STR, "", 0, 1000, false,                              \
     "an external Confluent-compatible schema registry (empty: the store in PostgreSQL)",        \
     &(cfgp)->url},                                                                              \
    {                                                                                            \
        "TRIALOG_SCHEMA_REGISTRY_USER_INFO", TL_CFG_STR, "", 0, 1000, true,                      \
            "user:password for the external registry (HTTP Basic)", &(cfgp)->user_info          \
    }
tl_err_t tl_registry_open_with(tl_pg_t *pg, const tl_registry_cfg_t *cfg, tl_registry_t **out);
void tl_registry_destroy(tl_registry_t *r);
/* Built-in type by short name, or NULL. Borrowed; thread-safe. */
const tl_event_type_t *tl_registry_type(const tl_registry_t *r, const char *name);
/* Resolves a schema id to its parsed schema, from the cache or the store
 * (pg borrowed). Unknown id -> TL_ERR_UNKNOWN_SCHEMA. The schema is borrowed
 * and lives as long as r. Thread-safe. */
tl_err_t tl_registry_resolve(tl_registry_t *r, tl_pg_t *pg, uint32_t id,
                             const tl_avro_schema_t **schema);

/* Decodes a framed message (Confluent V0) into a JSON record; caller
 * json_decref()s *out. *fullname is borrowed from the schema. */
tl_err_t tl_registry_decode(tl_registry_t *r, tl_pg_t *pg, const void *msg, size_t len,
                            json_t **out, const char **fullname);

/* ---- the schema registry API's store (docs/ANALYSTS.md, DESIGN.md §4) ---- */

/* Compatibility levels, as Confluent names them; the default when neither
 * the subject nor the registry sets one. */
#define TL_COMPAT_DEFAULT "BACKWARD_TRANSITIVE"
#define TL_COMPAT_LEVEL_MAX 32
bool tl_compat_level_valid(const char *level);
/* The level that applies to subject (NULL: the registry's own) into level;
 * *own (may be NULL) tells whether the subject sets it itself. */
tl_err_t tl_registry_level(tl_pg_t *pg, const char *subject, char level[TL_COMPAT_LEVEL_MAX],
                           bool *own);
/* Sets subject's level (NULL: the registry's). TL_ERR_INVALID: no level. */
tl_err_t tl_registry_set_level(tl_pg_t *pg, const char *subject, const char *level);

typedef struct {
    uint32_t id;  /* registry-global */
    int version;  /* within the subject */
    bool existed; /* the subject had the schema already */
} tl_registered_t;

/* Registers schema text under subject, unless it is there already (then
 * its id and version). It must parse as a schema the platform reads and be
 * compatible with the subject's versions as the subject's level says.
 * TL_ERR_INVALID: not such a schema; TL_ERR_CONFLICT: incompatible. why
 * (may be empty) says which, naming schema members only. pg is borrowed and
 * must not be in a transaction. */
tl_err_t tl_registry_register(tl_pg_t *pg, const char *subject, const char *text, size_t len,
                              tl_registered_t *out, char *why, size_t why_size);
/* Whether text could follow version (0: the latest) of subject under its
 * level, judged against that version alone: TL_OK, TL_ERR_CONFLICT,
 * TL_ERR_INVALID, TL_ERR_NOT_FOUND (no such subject or version). */
tl_err_t tl_registry_check(tl_pg_t *pg, const char *subject, int version, const char *text,
                           size_t len, char *why, size_t why_size);

#endif
