#include "reasons.h"

#include <stddef.h>
#include <string.h>

static const tl_reason_info_t table[TL_REASON_COUNT] = {
    [TL_REASON_NONE] = {"none", 200, "none", "No refusal"},
#define TL__REASON_ROW(name, status, type, title) [TL_REASON_##name] = {#name, status, type, title},
    TL_REASONS(TL__REASON_ROW)
#undef TL__REASON_ROW
};

const tl_reason_info_t *tl_reason_info(tl_reason_t r)
{
    if ((int)r <= (int)TL_REASON_NONE || (int)r >= (int)TL_REASON_COUNT)
        r = TL_R(conflict);
    return &table[r];
}

const char *tl_reason_name(tl_reason_t r)
{
    return tl_reason_info(r)->name;
}

tl_reason_t tl_reason_parse(const char *name)
{
    if (!name || !*name)
        return TL_REASON_NONE;
    /* a hundred rows, on the path of a refusal only */
    for (int r = TL_REASON_NONE + 1; r < TL_REASON_COUNT; r++)
        if (!strcmp(table[r].name, name))
            return (tl_reason_t)r;
    return TL_REASON_NONE;
}
