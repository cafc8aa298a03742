/* trialog: the operator's command line.
 *
 *   trialog audit verify    recompute every partition's hash chain of the
 *                           archive; name the first broken row; exit 1 if any
 *   trialog reseed          give an empty broker its log back from the archive:
 *                           every partition re-produced in order, so offsets
 *                           continue exactly where they were (DESIGN.md §7)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "tl_codec.h"
#include "tl_config.h"
#include "tl_kafka.h"
#include "tl_log.h"
#include "tl_pg.h"

#define VERIFY_PAGE 5000
#define STR_(x) #x
#define STR(x) STR_(x)

typedef struct {
    char topic[256];
    int32_t partition;
    int64_t offset; /* of the last row seen; -1 before the first */
    unsigned char hash[TL_AUDIT_HASH_LEN];
    long rows;
} chain_t;

static int usage(void)
{
    fprintf(stderr, "usage: trialog [--print-config] audit verify | reseed\n");
    return 2;
}

#define RESEED_PAGE 5000

/* Re-produces one partition's archive, rows [0, next), in order. */
static tl_err_t reseed_partition(tl_pg_t *pg, tl_kafka_producer_t *kafka, const char *topic,
                                 int32_t partition, int64_t next)
{
    char part[16], from[24], page[16];
    snprintf(part, sizeof part, "%d", partition);
    snprintf(page, sizeof page, "%d", RESEED_PAGE);
    tl_buf_t key, value, hv[32];
    tl_buf_init(&key, 64 * 1024 * 1024);
    tl_buf_init(&value, 64 * 1024 * 1024);
    for (int i = 0; i < 32; i++)
        tl_buf_init(&hv[i], 1024 * 1024);
    tl_err_t err = TL_OK;
    for (int64_t at = 0; at < next && !err;) {
        snprintf(from, sizeof from, "%lld", (long long)at);
        const char *params[] = {topic, part, from, page};
        tl_pg_res_t *res = NULL;
        err = tl_pg_exec(pg,
                         "SELECT \"offset\", key, value, headers::text FROM audit_log"
                         " WHERE topic = $1 AND partition = $2 AND \"offset\" >= $3"
                         " ORDER BY \"offset\" LIMIT $4",
                         4, params, &res);
        int n = err ? 0 : tl_pg_nrows(res);
        if (!err && !n)
            err = TL_ERR_LOG_GAP;
        for (int r = 0; r < n && !err; r++) {
            const char *k = tl_pg_get(res, r, 1), *v = tl_pg_get(res, r, 2);
            json_t *headers = json_loads(tl_pg_get(res, r, 3), 0, NULL);
            tl_kafka_header_t hs[32];
            size_t nh = json_array_size(headers);
            tl_buf_reset(&key);
            tl_buf_reset(&value);
            if (strtoll(tl_pg_get(res, r, 0), NULL, 10) != at || nh > 32 ||
                (k && tl_bytea_unhex(&key, k)) || (v && tl_bytea_unhex(&value, v)))
                err = TL_ERR_LOG_GAP;
            for (size_t h = 0; h < nh && !err; h++) {
                const json_t *x = json_array_get(headers, h);
                const char *v64 = json_string_value(json_object_get(x, "value"));
                tl_buf_reset(&hv[h]);
                err = v64 ? tl_b64_decode(&hv[h], v64) : TL_OK;
                hs[h] = (tl_kafka_header_t){json_string_value(json_object_get(x, "name")),
                                            v64 ? (hv[h].data ? hv[h].data : "") : NULL,
                                            hv[h].len};
                if (!hs[h].name)
                    err = TL_ERR_MALFORMED;
            }
            if (!err)
                err = tl_kafka_produce_async(kafka, topic, partition, k ? key.data : NULL, key.len,
                                             v ? (value.data ? value.data : "") : NULL, value.len,
                                             hs, nh);
            json_decref(headers);
            at++;
        }
        tl_pg_res_free(res);
    }
    if (!err)
        err = tl_kafka_producer_flush(kafka, 120000);
    tl_buf_cleanup(&key);
    tl_buf_cleanup(&value);
    for (int i = 0; i < 32; i++)
        tl_buf_cleanup(&hv[i]);
    return err;
}

static int reseed(tl_pg_t *pg, const char *brokers)
{
    tl_kafka_producer_t *kafka = NULL;
    tl_pg_res_t *res = NULL;
    int rc = 0;
    long restored = 0;
    if (!brokers || !*brokers) {
        fprintf(stderr, "reseed: TRIALOG_KAFKA_BROKERS is not set\n");
        return 2;
    }
    if (tl_kafka_producer_new(brokers, 30000, &kafka) ||
        tl_pg_exec(pg,
                   "SELECT topic, partition, max(\"offset\") + 1, count(*) FROM audit_log"
                   " GROUP BY topic, partition ORDER BY topic, partition",
                   0, NULL, &res)) {
        fprintf(stderr, "reseed: cannot reach the broker or the archive\n");
        tl_kafka_producer_destroy(kafka);
        return 2;
    }
    for (int r = 0; r < tl_pg_nrows(res) && rc != 2; r++) {
        const char *topic = tl_pg_get(res, r, 0);
        int32_t part = (int32_t)strtol(tl_pg_get(res, r, 1), NULL, 10);
        int64_t next = strtoll(tl_pg_get(res, r, 2), NULL, 10);
        int64_t count = strtoll(tl_pg_get(res, r, 3), NULL, 10), lo = 0, hi = 0;
        if (tl_kafka_producer_partitions(kafka, topic, 10000) <= part ||
            tl_kafka_producer_watermarks(kafka, topic, part, &lo, &hi, 10000)) {
            printf("FAILED  %s/%d: the broker has no such partition\n", topic, part);
            rc = 2;
        } else if (hi >= next) {
            printf("ok      %s/%d: the broker has offsets up to %lld (archive %lld)\n", topic,
                   part, (long long)hi, (long long)next);
        } else if (hi > 0) {
            printf("FAILED  %s/%d: the broker has %lld messages, the archive %lld: something "
                   "was produced before the re-seed; stop all producers, reset the broker, "
                   "and re-seed again\n",
                   topic, part, (long long)hi, (long long)next);
            rc = 1;
        } else if (count != next) {
            printf("FAILED  %s/%d: the archive has %lld of offsets 0..%lld\n", topic, part,
                   (long long)count, (long long)next - 1);
            rc = 1;
        } else if (reseed_partition(pg, kafka, topic, part, next) ||
                   tl_kafka_producer_watermarks(kafka, topic, part, &lo, &hi, 10000) ||
                   hi != next) {
            printf("FAILED  %s/%d: re-producing stopped before offset %lld\n", topic, part,
                   (long long)next);
            rc = 2;
        } else {
            printf("seeded  %s/%d: %lld messages, offsets continue at %lld\n", topic, part,
                   (long long)next, (long long)next);
            restored += (long)next;
        }
    }
    printf("%s: %ld messages re-produced\n", rc ? "reseed FAILED" : "reseed done", restored);
    tl_pg_res_free(res);
    tl_kafka_producer_destroy(kafka);
    return rc;
}

/* Checks one row against the chain so far; returns a reason or NULL. */
static const char *check_row(chain_t *c, const tl_pg_res_t *res, int r, tl_buf_t *key,
                             tl_buf_t *value, tl_buf_t *prev, tl_buf_t *hash)
{
    unsigned char want[TL_AUDIT_HASH_LEN];
    const char *k = tl_pg_get(res, r, 3), *v = tl_pg_get(res, r, 5);
    int64_t off = strtoll(tl_pg_get(res, r, 2), NULL, 10);
    tl_buf_reset(key);
    tl_buf_reset(value);
    tl_buf_reset(prev);
    tl_buf_reset(hash);
    if ((k && tl_bytea_unhex(key, k)) || (v && tl_bytea_unhex(value, v)) ||
        tl_bytea_unhex(prev, tl_pg_get(res, r, 6)) || tl_bytea_unhex(hash, tl_pg_get(res, r, 7)) ||
        prev->len != TL_AUDIT_HASH_LEN || hash->len != TL_AUDIT_HASH_LEN)
        return "malformed row";
    if (off != c->offset + 1)
        return c->offset < 0 ? "the archive of this partition does not start at offset 0"
                             : "offsets are missing before this row";
    if (memcmp(prev->data, c->hash, TL_AUDIT_HASH_LEN))
        return "prev_hash is not the hash of the row before";
    json_t *headers = json_loads(tl_pg_get(res, r, 4), 0, NULL);
    tl_err_t err = tl_audit_hash(c->hash, c->topic, c->partition, off, k ? key->data : NULL,
                                 key->len, headers, v ? value->data : NULL, value->len, want);
    json_decref(headers);
    if (err)
        return "malformed headers";
    if (memcmp(want, hash->data, TL_AUDIT_HASH_LEN))
        return "content does not match its hash (changed after archiving)";
    memcpy(c->hash, want, TL_AUDIT_HASH_LEN);
    c->offset = off;
    c->rows++;
    return NULL;
}

static void report(const chain_t *c)
{
    if (c->rows)
        printf("ok      %s/%d: %ld rows, offsets 0..%lld\n", c->topic, c->partition, c->rows,
               (long long)c->offset);
}

static int audit_verify(tl_pg_t *pg)
{
    chain_t c = {.offset = -1, .partition = -1};
    char after_part[16] = "-1", after_off[24] = "-1", after_topic[256] = "";
    tl_buf_t key, value, prev, hash;
    tl_buf_init(&key, 64 * 1024 * 1024);
    tl_buf_init(&value, 64 * 1024 * 1024);
    tl_buf_init(&prev, 256);
    tl_buf_init(&hash, 256);
    long total = 0;
    int broken = 0;
    for (;;) {
        const char *params[] = {after_topic, after_part, after_off};
        tl_pg_res_t *res = NULL;
        if (tl_pg_exec(pg,
                       "SELECT topic, partition, \"offset\", key, headers::text, value, prev_hash,"
                       " hash FROM audit_log WHERE (topic, partition, \"offset\") > ($1, $2, $3)"
                       " ORDER BY topic, partition, \"offset\" LIMIT " STR(VERIFY_PAGE),
                       3, params, &res)) {
            fprintf(stderr, "audit verify: could not read audit_log (SQLSTATE %s)\n",
                    tl_pg_sqlstate(pg));
            broken = 2;
            break;
        }
        int n = tl_pg_nrows(res);
        for (int r = 0; r < n; r++) {
            const char *topic = tl_pg_get(res, r, 0);
            int32_t part = (int32_t)strtol(tl_pg_get(res, r, 1), NULL, 10);
            if (strcmp(topic, c.topic) || part != c.partition) {
                report(&c);
                memset(&c, 0, sizeof c);
                snprintf(c.topic, sizeof c.topic, "%s", topic);
                c.partition = part;
                c.offset = -1;
            }
            if (c.offset == INT64_MAX) /* this partition is already broken */
                continue;
            const char *why = check_row(&c, res, r, &key, &value, &prev, &hash);
            total++;
            if (why) {
                printf("BROKEN  %s/%d at offset %s: %s\n", topic, part, tl_pg_get(res, r, 2), why);
                broken = 1;
                c.rows = 0;
                c.offset = INT64_MAX;
            }
        }
        if (n) {
            snprintf(after_topic, sizeof after_topic, "%s", tl_pg_get(res, n - 1, 0));
            snprintf(after_part, sizeof after_part, "%s", tl_pg_get(res, n - 1, 1));
            snprintf(after_off, sizeof after_off, "%s", tl_pg_get(res, n - 1, 2));
        }
        tl_pg_res_free(res);
        if (n < VERIFY_PAGE)
            break;
    }
    report(&c);
    printf("%s: %ld rows checked\n", broken ? "audit chain BROKEN" : "audit chain ok", total);
    tl_buf_cleanup(&key);
    tl_buf_cleanup(&value);
    tl_buf_cleanup(&prev);
    tl_buf_cleanup(&hash);
    return broken;
}

int main(int argc, char **argv)
{
    const char *dsn = NULL, *schema = NULL, *brokers = NULL;
    const tl_config_var_t vars[] = {
        {"TRIALOG_PG_DSN", TL_CFG_STR, "dbname=trialog", 0, 2000, true,
         "libpq connection string", &dsn},
        {"TRIALOG_PG_SCHEMA", TL_CFG_STR, "trialog", 0, 63, false, "database schema", &schema},
        {"TRIALOG_KAFKA_BROKERS", TL_CFG_STR, "", 0, 1000, false,
         "Kafka bootstrap servers (reseed)", &brokers},
    };
    const size_t nvars = sizeof vars / sizeof vars[0];
    tl_log_init("cli", TL_LOG_WARN);
    if (tl_config_load(vars, nvars, NULL, stderr))
        return 2;
    if (argc > 1 && !strcmp(argv[1], "--print-config")) {
        tl_config_print(vars, nvars, stdout);
        return 0;
    }
    bool verify = argc == 3 && !strcmp(argv[1], "audit") && !strcmp(argv[2], "verify");
    bool seed = argc == 2 && !strcmp(argv[1], "reseed");
    if (!verify && !seed)
        return usage();
    tl_pg_t *pg = NULL;
    if (tl_pg_connect(dsn, schema, "trialog-cli", &pg)) {
        fprintf(stderr, "trialog: could not connect to PostgreSQL\n");
        return 2;
    }
    int rc = verify ? audit_verify(pg) : reseed(pg, brokers);
    tl_pg_destroy(pg);
    return rc;
}
