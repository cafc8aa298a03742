#include "tl_date.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* Howard Hinnant's days_from_civil / civil_from_days. */
int32_t tl_date_from_civil(int y, unsigned m, unsigned d)
{
    y -= m <= 2;
    const int era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = (unsigned)(y - era * 400);
    const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return (int32_t)(era * 146097 + (int)doe - 719468);
}

void tl_date_to_civil(int32_t days, int *y, unsigned *m, unsigned *d)
{
    const int z = days + 719468;
    const int era = (z >= 0 ? z : z - 146096) / 146097;
    const unsigned doe = (unsigned)(z - era * 146097);
    const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int)yoe + era * 400 + (*m <= 2);
}

static bool is_leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static unsigned days_in_month(int y, unsigned m)
{
    static const unsigned dim[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && is_leap(y) ? 29 : dim[m - 1];
}

static int digits(const char *s, size_t n)
{
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

tl_err_t tl_date_parse(const char *s, int32_t *days)
{
    if (!s || strlen(s) != 10 || s[4] != '-' || s[7] != '-')
        return TL_ERR_INVALID;
    int y = digits(s, 4), m = digits(s + 5, 2), d = digits(s + 8, 2);
    if (y < 1000 || m < 1 || m > 12 || d < 1 || (unsigned)d > days_in_month(y, (unsigned)m))
        return TL_ERR_INVALID;
    *days = tl_date_from_civil(y, (unsigned)m, (unsigned)d);
    return TL_OK;
}

void tl_date_format(int32_t days, char out[TL_DATE_STRLEN])
{
    int y;
    unsigned m, d;
    tl_date_to_civil(days, &y, &m, &d);
    if (y < 0 || y > 9999) {
        snprintf(out, TL_DATE_STRLEN, "0000-00-00");
        return;
    }
    snprintf(out, TL_DATE_STRLEN, "%04d-%02u-%02u", y, m, d);
}

int32_t tl_date_today(void)
{
    return (int32_t)(time(NULL) / 86400);
}

void tl_ts_format(int64_t us, char out[TL_TS_STRLEN])
{
    int64_t s = us >= 0 ? us / 1000000 : (us - 999999) / 1000000;
    int64_t frac = us - s * 1000000;
    int32_t days = (int32_t)(s >= 0 ? s / 86400 : (s - 86399) / 86400);
    int64_t sod = s - (int64_t)days * 86400;
    char date[TL_DATE_STRLEN];
    tl_date_format(days, date);
    snprintf(out, TL_TS_STRLEN, "%s %02d:%02d:%02d.%06d+00", date, (int)(sod / 3600), (int)(sod / 60 % 60),
             (int)(sod % 60), (int)frac);
}


bool tl_date_valid(int64_t days)
{
    return days >= TL_DATE_MIN && days <= TL_DATE_MAX;
}

bool tl_ts_valid(int64_t us)
{
    return us >= TL_DATE_MIN * 86400000000LL && us <= TL_DATE_MAX * 86400000000LL;
}
