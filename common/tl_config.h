/* tl_config: configuration from TRIALOG_* environment variables.
 *
 * Each program declares one table of tl_config_var_t; tl_config_load reads
 * them all, reports every error (not only the first) and fails if any. */
#ifndef TL_CONFIG_H
#define TL_CONFIG_H

#include <stdbool.h>
#include <stdio.h>

#include "tl_err.h"

typedef enum { TL_CFG_STR, TL_CFG_INT, TL_CFG_BOOL } tl_cfg_type_t;

typedef struct {
    const char *name;  /* e.g. "TRIALOG_HTTP_PORT" */
    tl_cfg_type_t type;
    const char *def;   /* default as text; NULL means required */
    long min, max;     /* TL_CFG_INT bounds, inclusive; for TL_CFG_STR the max length */
    bool secret;       /* masked by tl_config_print */
    const char *help;
    void *dst;         /* const char ** (borrowed from the environment or def), long *, or bool * */
} tl_config_var_t;

/* Reads every variable through getenv_fn (getenv when NULL), writes parsed
 * values to dst, prints one line per error to err, and returns TL_ERR_CONFIG
 * if there was any. */
tl_err_t tl_config_load(const tl_config_var_t *vars, size_t n, const char *(*getenv_fn)(const char *),
                        FILE *err);
/* Prints NAME=value lines, secrets masked. */
void tl_config_print(const tl_config_var_t *vars, size_t n, FILE *out);

#endif
