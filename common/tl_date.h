/* tl_date: proleptic Gregorian civil dates as days since 1970-01-01 (the Avro
 * "date" logical type). Pure arithmetic: no mktime, no time zones. */
#ifndef TL_DATE_H
#define TL_DATE_H

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

#endif
