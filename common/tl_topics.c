#include "tl_topics.h"

/* the log: the archive keeps it whole */
#define LOG_TOPICS                                                                               \
    TL_TOPIC_PROTOCOL, TL_TOPIC_PARTICIPANT, TL_TOPIC_ACCESS, TL_TOPIC_PROTOCOL ".dlq",           \
        TL_TOPIC_PARTICIPANT ".dlq", TL_TOPIC_ACCESS ".dlq", TL_TOPIC_AUDIT

const char *const tl_topics_all[] = {LOG_TOPICS};
const size_t tl_topics_count = sizeof tl_topics_all / sizeof tl_topics_all[0];

const char *const tl_topics_archive[] = {LOG_TOPICS, TL_TOPIC_INGEST_PATTERN};
const size_t tl_topics_archive_count = sizeof tl_topics_archive / sizeof tl_topics_archive[0];

const char *const tl_topics_owned[] = {LOG_TOPICS, TL_TOPIC_RESEARCH_PARTICIPANTS,
                                        TL_TOPIC_RESEARCH_VISITS, TL_TOPIC_RESEARCH_FORMS,
                                        TL_TOPIC_RESEARCH_OBSERVATIONS};
const size_t tl_topics_owned_count = sizeof tl_topics_owned / sizeof tl_topics_owned[0];
