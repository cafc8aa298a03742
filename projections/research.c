#include "research.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tl_avro.h"
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

/* A shifted date (["null", date]), or null when the export keeps study
 * days only. */
static void w_shifted(tl_avro_w_t *w, const tl_research_cfg_t *c, int32_t shift, int32_t date)
{
    tl_avro_w_opt_long(w, c->dates == TL_RESEARCH_SHIFTED, (int64_t)date + shift);
}

/* Begins a record in out with the fields every research record starts
 * with: pseudonym, study_id, site_id. False, with nothing written, when
 * participant_id is not a UUID. */
static bool w_head(tl_avro_w_t *w, tl_buf_t *out, const tl_research_cfg_t *c,
                   const char *participant_id, const char *study_id, const char *site_id)
{
    char pseudonym[TL_PSEUDONYM_STRLEN];
    if (!tl_research_pseudonym(c, participant_id, pseudonym))
        return false;
    tl_avro_w_begin(w, out);
    tl_avro_w_string(w, pseudonym);
    tl_avro_w_string(w, study_id);
    tl_avro_w_opt_string(w, site_id);
    return true;
}

tl_err_t tl_research_participant(const tl_research_cfg_t *c, const tl_schedule_t *s,
                                 const tl_research_person_t *p, tl_buf_t *out)
{
    tl_avro_w_t w;
    if (!w_head(&w, out, c, s->id, s->study_id, s->site_id))
        return TL_ERR_INVALID;
    int years = 0;
    if (p->birth_year > 0) {
        int y;
        unsigned m, d;
        tl_date_to_civil(s->baseline_date, &y, &m, &d);
        years = y - p->birth_year;
        years = years > TL_RESEARCH_AGE_CAP ? TL_RESEARCH_AGE_CAP : years < 0 ? 0 : years;
    }
    tl_avro_w_string(&w, s->status);
    tl_avro_w_opt_string(&w, p->sex);
    tl_avro_w_opt_long(&w, p->birth_year > 0, years); /* age_at_baseline */
    w_shifted(&w, c, tl_research_shift(c, s->id), s->baseline_date);
    tl_avro_w_long(&w, p->row_version);
    return tl_avro_w_end(&w);
}

tl_err_t tl_research_visit(const tl_research_cfg_t *c, const tl_schedule_t *s,
                           const tl_visit_t *v, tl_buf_t *out)
{
    tl_avro_w_t w;
    if (!w_head(&w, out, c, s->id, s->study_id, s->site_id))
        return TL_ERR_INVALID;
    int32_t shift = tl_research_shift(c, s->id), base = s->baseline_date;
    bool done = v->state == TL_VISIT_COMPLETED;
    tl_avro_w_string(&w, v->visit_type_id);
    tl_avro_w_string(&w, v->name);
    tl_avro_w_long(&w, v->target_day);
    tl_avro_w_boolean(&w, v->required);
    tl_avro_w_string(&w, tl_visit_state_name(v->state));
    tl_avro_w_long(&w, (int64_t)v->due - base);
    tl_avro_w_long(&w, (int64_t)v->window_start - base);
    tl_avro_w_long(&w, (int64_t)v->window_end - base);
    tl_avro_w_opt_long(&w, done, (int64_t)v->actual_date - base); /* actual_day */
    tl_avro_w_long(&w, done);                                      /* in_window: null or */
    if (done)
        tl_avro_w_boolean(&w, v->in_window);
    tl_avro_w_boolean(&w, done && !v->in_window); /* protocol_deviation */
    w_shifted(&w, c, shift, v->due);
    w_shifted(&w, c, shift, v->window_start);
    w_shifted(&w, c, shift, v->window_end);
    if (done)
        w_shifted(&w, c, shift, v->actual_date);
    else
        tl_avro_w_null(&w);
    tl_avro_w_long(&w, v->version);
    return tl_avro_w_end(&w);
}

typedef enum { A_NONE, A_NUMBER, A_INTEGER, A_TEXT, A_OPTIONS, A_DATE } member_t;

/* Which member of org.trialog.research.ResearchAnswer holds a field's
 * answer (*date for a date); A_NONE with *withhold set when it is free
 * text, without when the answer does not fit the field (never from a
 * validated form; skipped rather than guessed at). */
static member_t member_of(const json_t *field, const json_t *value, int32_t *date,
                          bool *withhold)
{
    const char *type = json_string_value(json_object_get(field, "type"));
    if (!type || !json_is_string(json_object_get(field, "name")))
        return A_NONE;
    if (!strcmp(type, "number") && json_is_number(value))
        return A_NUMBER;
    if (!strcmp(type, "integer") && json_is_integer(value))
        return A_INTEGER;
    if (!strcmp(type, "text") && json_is_string(value)) {
        *withhold = !json_is_true(json_object_get(field, "research_safe"));
        return *withhold ? A_NONE : A_TEXT;
    }
    if (!strcmp(type, "choice") && json_is_string(value))
        return A_TEXT;
    if (!strcmp(type, "checkbox") && json_is_array(value)) {
        size_t i;
        const json_t *o;
        json_array_foreach(value, i, o)
        {
            if (!json_is_string(o))
                return A_NONE;
        }
        return A_OPTIONS;
    }
    if (!strcmp(type, "date") && json_is_string(value) &&
        !tl_date_parse(json_string_value(value), date))
        return A_DATE;
    return A_NONE;
}

static void w_json_string(tl_avro_w_t *w, const json_t *s)
{
    tl_avro_w_stringn(w, json_string_value(s), json_string_length(s));
}

static void write_answer(tl_avro_w_t *w, const tl_research_cfg_t *c, const json_t *field,
                         const json_t *value, member_t m, int32_t date, int32_t baseline,
                         int32_t shift)
{
    w_json_string(w, json_object_get(field, "name"));
    w_json_string(w, json_object_get(field, "type"));
    tl_avro_w_opt_string(w, json_string_value(json_object_get(field, "unit")));
    tl_avro_w_long(w, m == A_NUMBER);
    if (m == A_NUMBER)
        tl_avro_w_double(w, json_number_value(value));
    tl_avro_w_opt_long(w, m == A_INTEGER, m == A_INTEGER ? json_integer_value(value) : 0);
    tl_avro_w_long(w, m == A_TEXT);
    if (m == A_TEXT)
        w_json_string(w, value);
    tl_avro_w_long(w, m == A_OPTIONS);
    if (m == A_OPTIONS) {
        size_t i;
        const json_t *o;
        tl_avro_w_block(w, json_array_size(value));
        json_array_foreach(value, i, o)
        {
            w_json_string(w, o);
        }
        tl_avro_w_array_end(w);
    }
    tl_avro_w_opt_long(w, m == A_DATE, (int64_t)date - baseline); /* study_day */
    if (m == A_DATE)
        w_shifted(w, c, shift, date);
    else
        tl_avro_w_null(w);
}

/* A form's answer to field, or NULL when it has none. */
static const json_t *answer_of(const tl_form_t *f, const json_t *field)
{
    const char *name = json_string_value(json_object_get(field, "name"));
    const json_t *v = name ? json_object_get(f->answers, name) : NULL;
    return v && !json_is_null(v) ? v : NULL;
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

static int str_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

tl_err_t tl_research_form(const tl_research_cfg_t *c, const tl_form_t *f, const char *site_id,
                          int32_t baseline, const json_t *fields, tl_buf_t *out)
{
    int32_t shift = tl_research_shift(c, f->participant_id);
    /* the withheld fields: the template's free text in its order, then,
     * sorted, the answers the template version does not name (they cannot
     * be judged safe; sorted, since a stored form's answers come back in
     * jsonb's order) */
    size_t nw = 0, first;
    const char **withheld = malloc((json_array_size(fields) + json_object_size(f->answers) + 1) *
                                   sizeof *withheld);
    if (!withheld)
        return TL_ERR_NOMEM;
    tl_avro_w_t w;
    if (!w_head(&w, out, c, f->participant_id, f->study_id, site_id)) {
        free(withheld);
        return TL_ERR_INVALID;
    }
    tl_avro_w_string(&w, f->id);
    tl_avro_w_string(&w, f->visit_type_id);
    tl_avro_w_string(&w, f->template_id);
    tl_avro_w_string(&w, f->template_name);
    tl_avro_w_long(&w, f->template_version);
    const char *status = tl_form_status_name(f->status);
    tl_avro_w_string(&w, status ? status : "submitted");
    tl_avro_w_long(&w, f->revision);
    /* answers: counted first, so they make one block */
    size_t i, count = 0;
    const json_t *field, *v;
    json_array_foreach(fields, i, field)
    {
        int32_t date;
        bool withhold = false;
        if ((v = answer_of(f, field)) && member_of(field, v, &date, &withhold) != A_NONE)
            count++;
        else if (withhold)
            withheld[nw++] = json_string_value(json_object_get(field, "name"));
    }
    tl_avro_w_block(&w, count);
    json_array_foreach(fields, i, field)
    {
        int32_t date = 0;
        bool withhold = false;
        member_t m = (v = answer_of(f, field)) ? member_of(field, v, &date, &withhold) : A_NONE;
        if (m != A_NONE)
            write_answer(&w, c, field, v, m, date, baseline, shift);
    }
    tl_avro_w_array_end(&w);
    first = nw;
    const char *name;
    json_object_foreach((json_t *)f->answers, name, v)
    {
        if (!json_is_null(v) && !field_named(fields, name))
            withheld[nw++] = name;
    }
    qsort(withheld + first, nw - first, sizeof *withheld, str_cmp);
    tl_avro_w_block(&w, nw);
    for (i = 0; i < nw; i++)
        tl_avro_w_string(&w, withheld[i]);
    tl_avro_w_array_end(&w);
    tl_avro_w_long(&w, f->version);
    free(withheld);
    return tl_avro_w_end(&w);
}

tl_err_t tl_research_observation(const tl_research_cfg_t *c, const tl_schedule_t *s,
                                 const json_t *ev, tl_buf_t *out)
{
    const json_t *values = json_object_get(ev, "values"), *v;
    const char *name;
    /* by name: a replay of the same event makes the same bytes whatever
     * order its map came in */
    size_t n = 0, nv = 0, i;
    const char **names = malloc((json_object_size(values) + 1) * sizeof *names);
    if (!names)
        return TL_ERR_NOMEM;
    json_object_foreach((json_t *)values, name, v)
        names[n++] = name;
    qsort(names, n, sizeof *names, str_cmp);
    tl_avro_w_t w;
    if (!w_head(&w, out, c, s->id, s->study_id, s->site_id)) {
        free(names);
        return TL_ERR_INVALID;
    }
    int32_t day = (int32_t)tl_ev_int(ev, "observed_on");
    tl_avro_w_string(&w, json_string_value(json_object_get(ev, "source")));
    tl_avro_w_string(&w, json_string_value(json_object_get(ev, "kind")));
    tl_avro_w_long(&w, (int64_t)day - s->baseline_date);
    w_shifted(&w, c, tl_research_shift(c, s->id), day);
    tl_avro_w_opt_string(&w, json_string_value(json_object_get(ev, "laterality")));
    for (i = 0; i < n; i++) {
        v = json_object_get(values, names[i]);
        nv += json_is_number(v) || json_is_boolean(v);
    }
    tl_avro_w_block(&w, nv);
    for (i = 0; i < n; i++) {
        v = json_object_get(values, names[i]);
        if (!json_is_number(v) && !json_is_boolean(v))
            continue;
        tl_avro_w_string(&w, names[i]);
        tl_avro_w_string(&w, json_is_integer(v) ? "integer" : json_is_real(v) ? "number" : "boolean");
        tl_avro_w_long(&w, json_is_real(v));
        if (json_is_real(v))
            tl_avro_w_double(&w, json_real_value(v));
        tl_avro_w_opt_long(&w, json_is_integer(v), json_integer_value(v));
        tl_avro_w_long(&w, json_is_boolean(v));
        if (json_is_boolean(v))
            tl_avro_w_boolean(&w, json_is_true(v));
    }
    tl_avro_w_array_end(&w);
    size_t nt = 0;
    for (i = 0; i < n; i++)
        nt += json_is_string(json_object_get(values, names[i]));
    tl_avro_w_block(&w, nt);
    for (i = 0; i < n; i++)
        if (json_is_string(json_object_get(values, names[i])))
            tl_avro_w_string(&w, names[i]);
    tl_avro_w_array_end(&w);
    tl_avro_w_long(&w, s->version);
    free(names);
    return tl_avro_w_end(&w);
}
