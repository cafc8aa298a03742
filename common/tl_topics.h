/* The topics of DESIGN.md §3, in one place. */
#ifndef TL_TOPICS_H
#define TL_TOPICS_H

#include <stddef.h>

#define TL_TOPIC_PROTOCOL "trialog.protocol.v1"
#define TL_TOPIC_PARTICIPANT "trialog.participant.v1"
#define TL_TOPIC_ACCESS "trialog.access.v1"

/* Every topic the local broker creates, including the dead-letter topics. */
extern const char *const tl_topics_all[];
extern const size_t tl_topics_count;

#endif
