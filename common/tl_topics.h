/* The topics of DESIGN.md §3, in one place. */
#ifndef TL_TOPICS_H
#define TL_TOPICS_H

#include <stddef.h>

#define TL_TOPIC_PROTOCOL "trialog.protocol.v1"
#define TL_TOPIC_PARTICIPANT "trialog.participant.v1"
#define TL_TOPIC_ACCESS "trialog.access.v1"
/* The archive's signed checkpoints of its chain heads (docs/SECURITY.md). */
#define TL_TOPIC_AUDIT "trialog.audit.v1"

/* The de-identified topics of the research export (docs/ANALYSTS.md); the
 * built-in schemas under schemas/research.<name>/ are registered for them. */
#define TL_TOPIC_RESEARCH_PARTICIPANTS "trialog.research.participants.v1"
#define TL_TOPIC_RESEARCH_VISITS "trialog.research.visits.v1"
#define TL_TOPIC_RESEARCH_FORMS "trialog.research.forms.v1"
#define TL_TOPIC_RESEARCH_OBSERVATIONS "trialog.research.observations.v1"

/* Connectors' topics, trialog.ingest.<source>.v1, and their dead letters:
 * a librdkafka subscription pattern (a leading ^ makes it a regex). */
#define TL_TOPIC_INGEST_PREFIX "trialog.ingest."
#define TL_TOPIC_INGEST_PATTERN "^trialog\\.ingest\\..+"

/* The log: Trialog's own topics, including the dead-letter topics. */
extern const char *const tl_topics_all[];
extern const size_t tl_topics_count;

/* What the archive keeps: the log and whatever connectors publish (the
 * ingest topics and their dead letters), so that a re-seeded broker gives
 * every consumer its offsets back and the source data stays with the log. */
extern const char *const tl_topics_archive[];
extern const size_t tl_topics_archive_count;

/* Every topic of a deployment but the connectors' (`trialog topics ensure`
 * adds those for the configured sources): the log and the research topics,
 * which are derived from it and replayable, so the archive leaves them out. */
extern const char *const tl_topics_owned[];
extern const size_t tl_topics_owned_count;

#endif
