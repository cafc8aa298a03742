/* tl_err: the one error type of Trialog.
 *
 * Every fallible function returns tl_err_t; TL_OK is 0. The table below is the
 * single source of names, messages and the retriable flag. Foreign errors
 * (SQLSTATE, librdkafka, avro-c, errno) are converted at their wrapper. */
#ifndef TL_ERR_H
#define TL_ERR_H

#include <stdbool.h>

/* X(name, message, retriable) */
#define TL_ERR_TABLE(X)                                                       \
    X(OK, "success", false)                                                   \
    X(NOMEM, "out of memory", true)                                           \
    X(INVALID, "invalid argument", false)                                     \
    X(TOO_LARGE, "input exceeds its limit", false)                            \
    X(MALFORMED, "malformed input", false)                                    \
    X(NOT_FOUND, "not found", false)                                          \
    X(CONFLICT, "conflict", false)                                            \
    X(RULE, "domain rule violated", false)                                    \
    X(UNKNOWN_SCHEMA, "unknown schema id", false)                             \
    X(TRANSIENT, "transient failure, retry", true)                            \
    X(UNAVAILABLE, "dependency unavailable", true)                            \
    X(TIMEOUT, "timed out", true)                                             \
    X(DB, "database error", false)                                            \
    X(KAFKA, "kafka error", false)                                            \
    X(IO, "i/o error", false)                                                 \
    X(CONFIG, "invalid configuration", false)                                 \
    X(LOG_GAP, "log position is not available", false)                        \
    X(INTERNAL, "internal error", false)

typedef enum {
#define TL__ERR_ENUM(name, msg, retr) TL_ERR_##name,
    TL_ERR_TABLE(TL__ERR_ENUM)
#undef TL__ERR_ENUM
        TL_ERR__COUNT
} tl_err_t;

#define TL_OK TL_ERR_OK

/* Short stable name, e.g. "CONFLICT". Never NULL. */
const char *tl_err_name(tl_err_t err);
/* Human message in lowercase. Never NULL. */
const char *tl_err_str(tl_err_t err);
/* True when the same call may succeed later without any change of input. */
bool tl_err_is_retriable(tl_err_t err);

#endif
