/* tl_log: one JSON object per line on stderr.
 *
 * Never pass a request body, an answer, an Avro payload, an SQL parameter or
 * libpq's error text: log ids, offsets, SQLSTATE and constraint names only. */
#ifndef TL_LOG_H
#define TL_LOG_H

#include <jansson.h>
#include <stdbool.h>

typedef enum { TL_LOG_DEBUG, TL_LOG_INFO, TL_LOG_WARN, TL_LOG_ERROR } tl_log_level_t;

/* component is borrowed and must outlive the program (a literal). */
void tl_log_init(const char *component, tl_log_level_t min_level);
/* fields: extra members, or NULL; takes ownership (json_pack result may be passed directly). */
void tl_log(tl_log_level_t level, const char *event, json_t *fields);
/* Whether a line of this level is written: to skip building the fields of
 * one that is not (debug lines on hot paths). */
bool tl_log_enabled(tl_log_level_t level);
/* Milliseconds of the monotonic clock, for the durations logs carry. */
double tl_log_mono_ms(void);

#define tl_log_info(ev, f) tl_log(TL_LOG_INFO, (ev), (f))
#define tl_log_warn(ev, f) tl_log(TL_LOG_WARN, (ev), (f))
#define tl_log_error(ev, f) tl_log(TL_LOG_ERROR, (ev), (f))

#endif
