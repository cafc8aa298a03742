/* trialog-bench-ceilings: the ceilings of the parts Trialog is built on, on
 * this machine, in one run, through the project's own wrappers:
 *
 *   produce        raw Kafka produce (idempotent, acks=all) of 300-byte
 *                  values with 36-byte keys to a scratch topic of 6
 *                  partitions (made if missing) on the stack's broker
 *                  (TRIALOG_KAFKA_BROKERS): N asynchronous, then one flush
 *   point read     SELECT of a participant-shaped row by primary key, one
 *                  query at a time, on 1 and on 2 connections (one thread each)
 *   upsert         the same rows, 1,000 a transaction: one INSERT ... ON
 *                  CONFLICT statement a row in pipeline mode (tl_pg_pipeline),
 *                  and one unnest(...) array statement a batch (the ceiling of
 *                  trialog-bench-archive)
 *   avro           a framed ParticipantEnrolled encoded as the producer does
 *                  (frame header + tl_avro_encode into a new buffer) and
 *                  decoded as the consumers do (tl_registry_decode), one thread
 *
 * Usage: TRIALOG_PG_DSN=... TRIALOG_KAFKA_BROKERS=... trialog-bench-ceilings [rows]
 * (default 100000)
 * rows sizes the scratch table and every stage: the upserts write all rows,
 * the point reads make rows/5 queries, avro handles rows records, produce
 * sends rows/2 messages (at most 50,000).
 * The stages alternate over 5 rounds (the machine is shared and noisy) and
 * their medians are reported. Prints a table and one JSON line. Not a test:
 * it judges nothing. The scratch schema bench_ceil_<pid> is dropped at exit,
 * also after a failure. */
#include <pthread.h>
#include <stdint.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_util.h"
#include "tl_buf.h"
#include "tl_kafka.h"
#include "tl_log.h"
#include "tl_migrations.h"
#include "tl_pg.h"
#include "tl_schemas.h"
#include "tl_uuid.h"

#define ROUNDS 5
#define PARTITIONS 6
#define TOPIC "bench.ceiling.v1"
#define MSG_BYTES 300
#define MSGS_MAX 50000
#define KAFKA_TIMEOUT_MS 30000
#define READERS 2
#define AVRO_POOL 1000

static const char *const sql_read =
    "SELECT id, study_id, site_id, participant_code, status, birth_year, sex, consent_date,"
    " baseline_date, version FROM bench_participants WHERE id = $1";
static const char *const sql_upsert_row =
    "INSERT INTO bench_participants VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12,"
    " $13) ON CONFLICT (id) DO UPDATE SET status = EXCLUDED.status, version = EXCLUDED.version";

enum { S_PRODUCE, S_READ1, S_READ2, S_PIPELINE, S_ARRAY, S_ENCODE, S_DECODE, NSTAGES };

static const struct {
    const char *label, *unit, *json;
} stages[NSTAGES] = {
    {"kafka produce (idempotent, acks=all)", "msgs/s", "produce_msgs_s"},
    {"pg point read by id, 1 connection", "q/s", "pg_point_read_1conn_q_s"},
    {"pg point read by id, 2 connections", "q/s", "pg_point_read_2conn_q_s"},
    {"pg upsert, a statement a row, pipeline", "rows/s", "pg_upsert_pipeline_rows_s"},
    {"pg upsert, unnest arrays of 1,000", "rows/s", "pg_upsert_array_rows_s"},
    {"avro encode ParticipantEnrolled", "rec/s", "avro_encode_rec_s"},
    {"avro decode ParticipantEnrolled", "rec/s", "avro_decode_rec_s"},
};

/* ---- the scratch schema, dropped at exit ---- */

static const char *scratch_dsn;
static char scratch_schema[64];
/* Every connection of the program, closed before the drop: one left in a
 * failed transaction would hold its locks and the drop would wait on them. */
static tl_pg_t *conns[1 + READERS];

static void drop_scratch(void)
{
    char sql[160];
    tl_pg_t *pg = NULL;
    for (size_t i = 0; i < sizeof conns / sizeof conns[0]; i++) {
        tl_pg_destroy(conns[i]);
        conns[i] = NULL;
    }
    snprintf(sql, sizeof sql, "SET lock_timeout = '10s'; DROP SCHEMA IF EXISTS %s CASCADE",
             scratch_schema);
    if (tl_pg_connect(scratch_dsn, NULL, "bench-ceilings", &pg) == TL_OK)
        tl_pg_exec(pg, sql, 0, NULL, NULL);
    tl_pg_destroy(pg);
}

/* ---- kafka ---- */

static double bench_produce(tl_kafka_producer_t *kp, const tl_uuid_t *keys, long nkeys, long n,
                            const char *value)
{
    double t0 = tl_bench_now_s();
    for (long i = 0; i < n; i++)
        tl_bench_check(tl_kafka_produce_async(kp, TOPIC, -1, keys[i % nkeys].s, TL_UUID_STRLEN - 1,
                                              value, MSG_BYTES, NULL, 0, NULL),
                       "produce");
    tl_bench_check(tl_kafka_producer_flush(kp, KAFKA_TIMEOUT_MS), "flush");
    return (double)n / (tl_bench_now_s() - t0);
}

/* ---- point reads ---- */

typedef struct {
    tl_pg_t *pg; /* one connection a thread */
    const tl_uuid_t *ids;
    long nids, n;
    uint64_t rng;
    tl_err_t err; /* a thread does not exit: the main thread reports */
    long missing;
} reader_t;

static uint64_t xorshift64(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void *read_loop(void *arg)
{
    reader_t *r = arg;
    for (long i = 0; i < r->n && !r->err; i++) {
        const char *params[] = {r->ids[xorshift64(&r->rng) % (uint64_t)r->nids].s};
        tl_pg_res_t *res = NULL;
        r->err = tl_pg_exec(r->pg, sql_read, 1, params, &res);
        if (!r->err && tl_pg_nrows(res) != 1)
            r->missing++;
        tl_pg_res_free(res);
    }
    return NULL;
}

/* n queries in all, shared by nthreads threads, each on its own connection. */
static double bench_point_reads(reader_t *readers, int nthreads, long n)
{
    pthread_t th[READERS];
    double t0 = tl_bench_now_s();
    for (int i = 0; i < nthreads; i++) {
        readers[i].n = n / nthreads + (i < n % nthreads);
        readers[i].err = TL_OK;
        readers[i].missing = 0;
        if (pthread_create(&th[i], NULL, read_loop, &readers[i]))
            tl_bench_check(TL_ERR_INTERNAL, "thread");
    }
    for (int i = 0; i < nthreads; i++)
        pthread_join(th[i], NULL);
    double rate = (double)n / (tl_bench_now_s() - t0);
    for (int i = 0; i < nthreads; i++) {
        tl_bench_check(readers[i].err, "point read");
        if (readers[i].missing) {
            fprintf(stderr, "bench: %ld point reads found no row\n", readers[i].missing);
            exit(1);
        }
    }
    return rate;
}

/* ---- upserts ---- */

typedef struct {
    tl_pg_stmt_t stmts[TL_BENCH_BATCH + 2];
    const char *params[TL_BENCH_BATCH][TL_BENCH_NCOLS];
    char codes[TL_BENCH_BATCH][TL_BENCH_CODE_LEN];
} pipeline_t;

static double bench_upsert_pipeline(tl_pg_t *pg, pipeline_t *pl, const tl_uuid_t *ids, long n,
                                    const char *version)
{
    double t0 = tl_bench_now_s();
    for (long done = 0; done < n; done += TL_BENCH_BATCH) {
        size_t k = 0;
        pl->stmts[k++] = (tl_pg_stmt_t){.sql = "BEGIN"};
        for (long i = done; i < done + TL_BENCH_BATCH && i < n; i++) {
            size_t j = (size_t)(i - done);
            tl_bench_participant_row(ids[i].s, i, version, pl->codes[j], pl->params[j]);
            pl->stmts[k++] = (tl_pg_stmt_t){
                .sql = sql_upsert_row, .nparams = TL_BENCH_NCOLS, .params = pl->params[j]};
        }
        pl->stmts[k++] = (tl_pg_stmt_t){.sql = "COMMIT"};
        tl_bench_check(tl_pg_pipeline(pg, pl->stmts, k), "pipeline upsert");
    }
    return (double)n / (tl_bench_now_s() - t0);
}

static double bench_upsert_array(tl_pg_t *pg, const tl_uuid_t *ids, long n, const char *version)
{
    double t0 = tl_bench_now_s();
    tl_bench_check(tl_bench_upsert_array(pg, ids, n, version), "array upsert");
    return (double)n / (tl_bench_now_s() - t0);
}

/* ---- avro ---- */

/* As tl_producer_send does it: a new buffer, the frame header, the datum. */
static double bench_encode(const tl_event_type_t *t, json_t *const *recs, long n)
{
    double t0 = tl_bench_now_s();
    for (long i = 0; i < n; i++) {
        tl_buf_t b;
        unsigned char hdr[TL_FRAME_HEADER_LEN];
        tl_buf_init(&b, 1 << 20);
        tl_frame_header(t->id, hdr);
        tl_bench_check(tl_buf_append(&b, hdr, sizeof hdr), "frame");
        tl_bench_check(tl_avro_encode(t->schema, recs[i % AVRO_POOL], &b), "encode");
        tl_buf_cleanup(&b);
    }
    return (double)n / (tl_bench_now_s() - t0);
}

/* As the consumer runtime does it: resolve the frame's schema id, decode,
 * and later free the record. */
static double bench_decode(tl_registry_t *reg, tl_pg_t *pg, tl_buf_t *framed, long n)
{
    double t0 = tl_bench_now_s();
    for (long i = 0; i < n; i++) {
        const tl_buf_t *f = &framed[i % AVRO_POOL];
        json_t *rec = NULL;
        const char *fullname = NULL;
        tl_bench_check(tl_registry_decode(reg, pg, f->data, f->len, &rec, &fullname), "decode");
        json_decref(rec);
    }
    return (double)n / (tl_bench_now_s() - t0);
}

int main(int argc, char **argv)
{
    long rows = argc > 1 ? strtol(argv[1], NULL, 10) : 100000;
    const char *dsn = getenv("TRIALOG_PG_DSN"), *brokers = getenv("TRIALOG_KAFKA_BROKERS");
    if (rows < TL_BENCH_BATCH || !dsn || !brokers) {
        fprintf(stderr, "usage: TRIALOG_PG_DSN=... TRIALOG_KAFKA_BROKERS=..."
                        " trialog-bench-ceilings [rows >= 1000]\n");
        return 2;
    }
    const long msgs = rows / 2 < MSGS_MAX ? rows / 2 : MSGS_MAX, reads = rows / 5;
    tl_log_init("bench", TL_LOG_WARN);
    snprintf(scratch_schema, sizeof scratch_schema, "bench_ceil_%d", (int)getpid());
    scratch_dsn = dsn;
    /* drop_scratch connects at exit: with SCRAM (the local PostgreSQL's
     * passwords) libpq needs OpenSSL then, so OpenSSL must not clean up
     * first, at its own exit handler */
    OPENSSL_init_crypto(OPENSSL_INIT_NO_ATEXIT, NULL);
    atexit(drop_scratch);

    /* PostgreSQL: the schema store for the registry, and the scratch table */
    tl_registry_t *reg = NULL;
    tl_bench_check(tl_pg_connect(dsn, scratch_schema, "bench-ceilings", &conns[0]), "connect");
    tl_pg_t *pg = conns[0];
    tl_bench_check(tl_migrate(pg), "migrate");
    tl_bench_check(tl_registry_open(pg, &reg), "registry");
    tl_uuid_t *ids = calloc((size_t)rows, sizeof *ids);
    if (!ids)
        tl_bench_check(TL_ERR_NOMEM, "ids");
    for (long i = 0; i < rows; i++)
        tl_bench_check(tl_uuid_v7(&ids[i]), "uuid");
    tl_bench_check(tl_pg_exec(pg,
                              "CREATE TABLE bench_participants (LIKE participants INCLUDING ALL)",
                              0, NULL, NULL),
                   "create");
    tl_bench_check(tl_bench_upsert_array(pg, ids, rows, "0"), "load");
    tl_bench_check(tl_pg_exec(pg, "VACUUM ANALYZE bench_participants", 0, NULL, NULL), "vacuum");
    reader_t readers[READERS];
    for (int i = 0; i < READERS; i++) {
        tl_bench_check(tl_pg_connect(dsn, scratch_schema, "bench-ceilings", &conns[1 + i]),
                       "connect reader");
        readers[i] = (reader_t){
            .pg = conns[1 + i], .ids = ids, .nids = rows, .rng = 0x9e3779b97f4a7c15ULL * (i + 1)};
    }
    pipeline_t *pl = calloc(1, sizeof *pl);
    if (!pl)
        tl_bench_check(TL_ERR_NOMEM, "pipeline");

    /* Kafka: the scratch topic, a producer warmed up on it (connection,
     * metadata and producer id are not part of the rate) */
    const tl_kafka_topic_spec_t topic = {TOPIC, PARTITIONS, 1, NULL, 0};
    tl_kafka_producer_t *kp = NULL;
    char value[MSG_BYTES];
    memset(value, 'x', sizeof value);
    tl_bench_check(tl_kafka_topics_ensure(brokers, &topic, 1, KAFKA_TIMEOUT_MS, stderr), "topic");
    tl_bench_check(tl_kafka_producer_new(brokers, KAFKA_TIMEOUT_MS, &kp), "producer");
    if (tl_kafka_producer_partitions(kp, TOPIC, KAFKA_TIMEOUT_MS) != PARTITIONS)
        tl_bench_check(TL_ERR_UNAVAILABLE, "topic metadata");
    bench_produce(kp, ids, rows, 1000, value);

    /* Avro: a pool of distinct records and their framed encodings */
    const tl_event_type_t *t = tl_registry_type(reg, "ParticipantEnrolled");
    json_t *recs[AVRO_POOL];
    tl_buf_t framed[AVRO_POOL];
    if (!t)
        tl_bench_check(TL_ERR_INTERNAL, "event type");
    for (int i = 0; i < AVRO_POOL; i++) {
        tl_uuid_t eid;
        char code[TL_BENCH_CODE_LEN];
        unsigned char hdr[TL_FRAME_HEADER_LEN];
        tl_bench_check(tl_uuid_v7(&eid), "uuid");
        snprintf(code, sizeof code, "B-%07d", i);
        recs[i] = tl_bench_enrolled_record(eid.s, ids[i % rows].s, code);
        if (!recs[i])
            tl_bench_check(TL_ERR_NOMEM, "record");
        tl_buf_init(&framed[i], 1 << 20);
        tl_frame_header(t->id, hdr);
        tl_bench_check(tl_buf_append(&framed[i], hdr, sizeof hdr), "frame");
        tl_bench_check(tl_avro_encode(t->schema, recs[i], &framed[i]), "encode");
    }
    json_t *back = NULL;
    const char *fullname = NULL;
    tl_bench_check(tl_registry_decode(reg, pg, framed[0].data, framed[0].len, &back, &fullname),
                   "decode");
    if (!json_equal(back, recs[0]))
        tl_bench_check(TL_ERR_INTERNAL, "avro round trip");
    json_decref(back);

    double rates[NSTAGES][ROUNDS], med[NSTAGES];
    for (int r = 0; r < ROUNDS; r++) {
        char v1[24], v2[24];
        snprintf(v1, sizeof v1, "%d", 2 * r + 1);
        snprintf(v2, sizeof v2, "%d", 2 * r + 2);
        rates[S_PRODUCE][r] = bench_produce(kp, ids, rows, msgs, value);
        rates[S_READ1][r] = bench_point_reads(readers, 1, reads);
        rates[S_READ2][r] = bench_point_reads(readers, 2, reads);
        /* each upsert starts from a vacuumed table, not the other's dead rows */
        tl_bench_check(tl_pg_exec(pg, "VACUUM bench_participants", 0, NULL, NULL), "vacuum");
        rates[S_PIPELINE][r] = bench_upsert_pipeline(pg, pl, ids, rows, v1);
        tl_bench_check(tl_pg_exec(pg, "VACUUM bench_participants", 0, NULL, NULL), "vacuum");
        rates[S_ARRAY][r] = bench_upsert_array(pg, ids, rows, v2);
        rates[S_ENCODE][r] = bench_encode(t, recs, rows);
        rates[S_DECODE][r] = bench_decode(reg, pg, framed, rows);
    }
    for (int s = 0; s < NSTAGES; s++)
        med[s] = tl_bench_median(rates[s], ROUNDS);

    printf("%d rounds, medians: %ld rows, %ld messages of %d B, %ld point reads, avro %zu B\n",
           ROUNDS, rows, msgs, MSG_BYTES, reads, framed[0].len);
    printf("%-40s %12s %8s\n", "stage", "per s", "unit");
    for (int s = 0; s < NSTAGES; s++)
        printf("%-40s %12.0f %8s\n", stages[s].label, med[s], stages[s].unit);
    printf("{\"rows\":%ld,\"messages\":%ld,\"point_reads\":%ld,\"rounds\":%d", rows, msgs, reads,
           ROUNDS);
    for (int s = 0; s < NSTAGES; s++)
        printf(",\"%s\":%.0f", stages[s].json, med[s]);
    printf("}\n");
    fflush(stdout);

    for (int i = 0; i < AVRO_POOL; i++) {
        json_decref(recs[i]);
        tl_buf_cleanup(&framed[i]);
    }
    tl_kafka_producer_destroy(kp);
    free(pl);
    free(ids);
    tl_registry_destroy(reg);
    return 0; /* drop_scratch closes the connections and drops the schema */
}
