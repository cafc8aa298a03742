/* Idempotency-Key (docs/SECURITY.md, DESIGN.md §9): a key binds to the first
 * request that used it (principal, method, path, the body's SHA-256) and
 * the ids that request's event and resource got. The binding is a row of
 * idempotency_keys, claimed before anything is produced. The body's hash
 * leaves out its secret members (passwords, one-time codes): the same key
 * with another password is the same request, and the table holds no
 * unsalted hash of a password.
 *
 * - the same key with the same request answers exactly what the first
 *   answer said (stored once final), or, while the first answer is not
 *   final (202, 503), waits for the event the first request wrote, which
 *   is never written twice;
 * - the same key with anything else (another body, principal, method or
 *   path) is refused, 422 idempotency-key-reused: no command is lost to a
 *   replayed answer;
 * - a request still in flight holds a lease on its key; another request
 *   with the key meanwhile answers 409 idempotency-key-in-progress.
 *
 * The ids are fresh (UUIDv7), stored in the row, so a key that expires
 * (TRIALOG_IDEMPOTENCY_KEY_HOURS) and comes back makes new ids, never a
 * second event with an old id. */
#ifndef TL_IDEMPOTENCY_H
#define TL_IDEMPOTENCY_H

#include <stdbool.h>

#include "tl_kafka.h"
#include "tl_secret.h"
#include "tl_uuid.h"

#define TL_IDEMPOTENCY_KEY_MAX 200

/* A request's part in its key, kept on the request. */
typedef struct {
    bool claimed;   /* the request holds the key's row */
    bool attempted; /* its event went to the producer (it may be in the log) */
    bool produced;  /* the log has the event at topic/pos: never produce it again */
    char topic[250]; /* a Kafka topic name: at most 249 */
    tl_kafka_pos_t pos;
} tl_idem_t;

/* What a key's row says of a request that brings the key again. */
typedef struct {
    const char *principal_id, *method, *path, *body_sha256;
    bool answered;     /* a final answer is stored */
    bool produced;     /* the event's place in the log is stored */
    bool lease_active; /* the request that holds it may still be running */
} tl_idem_row_t;

typedef enum {
    TL_IDEM_REUSED,      /* another request's key: 422 */
    TL_IDEM_REPLAY,      /* answer as the first answer did */
    TL_IDEM_WAIT,        /* the event is in the log: wait for it, then answer */
    TL_IDEM_IN_PROGRESS, /* the first request is still running: 409, retry */
    TL_IDEM_TAKE_OVER,   /* the first request ended without a final answer
                          * nor a confirmed write: run again with its ids */
} tl_idem_verdict_t;

/* The rule (pure): what a request (principal, method, path, body hash)
 * bringing a key gets, given the key's row. */
tl_idem_verdict_t tl_idem_judge(const tl_idem_row_t *row, const char *principal_id,
                                const char *method, const char *path, const char *body_sha256);

/* Whether an answer with this status is final, so stored and replayed:
 * every 2xx but 202 and every 4xx but the ones that mean "not now" (408,
 * 409 idempotency-key-in-progress is never stored: it is not the key's
 * own answer, 429). A 202 or 5xx leaves the command in doubt: a retry
 * finds out. */
bool tl_idem_final(int status, const char *problem_type);

#endif
