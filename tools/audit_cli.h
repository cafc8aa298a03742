/* trialog audit keygen | audit verify | db secure (tools/audit_cli.c). */
#ifndef TL_AUDIT_CLI_H
#define TL_AUDIT_CLI_H

#include "tl_pg.h"
#include "tl_schemas.h"

typedef struct {
    const char *brokers;
    const char *public_key_file; /* TRIALOG_AUDIT_PUBLIC_KEY */
    const char *ingest_sources;  /* TRIALOG_INGEST_SOURCES: their topics are compared too */
    const tl_registry_cfg_t *registry;
} tl_audit_cli_cfg_t;

/* argv: PRIVATE.pem PUBLIC.pem. Exit code. */
int tl_audit_cli_keygen(int argc, char **argv);
/* Exit code: 0 ok, 1 a problem (each printed, the first first), 2 could not run. */
int tl_audit_cli_verify(tl_pg_t *pg, const tl_audit_cli_cfg_t *cfg);
/* Migrates as the application (app), then as the superuser (super_dsn)
 * moves the archive into its own schema, owned by a role that cannot log
 * in, the application keeping SELECT and INSERT only. Exit code. */
int tl_db_secure(tl_pg_t *app, const char *super_dsn);

#endif
