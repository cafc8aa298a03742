/* bench_util: what the benchmark programs share: the clock, medians, the
 * exit-on-failure check, and the PostgreSQL ceiling they all compare with:
 * participant-shaped rows upserted as the projection does, 1,000 rows an
 * array statement. Only for bench/: nothing else of Trialog links it. */
#ifndef TL_BENCH_UTIL_H
#define TL_BENCH_UTIL_H

#include <jansson.h>

#include "tl_err.h"
#include "tl_pg.h"
#include "tl_uuid.h"

/* Rows a statement (or a transaction) in the upsert ceilings. */
#define TL_BENCH_BATCH 1000
/* Columns of bench_participants, the shape of the participants projection. */
#define TL_BENCH_NCOLS 13
#define TL_BENCH_CODE_LEN 32

/* Monotonic seconds. */
double tl_bench_now_s(void);
/* Median of v (sorted in place); n > 0. */
double tl_bench_median(double *v, int n);
/* Sorts v ascending (n may be 0). */
void tl_bench_sort(double *v, long n);
/* The p-quantile (0..1) of sorted v, scaled by scale; 0 when n is 0. */
double tl_bench_percentile(const double *sorted, long n, double p, double scale);

/* A response body kept up to its size (the rest is counted and dropped). */
typedef struct {
    char data[4096];
    size_t len;
} tl_bench_body_t;
/* A libcurl write callback filling the tl_bench_body_t given as user. */
size_t tl_bench_body_write(char *data, size_t size, size_t n, void *user);

/* Prints what failed and exits with status 1 (atexit handlers run). */
void tl_bench_check(tl_err_t err, const char *what);

/* Row i of bench_participants as text parameters in column order. id and
 * version are borrowed; code is the caller's storage for the participant
 * code; v receives pointers into those, or to literals. */
void tl_bench_participant_row(const char *id, long i, const char *version,
                              char code[TL_BENCH_CODE_LEN], const char *v[TL_BENCH_NCOLS]);

/* Upserts rows 0..n-1 into bench_participants (in the search path, made with
 * LIKE participants) with INSERT ... SELECT unnest(...) ON CONFLICT (id) DO
 * UPDATE, TL_BENCH_BATCH rows a statement, each statement its own
 * transaction. ids: row i gets ids[i] (borrowed); NULL gives every row a new
 * version 7 id. */
tl_err_t tl_bench_upsert_array(tl_pg_t *pg, const tl_uuid_t *ids, long n, const char *version);

/* A ParticipantEnrolled record with all its metadata, as the producer makes
 * it. Strings are copied. Caller json_decref()s; NULL when out of memory. */
json_t *tl_bench_enrolled_record(const char *event_id, const char *participant_id,
                                 const char *code);

#endif
