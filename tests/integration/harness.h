/* The integration test harness: a whole stack of real processes per test
 * program — an Apache Kafka broker (KRaft, scripts/kafka.sh, its data under
 * the test's directory), the participants, schedules, access, forms
 * projectors, the archive and the gateway — on loopback, with its own
 * PostgreSQL schema, driven over real HTTP (libcurl). Every helper asserts
 * (cmocka) on failure. */
#ifndef TL_HARNESS_H
#define TL_HARNESS_H

#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <sys/types.h>

#include "tl_pg.h"

#define TL_STACK_NODES_MAX 3
#define TL_STACK_GATEWAY_ENV 8

typedef struct {
    char name[64];
    char schema[64];
    char dir[512];            /* logs and the bootstrap file */
    char brokers[256];
    char token[80];
    int port;
    /* the Kafka nodes: 1, or 3 when nodes is 3 (set before tl_stack_start) */
    int nodes;
    int kafka_port[TL_STACK_NODES_MAX], kafka_controller_port[TL_STACK_NODES_MAX]; /* chosen
                                                                                  * once */
    char cluster_id[32];
    pid_t broker[TL_STACK_NODES_MAX];
    pid_t projector, schedules, access, forms, gateway, audit;
    pid_t research; /* only tl_stack_start_research starts it */
    pid_t releases; /* only tl_stack_start_releases starts it */
    pid_t ingest;   /* only tl_stack_start_ingest starts it */
    tl_pg_t *pg;
    char gateway_env[TL_STACK_GATEWAY_ENV][256]; /* extra NAME=value for the gateway ("": none) */
    /* Set before tl_stack_start, which keeps them: */
    char topics_env[128]; /* extra NAME=value for every trialog command (topics ensure's
                           * retention) */
    const char *broker_args[12]; /* extra server properties, key=value (NULL-terminated) */
    char broker_env[256];       /* extra NAME=value for the broker's start */
    int client_port;            /* the listener clients use, if not kafka_port (1 node) */
    char kafka_config[600];     /* TRIALOG_KAFKA_CONFIG_FILE of every program, if set */
} tl_stack_t;

/* Starts broker, projector, archive and gateway; returns when the gateway is
 * ready and the consumers hold their partitions. */
void tl_stack_start(tl_stack_t *s, const char *name);
/* A fresh bearer token (at most 79 characters) into token: "admin" runs
 * `trialog admin bootstrap`; another role gets a principal of its own,
 * named after role and site (a site id, or NULL for none). */
void tl_stack_token(tl_stack_t *s, const char *role, const char *site, char token[80]);
/* A new principal name (role, site or NULL) made by the operator's CLI,
 * with a token of its own into token. */
void tl_stack_named_token(tl_stack_t *s, const char *name, const char *role, const char *site,
                          char token[80]);
/* A second administrator's token (made once by the operator's CLI, so that
 * the stack's admin did not grant it nor issue its token). */
void tl_stack_admin2(tl_stack_t *s, char token[80]);
/* Sets the signing credential of token's principal the two-person way: the
 * stack's admin opens an enrolment, tl_stack_admin2 approves it, the
 * principal sets password with the one-time code. */
void tl_stack_signing_credential(tl_stack_t *s, const char *token, const char *password);
/* Events tl_stack_start puts in the log before any test's: the admin's
 * PrincipalCreated and TokenIssued (trialog.access.v1). */
#define TL_STACK_BOOT_EVENTS 2
/* The archive's rows of the log's events, without the archive's own signed
 * checkpoints (trialog.audit.v1), which come whenever it has archived
 * something: "SELECT count(*) FROM " TL_LOG_ROWS counts events. */
#define TL_LOG_ROWS "audit_log WHERE topic <> 'trialog.audit.v1'"
/* Stops every process and drops the schema. */
void tl_stack_stop(tl_stack_t *s);
/* SIGTERM to every program but the broker; fails the test unless each
 * exits 0. */
void tl_stack_stop_programs(tl_stack_t *s);

/* Starts the stack's Kafka nodes that do not run (a real KRaft cluster of
 * s->nodes combined broker-controllers, node i's log in dir/kafka-<i+1>, so
 * a restart keeps it; output in dir/broker-<i+1>.log), waits until the
 * cluster lists them all and runs `trialog topics ensure` (ingest source
 * "oct"; replicated 3 times, min.insync.replicas 2, on three nodes). */
void tl_stack_start_broker(tl_stack_t *s);
/* Starts node i (0-based) again and waits until the cluster lists it. */
void tl_stack_start_node(tl_stack_t *s, int i);
/* The cluster lost everything: kills every node (SIGKILL) and deletes their
 * data; tl_stack_start_broker then formats a new, empty cluster. */
void tl_stack_wipe_broker(tl_stack_t *s);
/* The participants projector, and the schedules, access and forms
 * projectors unless they run. */
void tl_stack_start_projector(tl_stack_t *s);
/* Another instance of a projector (same consumer group): trialog-projector
 * projection, output in dir/<log>.log; returns once it holds partitions. */
pid_t tl_stack_start_consumer(tl_stack_t *s, const char *projection, const char *log);
/* The archive consumer (trialog-projector audit), pid in s->audit. */
void tl_stack_start_audit(tl_stack_t *s);
/* The research export (trialog-projector research), pid in s->research,
 * with a fresh pseudonym key at dir/research.key (mode 0600) and dates
 * "study_days" or "shifted" (TRIALOG_RESEARCH_DATES). */
void tl_stack_start_research(tl_stack_t *s, const char *dates);
/* The dataset release worker (trialog-projector release-export), pid in
 * s->releases, with the same key and its files under dir/releases (where
 * the gateway serves them from). */
void tl_stack_start_releases(tl_stack_t *s);
/* Polls GET /v1/releases/{id} as token until the release is completed (its
 * JSON, caller json_decref()s); fails the test when it failed or when
 * timeout_ms passed. */
json_t *tl_stack_release_wait(tl_stack_t *s, const char *token, const char *id, int timeout_ms);
/* The ingest consumer (trialog-projector ingest) for sources
 * (TRIALOG_INGEST_SOURCES), pid in s->ingest. */
void tl_stack_start_ingest(tl_stack_t *s, const char *sources);
/* Runs build/trialog with the stack's settings (the research key too); returns its exit code, its
 * output (standard output and error) in *out (caller frees). */
int tl_stack_cli(tl_stack_t *s, const char *args, char **out);
void tl_stack_start_gateway(tl_stack_t *s);
/* A loopback TCP port nobody listens on, for another process of a test. */
int tl_free_port(void);
/* Runs a projector that is expected to stop by itself; returns its exit code. */
int tl_stack_projector_exit(tl_stack_t *s, int timeout_ms);
/* Runs prog (arg may be NULL) with the stack's settings, its output appended
 * to dir/<log>.log, expecting it to stop by itself; returns its exit code
 * (fails the test if it still runs after timeout_ms). */
int tl_stack_program_exit(tl_stack_t *s, const char *prog, const char *arg, const char *log,
                          int timeout_ms);
/* True when dir/<log>.log has a line containing needle. */
bool tl_stack_log_contains(tl_stack_t *s, const char *log, const char *needle);
/* Sends sig and reaps the process (SIGKILL after 10 s); *pid becomes 0.
 * Returns its exit code, or 128 + signal. */
int tl_stack_kill(pid_t *pid, int sig);

typedef struct {
    long status;
    json_t *body;     /* parsed JSON or NULL */
    char ctype[128];  /* Content-Type */
    char location[256];
} tl_http_resp_t;

/* One HTTP request to the gateway. headers: NULL-terminated "Name: value"
 * list or NULL; the bearer token and JSON content type are added unless
 * auth is false. Free with tl_http_free. */
tl_http_resp_t tl_http(tl_stack_t *s, const char *method, const char *path, const char *body,
                       const char *const *headers, bool auth);
/* The same with another bearer token (NULL: none). */
tl_http_resp_t tl_http_as(tl_stack_t *s, const char *token, const char *method, const char *path,
                          const char *body, const char *const *headers);
void tl_http_free(tl_http_resp_t *r);
/* POSTs body to path with the stack's token, asserting the status is want;
 * the answer's "id" into id_out (40 bytes) unless it is NULL. */
void tl_stack_post(tl_stack_t *s, const char *path, const char *body, long want, char *id_out);

/* Registers a study (protocol_id) with one site "S1" over HTTP, asserting 201s;
 * their ids go to study and site (40 bytes each). */
void tl_stack_study(tl_stack_t *s, const char *protocol_id, char *study, char *site);
/* Enrols participant `code` at site (consent and baseline 2026-01-01); async
 * sends Prefer: respond-async. Returns the HTTP status. */
long tl_stack_enrol(tl_stack_t *s, const char *study, const char *site, const char *code,
                    bool async);
/* The same; the answer's "id" (or "") into id_out (40 bytes) unless NULL. */
long tl_stack_enrol_id(tl_stack_t *s, const char *study, const char *site, const char *code,
                       bool async, char *id_out);

/* Loads the README's demo study with scripts/demo-seed.sh (the stack's admin
 * token); its study and first site ids go to study and site (40 bytes each). */
void tl_stack_demo_seed(tl_stack_t *s, char *study, char *site);

/* First column of the first row as an integer (0 if no row). */
long long tl_sql_int(tl_stack_t *s, const char *sql);
/* A rebuild must leave the stack's schema with the indexes it had (a rebuild
 * builds some of them only at its end, tl_projection_t.read_indexes): snap
 * records them (in a table of the schema, name), same asserts they are
 * still the same, name for name and definition for definition. */
void tl_indexes_snap(tl_stack_t *s, const char *name);
void tl_indexes_same(tl_stack_t *s, const char *name);
/* Output of a shell command (first 64 KiB); asserts it exits 0. Caller frees. */
char *tl_run(const char *cmd, size_t *len);
/* Sleeps until the integer sql answers is at least want, or timeout_ms
 * passes; returns whether it got there. */
bool tl_wait_count(tl_stack_t *s, const char *sql, long long want, int timeout_ms);
/* Sleeps until fn(arg) is true or timeout_ms passes; returns fn's last value. */
bool tl_wait_for(bool (*fn)(tl_stack_t *s, void *arg), tl_stack_t *s, void *arg, int timeout_ms);
void tl_sleep_ms(long ms);

#endif
