#include "release.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tl_date.h"
#include "tl_secret.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* The columns of participants and visits are the members of the research
 * records (schemas/research.*), so a release row and a research record of
 * the same participant say the same thing. */
static const tl_release_col_t participant_cols[] = {
    {"pseudonym", TL_COL_STRING, false,
     "keyed HMAC of the participant id (the research topics' key)"},
    {"study_id", TL_COL_UUID, false, NULL},
    {"site_id", TL_COL_UUID, true, NULL},
    {"status", TL_COL_STRING, false, "enrolled, completed or withdrawn"},
    {"sex", TL_COL_STRING, true, "M, F, O or U"},
    {"age_at_baseline", TL_COL_INT, true, "whole years; 90 means 90 or older"},
    {"baseline_date", TL_COL_DATE, true, "shifted per participant; empty unless dates are shifted"},
    {"stream_version", TL_COL_LONG, false, "participant stream version this row reflects"},
};

static const tl_release_col_t visit_cols[] = {
    {"pseudonym", TL_COL_STRING, false, NULL},
    {"study_id", TL_COL_UUID, false, NULL},
    {"site_id", TL_COL_UUID, true, NULL},
    {"visit_type_id", TL_COL_UUID, false, NULL},
    {"visit_name", TL_COL_STRING, false, NULL},
    {"target_day", TL_COL_INT, false, "days from baseline (day 0)"},
    {"required", TL_COL_BOOL, false, NULL},
    {"status", TL_COL_STRING, false, "scheduled, completed, missed or cancelled"},
    {"due_day", TL_COL_INT, false, "study day"},
    {"window_start_day", TL_COL_INT, false, "study day"},
    {"window_end_day", TL_COL_INT, false, "study day"},
    {"actual_day", TL_COL_INT, true, "completed: study day of the visit"},
    {"in_window", TL_COL_BOOL, true, "completed: actual_day within the window"},
    {"protocol_deviation", TL_COL_BOOL, false, "completed outside the window"},
    {"due_date", TL_COL_DATE, true, "shifted; empty unless dates are shifted"},
    {"window_start_date", TL_COL_DATE, true, NULL},
    {"window_end_date", TL_COL_DATE, true, NULL},
    {"actual_date", TL_COL_DATE, true, NULL},
    {"stream_version", TL_COL_LONG, false,
     "participant stream version that last changed the visit"},
};

static const tl_release_col_t answer_cols[] = {
    {"pseudonym", TL_COL_STRING, false, NULL},
    {"study_id", TL_COL_UUID, false, NULL},
    {"site_id", TL_COL_UUID, true, NULL},
    {"visit_type_id", TL_COL_UUID, false, NULL},
    {"visit_name", TL_COL_STRING, false, NULL},
    {"form_id", TL_COL_UUID, false, NULL},
    {"template_id", TL_COL_UUID, false, NULL},
    {"form", TL_COL_STRING, false, "the form template's name"},
    {"template_version", TL_COL_INT, false,
     "the template version the form is on (entered against, or moved to by an amendment)"},
    {"form_status", TL_COL_STRING, false, "submitted, amended or signed"},
    {"form_revision", TL_COL_INT, false, "1 when submitted, + 1 per amendment"},
    {"field", TL_COL_STRING, false, NULL},
    {"type", TL_COL_STRING, false, "number, integer, text, date, choice or checkbox"},
    {"value", TL_COL_STRING, false,
     "number and integer as written; choice, and research_safe text, as the text; checkbox as "
     "a JSON array of the options; date as the study day"},
    {"unit", TL_COL_STRING, true, NULL},
    {"date", TL_COL_DATE, true, "a date answer, shifted; empty unless dates are shifted"},
    {"stream_version", TL_COL_LONG, false, "participant stream version that last changed the form"},
};

static const tl_release_col_t observation_cols[] = {
    {"pseudonym", TL_COL_STRING, false, NULL},
    {"study_id", TL_COL_UUID, false, NULL},
    {"site_id", TL_COL_UUID, true, NULL},
    {"source", TL_COL_STRING, false, "the connector"},
    {"kind", TL_COL_STRING, false, "the connector record's full name"},
    {"study_day", TL_COL_INT, false, "when it was measured, in days from the baseline"},
    {"observed_date", TL_COL_DATE, true, "shifted; empty unless dates are shifted"},
    {"laterality", TL_COL_STRING, true, "OD, OS or OU"},
    {"name", TL_COL_STRING, false, "the value's name in the connector's record"},
    {"type", TL_COL_STRING, false, "number, integer or boolean"},
    {"value", TL_COL_STRING, false,
     "number and integer as written, boolean as true or false; text values are not exported"},
    {"stream_version", TL_COL_LONG, false,
     "participant stream version the observation made (with pseudonym, it identifies it)"},
};

const tl_release_table_t tl_release_tables[TL_RELEASE_NTABLES] = {
    {"participants", "Participant", "one row per participant", participant_cols,
     N(participant_cols)},
    {"visits", "Visit", "one row per scheduled visit", visit_cols, N(visit_cols)},
    {"answers", "Answer", "one row per exported answer of a form (long format)", answer_cols,
     N(answer_cols)},
    {"observations", "Observation",
     "one row per exported value of a connector's observation (long format)", observation_cols,
     N(observation_cols)},
};

static const char *type_name(tl_col_type_t t)
{
    static const char *const names[] = {"string", "uuid", "int", "long", "boolean", "date"};
    return names[t];
}

static json_t *avro_type(const tl_release_col_t *c)
{
    json_t *t;
    switch (c->type) {
    case TL_COL_UUID:
        t = json_pack("{s:s, s:s}", "type", "string", "logicalType", "uuid");
        break;
    case TL_COL_DATE:
        t = json_pack("{s:s, s:s}", "type", "int", "logicalType", "date");
        break;
    default:
        t = json_string(type_name(c->type));
    }
    return c->nullable ? json_pack("[s, o]", "null", t) : t;
}

char *tl_release_schema(const tl_release_table_t *t)
{
    json_t *fields = json_array();
    for (size_t i = 0; fields && i < t->ncols; i++) {
        const tl_release_col_t *c = &t->cols[i];
        json_t *f = json_pack("{s:s, s:o}", "name", c->name, "type", avro_type(c));
        if (f && c->nullable)
            json_object_set_new(f, "default", json_null());
        if (f && c->doc)
            json_object_set_new(f, "doc", json_string(c->doc));
        json_array_append_new(fields, f);
    }
    json_t *s = json_pack("{s:s, s:s, s:s, s:s, s:o}", "type", "record", "name", t->record,
                          "namespace", "org.trialog.release", "doc", t->doc, "fields", fields);
    char *text = s ? json_dumps(s, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(s);
    return text;
}

json_t *tl_release_columns(const tl_release_table_t *t)
{
    json_t *cols = json_array();
    for (size_t i = 0; cols && i < t->ncols; i++) {
        const tl_release_col_t *c = &t->cols[i];
        json_array_append_new(cols, json_pack("{s:s, s:s, s:b, s:s}", "name", c->name, "type",
                                              type_name(c->type), "nullable", c->nullable, "doc",
                                              c->doc ? c->doc : ""));
    }
    return cols;
}

/* RFC 4180: a field with a comma, a quote or a line break is quoted, its
 * quotes doubled. */
static tl_err_t csv_text(tl_buf_t *out, const char *s)
{
    if (!s[strcspn(s, ",\"\r\n")])
        return tl_buf_puts(out, s);
    tl_err_t err = tl_buf_puts(out, "\"");
    for (const char *p = s; !err && *p; p++)
        err = *p == '"' ? tl_buf_puts(out, "\"\"") : tl_buf_append(out, p, 1);
    return err ? err : tl_buf_puts(out, "\"");
}

static tl_err_t csv_value(tl_buf_t *out, const tl_release_col_t *c, const json_t *v)
{
    if (json_is_null(v))
        return c->nullable ? TL_OK : TL_ERR_INVALID;
    switch (c->type) {
    case TL_COL_STRING:
    case TL_COL_UUID:
        return json_is_string(v) ? csv_text(out, json_string_value(v)) : TL_ERR_INVALID;
    case TL_COL_INT:
    case TL_COL_LONG:
        return json_is_integer(v) ? tl_buf_printf(out, "%" PRId64, (int64_t)json_integer_value(v))
                                  : TL_ERR_INVALID;
    case TL_COL_BOOL:
        return json_is_boolean(v) ? tl_buf_puts(out, json_is_true(v) ? "true" : "false")
                                  : TL_ERR_INVALID;
    case TL_COL_DATE: {
        char d[TL_DATE_STRLEN];
        json_int_t n = json_integer_value(v);
        if (!json_is_integer(v) || n < INT32_MIN || n > INT32_MAX)
            return TL_ERR_INVALID;
        tl_date_format((int32_t)n, d);
        return tl_buf_puts(out, d);
    }
    }
    return TL_ERR_INVALID;
}

tl_err_t tl_release_csv_header(const tl_release_table_t *t, tl_buf_t *out)
{
    size_t before = out->len;
    tl_err_t err = TL_OK;
    for (size_t i = 0; i < t->ncols && !err; i++) {
        if (i)
            err = tl_buf_puts(out, ",");
        if (!err)
            err = csv_text(out, t->cols[i].name);
    }
    if (!err)
        err = tl_buf_puts(out, "\r\n");
    if (err)
        tl_buf_truncate(out, before);
    return err;
}

tl_err_t tl_release_csv_row(const tl_release_table_t *t, const json_t *row, tl_buf_t *out)
{
    size_t before = out->len;
    tl_err_t err =
        json_is_object(row) && json_object_size(row) == t->ncols ? TL_OK : TL_ERR_INVALID;
    for (size_t i = 0; i < t->ncols && !err; i++) {
        const json_t *v = json_object_get(row, t->cols[i].name);
        if (i)
            err = tl_buf_puts(out, ",");
        if (!err)
            err = v ? csv_value(out, &t->cols[i], v) : TL_ERR_INVALID;
    }
    if (!err)
        err = tl_buf_puts(out, "\r\n");
    if (err)
        tl_buf_truncate(out, before);
    return err;
}

/* An answer's value as the one text column: what was entered, numbers as
 * the gateway writes them (15 significant digits). */
static json_t *answer_value(const json_t *a, const char *type)
{
    char num[64];
    const json_t *v;
    if (!strcmp(type, "number") && json_is_number(v = json_object_get(a, "number"))) {
        snprintf(num, sizeof num, "%.15g", json_number_value(v));
        return json_string(num);
    }
    if (!strcmp(type, "integer") && json_is_integer(v = json_object_get(a, "integer"))) {
        snprintf(num, sizeof num, "%" PRId64, (int64_t)json_integer_value(v));
        return json_string(num);
    }
    if ((!strcmp(type, "text") || !strcmp(type, "choice")) &&
        json_is_string(v = json_object_get(a, "text")))
        return json_copy((json_t *)v);
    if (!strcmp(type, "checkbox") && json_is_array(v = json_object_get(a, "options"))) {
        char *s = json_dumps(v, JSON_COMPACT);
        json_t *j = s ? json_string(s) : NULL;
        free(s);
        return j;
    }
    if (!strcmp(type, "date") && json_is_integer(v = json_object_get(a, "study_day"))) {
        snprintf(num, sizeof num, "%" PRId64, (int64_t)json_integer_value(v));
        return json_string(num);
    }
    return NULL;
}

json_t *tl_release_answer_rows(const json_t *form, const char *visit_name)
{
    const json_t *answers = json_object_get(form, "answers");
    json_t *rows = json_array();
    if (!rows || !json_is_array(answers) || !visit_name)
        goto bad;
    size_t i;
    const json_t *a;
    json_array_foreach(answers, i, a)
    {
        const char *type = json_string_value(json_object_get(a, "type"));
        json_t *value = type ? answer_value(a, type) : NULL;
        const json_t *unit = json_object_get(a, "unit"), *date = json_object_get(a, "date");
        json_t *row =
            value ? json_pack("{s:O, s:O, s:O, s:O, s:s, s:O, s:O, s:O, s:O, s:O, s:O, s:O, s:s,"
                              " s:o, s:O, s:O, s:O}",
                              "pseudonym", json_object_get(form, "pseudonym"), "study_id",
                              json_object_get(form, "study_id"), "site_id",
                              json_object_get(form, "site_id"), "visit_type_id",
                              json_object_get(form, "visit_type_id"), "visit_name", visit_name,
                              "form_id", json_object_get(form, "form_id"), "template_id",
                              json_object_get(form, "template_id"), "form",
                              json_object_get(form, "template_name"), "template_version",
                              json_object_get(form, "template_version"), "form_status",
                              json_object_get(form, "status"), "form_revision",
                              json_object_get(form, "revision"), "field",
                              json_object_get(a, "field"), "type", type, "value", value, "unit",
                              unit ? unit : json_null(), "date", date ? date : json_null(),
                              "stream_version", json_object_get(form, "stream_version"))
                  : NULL;
        if (!row || json_array_append_new(rows, row))
            goto bad; /* json_pack fails on a member the record lacks */
    }
    return rows;
bad:
    json_decref(rows);
    return NULL;
}

json_t *tl_release_observation_rows(const json_t *obs)
{
    const json_t *values = json_object_get(obs, "values");
    json_t *rows = json_array();
    if (!rows || !json_is_array(values))
        goto bad;
    size_t i;
    const json_t *a;
    json_array_foreach(values, i, a)
    {
        const char *type = json_string_value(json_object_get(a, "type"));
        const json_t *b = json_object_get(a, "boolean");
        json_t *value = !type                      ? NULL
                        : !strcmp(type, "boolean") ? (json_is_boolean(b)
                                                          ? json_string(json_is_true(b) ? "true"
                                                                                        : "false")
                                                          : NULL)
                                                   : answer_value(a, type);
        const json_t *lat = json_object_get(obs, "laterality"),
                     *date = json_object_get(obs, "observed_date");
        json_t *row =
            value ? json_pack("{s:O, s:O, s:O, s:O, s:O, s:O, s:O, s:O, s:O, s:s, s:o, s:O}",
                              "pseudonym", json_object_get(obs, "pseudonym"), "study_id",
                              json_object_get(obs, "study_id"), "site_id",
                              json_object_get(obs, "site_id"), "source",
                              json_object_get(obs, "source"), "kind", json_object_get(obs, "kind"),
                              "study_day", json_object_get(obs, "study_day"), "observed_date",
                              date ? date : json_null(), "laterality", lat ? lat : json_null(),
                              "name", json_object_get(a, "name"), "type", type, "value", value,
                              "stream_version", json_object_get(obs, "stream_version"))
                  : NULL;
        if (!row || json_array_append_new(rows, row))
            goto bad; /* json_pack fails on a member the record lacks */
    }
    return rows;
bad:
    json_decref(rows);
    return NULL;
}

bool tl_release_name_valid(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    if (!n || n > TL_RELEASE_NAME_MAX || name[0] < 'a' || name[0] > 'z')
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((name[i] >= 'a' && name[i] <= 'z') || (name[i] >= '0' && name[i] <= '9') ||
              name[i] == '_'))
            return false;
    return true;
}

tl_err_t tl_release_sync(const char *study_id, const char *cut_json, const char *dates,
                         const char *table, unsigned char sync[TL_AVRO_SYNC_LEN])
{
    char hex[TL_SHA256_STRLEN];
    tl_sha256_t *h = NULL;
    const char *parts[] = {"trialog-release-sync", study_id, cut_json, dates, table};
    tl_err_t err = tl_sha256_new(&h);
    for (size_t i = 0; i < N(parts) && !err; i++)
        err = tl_sha256_update(h, parts[i], strlen(parts[i]) + 1); /* NUL separates */
    if (err) {
        tl_sha256_destroy(h);
        return err;
    }
    if ((err = tl_sha256_final(h, hex)))
        return err;
    for (size_t i = 0; i < TL_AVRO_SYNC_LEN; i++) {
        unsigned v = 0;
        sscanf(hex + 2 * i, "%2x", &v);
        sync[i] = (unsigned char)v;
    }
    return TL_OK;
}

/* ---- the releases projection ---- */

static const char *const status_names[] = {"", "requested", "started", "completed", "failed"};

const char *tl_release_status_name(tl_release_status_t s)
{
    return status_names[s];
}

tl_release_status_t tl_release_status_parse(const char *s)
{
    for (size_t i = 1; s && i < N(status_names); i++)
        if (!strcmp(s, status_names[i]))
            return (tl_release_status_t)i;
    return TL_RELEASE_NONE;
}

bool tl_release_advance(tl_release_status_t *s, const char *type)
{
    tl_release_status_t to = TL_RELEASE_NONE;
    if (!strcmp(type, "ReleaseRequested"))
        to = *s == TL_RELEASE_NONE ? TL_RELEASE_REQUESTED : TL_RELEASE_NONE;
    else if (!strcmp(type, "ReleaseStarted"))
        to = *s == TL_RELEASE_REQUESTED ? TL_RELEASE_STARTED : TL_RELEASE_NONE;
    else if (*s == TL_RELEASE_REQUESTED || *s == TL_RELEASE_STARTED)
        to = !strcmp(type, "ReleaseCompleted") ? TL_RELEASE_COMPLETED
             : !strcmp(type, "ReleaseFailed")  ? TL_RELEASE_FAILED
                                               : TL_RELEASE_NONE;
    if (to == TL_RELEASE_NONE)
        return false;
    *s = to;
    return true;
}
