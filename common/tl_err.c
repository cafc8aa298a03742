#include "tl_err.h"

static const struct {
    const char *name;
    const char *msg;
    bool retriable;
} tl__errs[] = {
#define TL__ERR_ROW(name, msg, retr) {#name, msg, retr},
    TL_ERR_TABLE(TL__ERR_ROW)
#undef TL__ERR_ROW
};

static bool err_valid(tl_err_t err)
{
    return (int)err >= 0 && err < TL_ERR__COUNT;
}

const char *tl_err_name(tl_err_t err)
{
    return err_valid(err) ? tl__errs[err].name : "UNKNOWN";
}

const char *tl_err_str(tl_err_t err)
{
    return err_valid(err) ? tl__errs[err].msg : "unknown error";
}

bool tl_err_is_retriable(tl_err_t err)
{
    return err_valid(err) && tl__errs[err].retriable;
}
