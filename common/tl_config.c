#include "tl_config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static const char *env_get(const char *name)
{
    return getenv(name);
}

static bool parse_long(const char *s, long *v)
{
    /* digits with an optional minus: no spaces, no plus sign */
    if (!s || !((*s >= '0' && *s <= '9') || (*s == '-' && s[1] >= '0' && s[1] <= '9')))
        return false;
    char *end = NULL;
    errno = 0;
    long x = strtol(s, &end, 10);
    if (errno || *end)
        return false;
    *v = x;
    return true;
}

static bool parse_bool(const char *s, bool *v)
{
    if (!strcmp(s, "1") || !strcmp(s, "true") || !strcmp(s, "yes") || !strcmp(s, "on"))
        *v = true;
    else if (!strcmp(s, "0") || !strcmp(s, "false") || !strcmp(s, "no") || !strcmp(s, "off"))
        *v = false;
    else
        return false;
    return true;
}

tl_err_t tl_config_load(const tl_config_var_t *vars, size_t n, const char *(*getenv_fn)(const char *),
                        FILE *err)
{
    if (!getenv_fn)
        getenv_fn = env_get;
    int errors = 0;
    for (size_t i = 0; i < n; i++) {
        const tl_config_var_t *v = &vars[i];
        const char *s = getenv_fn(v->name);
        if (!s || !*s)
            s = v->def;
        if (!s) {
            fprintf(err, "config: %s is required (%s)\n", v->name, v->help);
            errors++;
            continue;
        }
        switch (v->type) {
        case TL_CFG_STR:
            if (v->max > 0 && strlen(s) > (size_t)v->max) {
                fprintf(err, "config: %s is longer than %ld characters\n", v->name, v->max);
                errors++;
            } else {
                *(const char **)v->dst = s;
            }
            break;
        case TL_CFG_INT: {
            long x;
            if (!parse_long(s, &x) || x < v->min || x > v->max) {
                fprintf(err, "config: %s must be an integer from %ld to %ld\n", v->name, v->min,
                        v->max);
                errors++;
            } else {
                *(long *)v->dst = x;
            }
            break;
        }
        case TL_CFG_BOOL:
            if (!parse_bool(s, (bool *)v->dst)) {
                fprintf(err, "config: %s must be true or false\n", v->name);
                errors++;
            }
            break;
        }
    }
    return errors ? TL_ERR_CONFIG : TL_OK;
}

void tl_config_print(const tl_config_var_t *vars, size_t n, FILE *out)
{
    for (size_t i = 0; i < n; i++) {
        const tl_config_var_t *v = &vars[i];
        switch (v->type) {
        case TL_CFG_STR: {
            const char *s = *(const char **)v->dst;
            fprintf(out, "%s=%s\n", v->name, v->secret && s && *s ? "********" : (s ? s : ""));
            break;
        }
        case TL_CFG_INT:
            fprintf(out, "%s=%ld\n", v->name, *(long *)v->dst);
            break;
        case TL_CFG_BOOL:
            fprintf(out, "%s=%s\n", v->name, *(bool *)v->dst ? "true" : "false");
            break;
        }
    }
}
