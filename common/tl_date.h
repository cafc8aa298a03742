/* tl_date: proleptic Gregorian civil dates as days since 1970-01-01 (the Avro
 * "date" logical type). Pure arithmetic: no mktime, no time zones. */
#ifndef TL_DATE_H
#define TL_DATE_H

#include <stdbool.h>
#include <stdint.h>

#include "tl_err.h"

#define TL_DATE_STRLEN 11 /* YYYY-MM-DD and the NUL */

int32_t tl_date_from_civil(int y, unsigned m, unsigned d);
void tl_date_to_civil(int32_t days, int *y, unsigned *m, unsigned *d);
/* Strict ISO 8601 calendar date "YYYY-MM-DD" (years 1000-9999, real days). */
tl_err_t tl_date_parse(const char *s, int32_t *days);
void tl_date_format(int32_t days, char out[TL_DATE_STRLEN]);
/* Today in UTC. */
int32_t tl_date_today(void);

/* The range dates and times of events must fall in (1000-01-01 to
 * 9999-12-31): what PostgreSQL and the formats below handle, far beyond any
 * clinical date; values from the log outside it are refused, not formatted. */
#define TL_DATE_MIN (-354285)  /* 1000-01-01 */
#define TL_DATE_MAX 2932896    /* 9999-12-31 */
#define TL_TS_STRLEN 40
bool tl_date_valid(int64_t days);
/* us: microseconds since the Unix epoch */
bool tl_ts_valid(int64_t us);
/* "YYYY-MM-DD HH:MM:SS.ffffff+00", a timestamptz literal; us must be valid. */
void tl_ts_format(int64_t us, char out[TL_TS_STRLEN]);

#endif
