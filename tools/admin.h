/* trialog admin: principals and tokens from the operator's shell. */
#ifndef TL_ADMIN_H
#define TL_ADMIN_H

#include "tl_pg.h"
#include "tl_schemas.h"

/* argv[0] is the admin subcommand. pg is borrowed. Returns the exit code. */
int tl_admin_main(tl_pg_t *pg, const char *brokers, const tl_registry_cfg_t *registry, int argc,
                  char **argv);

#endif
