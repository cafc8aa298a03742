/* trialog: the operator's command line.
 *
 *   trialog audit verify    recompute every partition's hash chain of the
 *                           archive; name the first broken row; exit 1 if any
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "tl_codec.h"
#include "tl_config.h"
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
    fprintf(stderr, "usage: trialog [--print-config] audit verify\n");
    return 2;
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
    const char *dsn = NULL, *schema = NULL;
    const tl_config_var_t vars[] = {
        {"TRIALOG_PG_DSN", TL_CFG_STR, "dbname=trialog", 0, 2000, true,
         "libpq connection string", &dsn},
        {"TRIALOG_PG_SCHEMA", TL_CFG_STR, "trialog", 0, 63, false, "database schema", &schema},
    };
    const size_t nvars = sizeof vars / sizeof vars[0];
    tl_log_init("cli", TL_LOG_WARN);
    if (tl_config_load(vars, nvars, NULL, stderr))
        return 2;
    if (argc > 1 && !strcmp(argv[1], "--print-config")) {
        tl_config_print(vars, nvars, stdout);
        return 0;
    }
    if (argc != 3 || strcmp(argv[1], "audit") || strcmp(argv[2], "verify"))
        return usage();
    tl_pg_t *pg = NULL;
    if (tl_pg_connect(dsn, schema, "trialog-cli", &pg)) {
        fprintf(stderr, "trialog: could not connect to PostgreSQL\n");
        return 2;
    }
    int rc = audit_verify(pg);
    tl_pg_destroy(pg);
    return rc;
}
