#include "research.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "tl_date.h"
#include "tl_secret.h"
#include "tl_uuid.h"

bool tl_research_dates_parse(const char *s, tl_research_dates_t *out)
{
    if (s && !strcmp(s, "study_days"))
        *out = TL_RESEARCH_STUDY_DAYS;
    else if (s && !strcmp(s, "shifted"))
        *out = TL_RESEARCH_SHIFTED;
    else
        return false;
    return true;
}

/* The last HMAC computed, per thread. One event asks for the same
 * participant's pseudonym and date shift many times in a row (an enrolment
 * makes five records, each naming both), and an HMAC costs more than the
 * rest of a record (bench/run, docs/BENCHMARKS.md): remembering one answer
 * per purpose keeps the export's fold pure and saves most of them. */
typedef struct {
    const tl_research_cfg_t *cfg; /* which settings, and */
    uint64_t key_tag;             /* which key: FNV-1a of it, not a copy of the secret */
    size_t key_len;
    char msg[64];
    unsigned char out[TL_HMAC_LEN];
} memo_t;

static uint64_t key_tag(const unsigned char *key, size_t len)
{
    uint64_t h = 14695981039346656037ULL;
    for (size_t i = 0; i < len; i++)
        h = (h ^ key[i]) * 1099511628211ULL;
    return h;
}

/* HMAC of "<purpose>:<canonical id>": one key, unrelated outputs per use. */
static bool mac(const tl_research_cfg_t *c, const char *purpose, const char *id,
                unsigned char out[TL_HMAC_LEN])
{
    static _Thread_local memo_t memo[2]; /* [0] pseudonym, [1] date shift */
    memo_t *m = &memo[strcmp(purpose, "pseudonym") != 0];
    tl_uuid_t u;
    char msg[64];
    if (tl_uuid_parse(id, &u))
        return false;
    int n = snprintf(msg, sizeof msg, "%s:%s", purpose, u.s);
    uint64_t tag = key_tag(c->key, c->key_len);
    if (n <= 0 || (size_t)n >= sizeof msg)
        return false;
    if (m->cfg == c && m->key_len == c->key_len && m->key_tag == tag && !strcmp(m->msg, msg)) {
        memcpy(out, m->out, TL_HMAC_LEN);
        return true;
    }
    if (tl_hmac_sha256(c->key, c->key_len, msg, (size_t)n, out))
        return false;
    m->cfg = c;
    m->key_tag = tag;
    m->key_len = c->key_len;
    memcpy(m->msg, msg, (size_t)n + 1);
    memcpy(m->out, out, TL_HMAC_LEN);
    return true;
}

bool tl_research_pseudonym(const tl_research_cfg_t *c, const char *participant_id,
                           char out[TL_PSEUDONYM_STRLEN])
{
    static const char digits[] = "0123456789abcdef";
    unsigned char h[TL_HMAC_LEN];
    if (!mac(c, "pseudonym", participant_id, h))
        return false;
    for (size_t i = 0; i < (TL_PSEUDONYM_STRLEN - 1) / 2; i++) {
        out[2 * i] = digits[h[i] >> 4];
        out[2 * i + 1] = digits[h[i] & 15];
    }
    out[TL_PSEUDONYM_STRLEN - 1] = '\0';
    return true;
}

int32_t tl_research_shift(const tl_research_cfg_t *c, const char *participant_id)
{
    unsigned char h[TL_HMAC_LEN];
    if (!mac(c, "date-shift", participant_id, h))
        return 0;
    uint32_t v = (uint32_t)h[0] << 24 | (uint32_t)h[1] << 16 | (uint32_t)h[2] << 8 | h[3];
    return (int32_t)(v % (2 * TL_RESEARCH_SHIFT_MAX + 1)) - TL_RESEARCH_SHIFT_MAX;
}

/* A shifted date, or null when the export keeps study days only. */
static json_t *shifted(const tl_research_cfg_t *c, int32_t shift, int32_t date)
{
    return c->dates == TL_RESEARCH_SHIFTED ? json_integer(date + shift) : json_null();
}

static json_t *str_or_null(const char *s)
{
    return s && *s ? json_string(s) : json_null();
}

json_t *tl_research_participant(const tl_research_cfg_t *c, const tl_schedule_t *s,
                                const tl_research_person_t *p)
{
    char pseudonym[TL_PSEUDONYM_STRLEN];
    if (!tl_research_pseudonym(c, s->id, pseudonym))
        return NULL;
    json_t *age = json_null();
    if (p->birth_year > 0) {
        int y;
        unsigned m, d;
        tl_date_to_civil(s->baseline_date, &y, &m, &d);
        int years = y - p->birth_year;
        age = json_integer(years > TL_RESEARCH_AGE_CAP ? TL_RESEARCH_AGE_CAP
                                                         : years < 0 ? 0 : years);
    }
    return json_pack("{s:s, s:s, s:o, s:s, s:o, s:o, s:o, s:I}", "pseudonym", pseudonym,
                     "study_id", s->study_id, "site_id", str_or_null(s->site_id), "status",
                     s->status, "sex", str_or_null(p->sex), "age_at_baseline", age,
                     "baseline_date", shifted(c, tl_research_shift(c, s->id), s->baseline_date),
                     "stream_version", (json_int_t)p->row_version);
}

json_t *tl_research_visit(const tl_research_cfg_t *c, const tl_schedule_t *s, const tl_visit_t *v)
{
    char pseudonym[TL_PSEUDONYM_STRLEN];
    if (!tl_research_pseudonym(c, s->id, pseudonym))
        return NULL;
    int32_t shift = tl_research_shift(c, s->id), base = s->baseline_date;
    bool done = v->state == TL_VISIT_COMPLETED;
    return json_pack("{s:s, s:s, s:o, s:s, s:s, s:i, s:b, s:s, s:i, s:i, s:i, s:o, s:o, s:b,"
                     " s:o, s:o, s:o, s:o, s:I}",
                     "pseudonym", pseudonym, "study_id", s->study_id, "site_id",
                     str_or_null(s->site_id), "visit_type_id", v->visit_type_id, "visit_name",
                     v->name, "target_day", (int)v->target_day, "required", v->required, "status",
                     tl_visit_state_name(v->state), "due_day", (int)(v->due - base),
                     "window_start_day", (int)(v->window_start - base), "window_end_day",
                     (int)(v->window_end - base), "actual_day",
                     done ? json_integer(v->actual_date - base) : json_null(), "in_window",
                     done ? json_boolean(v->in_window) : json_null(), "protocol_deviation",
                     done && !v->in_window, "due_date", shifted(c, shift, v->due),
                     "window_start_date", shifted(c, shift, v->window_start), "window_end_date",
                     shifted(c, shift, v->window_end), "actual_date",
                     done ? shifted(c, shift, v->actual_date) : json_null(), "stream_version",
                     (json_int_t)v->version);
}

/* One answer of a field, or NULL with *withhold set when it is free text;
 * NULL without it when the answer does not fit the field (never from a
 * validated form; skipped rather than guessed at). */
static json_t *answer(const tl_research_cfg_t *c, const json_t *field, const json_t *value,
                      int32_t baseline, int32_t shift, bool *withhold)
{
    const char *type = json_string_value(json_object_get(field, "type"));
    const json_t *unit = json_object_get(field, "unit");
    json_t *a = json_pack("{s:O, s:s, s:O, s:n, s:n, s:n, s:n, s:n, s:n}", "field",
                          json_object_get(field, "name"), "type", type ? type : "",
                          "unit", unit ? unit : json_null(), "number", "integer", "text",
                          "options", "study_day", "date");
    if (!a || !type)
        goto bad;
    if (!strcmp(type, "number") && json_is_number(value)) {
        json_object_set_new(a, "number", json_real(json_number_value(value)));
    } else if (!strcmp(type, "integer") && json_is_integer(value)) {
        json_object_set(a, "integer", (json_t *)value);
    } else if (!strcmp(type, "text") && json_is_string(value)) {
        if (!json_is_true(json_object_get(field, "research_safe"))) {
            *withhold = true;
            goto bad;
        }
        json_object_set(a, "text", (json_t *)value);
    } else if (!strcmp(type, "choice") && json_is_string(value)) {
        json_object_set(a, "text", (json_t *)value);
    } else if (!strcmp(type, "checkbox") && json_is_array(value)) {
        json_object_set(a, "options", (json_t *)value);
    } else if (!strcmp(type, "date") && json_is_string(value)) {
        int32_t d;
        if (tl_date_parse(json_string_value(value), &d))
            goto bad;
        json_object_set_new(a, "study_day", json_integer(d - baseline));
        json_object_set_new(a, "date", shifted(c, shift, d));
    } else {
        goto bad;
    }
    return a;
bad:
    json_decref(a);
    return NULL;
}

static bool field_named(const json_t *fields, const char *name)
{
    size_t i;
    const json_t *field;
    json_array_foreach(fields, i, field)
    {
        const char *fn = json_string_value(json_object_get(field, "name"));
        if (fn && !strcmp(fn, name))
            return true;
    }
    return false;
}

json_t *tl_research_form(const tl_research_cfg_t *c, const tl_form_t *f, const char *site_id,
                         int32_t baseline, const json_t *fields)
{
    char pseudonym[TL_PSEUDONYM_STRLEN];
    if (!tl_research_pseudonym(c, f->participant_id, pseudonym))
        return NULL;
    int32_t shift = tl_research_shift(c, f->participant_id);
    json_t *answers = json_array(), *withheld = json_array();
    size_t i;
    const json_t *field;
    json_array_foreach(fields, i, field)
    {
        const json_t *v = json_object_get(f->answers, json_string_value(json_object_get(field, "name")));
        bool withhold = false;
        json_t *a = v && !json_is_null(v) ? answer(c, field, v, baseline, shift, &withhold) : NULL;
        if (a)
            json_array_append_new(answers, a);
        else if (withhold)
            json_array_append(withheld, json_object_get(field, "name"));
    }
    /* an answer the template version does not name cannot be judged safe;
     * sorted, since a stored form's answers come back in jsonb's order */
    const char *name;
    const json_t *v;
    size_t first = json_array_size(withheld);
    json_object_foreach((json_t *)f->answers, name, v)
    {
        if (json_is_null(v) || field_named(fields, name))
            continue;
        size_t at = first;
        while (at < json_array_size(withheld) &&
               strcmp(json_string_value(json_array_get(withheld, at)), name) < 0)
            at++;
        json_array_insert_new(withheld, at, json_string(name));
    }
    const char *status = tl_form_status_name(f->status);
    return json_pack("{s:s, s:s, s:o, s:s, s:s, s:s, s:s, s:i, s:s, s:i, s:o, s:o, s:I}",
                     "pseudonym", pseudonym, "study_id", f->study_id, "site_id",
                     str_or_null(site_id), "form_id", f->id, "visit_type_id", f->visit_type_id,
                     "template_id", f->template_id, "template_name", f->template_name,
                     "template_version", (int)f->template_version, "status",
                     status ? status : "submitted", "revision", (int)f->revision, "answers",
                     answers, "withheld_fields", withheld, "stream_version",
                     (json_int_t)f->version);
}
