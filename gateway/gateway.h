/* The gateway's shared types: a request and response independent of the
 * HTTP library, the process-wide context, and the route table. */
#ifndef TL_GATEWAY_H
#define TL_GATEWAY_H

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "access.h"
#include "backpressure.h"
#include "edge.h"
#include "idempotency.h"
#include "reasons.h"
#include "schedules.h"
#include "tl_date.h"
#include "tl_err.h"
#include "tl_pg.h"
#include "tl_producer.h"
#include "tl_schemas.h"
#include "waiter.h"

#define TL_BODY_MAX (1024 * 1024)
/* How answers are written: 15 significant digits print the decimals
 * PostgreSQL computed (0.9231) as they are, not as their nearest double. */
#define TL_JSON_DUMP_FLAGS (JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(15))
#define TL_ROUTE_PARAMS 4
#define TL_LOCK_STRIPES 256

typedef struct {
    long port;
    const char *http_bind; /* an IP literal (edge.h) */
    long max_connections;
    long max_connections_per_ip; /* 0: no cap */
    long http_timeout_s;
    long header_timeout_s;
    const char *cors_origins; /* parsed into tl_gw_t.cors at start */
    long pg_pool;
    long ryw_timeout_ms;
    long produce_timeout_ms;
    long archive_max_lag;
    long idempotency_hours; /* how long a key binds at least */
    /* signing credentials (docs/SECURITY.md) */
    long signing_max_failures;    /* consecutive failures that lock a credential */
    long signing_credential_days; /* a credential's life */
    long signing_code_hours;      /* an approved enrolment's one-time code's life */
    long signing_concurrency;     /* password checks at once, in all */
    const char *brokers;
    const char *pg_dsn;
    const char *pg_schema;
    const char *release_dir; /* where the release export writes (release_export.h) */
    tl_registry_cfg_t registry;
    bool debug;
} tl_gw_config_t;

/* What the HTTP edge (http.c) counts of requests that never reach the
 * router, for /metrics. */
typedef struct {
    atomic_ullong library_answers[6]; /* libmicrohttpd's own answers, by status class */
    atomic_ullong header_timeouts;    /* headers not whole within the header timeout */
} tl_http_stats_t;

typedef struct {
    tl_gw_config_t cfg;
    tl_registry_t *registry;
    tl_kafka_producer_t *kafka;
    tl_producer_t *producer;
    tl_waiter_t *waiter;
    tl_bp_t *bp;
    struct tl_gw_pool *pool;
    struct tl_auth_cache *auth;       /* authenticated tokens (auth.c) */
    struct tl_vtcache *vtcache;       /* studies' visit types (vtcache.c) */
    struct tl_sign_guard *sign_guard; /* password checks in progress (sign_guard.c) */
    atomic_uint idem_claims;          /* Idempotency-Key claims, for pruning (idempotency.c) */
    atomic_ullong answered[6];        /* responses of the router by status class (index 1-5) */
    atomic_ullong refused[2];         /* 401 and 403 answers of the router */
    tl_http_stats_t http;             /* what the HTTP edge saw that the router never did */
    tl_cors_t cors;                   /* origins that may call from a browser; none: no CORS */
    pthread_mutex_t stripes[TL_LOCK_STRIPES];
} tl_gw_t;

/* Who sends a request: the principal its bearer token belongs to. */
typedef struct {
    char id[TL_UUID_STRLEN];
    int role; /* tl_role_t */
    size_t nsites;
    char sites[TL_PRINCIPAL_SITES_MAX][TL_UUID_STRLEN];
    size_t nstudies; /* an analyst's studies, the only ones it sees */
    char studies[TL_PRINCIPAL_STUDIES_MAX][TL_UUID_STRLEN];
    char token_issued_by[TL_ACTOR_ID_MAX]; /* who issued the bearer token ("" unknown) */
} tl_actor_t;

typedef struct {
    const char *method;
    const char *path;
    const char *body; /* NUL-terminated, body_len bytes */
    size_t body_len;
    const char *content_type;
    const char *authorization;
    const char *idempotency_key;
    const char *prefer;
    const char *correlation_id;
    const char *origin;                  /* Origin, for CORS */
    const char *cors_method;             /* Access-Control-Request-Method: a preflight */
    const char *params[TL_ROUTE_PARAMS]; /* {x} segments of the route, in order */
    /* query string lookup, NULL when absent */
    const char *(*query)(void *conn, const char *key);
    /* calls fn with the name of each query parameter, in order, while it
     * returns true (NULL: the request has no query string to walk) */
    void (*query_names)(void *conn, bool (*fn)(void *ctx, const char *name), void *ctx);
    void *conn;
    /* set by authentication */
    const char *actor_id;   /* actor.id */
    const char *actor_role; /* actor.role's name */
    tl_actor_t actor;
    tl_idem_t idem; /* its Idempotency-Key, once a command claimed it */
} tl_req_t;

typedef struct {
    int status;
    json_t *body; /* owned */
    bool problem; /* application/problem+json */
    char location[256];
    int retry_after;          /* seconds; 0: none */
    bool replayed;            /* Idempotent-Replayed: true */
    char allow[64];           /* Allow, with 405 and OPTIONS */
    bool no_store;            /* Cache-Control: no-store (authenticated answers, 401, 403) */
    bool close;               /* Connection: close: the connection ends with this answer */
    const char *authenticate; /* static: WWW-Authenticate, with 401 */
    /* CORS (static strings): the allowed origin echoed back, Vary: Origin,
     * and for a preflight the methods (allow) and headers it may use */
    const char *cors_origin;
    bool cors_vary;
    bool cors_preflight;
    const char *content_type; /* static; NULL: application/json or problem+json */
    char *text;               /* owned: a body that is not JSON, sent as content_type */
    /* a file as the body (a release's files): file_fd + 1, so that a zeroed
     * response has none; the fd is owned and closed once sent */
    int file_fd1;
    uint64_t file_size;
    char disposition[192]; /* Content-Disposition, or "" */
    /* a member of body shown once (a new token): never stored for a replay */
    const char *shown_once;
} tl_resp_t;

typedef void (*tl_handler_fn)(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp);

/* What a route's first {x} segment is, for site scoping (docs/SECURITY.md):
 * a coordinator, clinician or monitor reaches only studies where it has a
 * site and participants of its sites, and a non-admin only itself among
 * principals; anything else answers 404, as if it did not exist. */
typedef enum {
    TL_SCOPE_NONE,        /* nothing to scope */
    TL_SCOPE_STUDY,       /* {study} */
    TL_SCOPE_PARTICIPANT, /* {participant} */
    TL_SCOPE_SELF,        /* {principal} */
    TL_SCOPE_FORM,        /* {form}: its participant's site */
} tl_scope_t;

#define TL_PUBLIC 0u /* roles of a route anyone may call, unauthenticated */

typedef struct {
    const char *method;
    const char *pattern; /* "/v1/studies/{id}/sites" */
    tl_handler_fn handler;
    unsigned roles; /* TL_ROLE_BIT()s allowed; TL_PUBLIC: no authentication */
    tl_scope_t scope;
    /* the query parameters it reads, comma-separated ("site,status,limit");
     * NULL: none. Any other answers 400 invalid-query before the handler. */
    const char *query;
} tl_route_t;

/* The route table (routes.c), which is also the permission table: every
 * route names its roles and scope. tl_gw_dispatch matches, authenticates,
 * authorises, then calls the handler. */
const tl_route_t *tl_gw_routes(size_t *n);
void tl_gw_dispatch(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp);
/* Whether name is one of the comma-separated names in accepted (NULL:
 * none); pure, for the route table's query lists. */
bool tl_gw_query_known(const char *accepted, const char *name);

/* problem.c: fills resp with the RFC 9457 problem of a reason (reasons.h:
 * its status, type and title). detail: a sentence about this occurrence or
 * NULL; errors: a JSON array of field errors or NULL (taken over). */
void tl_problem_r(tl_resp_t *resp, tl_reason_t why, const char *detail, json_t *errors);
/* The problem of a fold's refusal (cmd->reason): the reason's row, or 409
 * conflict naming a word the table does not know. */
void tl_problem_refused(tl_resp_t *resp, const char *fold_reason);
/* 400 invalid-query with the field errors of a query string (taken over). */
void tl_problem_query(tl_resp_t *resp, json_t *errors);
/* Maps an internal error to 503 / 500 etc. */
void tl_problem_from_err(tl_resp_t *resp, tl_err_t err);
/* The body of a problem response, as JSON text; caller frees. */
char *tl_problem_render(const tl_resp_t *resp);

/* Sets up the connection pool and the command locks; tl_gw_cleanup undoes it. */
tl_err_t tl_gw_init(tl_gw_t *gw);
void tl_gw_cleanup(tl_gw_t *gw);
/* Runs one statement on a pooled PostgreSQL connection (cfg.pg_pool of them,
 * made on first use, remade when broken; a request waits for a free one).
 * TL_ERR_UNAVAILABLE when the database is. res as for tl_pg_exec. */
tl_err_t tl_gw_exec(tl_gw_t *gw, const char *sql, int n, const char *const *params,
                    tl_pg_res_t **res);
/* The same for a statement that reads a few rows by key (a command's
 * checks and outcome): in its own transaction, combined with the quick
 * statements other threads are waiting to run into one round trip
 * (context.c), so a slow one would hold them up. sql must be a single
 * statement; params are borrowed until it returns. TL_ERR_UNAVAILABLE when
 * the database is, or no connection came free within 5 s. */
tl_err_t tl_gw_exec_quick(tl_gw_t *gw, const char *sql, int n, const char *const *params,
                          tl_pg_res_t **res);
/* Statements tl_gw_exec_quick ran and the round trips they took, since
 * start. */
void tl_gw_pool_stats(tl_gw_t *gw, uint64_t *statements, uint64_t *round_trips);
/* A pooled connection for work of several statements (a transaction):
 * NULL when none is to be had; give it back with tl_gw_pg_release. */
tl_pg_t *tl_gw_pg_acquire(tl_gw_t *gw);
void tl_gw_pg_release(tl_gw_t *gw, tl_pg_t *pg);
/* Decodes a framed event from the log (tl_registry_decode on a pooled
 * connection); caller json_decref()s *out. */
tl_err_t tl_gw_decode(tl_gw_t *gw, const void *msg, size_t len, json_t **out,
                      const char **fullname);
/* Serialises commands on one aggregate within this process. */
pthread_mutex_t *tl_gw_stripe(tl_gw_t *gw, const char *key);

/* ---- authentication and authorisation (auth.c) ---- */

tl_err_t tl_auth_init(tl_gw_t *gw);
void tl_auth_cleanup(tl_gw_t *gw);
/* Fills req->actor from its bearer token; false: resp holds the 401 (or a
 * 503 when the database is unavailable). */
bool tl_auth_authenticate(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp);
/* Whether the actor may reach the resource route->scope names in
 * req->params[0]; false: resp holds the 404 (or 503). */
bool tl_auth_in_scope(tl_gw_t *gw, const tl_route_t *route, tl_req_t *req, tl_resp_t *resp);
/* The actor's sites as a uuid[] literal into buf, or NULL when it is not
 * site-scoped (it sees every site): a parameter for "site_id = ANY($n)". */
const char *tl_auth_sites_param(const tl_req_t *req, char *buf, size_t size);
/* Whether a site-scoped actor works at site (always true otherwise). */
bool tl_auth_has_site(const tl_req_t *req, const char *site_id);
#define TL_SITES_PARAM_LEN (TL_PRINCIPAL_SITES_MAX * TL_UUID_STRLEN + 3)
/* An analyst's studies as a uuid[] literal into buf, or NULL for any other
 * role (no bound by study): a parameter for "study_id = ANY($n)". */
const char *tl_auth_studies_param(const tl_req_t *req, char *buf, size_t size);
#define TL_STUDIES_PARAM_LEN (TL_PRINCIPAL_STUDIES_MAX * TL_UUID_STRLEN + 3)
/* Whether an analyst is granted study (always true for other roles); false:
 * resp holds the 403. */
bool tl_auth_study_granted(const tl_req_t *req, const char *study_id, tl_resp_t *resp);

/* handlers */
/* history and the audit list (routes_history.c) */
void tl_h_participant_history(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp);
void tl_h_participant_observations(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp);
void tl_h_audit_list(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp);
/* principals, tokens, signing credentials (routes_access.c) */
void tl_h_me(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp);
void tl_h_principal_create(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp);
void tl_h_principal_list(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp);
void tl_h_principal_get(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp);
void tl_h_principal_change(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp);
void tl_h_principal_disable(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp);
void tl_h_token_issue(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp);
void tl_h_token_list(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp);
void tl_h_token_revoke(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp);
void tl_h_signing_credential_set(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp);
void tl_h_signing_enrolment_open(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp);
void tl_h_signing_enrolment_approve(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp);
void tl_h_healthz(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp);
void tl_h_readyz(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp);
void tl_h_metrics(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp);
void tl_h_study_create(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp);
void tl_h_study_get(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp);
void tl_h_site_create(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp);
void tl_h_study_list(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp);
void tl_h_site_list(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp);
void tl_h_participant_enrol(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp);
void tl_h_participant_list(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp);
void tl_h_participant_get(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp);
/* protocol, schedules and visits (routes_visits.c) */
void tl_h_visit_type_create(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp);
void tl_h_visit_type_amend(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp);
void tl_h_visit_type_list(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp);
void tl_h_visit_type_get(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp);
void tl_h_study_lock(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp);
void tl_h_study_unlock(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp);
void tl_h_visit_complete(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp);
void tl_h_visit_miss(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp);
void tl_h_visit_reopen(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp);
void tl_h_visit_correct(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp);
void tl_h_baseline_change(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp);
void tl_h_participant_withdraw(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp);
void tl_h_participant_finish(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp);
void tl_h_schedule_get(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp);
void tl_h_study_visits(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp);
void tl_h_study_metrics(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp);
/* case report forms (routes_forms.c) */
void tl_h_form_template_publish(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp);
void tl_h_form_template_list(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp);
void tl_h_form_template_get(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp);
void tl_h_form_submit(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp);
void tl_h_form_amend(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp);
void tl_h_form_sign(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp);
void tl_h_form_get(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp);
void tl_h_participant_forms(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp);
/* data quality (routes_quality.c) */
void tl_h_study_data_quality(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp);
/* the schema registry API (routes_registry.c) */
void tl_h_registry_subjects(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp);
void tl_h_registry_versions(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp);
void tl_h_registry_version(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp);
void tl_h_registry_schema(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp);
void tl_h_registry_lookup(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp);
void tl_h_registry_register(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp);
void tl_h_registry_compatibility(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp);
void tl_h_registry_config_get(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp);
void tl_h_registry_config_put(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp);
void tl_h_release_create(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp);
void tl_h_release_list(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp);
void tl_h_release_get(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp);
void tl_h_release_file(tl_gw_t *gw, tl_req_t *req, tl_resp_t *resp);
/* A problem answer on a /registry route in Confluent's error shape. */
void tl_registry_api_error(tl_resp_t *resp);

/* A study's visit types as one JSON array text (or NULL when none), the
 * study id being the SQL parameter `study` ("$2"). */
#define TL_SQL_VISIT_TYPE_OBJ                                                                    \
    "json_build_object('id', t.id, 'study_id', t.study_id, 'name', t.name,"                      \
    " 'target_day', t.target_day, 'window_before_days', t.window_before_days,"                   \
    " 'window_after_days', t.window_after_days, 'required', t.required,"                         \
    " 'form_templates', t.form_templates, 'revision', t.revision, 'defined_at', t.defined_at,"   \
    " 'updated_at', t.updated_at)"
#define TL_SQL_VISIT_TYPES_JSON(study)                                                           \
    "SELECT json_agg(" TL_SQL_VISIT_TYPE_OBJ " ORDER BY t.target_day, t.id)::text"               \
    " FROM visit_types t WHERE t.study_id = " study
/* A participant's schedule, as the "schedule" of a ParticipantEnrolled
 * event, in two steps: visit types as TL_SQL_VISIT_TYPES_JSON gives them
 * (NULL text: none) into out (room for TL_VISIT_TYPES_MAX), *n of them,
 * false when the text is no JSON; and the schedule of n of them with this
 * baseline (new reference, NULL when out of memory). */
bool tl_gw_visit_types_parse(const char *visit_types_json, tl_visit_type_t *out, size_t *n);
json_t *tl_gw_plan_visits(const tl_visit_type_t *vts, size_t n, int32_t baseline);
/* The visit types of a study, as the two above read them, from a cache
 * (vtcache.c): out has room for TL_VISIT_TYPES_MAX; none for an unknown
 * study. TL_OK, or the database's error. */
tl_err_t tl_gw_visit_types(tl_gw_t *gw, const char *study_id, tl_visit_type_t *out, size_t *n);
tl_err_t tl_vtcache_init(tl_gw_t *gw);
/* Password checks of signatures (sign_guard.c): enter takes the principal's
 * turn, or fills resp (429 signing-busy) and returns false; leave gives it
 * back. */
tl_err_t tl_sign_guard_init(tl_gw_t *gw);
void tl_sign_guard_cleanup(tl_gw_t *gw);
bool tl_sign_guard_enter(tl_gw_t *gw, const char *principal_id, tl_resp_t *resp);
void tl_sign_guard_leave(tl_gw_t *gw, const char *principal_id);
void tl_vtcache_cleanup(tl_gw_t *gw);
/* 422: the study is locked. */
void tl_problem_locked(tl_resp_t *resp);

/* ---- commands (command.c) ---- */

typedef struct {
    const char *type;       /* event type */
    const char *key;        /* partition key: the aggregate id */
    const json_t *payload;  /* the event's own fields, borrowed */
    const char *projection; /* the projection whose state answers the command */
    tl_event_meta_t meta;   /* event_id and resource_id filled by tl_cmd_init */
    tl_uuid_t resource_id;  /* id of the resource a create command makes */
    char location[256];     /* its URL, set by the handler */
    char reason[64];        /* out: why the projection refused the event */
    const char *topic;      /* out: where the event landed */
    tl_kafka_pos_t pos;
} tl_cmd_t;

/* Parses and validates a JSON body against fields; on failure fills resp
 * (400) and returns NULL. Caller json_decref()s the result. */
json_t *tl_gw_body(tl_req_t *req, tl_resp_t *resp, const void *fields, size_t nfields);
/* The "limit" query parameter: def when absent; 1 to max, else a field
 * error in errors (and def). */
long tl_gw_query_limit(tl_req_t *req, long def, long max, json_t *errors);
/* The integer query parameter name: def when absent; min to max, else a
 * field error in errors (and def). */
long tl_gw_query_long(tl_req_t *req, const char *name, long def, long min, long max,
                      json_t *errors);
/* The paging parameters of a list (README "Lists"): "limit" (def when
 * absent, 1 to max) as text into lim, and "after", the "next" of the page
 * before: an item's id, canonical into after (*has_after false when
 * absent). false: resp holds the 400. */
bool tl_gw_page(tl_req_t *req, long def, long max, char lim[16], char after[TL_UUID_STRLEN],
                bool *has_after, tl_resp_t *resp);
/* One page of a list as one JSON text row, {"items": [...], "next": id or
 * null}: the rows t of table meeting where, each as obj, ordered by
 * KEY("t") (a function-like macro of the alias, unique with the id last),
 * at most $2 of them after the row whose id is $3 (NULL: from the start).
 * An id that names no row gives an empty page.
 * next is the last row's id when the page is full. */
#define TL_SQL_PAGE(obj, KEY, table, where)                                                      \
    "SELECT json_build_object('items', COALESCE(json_agg(x.j ORDER BY x.n), '[]'::json),"         \
    " 'next', CASE WHEN count(*) = $2::int THEN (array_agg(x.id ORDER BY x.n DESC))[1] END)"     \
    " FROM (SELECT " obj " AS j, t.id::text AS id, row_number() OVER (ORDER BY " KEY("t") ") AS n" \
    "   FROM " table " t WHERE (" where ")"                                                       \
    "    AND ($3::uuid IS NULL OR (" KEY("t") ") > (SELECT " KEY("a") " FROM " table " a"          \
    "         WHERE a.id = $3::uuid))"                                                            \
    "  ORDER BY " KEY("t") " LIMIT $2::int) x"
/* The "as_of" query parameter (default today) as YYYY-MM-DD into out;
 * false when it is no calendar date. */
bool tl_gw_query_as_of(tl_req_t *req, char out[TL_DATE_STRLEN]);
/* Event and resource ids: derived from the Idempotency-Key (UUIDv5 over
 * principal, route and key) or fresh. false: resp holds a 400. */
bool tl_cmd_init(tl_gw_t *gw, tl_req_t *req, tl_cmd_t *cmd, tl_resp_t *resp);

/* Idempotency-Key rows (idempotency.c). Claims req's key for cmd: fresh
 * ids, or the ids (and log position) of the first request with the key;
 * false: resp is the answer (a replay, 422 reused, 409 in progress, 503). */
bool tl_idem_claim(tl_gw_t *gw, tl_req_t *req, tl_cmd_t *cmd, tl_resp_t *resp);
/* Records where the log put the claimed command's event. */
void tl_idem_produced(tl_gw_t *gw, tl_req_t *req, const char *topic, const tl_kafka_pos_t *pos);
/* After the handler: stores a final answer, or frees or releases the key. */
void tl_idem_finish(tl_gw_t *gw, tl_req_t *req, const tl_resp_t *resp);

/* What a create command needs to know of its resource. */
#define TL_CHECK_PARAMS_MAX 7
/* Parameters of a read-back (read_sql, answer_sql) at most. */
#define TL_READ_PARAMS_MAX 8
typedef struct {
    const char *read_sql; /* the resource as JSON text by id ($1), one row at most */
    /* Everything the command is validated against, in one round trip: one
     * row, $1 the resource id, check_params $2 and on. Column 0: the resource
     * as JSON text when it exists already (a retried command); column 1: the
     * id of a resource the new one would duplicate, or NULL; further columns
     * are read by rules. */
    const char *check_sql;
    const char *const *check_params;
    int ncheck;      /* at most TL_CHECK_PARAMS_MAX */
    tl_reason_t dup; /* the clash: the fold's word and the 409 answer */
    const char *dup_detail;
    /* Domain rules, checked before the duplicate; false: resp is the answer. */
    bool (*rules)(const void *ctx, const tl_pg_res_t *check, tl_resp_t *resp);
    const void *ctx;
} tl_create_t;

/* Runs a create command holding lock: an earlier command with the same
 * Idempotency-Key answers as it did (the resource exists); a duplicate answers
 * 409; otherwise produce, wait for the projection, 201 with the resource. */
void tl_gw_create(tl_gw_t *gw, tl_req_t *req, tl_cmd_t *cmd, const tl_create_t *spec,
                  pthread_mutex_t *lock, tl_resp_t *resp);

/* Runs a query returning one JSON text column; NULL when no row (resp
 * untouched) or on error (resp holds a 503). *failed tells which. */
json_t *tl_gw_query_json(tl_gw_t *gw, tl_resp_t *resp, const char *sql, int n,
                         const char *const *params, bool *failed);
void tl_gw_created(tl_resp_t *resp, json_t *body, const char *location, bool replayed);
/* The answer of a read: 200 with j (taken over), or, when there was no row
 * and no failure (a failure's 503 is in resp already), 404 not_found. */
void tl_gw_found(tl_resp_t *resp, json_t *j, bool failed, const char *not_found);

/* A command on an existing aggregate (a participant's stream, a study). */
typedef struct {
    /* One row: column 0 the aggregate's last event id (NULL: no such
     * aggregate: 404 with not_found as detail), or the command's own event id when
     * the check can tell that event was applied before, later ones
     * notwithstanding (a retry); further columns for decide. */
    const char *check_sql;
    const char *const *check_params;
    int ncheck;
    const char *not_found;
    /* Domain rules on the check row; completes cmd (payload, key, meta)
     * or fills resp and returns false. */
    bool (*decide)(void *ctx, const tl_pg_res_t *check, tl_cmd_t *cmd, tl_resp_t *resp);
    void *ctx;
    /* The answer: one JSON text column of at most one row, status 200 or 201
     * (read in the same round trip as the projection's verdict) */
    const char *answer_sql;
    const char *const *answer_params;
    int nanswer; /* at most TL_READ_PARAMS_MAX */
    int status;
} tl_update_t;

/* Runs it holding lock. A retried command (same Idempotency-Key) whose event
 * is the aggregate's last, or that check_sql knows, answers with the
 * resource as it is now; a refused event answers 409. */
void tl_gw_update(tl_gw_t *gw, tl_req_t *req, tl_cmd_t *cmd, const tl_update_t *spec,
                  pthread_mutex_t *lock, tl_resp_t *resp);

/* A signer's principal, its credential's slow hash ("" none) and the site
 * of form_id ("" none; form_id may be NULL). false: resp holds why not. */
bool tl_signer_load(tl_gw_t *gw, const char *id, const char *form_id, tl_principal_t *p, char *hash,
                    size_t hash_size, char site[TL_UUID_STRLEN], tl_resp_t *resp);
/* Signing rules' refusals (access.h) as problems (routes_access.c). */
void tl_problem_signing(tl_resp_t *resp, const char *why);
/* A wrong signing password of p (on form_id, at site_id, both NULL for a
 * credential change): a SignatureAttemptFailed event with attempt's ids,
 * then resp is 422 signing-credential-invalid, or -locked when it locked
 * the credential (or the 503 of a failure to record it). */
void tl_signing_failed(tl_gw_t *gw, tl_req_t *req, const tl_cmd_t *attempt, const tl_principal_t *p,
                       const char *form_id, const char *site_id, tl_resp_t *resp);
/* A right one after wrong ones: SigningFailuresCleared (not waited for). */
void tl_signing_cleared(tl_gw_t *gw, tl_req_t *req, const tl_principal_t *p);

#endif
