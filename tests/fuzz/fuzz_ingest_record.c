/* libFuzzer target: a connector's record as the ingest consumer reads it
 * (projections/ingest.c). The bytes are read twice: as the decoded record
 * (JSON) against a schema with bounds, and as a schema's JSON text (its
 * "trialog.min"/"trialog.max" attributes come from connectors too) against
 * a fixed valid record. Whatever the bytes: no crash, no leak, and
 * - an accepted record has a canonical event id, a date not after today,
 *   at most TL_INGEST_VALUES_MAX values, none of them a named member, and
 *   only scalars;
 * - a refused one says invalid_record or out_of_range. */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ingest.h"
#include "tl_date.h"
#include "tl_uuid.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const schema =
    "{\"type\":\"record\",\"name\":\"R\",\"fields\":["
    "{\"name\":\"cst_um\",\"type\":\"int\",\"trialog.min\":100,\"trialog.max\":900},"
    "{\"name\":\"q\",\"type\":\"double\",\"trialog.min\":-1.5}]}";

static const char *const valid =
    "{\"event_id\":\"0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a01\",\"protocol_id\":\"P\","
    "\"participant_code\":\"C-1\",\"observed_on\":\"2026-01-05\",\"cst_um\":250,\"q\":1.0}";

static void check(const json_t *record, const char *schema_json)
{
    tl_observation_t o;
    char field[64];
    int32_t today = tl_date_from_civil(2026, 1, 10);
    const char *why = tl_ingest_read(record, schema_json, today, &o, field, sizeof field);
    if (why) {
        if (strcmp(why, "invalid_record") && strcmp(why, "out_of_range"))
            abort();
        if (o.values) /* cleaned up on refusal */
            abort();
        return;
    }
    tl_uuid_t u;
    if (tl_uuid_parse(o.event_id, &u) || strcmp(u.s, o.event_id) || o.observed_on > today ||
        json_object_size(o.values) > TL_INGEST_VALUES_MAX)
        abort();
    const char *name;
    json_t *v;
    json_object_foreach(o.values, name, v)
    {
        if (!strcmp(name, "event_id") || !strcmp(name, "protocol_id") ||
            !strcmp(name, "participant_code") || !strcmp(name, "observed_on") ||
            !strcmp(name, "device") || !strcmp(name, "laterality"))
            abort();
        if (json_is_array(v) || json_is_object(v))
            abort();
    }
    tl_observation_cleanup(&o);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *record = json_loadb((const char *)data, size, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES,
                                NULL);
    if (record)
        check(record, schema);
    json_decref(record);
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    json_t *fixed = json_loads(valid, 0, NULL);
    check(fixed, text);
    json_decref(fixed);
    free(text);
    return 0;
}
