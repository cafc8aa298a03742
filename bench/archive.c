/* trialog-bench-archive: the durable log's two rates against their ceiling,
 * in one run on one machine (issue: the durable log, performance).
 *
 *   ceiling   PostgreSQL batched upsert of projection-shaped rows
 *             (INSERT ... SELECT unnest(...) ON CONFLICT), 1,000 rows a statement
 *   archive   the audit consumer's write path: tl_audit_store_apply + the
 *             offsets bookkeeping, one transaction per batch of its default size
 *   replay    the archive tier's read path (tl_audit_read), 2,000 a page
 *   bare      the archive write again, into a second schema without the
 *             indexes the history API reads by (migration 9): their cost
 *
 * Usage: TRIALOG_PG_DSN=... trialog-bench-archive [events]   (default 60000)
 * The stages alternate over 5 rounds (the machine is shared and noisy) and
 * the medians are compared. Prints a table and one JSON line. Not a test: it
 * judges nothing. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "audit.h"
#include "audit_store.h"
#include "bench_util.h"
#include "tl_consumer.h"
#include "tl_batch.h"
#include "tl_buf.h"
#include "tl_date.h"
#include "tl_log.h"
#include "tl_migrations.h"
#include "tl_pg.h"
#include "tl_producer.h"
#include "tl_schemas.h"
#include "tl_uuid.h"

#define PARTITIONS 6
#define ROUNDS 5

/* Participant-shaped rows, upserted as the projection does. */
static double bench_ceiling(tl_pg_t *pg, long n)
{
    tl_bench_check(tl_pg_exec(pg,
                              "DROP TABLE IF EXISTS bench_participants;"
                              " CREATE TABLE bench_participants (LIKE participants INCLUDING ALL)",
                              0, NULL, NULL),
                   "create");
    double t0 = tl_bench_now_s();
    tl_bench_check(tl_bench_upsert_array(pg, NULL, n, "1"), "upsert");
    return (double)n / (tl_bench_now_s() - t0);
}

typedef struct {
    char *value;
    size_t len;
    char key[TL_UUID_STRLEN];
    json_t *data, *headers;
} msg_t;

/* Real framed ParticipantEnrolled events with CloudEvents-like headers. */
static msg_t *make_messages(tl_registry_t *reg, long n)
{
    const tl_event_type_t *t = tl_registry_type(reg, "ParticipantEnrolled");
    msg_t *m = calloc((size_t)n, sizeof *m);
    for (long i = 0; i < n; i++) {
        tl_uuid_t pid, eid;
        char code[32];
        tl_uuid_v7(&pid);
        tl_uuid_v7(&eid);
        snprintf(code, sizeof code, "B-%07ld", i);
        json_t *rec = tl_bench_enrolled_record(eid.s, pid.s, code);
        tl_buf_t b;
        tl_buf_init(&b, 1 << 20);
        unsigned char hdr[TL_FRAME_HEADER_LEN];
        tl_frame_header(t->id, hdr);
        tl_bench_check(tl_buf_append(&b, hdr, sizeof hdr), "frame");
        tl_bench_check(tl_avro_encode(t->schema, rec, &b), "encode");
        m[i].value = tl_buf_steal(&b, &m[i].len);
        memcpy(m[i].key, pid.s, TL_UUID_STRLEN);
        m[i].data = rec;
        m[i].headers = json_pack(
            "[{s:s, s:s}, {s:s, s:s}, {s:s, s:s}, {s:s, s:s}, {s:s, s:s}, {s:s, s:s},"
            " {s:s, s:s}]",
            "name", "ce_specversion", "value", "1.0", "name", "ce_id", "value", eid.s, "name",
            "ce_type", "value", "org.trialog.ParticipantEnrolled", "name", "ce_source", "value",
            "gateway", "name", "ce_time", "value", "2026-01-01T00:00:00.000000Z", "name",
            "content-type", "value", "application/avro", "name", "trialog_correlation_id",
            "value", eid.s);
    }
    return m;
}

/* The audit consumer's transaction, without Kafka: fold + offsets + commit. */
static double bench_archive_write(tl_pg_t *pg, msg_t *m, long n, const char *topic)
{
    /* the audit consumer's own batch size */
    const long ab = tl_projection_find(TL_PROJECTION_AUDIT)->batch_default;
    tl_event_t *evs = calloc((size_t)ab, sizeof *evs);
    int64_t next[PARTITIONS] = {0};
    double t0 = tl_bench_now_s();
    for (long done = 0; done < n; done += ab) {
        size_t k = 0;
        for (long i = done; i < done + ab && i < n; i++, k++) {
            int p = (int)(i % PARTITIONS);
            evs[k] = (tl_event_t){.type = "ParticipantEnrolled",
                                  .fullname = "org.trialog.ParticipantEnrolled",
                                  .data = m[i].data, .topic = topic, .partition = p,
                                  .offset = next[p]++, .key = m[i].key, .key_len = 36,
                                  .value = m[i].value, .len = m[i].len,
                                  .timestamp_ms = 1767225600000LL, .headers = m[i].headers};
        }
        tl_batch_t b;
        tl_batch_init(&b, evs, k);
        tl_bench_check(tl_pg_exec(pg, "BEGIN", 0, NULL, NULL), "begin");
        tl_bench_check(tl_audit_store_apply(pg, &b), "archive apply");
        char offs[256];
        snprintf(offs, sizeof offs, "{%lld,%lld,%lld,%lld,%lld,%lld}", (long long)next[0],
                 (long long)next[1], (long long)next[2], (long long)next[3], (long long)next[4],
                 (long long)next[5]);
        const char *params[] = {offs, topic};
        tl_bench_check(tl_batch_add(&b,
                                    "INSERT INTO projection_offsets (projection, topic, partition,"
                                    " next_offset) SELECT 'audit', $2, p - 1, o FROM"
                                    " unnest($1::bigint[]) WITH ORDINALITY AS x(o, p)"
                                    " ON CONFLICT (projection, topic, partition) DO UPDATE"
                                    " SET next_offset = EXCLUDED.next_offset",
                                    2, params),
                       "offsets");
        tl_bench_check(tl_batch_add(&b, "COMMIT", 0, NULL), "commit");
        tl_bench_check(tl_pg_pipeline(pg, b.stmts, b.nstmts), "pipeline");
        tl_batch_cleanup(&b);
    }
    free(evs);
    return (double)n / (tl_bench_now_s() - t0);
}

static double bench_replay(tl_pg_t *pg, long n, const char *topic)
{
    const size_t page = 2000;
    tl_kafka_msg_t *msgs = calloc(page, sizeof *msgs);
    tl_buf_t *bytes = calloc(2 * page, sizeof *bytes);
    for (size_t i = 0; i < 2 * page; i++)
        tl_buf_init(&bytes[i], 1 << 20);
    long read = 0;
    double t0 = tl_bench_now_s();
    for (int p = 0; p < PARTITIONS; p++) {
        for (int64_t at = 0;;) {
            size_t got = 0;
            tl_bench_check(tl_audit_read(pg, topic, p, at, page, msgs, bytes, &got),
                           "archive read");
            read += (long)got;
            at += (int64_t)got;
            if (got < page)
                break;
        }
    }
    double rate = (double)read / (tl_bench_now_s() - t0);
    if (read != n) {
        fprintf(stderr, "bench: read %ld of %ld archived messages\n", read, n);
        exit(1);
    }
    for (size_t i = 0; i < 2 * page; i++)
        tl_buf_cleanup(&bytes[i]);
    free(bytes);
    free(msgs);
    return rate;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? strtol(argv[1], NULL, 10) : 60000;
    const char *dsn = getenv("TRIALOG_PG_DSN");
    char schema[64];
    if (n < TL_BENCH_BATCH || !dsn) {
        fprintf(stderr, "usage: TRIALOG_PG_DSN=... trialog-bench-archive [events >= 1000]\n");
        return 2;
    }
    tl_log_init("bench", TL_LOG_WARN);
    snprintf(schema, sizeof schema, "bench_archive_%d", (int)getpid());
    tl_pg_t *pg = NULL;
    tl_registry_t *reg = NULL;
    tl_bench_check(tl_pg_connect(dsn, schema, "bench", &pg), "connect");
    tl_bench_check(tl_migrate(pg), "migrate");
    /* the column `trialog db secure` adds (the write path, not its owner,
     * is measured here) */
    static const char *const hash_version =
        "ALTER TABLE audit_log ADD COLUMN hash_version smallint NOT NULL DEFAULT 1";
    tl_bench_check(tl_pg_exec(pg, hash_version, 0, NULL, NULL), "hash_version");
    char bare_schema[80];
    snprintf(bare_schema, sizeof bare_schema, "%s_bare", schema);
    tl_pg_t *bare = NULL;
    tl_bench_check(tl_pg_connect(dsn, bare_schema, "bench", &bare), "connect");
    tl_bench_check(tl_migrate(bare), "migrate");
    tl_bench_check(tl_pg_exec(bare, hash_version, 0, NULL, NULL), "hash_version");
    tl_bench_check(tl_pg_exec(bare,
                              "DROP INDEX audit_log_by_key, audit_log_by_actor, audit_log_by_time",
                              0, NULL, NULL),
                   "drop the history indexes");
    tl_bench_check(tl_registry_open(pg, &reg), "registry");
    msg_t *m = make_messages(reg, n);
    double ceilings[ROUNDS], writes[ROUNDS], replays[ROUNDS], ratios[ROUNDS], bares[ROUNDS],
        index_costs[ROUNDS];
    for (int r = 0; r < ROUNDS; r++) {
        char topic[64];
        snprintf(topic, sizeof topic, "bench.round%d", r);
        ceilings[r] = bench_ceiling(pg, n);
        writes[r] = bench_archive_write(pg, m, n, topic);
        replays[r] = bench_replay(pg, n, topic);
        ratios[r] = writes[r] / ceilings[r];
        bares[r] = bench_archive_write(bare, m, n, topic);
        index_costs[r] = writes[r] / bares[r];
    }
    double bare_write = tl_bench_median(bares, ROUNDS);
    double index_cost = tl_bench_median(index_costs, ROUNDS);
    double ceiling = tl_bench_median(ceilings, ROUNDS), write = tl_bench_median(writes, ROUNDS);
    double replay = tl_bench_median(replays, ROUNDS), ratio = tl_bench_median(ratios, ROUNDS);
    printf("%d rounds of %ld events, medians\n", ROUNDS, n);
    printf("%-40s %12s %8s\n", "stage", "rows/s", "ratio");
    printf("%-40s %12.0f %8s\n", "ceiling: array upsert (projection rows)", ceiling, "1.00");
    printf("%-40s %12.0f %8.2f\n", "archive write (audit consumer path)", write, ratio);
    printf("%-40s %12.0f %8s\n", "archive replay read (tiered path)", replay, "-");
    printf("%-40s %12.0f %8.2f\n", "archive write without history indexes", bare_write,
           bare_write / ceiling);
    printf("(with / without the history indexes: %.2f)\n", index_cost);
    printf("{\"events\":%ld,\"rounds\":%d,\"ceiling_upsert_rows_s\":%.0f,"
           "\"archive_write_rows_s\":%.0f,\"archive_write_ratio\":%.2f,"
           "\"archive_replay_rows_s\":%.0f,\"archive_write_bare_rows_s\":%.0f,"
           "\"history_index_ratio\":%.2f}\n",
           n, ROUNDS, ceiling, write, ratio, replay, bare_write, index_cost);
    char drop[128];
    snprintf(drop, sizeof drop, "DROP SCHEMA %s CASCADE", schema);
    tl_pg_exec(pg, drop, 0, NULL, NULL);
    snprintf(drop, sizeof drop, "DROP SCHEMA %s CASCADE", bare_schema);
    tl_pg_exec(bare, drop, 0, NULL, NULL);
    tl_pg_destroy(bare);
    for (long i = 0; i < n; i++) {
        free(m[i].value);
        json_decref(m[i].data);
        json_decref(m[i].headers);
    }
    free(m);
    tl_registry_destroy(reg);
    tl_pg_destroy(pg);
    return 0;
}
