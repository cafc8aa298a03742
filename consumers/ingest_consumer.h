/* ingest_consumer: connectors' records into the participant stream
 * (DESIGN.md §3, docs/CONNECTORS.md), the projector's "ingest" (consumer
 * group trialog-ingest) over trialog.ingest.<source>.v1 for each source in
 * TRIALOG_INGEST_SOURCES.
 *
 * Each record is decoded with its registered schema and read as an
 * observation (ingest.h); its study and participant are looked up in the
 * participants projection. What it cannot accept goes, as it came (key,
 * value), to <topic>.dlq with headers saying why, and the consumer goes on:
 *
 *   trialog_error_type     malformed_avro, unknown_schema, invalid_record,
 *                          out_of_range, unknown_study, unknown_participant,
 *                          participant_not_active, study_locked
 *                          (tl_ingest_admit, ingest.h)
 *   trialog_error_field    the record's field at fault, when there is one
 *   trialog_original_topic, trialog_original_partition,
 *   trialog_original_offset, trialog_source
 *
 * What it accepts becomes ObservationRecorded on trialog.participant.v1,
 * keyed by the participant id, with source the connector, causation_id the
 * connector's event id, and an event id derived from both. Like the
 * gateway it names the stream version the event makes, and it writes that
 * choice down (ingest_events, migration 15) before producing: a record seen
 * again is produced again identically, and the participant stream's version
 * check refuses the copy, so the same event id never has a second effect.
 * After producing a batch it waits until the participants projection and
 * the archive have read it; an event refused for a version another writer
 * took is produced again at the next version, one refused for another
 * reason goes to the dead letters.
 *
 * A batch costs a few statements whatever its size: one lookup of the
 * choices made before, one of the studies and participants, one array
 * upsert of the new choices, the events produced without waiting and
 * flushed once, then per round one poll of the projections' offsets (until
 * they are past), one query of the fates and one upsert of the outcomes. */
#ifndef TL_INGEST_CONSUMER_H
#define TL_INGEST_CONSUMER_H

#include "tl_batch.h"
#include "tl_consumer.h"
#include "tl_err.h"
#include "tl_pg.h"

#define TL_PROJECTION_INGEST "ingest"
#define TL_INGEST_SOURCES_MAX 16
#define TL_INGEST_SOURCE_MAX 48 /* characters of a source name: a-z 0-9 _ - */
#define TL_INGEST_WAIT_MS 30000 /* for the projections to read what it produced */
#define TL_INGEST_ROUNDS 5      /* versions tried per record in one batch */
/* The canonical event's id: UUIDv5 in this namespace over "<source>/<the
 * connector's event_id>", so the same record always makes the same event. */
#define TL_INGEST_EVENT_NS "9a3f2c1e-64b7-5d08-a1f3-5c2e7b9d4a60"

/* The ingest topics of a comma-separated source list ("oct,lab"): each
 * trialog.ingest.<source>.v1, into topics (max of them, each
 * TL_INGEST_TOPIC_LEN bytes). Returns how many, or -1 when a source name is
 * not one. */
#define TL_INGEST_TOPIC_LEN 80
int tl_ingest_topics(const char *sources, char topics[][TL_INGEST_TOPIC_LEN], int max);

tl_err_t tl_ingest_open(const tl_consumer_cfg_t *cfg, tl_registry_t *registry, void **ctx);
void tl_ingest_close(void *ctx);
tl_err_t tl_ingest_apply(tl_pg_t *pg, tl_batch_t *b);

#endif
