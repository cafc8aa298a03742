/* ingest: what a connector's record must say to become an observation of a
 * participant (docs/CONNECTORS.md), pure.
 *
 * Connectors publish Avro records, with schemas they registered, to
 * trialog.ingest.<source>.v1. A record names its observation with:
 *
 *   event_id          string, a UUID: the connector's id for it; the same
 *                     id again has no second effect
 *   protocol_id       string: the study (its protocol id)
 *   participant_code  string: the participant in that study
 *   observed_on       date (int, logicalType date) or "YYYY-MM-DD": when it
 *                     was measured; not in the future
 *   device            optional string
 *   laterality        optional string: OD, OS or OU
 *
 * and every other field is a value of the observation: null, boolean,
 * integer, number or string (at most TL_INGEST_TEXT_MAX characters), at
 * most TL_INGEST_VALUES_MAX of them. A numeric field may declare bounds in
 * its schema with the attributes "trialog.min" and "trialog.max"
 * (inclusive); a value outside them is out of range. */
#ifndef TL_INGEST_H
#define TL_INGEST_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "stream.h"
#include "tl_uuid.h"

#define TL_INGEST_VALUES_MAX 64
#define TL_INGEST_TEXT_MAX 2000
#define TL_INGEST_DEVICE_MAX 200

typedef struct {
    char event_id[TL_UUID_STRLEN]; /* canonical */
    char protocol_id[TL_BYTES(TL_PROTOCOL_ID_MAX)];
    char participant_code[TL_BYTES(TL_CODE_MAX)];
    int32_t observed_on; /* days since 1970-01-01 */
    char device[TL_BYTES(TL_INGEST_DEVICE_MAX)];
    char laterality[3];
    json_t *values; /* owned: name -> scalar */
} tl_observation_t;

/* Reads record (a decoded connector record) written with the schema whose
 * JSON text is schema_json, as of today (days since 1970-01-01). NULL when
 * it is an observation (o filled; free with tl_observation_cleanup); else
 * the error type, "invalid_record" or "out_of_range", with the offending
 * field's name in field (field_size bytes). */
const char *tl_ingest_read(const json_t *record, const char *schema_json, int32_t today,
                           tl_observation_t *o, char *field, size_t field_size);
void tl_observation_cleanup(tl_observation_t *o);

/* What the participants projection says of an observation's study and
 * participant when the ingest consumer decides on it. */
typedef struct {
    bool study_known;
    bool study_locked;
    bool participant_known;
    bool participant_enrolled; /* not screened, withdrawn or finished */
    bool has_consent;
    int32_t consent_date; /* days since 1970-01-01 */
} tl_ingest_target_t;

/* Whether an observation made on observed_on may join the participant's
 * stream: NULL if so; else the dead letter's error type, with the field at
 * fault in *field (or NULL). The reasons that do not go away by waiting come
 * first (unknown_study, unknown_participant, participant_not_active,
 * out_of_range before consent); study_locked last, so a record dead-lettered
 * as study_locked is one that unlocking alone would let in (sent again after
 * the unlock, it is taken). */
const char *tl_ingest_admit(const tl_ingest_target_t *t, int32_t observed_on, const char **field);

#endif
