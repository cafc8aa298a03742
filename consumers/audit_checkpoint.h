/* audit_checkpoint: the archive anchors its hash chains outside the
 * database (docs/SECURITY.md, 21 CFR 11.10(c), (e)). The audit consumer
 * signs the head (topic, partition, offset, row hash) of every partition it
 * archived since the last checkpoint with an Ed25519 key kept outside the
 * database (TRIALOG_AUDIT_SIGNING_KEY) and publishes the signed list as an
 * AuditCheckpoint event on trialog.audit.v1, which it archives like any
 * other topic. It does so at start (every partition's head), once
 * TRIALOG_AUDIT_CHECKPOINT_EVERY messages were archived since the last one,
 * and at most TRIALOG_AUDIT_CHECKPOINT_SECONDS after a message was archived.
 * Whoever rewrites the archive without the key cannot make the heads it
 * signed match again; `trialog audit verify` checks them with the public
 * key only. A checkpoint that cannot be published is tried again at the
 * next turn; archiving never waits for it. The checkpoints' own topic is
 * not checkpointed (each checkpoint would call for another). */
#ifndef TL_AUDIT_CHECKPOINT_H
#define TL_AUDIT_CHECKPOINT_H

#include "tl_consumer.h"

tl_err_t tl_audit_checkpoint_open(const tl_consumer_cfg_t *cfg, tl_registry_t *registry,
                                  void **ctx);
void tl_audit_checkpoint_close(void *ctx);
/* Signs what is due; every minute checks that the archive it writes is
 * still the secured one (TL_ERR_CONFIG when not: the consumer stops). */
tl_err_t tl_audit_checkpoint_turn(void *ctx, tl_pg_t *pg, bool committed);

/* The settings (entries of a tl_config_var_t table; cfgp a
 * tl_consumer_cfg_t *). */
#define TL_AUDIT_CONFIG_VARS(cfgp)                                                               \
    {"TRIALOG_AUDIT_SIGNING_KEY", TL_CFG_STR, "", 0, 4000, false,                               \
     "audit: the Ed25519 private key (PEM, mode 0600) the archive signs its checkpoints with"    \
     " (trialog audit keygen)",                                                                  \
     &(cfgp)->audit_key_file},                                                                   \
    {"TRIALOG_AUDIT_CHECKPOINT_EVERY", TL_CFG_INT, "10000", 1, 100000000, false,                \
     "audit: archived messages between two checkpoints at most", &(cfgp)->audit_checkpoint_every}, \
    {                                                                                            \
        "TRIALOG_AUDIT_CHECKPOINT_SECONDS", TL_CFG_INT, "30", 1, 86400, false,                  \
            "audit: seconds an archived message waits for its checkpoint at most",               \
            &(cfgp)->audit_checkpoint_seconds                                                    \
    }

#endif
