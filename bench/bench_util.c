#include "bench_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tl_batch.h"

double tl_bench_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double tl_bench_median(double *v, int n)
{
    tl_bench_sort(v, n);
    return v[n / 2];
}

void tl_bench_sort(double *v, long n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
}

double tl_bench_percentile(const double *sorted, long n, double p, double scale)
{
    return n ? sorted[(long)(p * (double)(n - 1))] * scale : 0;
}

size_t tl_bench_body_write(char *data, size_t size, size_t n, void *user)
{
    tl_bench_body_t *b = user;
    size_t len = size * n, room = sizeof b->data - 1 - b->len;
    size_t take = len < room ? len : room;
    memcpy(b->data + b->len, data, take);
    b->len += take;
    b->data[b->len] = '\0';
    return len;
}

void tl_bench_check(tl_err_t err, const char *what)
{
    if (err) {
        fprintf(stderr, "bench: %s failed: %s\n", what, tl_err_name(err));
        exit(1);
    }
}

void tl_bench_participant_row(const char *id, long i, const char *version,
                              char code[TL_BENCH_CODE_LEN], const char *v[TL_BENCH_NCOLS])
{
    snprintf(code, TL_BENCH_CODE_LEN, "B-%07ld", i);
    const char *row[TL_BENCH_NCOLS] = {id,
                                       "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
                                       "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5c",
                                       code,
                                       "enrolled",
                                       "1958",
                                       "F",
                                       "2026-01-01",
                                       "2026-01-01",
                                       "2026-01-01 10:00:00+00",
                                       "2026-01-01 10:00:00+00",
                                       version,
                                       id};
    for (int j = 0; j < TL_BENCH_NCOLS; j++)
        v[j] = row[j];
}

tl_err_t tl_bench_upsert_array(tl_pg_t *pg, const tl_uuid_t *ids, long n, const char *version)
{
    tl_err_t err = TL_OK;
    for (long done = 0; done < n && !err; done += TL_BENCH_BATCH) {
        tl_cols_t c;
        tl_cols_init(&c, TL_BENCH_NCOLS);
        for (long i = done; i < done + TL_BENCH_BATCH && i < n && !err; i++) {
            tl_uuid_t fresh;
            const char *v[TL_BENCH_NCOLS];
            char code[TL_BENCH_CODE_LEN];
            if (!ids)
                err = tl_uuid_v7(&fresh);
            tl_bench_participant_row(ids ? ids[i].s : fresh.s, i, version, code, v);
            for (int j = 0; j < TL_BENCH_NCOLS && !err; j++)
                err = tl_cols_add(&c, j, v[j]);
            tl_cols_row_done(&c);
        }
        const char *params[TL_BENCH_NCOLS];
        for (int j = 0; j < TL_BENCH_NCOLS && !err; j++) {
            err = tl_pg_array_end(&c.col[j]);
            params[j] = c.col[j].data;
        }
        if (!err)
            err = tl_pg_exec(pg,
                             "INSERT INTO bench_participants SELECT * FROM unnest($1::uuid[],"
                             " $2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::int[],"
                             " $7::text[], $8::date[], $9::date[], $10::timestamptz[],"
                             " $11::timestamptz[], $12::bigint[], $13::uuid[]) ON CONFLICT (id)"
                             " DO UPDATE SET status = EXCLUDED.status, version = EXCLUDED.version",
                             TL_BENCH_NCOLS, params, NULL);
        tl_cols_cleanup(&c);
    }
    return err;
}

json_t *tl_bench_enrolled_record(const char *event_id, const char *participant_id, const char *code)
{
    return json_pack(
        "{s:s, s:I, s:I, s:s, s:s, s:s, s:n, s:s, s:n, s:s, s:i, s:s, s:s, s:s, s:i, s:s,"
        " s:i, s:i, s:[]}",
        "event_id", event_id, "occurred_at", (json_int_t)1767225600000000LL, "recorded_at",
        (json_int_t)1767225600000000LL, "actor_id", "admin", "actor_role", "admin", "site_id",
        "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5c", "reason", "correlation_id", event_id,
        "causation_id", "source", "gateway", "stream_version", 1, "participant_id", participant_id,
        "study_id", "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", "participant_code", code, "birth_year",
        1958, "sex", "F", "consent_date", 20454, "baseline_date", 20454, "schedule");
}
