#include "ingest.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "reasons.h"
#include "tl_date.h"
#include "tl_json.h"

#define OBSERVED_MIN (-25567) /* 1900-01-01: nothing observed before */

static const char *const named[] = {"event_id",    "protocol_id", "participant_code",
                                    "observed_on", "device",      "laterality"};

static bool is_named(const char *name)
{
    for (size_t i = 0; i < sizeof named / sizeof named[0]; i++)
        if (!strcmp(name, named[i]))
            return true;
    return false;
}

/* A string member that fits size bytes and max characters of clean text. */
static bool text(const json_t *record, const char *key, char *out, size_t size, size_t max,
                 bool required)
{
    const json_t *v = json_object_get(record, key);
    if (!v || json_is_null(v)) {
        out[0] = '\0';
        return !required;
    }
    const char *s = json_string_value(v);
    size_t len = s ? strlen(s) : 0;
    if (!s || (required && !len) || len >= size || !tl_text_ok(s, len) || tl_text_chars(s) > max)
        return false;
    memcpy(out, s, len + 1);
    return true;
}

/* The schema's bounds of field name, if it declares them. */
static void bounds(const json_t *schema, const char *name, const json_t **min, const json_t **max)
{
    size_t i;
    const json_t *f;
    *min = *max = NULL;
    json_array_foreach(json_object_get(schema, "fields"), i, f)
    {
        const char *fn = json_string_value(json_object_get(f, "name"));
        if (fn && !strcmp(fn, name)) {
            *min = json_object_get(f, "trialog.min");
            *max = json_object_get(f, "trialog.max");
            return;
        }
    }
}

static const char *value_ok(const json_t *v, const json_t *schema, const char *name)
{
    if (json_is_null(v) || json_is_boolean(v))
        return NULL;
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        size_t len = strlen(s);
        return tl_text_ok(s, len) && tl_text_chars(s) <= TL_INGEST_TEXT_MAX ? NULL
                                                                            : "invalid_record";
    }
    if (!json_is_number(v))
        return TL_RN(invalid_record); /* arrays, maps and records have no place here */
    double x = json_number_value(v);
    const json_t *min, *max;
    bounds(schema, name, &min, &max);
    if (!isfinite(x) || (json_is_number(min) && x < json_number_value(min)) ||
        (json_is_number(max) && x > json_number_value(max)))
        return TL_RN(out_of_range);
    return NULL;
}

static const char *fail(const char *why, const char *name, char *field, size_t size)
{
    snprintf(field, size, "%s", name);
    return why;
}

const char *tl_ingest_read(const json_t *record, const char *schema_json, int32_t today,
                           tl_observation_t *o, char *field, size_t field_size)
{
    char id[64];
    tl_uuid_t u;
    memset(o, 0, sizeof *o);
    if (!json_is_object(record))
        return fail("invalid_record", "", field, field_size);
    if (!text(record, "event_id", id, sizeof id, 40, true) || tl_uuid_parse(id, &u))
        return fail("invalid_record", "event_id", field, field_size);
    memcpy(o->event_id, u.s, sizeof o->event_id);
    if (!text(record, "protocol_id", o->protocol_id, sizeof o->protocol_id, TL_PROTOCOL_ID_MAX,
              true))
        return fail("invalid_record", "protocol_id", field, field_size);
    if (!text(record, "participant_code", o->participant_code, sizeof o->participant_code,
              TL_CODE_MAX, true))
        return fail("invalid_record", "participant_code", field, field_size);
    const json_t *when = json_object_get(record, "observed_on");
    int32_t day = 0;
    if (json_is_integer(when) && tl_date_valid(json_integer_value(when)))
        day = (int32_t)json_integer_value(when);
    else if (!json_is_string(when) || tl_date_parse(json_string_value(when), &day))
        return fail("invalid_record", "observed_on", field, field_size);
    if (day > today || day < OBSERVED_MIN)
        return fail("out_of_range", "observed_on", field, field_size);
    o->observed_on = day;
    if (!text(record, "device", o->device, sizeof o->device, TL_INGEST_DEVICE_MAX, false))
        return fail("invalid_record", "device", field, field_size);
    if (!text(record, "laterality", o->laterality, sizeof o->laterality, 2, false) ||
        (o->laterality[0] && strcmp(o->laterality, "OD") && strcmp(o->laterality, "OS") &&
         strcmp(o->laterality, "OU")))
        return fail("invalid_record", "laterality", field, field_size);
    json_t *schema = schema_json ? json_loads(schema_json, 0, NULL) : NULL;
    const char *name, *why = NULL;
    const json_t *v;
    if (!(o->values = json_object()))
        why = fail("invalid_record", "", field, field_size);
    json_object_foreach((json_t *)record, name, v)
    {
        if (why || is_named(name))
            continue;
        if (json_object_size(o->values) == TL_INGEST_VALUES_MAX)
            why = fail("invalid_record", name, field, field_size);
        else if ((why = value_ok(v, schema, name)))
            fail(why, name, field, field_size);
        else
            json_object_set(o->values, name, (json_t *)v);
    }
    json_decref(schema);
    if (why)
        tl_observation_cleanup(o);
    return why;
}

void tl_observation_cleanup(tl_observation_t *o)
{
    json_decref(o->values);
    o->values = NULL;
}

const char *tl_ingest_admit(const tl_ingest_target_t *t, int32_t observed_on, const char **field)
{
    *field = NULL;
    if (!t->study_known)
        return TL_RN(unknown_study);
    if (!t->participant_known)
        return TL_RN(unknown_participant);
    if (!t->participant_enrolled)
        return TL_RN(participant_not_active);
    if (t->has_consent && observed_on < t->consent_date) {
        *field = "observed_on";
        return TL_RN(out_of_range);
    }
    /* DESIGN.md §5: after lock any data change is a violation until unlock;
     * a connector's observation is a data change like a form */
    return t->study_locked ? TL_RN(study_locked) : NULL;
}
