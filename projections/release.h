/* release: the files of a dataset release (docs/ANALYSTS.md), pure.
 *
 * A release is four tables cut from the log at fixed offsets, each as CSV
 * (RFC 4180, UTF-8, CRLF, a header row) and as an Avro object container
 * file with the same columns, plus manifest.json. The tables hold the
 * research records (research.h) of the study's participants as they stand
 * at the cut: one row per participant, one per scheduled visit, one per
 * exported answer and one per exported value of a connector's observation
 * (long format). The columns are declared here once; the
 * CSV header, the Avro schema and the manifest's column definitions are all
 * made from them.
 *
 * The releases projection's fold (a release's status) is here too. */
#ifndef TL_RELEASE_H
#define TL_RELEASE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tl_avro.h"
#include "tl_buf.h"
#include "tl_err.h"

typedef enum {
    TL_COL_STRING,
    TL_COL_UUID,
    TL_COL_INT,
    TL_COL_LONG,
    TL_COL_BOOL,
    TL_COL_DATE /* days since 1970-01-01; CSV writes YYYY-MM-DD */
} tl_col_type_t;

typedef struct {
    const char *name;
    tl_col_type_t type;
    bool nullable;
    const char *doc;
} tl_release_col_t;

typedef struct {
    const char *name;   /* "participants": the files' base name */
    const char *record; /* the Avro record's name, namespace org.trialog.release */
    const char *doc;
    const tl_release_col_t *cols;
    size_t ncols;
} tl_release_table_t;

enum {
    TL_RELEASE_PARTICIPANTS,
    TL_RELEASE_VISITS,
    TL_RELEASE_ANSWERS,
    TL_RELEASE_OBSERVATIONS,
    TL_RELEASE_NTABLES
};
extern const tl_release_table_t tl_release_tables[TL_RELEASE_NTABLES];

/* The table's Avro schema as JSON text; caller frees; NULL when out of
 * memory. */
char *tl_release_schema(const tl_release_table_t *t);
/* The manifest's column definitions: [{"name","type","nullable","doc"}]. */
json_t *tl_release_columns(const tl_release_table_t *t);

/* The header line, and one row (an object with exactly the table's
 * columns, typed as declared: the Avro encoding takes the same object).
 * TL_ERR_INVALID when the row does not fit; out is then left as it was. */
tl_err_t tl_release_csv_header(const tl_release_table_t *t, tl_buf_t *out);
tl_err_t tl_release_csv_row(const tl_release_table_t *t, const json_t *row, tl_buf_t *out);

/* The answers table's rows of one research form record
 * (tl_research_form), in the template's field order, with the visit's name.
 * New reference; NULL when out of memory or the record is not one. */
json_t *tl_release_answer_rows(const json_t *form, const char *visit_name);
/* The observations table's rows of one research observation record
 * (tl_research_observation), in its values' order. New reference; NULL when
 * out of memory or the record is not one. */
json_t *tl_release_observation_rows(const json_t *observation);

/* A release's name: 1 to 64 of [a-z0-9_], starting with a letter. */
#define TL_RELEASE_NAME_MAX 64
bool tl_release_name_valid(const char *name);

/* The sync marker of a table's Avro file: from what the rows depend on (the
 * study, the cut, the dates setting) and the table, so that the same cut
 * makes the same bytes and two tables never share a marker. */
tl_err_t tl_release_sync(const char *study_id, const char *cut_json, const char *dates,
                         const char *table, unsigned char sync[TL_AVRO_SYNC_LEN]);

/* ---- the releases projection ---- */

typedef enum {
    TL_RELEASE_NONE,
    TL_RELEASE_REQUESTED,
    TL_RELEASE_STARTED,
    TL_RELEASE_COMPLETED,
    TL_RELEASE_FAILED
} tl_release_status_t;

const char *tl_release_status_name(tl_release_status_t s);
tl_release_status_t tl_release_status_parse(const char *s);
/* Whether a release event (ReleaseRequested, ReleaseStarted,
 * ReleaseCompleted, ReleaseFailed) moves status *s, which it then does. A
 * release is requested once, then started, then completed or failed; a
 * finished release stays as it is, so a job that ran twice (the export
 * worker restarted) changes nothing the second time. */
bool tl_release_advance(tl_release_status_t *s, const char *type);

#endif
