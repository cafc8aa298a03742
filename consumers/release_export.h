/* release_export: the dataset release worker (docs/ANALYSTS.md), the
 * projector's "release-export" (consumer group trialog-release-export).
 *
 * It reads the protocol topic. For each ReleaseRequested it announces
 * ReleaseStarted, waits until the archive holds the log up to the release's
 * cut, and folds the archive up to the cut with the research export's fold
 * (research_store.h): the template versions first, then the participant
 * stream one participant (message key) at a time, read through a cursor in
 * key order. Rows go straight to the files, so memory stays flat whatever
 * the study's size. The files are written in "<dir>/.<id>.partial", synced,
 * and renamed to "<dir>/<id>"; then ReleaseCompleted carries manifest.json.
 * A release that cannot be cut (the archive stays behind, the disk fails)
 * ends with ReleaseFailed and a stable error name; a failure of the log or
 * the database fails the batch, which runs again (the files come out the
 * same, so a second run changes nothing). A release the releases table
 * already shows finished is not cut again. */
#ifndef TL_RELEASE_EXPORT_H
#define TL_RELEASE_EXPORT_H

#include "tl_batch.h"
#include "tl_consumer.h"
#include "tl_err.h"
#include "tl_pg.h"

#define TL_PROJECTION_RELEASE_EXPORT "release-export"
#define TL_RELEASE_SOURCE "trialog-release-export"
#define TL_RELEASE_ARCHIVE_WAIT_MS 120000 /* then the release fails: archive_behind */
#define TL_RELEASE_FETCH 1000             /* archive rows per cursor fetch */
#define TL_RELEASE_BLOCK_RECORDS 1000     /* records per Avro block */

/* The files of a release, in the manifest's order. */
extern const char *const tl_release_files[];
extern const size_t tl_release_file_count;
/* The file's content type, or NULL when name is not a release's file. */
const char *tl_release_file_type(const char *name);

/* The projection's hooks (tl_projection_t): open reads the settings (key
 * file, dates, release directory) and makes a producer; apply cuts the
 * batch's requested releases. */
tl_err_t tl_release_export_open(const tl_consumer_cfg_t *cfg, tl_registry_t *registry, void **ctx);
void tl_release_export_close(void *ctx);
tl_err_t tl_release_export_apply(tl_pg_t *pg, tl_batch_t *b);

#endif
