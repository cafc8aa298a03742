#include "release_export.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "release.h"
#include "research_store.h"
#include "stream.h"
#include "tl_codec.h"
#include "tl_log.h"
#include "tl_producer.h"
#include "tl_secret.h"
#include "tl_topics.h"

#define TYPE_PREFIX "org.trialog."
#define PATH_MAX_LEN 4096
#define OUT_BUF (256 * 1024)
#define BLOCK_MAX (64u * 1024 * 1024) /* an Avro block's bytes; records are small */

const char *const tl_release_files[] = {
    "participants.csv", "participants.avro", "visits.csv",        "visits.avro",
    "answers.csv",      "answers.avro",      "observations.csv",  "observations.avro",
    "manifest.json"};
const size_t tl_release_file_count = sizeof tl_release_files / sizeof tl_release_files[0];

const char *tl_release_file_type(const char *name)
{
    for (size_t i = 0; name && i < tl_release_file_count; i++) {
        if (strcmp(name, tl_release_files[i]))
            continue;
        const char *dot = strrchr(name, '.');
        return !strcmp(dot, ".csv")    ? "text/csv; charset=utf-8; header=present"
               : !strcmp(dot, ".avro") ? "application/avro"
                                       : "application/json";
    }
    return NULL;
}

typedef struct {
    tl_research_cfg_t research;
    char dir[PATH_MAX_LEN - 256]; /* room for "/.<id>.partial/<file>" */
    tl_registry_t *registry;
    tl_kafka_producer_t *kafka;
    tl_producer_t *producer;
} ctx_t;

void tl_release_export_close(void *p)
{
    ctx_t *c = p;
    if (!c)
        return;
    tl_producer_destroy(c->producer);
    tl_kafka_producer_destroy(c->kafka);
    tl_secret_wipe(&c->research, sizeof c->research);
    free(c);
}

static tl_err_t make_dir(const char *dir)
{
    char path[PATH_MAX_LEN];
    int n = snprintf(path, sizeof path, "%s", dir);
    if (n <= 0 || (size_t)n >= sizeof path)
        return TL_ERR_CONFIG;
    for (char *p = path + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(path, 0750) && errno != EEXIST)
            return TL_ERR_CONFIG;
        *p = '/';
    }
    return mkdir(path, 0750) && errno != EEXIST ? TL_ERR_CONFIG : TL_OK;
}

tl_err_t tl_release_export_open(const tl_consumer_cfg_t *cfg, tl_registry_t *registry, void **out)
{
    ctx_t *c = calloc(1, sizeof *c);
    tl_err_t err = c ? TL_OK : TL_ERR_NOMEM;
    if (!err)
        err = tl_research_cfg_load(cfg->research_key_file, cfg->research_dates, &c->research);
    if (!err) {
        int n = snprintf(c->dir, sizeof c->dir, "%s", cfg->release_dir ? cfg->release_dir : "");
        if (n <= 0 || (size_t)n >= sizeof c->dir || make_dir(c->dir)) {
            tl_log_error("release_dir_invalid", json_pack("{s:s}", "dir", c->dir));
            err = TL_ERR_CONFIG;
        }
    }
    if (c)
        c->registry = registry;
    if (!err)
        err = tl_kafka_producer_new(cfg->brokers, 30000, &c->kafka);
    if (!err)
        err = tl_producer_new(c->kafka, registry, &c->producer);
    if (err) {
        tl_release_export_close(c);
        c = NULL;
    }
    *out = c;
    return err;
}

/* ---- one file: written through a buffer, hashed as it goes ---- */

typedef struct {
    FILE *f;
    tl_sha256_t *hash;
    tl_buf_t buf;
    uint64_t bytes;
    bool failed;
} file_t;

static tl_err_t file_open(file_t *w, const char *dir, const char *name)
{
    char path[PATH_MAX_LEN];
    memset(w, 0, sizeof *w);
    tl_buf_init(&w->buf, OUT_BUF * 2);
    int n = snprintf(path, sizeof path, "%s/%s", dir, name);
    /* readable by the gateway's group, nobody else */
    int fd = n > 0 && (size_t)n < sizeof path
                 ? open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640)
                 : -1;
    if (fd < 0 || !(w->f = fdopen(fd, "wb"))) {
        if (fd >= 0)
            close(fd);
        return TL_ERR_IO;
    }
    return tl_sha256_new(&w->hash);
}

static tl_err_t file_flush(file_t *w)
{
    if (!w->buf.len)
        return TL_OK;
    if (fwrite(w->buf.data, 1, w->buf.len, w->f) != w->buf.len)
        w->failed = true;
    tl_err_t err = w->failed ? TL_ERR_IO : tl_sha256_update(w->hash, w->buf.data, w->buf.len);
    w->bytes += w->buf.len;
    tl_buf_reset(&w->buf);
    return err;
}

/* The bytes in w->buf are done: out they go once enough have gathered. */
static tl_err_t file_wrote(file_t *w)
{
    return w->buf.len >= OUT_BUF ? file_flush(w) : TL_OK;
}

/* Flushes, syncs and closes; the digest into sha; w->bytes stays the size. */
static tl_err_t file_close(file_t *w, char sha[TL_SHA256_STRLEN])
{
    tl_err_t err = w->f ? file_flush(w) : TL_ERR_IO;
    if (!err && (fflush(w->f) || fsync(fileno(w->f))))
        err = TL_ERR_IO;
    if (w->f && fclose(w->f) && !err)
        err = TL_ERR_IO;
    w->f = NULL;
    if (!err && w->hash) {
        err = tl_sha256_final(w->hash, sha);
        w->hash = NULL;
    }
    tl_sha256_destroy(w->hash);
    w->hash = NULL;
    tl_buf_cleanup(&w->buf);
    return err;
}

static void file_abandon(file_t *w)
{
    if (w->f)
        fclose(w->f);
    tl_sha256_destroy(w->hash);
    tl_buf_cleanup(&w->buf);
    memset(w, 0, sizeof *w);
}

/* ---- one table: its CSV and its Avro file ---- */

typedef struct {
    const tl_release_table_t *t;
    tl_avro_schema_t *schema;
    unsigned char sync[TL_AVRO_SYNC_LEN];
    file_t csv, avro;
    tl_buf_t block; /* encoded records not yet in a block */
    size_t in_block;
    uint64_t rows;
} table_t;

static tl_err_t table_open(table_t *tb, const tl_release_table_t *t, const char *dir,
                           const char *study_id, const char *cut, const char *dates)
{
    char name[64];
    memset(tb, 0, sizeof *tb);
    tb->t = t;
    tl_buf_init(&tb->block, BLOCK_MAX);
    char *schema = tl_release_schema(t);
    tl_err_t err =
        schema ? tl_avro_schema_parse(schema, strlen(schema), &tb->schema) : TL_ERR_NOMEM;
    if (!err)
        err = tl_release_sync(study_id, cut, dates, t->name, tb->sync);
    snprintf(name, sizeof name, "%s.csv", t->name);
    if (!err)
        err = file_open(&tb->csv, dir, name);
    snprintf(name, sizeof name, "%s.avro", t->name);
    if (!err)
        err = file_open(&tb->avro, dir, name);
    if (!err)
        err = tl_release_csv_header(t, &tb->csv.buf);
    if (!err)
        err = tl_avro_ocf_header(schema, tb->sync, &tb->avro.buf);
    free(schema);
    return err;
}

static tl_err_t table_block(table_t *tb)
{
    if (!tb->in_block)
        return TL_OK;
    tl_err_t err =
        tl_avro_ocf_block(tb->in_block, tb->block.data, tb->block.len, tb->sync, &tb->avro.buf);
    tl_buf_reset(&tb->block);
    tb->in_block = 0;
    return err ? err : file_wrote(&tb->avro);
}

static tl_err_t table_row(table_t *tb, const json_t *row)
{
    tl_err_t err = tl_release_csv_row(tb->t, row, &tb->csv.buf);
    if (!err)
        err = file_wrote(&tb->csv);
    if (!err)
        err = tl_avro_encode(tb->schema, row, &tb->block);
    if (!err && ++tb->in_block >= TL_RELEASE_BLOCK_RECORDS)
        err = table_block(tb);
    if (!err)
        tb->rows++;
    return err;
}

static void table_cleanup(table_t *tb)
{
    file_abandon(&tb->csv);
    file_abandon(&tb->avro);
    tl_buf_cleanup(&tb->block);
    tl_avro_schema_destroy(tb->schema);
    tb->schema = NULL;
}

/* ---- the cut ---- */

typedef struct {
    ctx_t *c;
    tl_pg_t *pg;
    const char *study_id;
    json_t *cut; /* [{topic, partition, offset}], borrowed from the event */
    char *cut_text;
    char dir[PATH_MAX_LEN - 128];
    table_t tables[TL_RELEASE_NTABLES];
    tl_research_fold_t *fold;
    size_t held;
    const char *failure; /* why the release failed, for ReleaseFailed */
} job_t;

/* The cut as three array literals (topic, partition, offset), of one topic
 * or (topic NULL) of all. */
static tl_err_t cut_arrays(const json_t *cut, const char *topic, tl_cols_t *cols)
{
    size_t i;
    const json_t *c;
    tl_err_t err = TL_OK;
    json_array_foreach(cut, i, c)
    {
        char p[16], o[24];
        const char *t = json_string_value(json_object_get(c, "topic"));
        if (topic && strcmp(t, topic))
            continue;
        snprintf(p, sizeof p, "%lld", (long long)tl_ev_int(c, "partition"));
        snprintf(o, sizeof o, "%lld", (long long)tl_ev_int(c, "offset"));
        const char *row[] = {t, p, o};
        if ((err = tl_cols_add_row(cols, row, 3)))
            break;
    }
    return err ? err : tl_cols_end(cols);
}

static tl_err_t archived(job_t *j, bool *ready)
{
    tl_cols_t cols;
    tl_cols_init(&cols, 3);
    tl_err_t err = cut_arrays(j->cut, NULL, &cols);
    const char *params[] = {cols.col[0].data, cols.col[1].data, cols.col[2].data};
    tl_pg_res_t *res = NULL;
    if (!err)
        err =
            tl_pg_exec(j->pg,
                       "SELECT COALESCE(bool_and(COALESCE((SELECT max(a.\"offset\") + 1"
                       "  FROM audit_log a WHERE a.topic = c.t AND a.partition = c.p), 0) >= c.o),"
                       "  true)"
                       " FROM unnest($1::text[], $2::int[], $3::bigint[]) AS c(t, p, o)",
                       3, params, &res);
    const char *v = tl_pg_get(res, 0, 0);
    *ready = !err && v && !strcmp(v, "t");
    tl_pg_res_free(res);
    tl_cols_cleanup(&cols);
    return err;
}

static tl_err_t wait_archive(job_t *j, bool *ready)
{
    struct timespec nap = {0, 100 * 1000000L};
    tl_err_t err = TL_OK;
    for (long waited = 0;
         !(err = archived(j, ready)) && !*ready && waited < TL_RELEASE_ARCHIVE_WAIT_MS;
         waited += 100)
        nanosleep(&nap, NULL);
    return err;
}

static tl_err_t on_record(void *user, const char *type, const json_t *record,
                          const char *visit_name)
{
    job_t *j = user;
    if (!strcmp(type, "ResearchParticipant"))
        return table_row(&j->tables[TL_RELEASE_PARTICIPANTS], record);
    if (!strcmp(type, "ResearchVisit"))
        return table_row(&j->tables[TL_RELEASE_VISITS], record);
    bool obs = !strcmp(type, "ResearchObservation");
    json_t *rows = obs ? tl_release_observation_rows(record)
                       : tl_release_answer_rows(record, visit_name);
    tl_err_t err = rows ? TL_OK : TL_ERR_INVALID;
    size_t i;
    const json_t *row;
    json_array_foreach(rows, i, row)
    {
        if ((err = table_row(&j->tables[obs ? TL_RELEASE_OBSERVATIONS : TL_RELEASE_ANSWERS], row)))
            break;
    }
    json_decref(rows);
    return err;
}

/* Reads the archive below the cut through a cursor: sql selects key,
 * value; every message goes to the fold, and each time the key changes the
 * participants folded so far are written out. */
static tl_err_t read_archive(job_t *j, const char *topic, const char *sql)
{
    tl_cols_t cols;
    tl_cols_init(&cols, 3);
    tl_err_t err = cut_arrays(j->cut, topic, &cols);
    const char *params[] = {topic, cols.col[1].data, cols.col[2].data};
    char fetch[64], key[512] = "";
    snprintf(fetch, sizeof fetch, "FETCH %d FROM release_cut", TL_RELEASE_FETCH);
    bool stream = !strcmp(topic, TL_TOPIC_PARTICIPANT);
    tl_buf_t value;
    tl_buf_init(&value, 16u * 1024 * 1024);
    if (!err)
        err = tl_pg_exec(j->pg, sql, 3, params, NULL);
    for (int got = TL_RELEASE_FETCH; !err && got == TL_RELEASE_FETCH;) {
        tl_pg_res_t *res = NULL;
        err = tl_pg_exec(j->pg, fetch, 0, NULL, &res);
        got = err ? 0 : tl_pg_nrows(res);
        for (int r = 0; !err && r < got; r++) {
            const char *k = tl_pg_get(res, r, 0), *v = tl_pg_get(res, r, 1);
            if (stream && strcmp(k ? k : "", key)) {
                err = tl_research_fold_flush(j->fold, j->study_id, on_record, j, &j->held);
                snprintf(key, sizeof key, "%s", k ? k : "");
            }
            tl_buf_reset(&value);
            const char *fullname = NULL;
            json_t *data = NULL;
            if (!err && (!v || tl_bytea_unhex(&value, v)))
                continue; /* a tombstone, or not what the archive writes */
            if (!err && !tl_registry_decode(j->c->registry, j->pg, value.data, value.len, &data,
                                            &fullname)) {
                tl_event_t e = {.topic = topic, .data = data, .fullname = fullname};
                e.type = strncmp(fullname, TYPE_PREFIX, strlen(TYPE_PREFIX))
                             ? fullname
                             : fullname + strlen(TYPE_PREFIX);
                err = tl_research_fold_event(j->fold, &e);
            }
            json_decref(data);
        }
        tl_pg_res_free(res);
    }
    if (!err && stream)
        err = tl_research_fold_flush(j->fold, j->study_id, on_record, j, &j->held);
    tl_err_t e2 = tl_pg_exec(j->pg, "CLOSE release_cut", 0, NULL, NULL);
    tl_buf_cleanup(&value);
    tl_cols_cleanup(&cols);
    return err ? err : e2;
}

static const char *const sql_templates =
    "DECLARE release_cut NO SCROLL CURSOR FOR"
    " SELECT NULL, a.value FROM audit_log a"
    "  JOIN unnest($2::int[], $3::bigint[]) AS c(p, o) ON a.partition = c.p AND a.\"offset\" < c.o"
    " WHERE a.topic = $1 AND a.event_type = 'org.trialog.FormTemplatePublished'"
    " ORDER BY a.partition, a.\"offset\"";
/* one participant's messages together (they share the key, so the
 * partition), in log order */
static const char *const sql_stream =
    "DECLARE release_cut NO SCROLL CURSOR FOR"
    " SELECT encode(a.key, 'hex'), a.value FROM audit_log a"
    "  JOIN unnest($2::int[], $3::bigint[]) AS c(p, o) ON a.partition = c.p AND a.\"offset\" < c.o"
    " WHERE a.topic = $1"
    " ORDER BY a.key, a.partition, a.\"offset\"";

static json_t *manifest(job_t *j, const char *name, char sha[][TL_SHA256_STRLEN],
                        const uint64_t *bytes)
{
    json_t *tables = json_array(), *files = json_array();
    for (size_t i = 0; i < TL_RELEASE_NTABLES; i++)
        json_array_append_new(
            tables, json_pack("{s:s, s:s, s:I, s:o}", "name", tl_release_tables[i].name, "doc",
                              tl_release_tables[i].doc, "rows", (json_int_t)j->tables[i].rows,
                              "columns", tl_release_columns(&tl_release_tables[i])));
    for (size_t i = 0; i + 1 < tl_release_file_count; i++) {
        const char *dot = strrchr(tl_release_files[i], '.');
        json_array_append_new(files,
                              json_pack("{s:s, s:s, s:s#, s:I, s:s}", "name", tl_release_files[i],
                                        "format", dot + 1, "table", tl_release_files[i],
                                        (int)(dot - tl_release_files[i]), "bytes",
                                        (json_int_t)bytes[i], "sha256", sha[i]));
    }
    return json_pack(
        "{s:s, s:s, s:i, s:O, s:{s:s, s:s, s:i, s:s}, s:o, s:o, s:I}", "release", name, "study_id",
        j->study_id, "format_version", 1, "cut", j->cut, "de_identification", "pseudonym",
        "HMAC-SHA256 of the participant id under the export key, first 128 bits", "dates",
        j->c->research.dates == TL_RESEARCH_SHIFTED ? "shifted" : "study_days", "age_cap",
        TL_RESEARCH_AGE_CAP, "free_text", "withheld unless the field is research_safe", "tables",
        tables, "files", files, "forms_held_back", (json_int_t)j->held);
}

static tl_err_t write_text(const char *dir, const char *name, const char *text,
                           char sha[TL_SHA256_STRLEN], uint64_t *bytes)
{
    file_t w;
    tl_err_t err = file_open(&w, dir, name);
    if (!err)
        err = tl_buf_puts(&w.buf, text);
    if (!err)
        err = tl_buf_puts(&w.buf, "\n");
    if (!err) {
        err = file_close(&w, sha);
        *bytes = w.bytes;
        return err;
    }
    file_abandon(&w);
    return err;
}

static void remove_dir(const char *dir)
{
    char path[PATH_MAX_LEN];
    for (size_t i = 0; i < tl_release_file_count; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, tl_release_files[i]);
        unlink(path);
    }
    rmdir(dir);
}

static tl_err_t sync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    tl_err_t err = fd >= 0 && !fsync(fd) ? TL_OK : TL_ERR_IO;
    if (fd >= 0)
        close(fd);
    return err;
}

/* Cuts the files into j->dir; *text receives manifest.json. */
static tl_err_t cut(job_t *j, const char *name, char **text)
{
    char sha[TL_RELEASE_NTABLES * 2 + 1][TL_SHA256_STRLEN];
    uint64_t bytes[TL_RELEASE_NTABLES * 2 + 1] = {0};
    const char *dates = j->c->research.dates == TL_RESEARCH_SHIFTED ? "shifted" : "study_days";
    tl_err_t err = tl_research_fold_new(&j->c->research, &j->fold);
    for (size_t i = 0; i < TL_RELEASE_NTABLES && !err; i++)
        err = table_open(&j->tables[i], &tl_release_tables[i], j->dir, j->study_id, j->cut_text,
                         dates);
    if (!err)
        err = read_archive(j, TL_TOPIC_PROTOCOL, sql_templates);
    if (!err)
        err = read_archive(j, TL_TOPIC_PARTICIPANT, sql_stream);
    for (size_t i = 0; i < TL_RELEASE_NTABLES && !err; i++) {
        table_t *tb = &j->tables[i];
        err = file_close(&tb->csv, sha[2 * i]);
        if (!err)
            err = table_block(tb);
        if (!err)
            err = file_close(&tb->avro, sha[2 * i + 1]);
        bytes[2 * i] = tb->csv.bytes; /* file_close flushed them all */
        bytes[2 * i + 1] = tb->avro.bytes;
    }
    json_t *m = err ? NULL : manifest(j, name, sha, bytes);
    *text = m ? json_dumps(m, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
    json_decref(m);
    if (!err && !*text)
        err = TL_ERR_NOMEM;
    uint64_t mbytes = 0;
    char msha[TL_SHA256_STRLEN];
    if (!err)
        err = write_text(j->dir, "manifest.json", *text, msha, &mbytes);
    if (!err)
        err = sync_dir(j->dir);
    for (size_t i = 0; i < TL_RELEASE_NTABLES; i++)
        table_cleanup(&j->tables[i]);
    tl_research_fold_destroy(j->fold);
    j->fold = NULL;
    return err;
}

/* ---- the job ---- */

static tl_err_t announce(job_t *j, const tl_event_t *req, const char *type, const char *what,
                         const char *text)
{
    static const tl_uuid_t ns = {.s = "3c0b8f5e-7d21-5a4e-8f90-2b6d1e4c7a35"};
    const char *release_id = tl_event_str(req, "release_id");
    json_t *payload = json_pack("{s:s, s:s}", "study_id", j->study_id, "release_id", release_id);
    char seed[128];
    tl_event_meta_t meta = {.actor_id = TL_RELEASE_SOURCE,
                            .actor_role = "system",
                            .correlation_id = tl_event_str(req, "correlation_id"),
                            .causation_id = tl_event_str(req, "event_id"),
                            .source = TL_RELEASE_SOURCE};
    /* a job that runs again announces the same event ids */
    int n = snprintf(seed, sizeof seed, "%s/%s", release_id, type);
    tl_err_t err = payload && n > 0 && (size_t)n < sizeof seed
                       ? tl_uuid_v5(&ns, seed, (size_t)n, &meta.event_id)
                       : TL_ERR_NOMEM;
    if (!err && what)
        json_object_set_new(payload, what, json_string(text));
    tl_kafka_pos_t pos;
    if (!err)
        err = tl_producer_send(j->c->producer, type, j->study_id, payload, &meta, &pos);
    json_decref(payload);
    if (err)
        tl_log_error("release_announce_failed",
                     json_pack("{s:s, s:s, s:s}", "release_id", release_id, "type", type, "error",
                               tl_err_name(err)));
    return err == TL_ERR_INVALID ? TL_ERR_INTERNAL : err;
}

static tl_err_t finished(tl_pg_t *pg, const char *release_id, bool *done)
{
    const char *params[] = {release_id};
    tl_pg_res_t *res = NULL;
    tl_err_t err =
        tl_pg_exec(pg, "SELECT status IN ('completed', 'failed') FROM releases WHERE id = $1", 1,
                   params, &res);
    const char *v = tl_pg_get(res, 0, 0);
    *done = !err && v && !strcmp(v, "t");
    tl_pg_res_free(res);
    return err;
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    tl_buf_t b;
    tl_buf_init(&b, 4u * 1024 * 1024);
    char chunk[8192];
    size_t n;
    tl_err_t err = f ? TL_OK : TL_ERR_IO;
    while (!err && (n = fread(chunk, 1, sizeof chunk, f)) > 0)
        err = tl_buf_append(&b, chunk, n);
    if (f && ferror(f))
        err = TL_ERR_IO;
    if (f)
        fclose(f);
    char *text = err ? NULL : tl_buf_steal(&b, &n);
    tl_buf_cleanup(&b);
    return text;
}

static tl_err_t job(ctx_t *c, tl_pg_t *pg, const tl_event_t *e)
{
    job_t j = {.c = c,
               .pg = pg,
               .study_id = tl_event_str(e, "study_id"),
               .cut = json_object_get(e->data, "cut")};
    const char *id = tl_event_str(e, "release_id"), *name = tl_event_str(e, "name");
    char final[PATH_MAX_LEN - 64], path[PATH_MAX_LEN];
    char *text = NULL;
    bool done = false, ready = false;
    tl_uuid_t u;
    if (tl_uuid_parse(id, &u) || !tl_uuid_valid(j.study_id) || !tl_release_name_valid(name) ||
        !json_is_array(j.cut))
        return TL_OK; /* the releases projection records the refusal */
    tl_err_t err = finished(pg, u.s, &done);
    if (err || done)
        return err;
    snprintf(j.dir, sizeof j.dir, "%s/.%s.partial", c->dir, u.s);
    snprintf(final, sizeof final, "%s/%s", c->dir, u.s);
    snprintf(path, sizeof path, "%s/manifest.json", final);
    tl_log_info("release_started",
                json_pack("{s:s, s:s}", "release_id", u.s, "study_id", j.study_id));
    j.cut_text = json_dumps(j.cut, JSON_COMPACT | JSON_PRESERVE_ORDER);
    err = j.cut_text ? announce(&j, e, "ReleaseStarted", NULL, NULL) : TL_ERR_NOMEM;
    if (!err && (text = read_file(path)))
        goto announce; /* cut before, and then the worker stopped */
    if (!err)
        err = wait_archive(&j, &ready);
    if (!err && !ready)
        j.failure = "archive_behind";
    if (!err && !j.failure) {
        remove_dir(j.dir);
        if (mkdir(j.dir, 0750))
            j.failure = "write_failed";
    }
    if (!err && !j.failure) {
        tl_err_t e2 = cut(&j, name, &text);
        if (e2 == TL_ERR_IO || e2 == TL_ERR_TOO_LARGE)
            j.failure = "write_failed";
        else if (e2 == TL_ERR_INVALID)
            j.failure = "invalid_data";
        else
            err = e2;
        if (!err && !j.failure && (rename(j.dir, final) || sync_dir(c->dir)))
            j.failure = "write_failed";
        if (err || j.failure)
            remove_dir(j.dir);
    }
announce:
    if (!err && j.failure) {
        tl_log_warn("release_failed",
                    json_pack("{s:s, s:s}", "release_id", u.s, "error", j.failure));
        err = announce(&j, e, "ReleaseFailed", "error", j.failure);
    } else if (!err) {
        err = announce(&j, e, "ReleaseCompleted", "manifest", text);
        if (!err)
            tl_log_info("release_completed", json_pack("{s:s}", "release_id", u.s));
    }
    free(text);
    free(j.cut_text);
    return err;
}

tl_err_t tl_release_export_apply(tl_pg_t *pg, tl_batch_t *b)
{
    tl_err_t err = TL_OK;
    for (size_t i = 0; i < b->n && !err; i++)
        if (b->events[i].type && !strcmp(b->events[i].type, "ReleaseRequested"))
            err = job(b->ctx, pg, &b->events[i]);
    return err;
}
