/* waiter: read-your-writes. A listener thread follows the projections'
 * progress (NOTIFY after every committed batch, and a periodic re-read of
 * projection_offsets so a lost notification costs at most a second), and
 * request threads wait until a projection has applied a given offset. */
#ifndef TL_WAITER_H
#define TL_WAITER_H

#include <stddef.h>
#include <stdint.h>

#include "tl_err.h"

typedef struct tl_waiter tl_waiter_t;

/* dsn and schema are borrowed and must outlive the waiter. */
tl_err_t tl_waiter_new(const char *dsn, const char *schema, tl_waiter_t **out);
void tl_waiter_destroy(tl_waiter_t *w);
/* TL_OK once projection's next offset on topic/partition is > offset;
 * TL_ERR_TIMEOUT after timeout_ms. */
tl_err_t tl_waiter_wait(tl_waiter_t *w, const char *projection, const char *topic,
                        int32_t partition, int64_t offset, int timeout_ms);
/* The same for every one of nproj projections (at most
 * TL_WAITER_PROJECTIONS_MAX), with one wake-up when the last has it. */
#define TL_WAITER_PROJECTIONS_MAX 4
tl_err_t tl_waiter_wait_all(tl_waiter_t *w, const char *const *projections, size_t nproj,
                            const char *topic, int32_t partition, int64_t offset, int timeout_ms);

/* A number that changes whenever projection makes progress on topic, or on
 * any topic with topic NULL (the sum of its next offsets as seen here): what
 * was read from it under one value may be stale under another. 0 with w
 * NULL. */
int64_t tl_waiter_epoch(tl_waiter_t *w, const char *projection, const char *topic);

#endif
