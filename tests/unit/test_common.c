/* Unit tests for the common library: tl_uuid, tl_date, tl_buf, tl_map,
 * the tl_pg array literal builders and tl_err. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tl_buf.h"
#include "tl_codec.h"
#include "tl_date.h"
#include "tl_err.h"
#include "tl_map.h"
#include "tl_pg.h"
#include "tl_uuid.h"

/* ---- tl_uuid ---- */

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Canonical lowercase 8-4-4-4-12. */
static void assert_canonical(const char *s)
{
    assert_int_equal(strlen(s), 36);
    for (size_t i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23)
            assert_int_equal(s[i], '-');
        else
            assert_true(hexval(s[i]) >= 0);
    }
}

static void test_uuid_v7_format(void **state)
{
    (void)state;
    for (int i = 0; i < 1000; i++) {
        tl_uuid_t u;
        assert_int_equal(tl_uuid_v7(&u), TL_OK);
        assert_canonical(u.s);
        assert_true(tl_uuid_valid(u.s));
        assert_int_equal(u.s[14], '7');                  /* version */
        assert_true(strchr("89ab", u.s[19]) != NULL); /* variant 10xx */
    }
}

static void test_uuid_v7_time_ordered(void **state)
{
    (void)state;
    tl_uuid_t prev, cur;
    assert_int_equal(tl_uuid_v7(&prev), TL_OK);

    /* the first 48 bits are Unix milliseconds: close to now */
    uint64_t ms = 0;
    for (size_t i = 0; i < 13; i++)
        if (prev.s[i] != '-')
            ms = ms << 4 | (uint64_t)hexval(prev.s[i]);
    uint64_t now_ms = (uint64_t)tl_date_today() * 86400000ull;
    assert_true(ms >= now_ms);
    assert_true(ms < now_ms + 2 * 86400000ull);

    /* the timestamp prefix never goes backwards */
    for (int i = 0; i < 2000; i++) {
        assert_int_equal(tl_uuid_v7(&cur), TL_OK);
        assert_true(strncmp(prev.s, cur.s, 13) <= 0);
        assert_string_not_equal(prev.s, cur.s);
        prev = cur;
    }
}

static void test_uuid_v5_known_value(void **state)
{
    (void)state;
    tl_uuid_t dns, out, again;
    assert_int_equal(tl_uuid_parse("6ba7b810-9dad-11d1-80b4-00c04fd430c8", &dns), TL_OK);
    assert_int_equal(tl_uuid_v5(&dns, "python.org", 10, &out), TL_OK);
    assert_string_equal(out.s, "886313e1-3b8a-5372-9b90-0c9aee199e5d");

    /* deterministic */
    assert_int_equal(tl_uuid_v5(&dns, "python.org", 10, &again), TL_OK);
    assert_string_equal(out.s, again.s);

    /* a different name or namespace gives a different id, still version 5 */
    assert_int_equal(tl_uuid_v5(&dns, "python.org.", 11, &again), TL_OK);
    assert_string_not_equal(out.s, again.s);
    assert_int_equal(again.s[14], '5');
    assert_true(strchr("89ab", again.s[19]) != NULL);
    tl_uuid_t url;
    assert_int_equal(tl_uuid_parse("6ba7b811-9dad-11d1-80b4-00c04fd430c8", &url), TL_OK);
    assert_int_equal(tl_uuid_v5(&url, "python.org", 10, &again), TL_OK);
    assert_string_not_equal(out.s, again.s);

    /* the name is bytes with a length: embedded NULs count */
    tl_uuid_t a, b;
    assert_int_equal(tl_uuid_v5(&dns, "a\0b", 3, &a), TL_OK);
    assert_int_equal(tl_uuid_v5(&dns, "a", 1, &b), TL_OK);
    assert_string_not_equal(a.s, b.s);
}

static void test_uuid_v5_uppercase_namespace(void **state)
{
    (void)state;
    tl_uuid_t ns, out;
    memcpy(ns.s, "6BA7B810-9DAD-11D1-80B4-00C04FD430C8", TL_UUID_STRLEN);
    assert_int_equal(tl_uuid_v5(&ns, "python.org", 10, &out), TL_OK);
    assert_string_equal(out.s, "886313e1-3b8a-5372-9b90-0c9aee199e5d");
}

static void test_uuid_valid(void **state)
{
    (void)state;
    assert_true(tl_uuid_valid("00000000-0000-0000-0000-000000000000"));
    assert_true(tl_uuid_valid("ffffffff-ffff-ffff-ffff-ffffffffffff"));
    assert_true(tl_uuid_valid("6BA7B810-9DAD-11D1-80B4-00C04FD430C8"));
    assert_true(tl_uuid_valid("6ba7b810-9DAD-11d1-80B4-00c04fd430c8"));

    assert_false(tl_uuid_valid(NULL));
    assert_false(tl_uuid_valid(""));
    assert_false(tl_uuid_valid("6ba7b810-9dad-11d1-80b4-00c04fd430c"));   /* 35 */
    assert_false(tl_uuid_valid("6ba7b810-9dad-11d1-80b4-00c04fd430c88")); /* 37 */
    assert_false(tl_uuid_valid("6ba7b8109dad11d180b400c04fd430c8"));
    assert_false(tl_uuid_valid("6ba7b810-9dad-11d1-80b4-00c04fd430cg"));
    assert_false(tl_uuid_valid("6ba7b810-9dad-11d1-80b4_00c04fd430c8"));
    assert_false(tl_uuid_valid("6ba7b8109-dad-11d1-80b4-00c04fd430c8")); /* dash moved */
    assert_false(tl_uuid_valid("{ba7b810-9dad-11d1-80b4-00c04fd430c}"));
    assert_false(tl_uuid_valid(" 6ba7b810-9dad-11d1-80b4-00c04fd430c"));
    assert_false(tl_uuid_valid("6ba7b810-9dad-11d1-80b4-00c04fd430c "));
    assert_false(tl_uuid_valid("------------------------------------"));
}

/* bytea's hex form and base64, both ways; a malformed input changes
 * nothing in the buffer. */
static void test_codecs(void **state)
{
    (void)state;
    const unsigned char raw[] = {0x00, 0x01, 0x7f, 0x80, 0xab, 0xff};
    tl_buf_t b;
    tl_buf_init(&b, 1024);
    assert_int_equal(tl_buf_append(&b, "k", 1), TL_OK);
    assert_int_equal(tl_bytea_hex(&b, raw, sizeof raw), TL_OK);
    assert_string_equal(b.data, "k\\x00017f80abff");
    tl_buf_t back;
    tl_buf_init(&back, 1024);
    assert_int_equal(tl_bytea_unhex(&back, b.data + 1), TL_OK);
    assert_int_equal(back.len, sizeof raw);
    assert_memory_equal(back.data, raw, sizeof raw);
    assert_int_equal(tl_bytea_unhex(&back, "\\xABcd"), TL_OK); /* either case */
    assert_int_equal(back.len, sizeof raw + 2);
    assert_int_equal((unsigned char)back.data[sizeof raw], 0xab);
    assert_int_equal(tl_bytea_unhex(&back, "\\xab0g"), TL_ERR_MALFORMED);
    assert_int_equal(tl_bytea_unhex(&back, "\\xabc"), TL_ERR_MALFORMED);
    assert_int_equal(tl_bytea_unhex(&back, "ab"), TL_ERR_MALFORMED);
    assert_int_equal(back.len, sizeof raw + 2);
    tl_buf_reset(&back);
    assert_int_equal(tl_bytea_unhex(&back, "\\x"), TL_OK);
    assert_int_equal(back.len, 0);

    tl_buf_reset(&b);
    assert_int_equal(tl_b64_encode(&b, "hello!?", 7), TL_OK);
    assert_string_equal(b.data, "aGVsbG8hPw==");
    assert_int_equal(tl_b64_decode(&back, b.data), TL_OK);
    assert_int_equal(back.len, 7);
    assert_memory_equal(back.data, "hello!?", 7);
    tl_buf_reset(&b);
    assert_int_equal(tl_b64_encode(&b, "", 0), TL_OK);
    assert_int_equal(b.len, 0);
    /* over the buffer's maximum */
    tl_buf_t small;
    tl_buf_init(&small, 4);
    assert_int_equal(tl_bytea_hex(&small, raw, 2), TL_ERR_TOO_LARGE);
    assert_int_equal(small.len, 0);
    tl_buf_cleanup(&small);
    tl_buf_cleanup(&back);
    tl_buf_cleanup(&b);
}

static void test_uuid_parse(void **state)
{
    (void)state;
    tl_uuid_t u;
    assert_int_equal(tl_uuid_parse("6BA7B810-9DAD-11D1-80B4-00C04FD430C8", &u), TL_OK);
    assert_string_equal(u.s, "6ba7b810-9dad-11d1-80b4-00c04fd430c8");
    assert_int_equal(tl_uuid_parse("0190a1B2-c3D4-7e5F-8A9b-0C1d2E3f4A5b", &u), TL_OK);
    assert_string_equal(u.s, "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b");
    assert_int_equal(tl_uuid_parse("abcdef01-2345-6789-abcd-ef0123456789", &u), TL_OK);
    assert_string_equal(u.s, "abcdef01-2345-6789-abcd-ef0123456789");

    assert_int_equal(tl_uuid_parse("not a uuid", &u), TL_ERR_INVALID);
    assert_int_equal(tl_uuid_parse(NULL, &u), TL_ERR_INVALID);
    assert_int_equal(tl_uuid_parse("6ba7b810-9dad-11d1-80b4-00c04fd430c8x", &u), TL_ERR_INVALID);
}

/* ---- tl_date ---- */

static int32_t parse_date(const char *s)
{
    int32_t d = -999999;
    assert_int_equal(tl_date_parse(s, &d), TL_OK);
    return d;
}

static void assert_format(int32_t days, const char *want)
{
    char out[TL_DATE_STRLEN];
    tl_date_format(days, out);
    assert_string_equal(out, want);
}

static void test_date_known_values(void **state)
{
    (void)state;
    assert_int_equal(tl_date_from_civil(1970, 1, 1), 0);
    assert_int_equal(tl_date_from_civil(1970, 1, 2), 1);
    assert_int_equal(tl_date_from_civil(1969, 12, 31), -1);
    assert_int_equal(tl_date_from_civil(2000, 3, 1), 11017);
    assert_int_equal(tl_date_from_civil(2026, 1, 1), 20454);
    assert_int_equal(tl_date_from_civil(1900, 1, 1), -25567);
    assert_int_equal(parse_date("2026-01-01"), 20454);
    assert_format(0, "1970-01-01");
    assert_format(-1, "1969-12-31");
    assert_format(20454, "2026-01-01");
}

static void test_date_design_examples(void **state)
{
    (void)state;
    /* DESIGN.md §5: baseline 2026-01-01 */
    int32_t base = parse_date("2026-01-01");
    assert_format(base + 30, "2026-01-31");
    assert_format(base + 30 - 7, "2026-01-24");
    assert_format(base + 30 + 14, "2026-02-14");
    assert_format(base + 90, "2026-04-01");
    assert_format(base + 90 - 14, "2026-03-18");
    assert_format(base + 90 + 21, "2026-04-22");
    /* in window / deviation */
    int32_t lo = base + 30 - 7, hi = base + 30 + 14;
    assert_true(parse_date("2026-01-26") >= lo && parse_date("2026-01-26") <= hi);
    assert_true(parse_date("2026-02-10") >= lo && parse_date("2026-02-10") <= hi);
    assert_true(parse_date("2026-02-15") > hi);
    assert_int_equal(parse_date("2026-04-01") - base, 90);
}

static void test_date_round_trip_1900_2100(void **state)
{
    (void)state;
    int32_t first = tl_date_from_civil(1900, 1, 1), last = tl_date_from_civil(2100, 12, 31);
    assert_int_equal(last - first + 1, 73414); /* 201 years, 49 leap days */
    int py = 1899;
    unsigned pm = 12, pd = 31;
    for (int32_t d = first; d <= last; d++) {
        int y;
        unsigned m, dd;
        tl_date_to_civil(d, &y, &m, &dd);
        assert_int_equal(tl_date_from_civil(y, m, dd), d);

        /* each day follows the previous one in the calendar */
        if (dd == 1) {
            assert_true((m == pm + 1 && y == py) || (m == 1 && pm == 12 && y == py + 1));
        } else {
            assert_int_equal(dd, pd + 1);
            assert_int_equal(m, pm);
            assert_int_equal(y, py);
        }

        char s[TL_DATE_STRLEN], want[TL_DATE_STRLEN];
        tl_date_format(d, s);
        snprintf(want, sizeof want, "%04d-%02u-%02u", y, m, dd);
        assert_string_equal(s, want);
        int32_t back = -999999;
        assert_int_equal(tl_date_parse(s, &back), TL_OK);
        assert_int_equal(back, d);
        py = y;
        pm = m;
        pd = dd;
    }
    assert_int_equal(py, 2100);
    assert_int_equal(pm, 12);
    assert_int_equal(pd, 31);
}

static void test_date_parse_rejects(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "2026-13-01", "2026-00-10", "2026-04-31", "2027-02-29", "2026-01-01x", "",
        "1900-02-29", "2026-01-00", "2026-01-32", "2026-1-01",  "2026-01-1",   "26-01-01",
        "2026/01/01", "2026-01-0a", " 2026-01-01", "2026-01-01 ", "0999-12-31", "+026-01-01",
        "2026--1-01", "2026-06-31", "2026-09-31", "2026-11-31",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int32_t d = 12345;
        if (tl_date_parse(bad[i], &d) != TL_ERR_INVALID)
            fail_msg("\"%s\" was accepted", bad[i]);
        assert_int_equal(d, 12345); /* not written */
    }
    int32_t d = 12345;
    assert_int_equal(tl_date_parse(NULL, &d), TL_ERR_INVALID);
    assert_int_equal(d, 12345);
}

static void test_date_leap_years(void **state)
{
    (void)state;
    assert_format(parse_date("2000-02-29"), "2000-02-29");
    assert_format(parse_date("2024-02-29"), "2024-02-29");
    assert_format(parse_date("2028-02-29"), "2028-02-29");
    assert_int_equal(parse_date("2000-03-01") - parse_date("2000-02-28"), 2);
    assert_int_equal(parse_date("1900-03-01") - parse_date("1900-02-28"), 1);
    assert_int_equal(parse_date("2001-01-01") - parse_date("2000-01-01"), 366);
    assert_int_equal(parse_date("1901-01-01") - parse_date("1900-01-01"), 365);
    int32_t d;
    assert_int_equal(tl_date_parse("1900-02-29", &d), TL_ERR_INVALID);
    assert_int_equal(tl_date_parse("2100-02-29", &d), TL_ERR_INVALID);
    assert_int_equal(parse_date("1000-01-01"), tl_date_from_civil(1000, 1, 1));
    assert_format(parse_date("9999-12-31"), "9999-12-31");
}

static void test_date_today(void **state)
{
    (void)state;
    int32_t t = tl_date_today();
    assert_true(t >= parse_date("2025-01-01"));
    assert_true(t < parse_date("2200-01-01"));
}

/* ---- tl_buf ---- */

static void test_buf_append(void **state)
{
    (void)state;
    tl_buf_t b;
    tl_buf_init(&b, 1u << 20);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    assert_int_equal(tl_buf_append(&b, "abc", 3), TL_OK);
    assert_int_equal(tl_buf_puts(&b, "def"), TL_OK);
    assert_int_equal(b.len, 6);
    assert_string_equal(b.data, "abcdef");
    /* binary data with NULs, and always a terminator after len */
    assert_int_equal(tl_buf_append(&b, "\0z", 2), TL_OK);
    assert_int_equal(b.len, 8);
    assert_memory_equal(b.data, "abcdef\0z", 9);

    /* growth well past the first allocation keeps the content */
    tl_buf_reset(&b);
    assert_int_equal(b.len, 0);
    assert_string_equal(b.data, "");
    for (int i = 0; i < 1000; i++)
        assert_int_equal(tl_buf_append(&b, i % 2 ? "1" : "0", 1), TL_OK);
    assert_int_equal(b.len, 1000);
    for (int i = 0; i < 1000; i++)
        assert_int_equal(b.data[i], i % 2 ? '1' : '0');
    assert_int_equal(b.data[1000], '\0');
    assert_true(b.cap > b.len);
    tl_buf_cleanup(&b);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
}

static void test_buf_max_enforced(void **state)
{
    (void)state;
    tl_buf_t b;
    tl_buf_init(&b, 10);
    assert_int_equal(tl_buf_append(&b, "0123456789", 10), TL_OK);
    assert_int_equal(tl_buf_append(&b, "x", 1), TL_ERR_TOO_LARGE);
    assert_int_equal(tl_buf_puts(&b, "x"), TL_ERR_TOO_LARGE);
    assert_int_equal(tl_buf_printf(&b, "%d", 1), TL_ERR_TOO_LARGE);
    assert_int_equal(b.len, 10);
    assert_string_equal(b.data, "0123456789");
    assert_true(b.cap <= 11);
    /* an empty append still fits */
    assert_int_equal(tl_buf_append(&b, "", 0), TL_OK);
    tl_buf_cleanup(&b);

    tl_buf_init(&b, 10);
    assert_int_equal(tl_buf_append(&b, "01234", 5), TL_OK);
    assert_int_equal(tl_buf_append(&b, "abcdef", 6), TL_ERR_TOO_LARGE);
    assert_int_equal(tl_buf_printf(&b, "%s", "abcdef"), TL_ERR_TOO_LARGE);
    assert_int_equal(b.len, 5);
    assert_string_equal(b.data, "01234");
    assert_int_equal(tl_buf_printf(&b, "%s", "abcde"), TL_OK);
    assert_string_equal(b.data, "01234abcde");
    tl_buf_cleanup(&b);

    /* no maximum at all: the capacity must not wrap (it did, to 0) */
    tl_buf_init(&b, SIZE_MAX);
    for (int i = 0; i < 100; i++)
        assert_int_equal(tl_buf_append(&b, "0123456789", 10), TL_OK);
    assert_int_equal(b.len, 1000);
    assert_true(b.cap > 1000);
    /* and a length that would wrap with the terminator is refused */
    assert_int_equal(tl_buf_append(&b, "x", SIZE_MAX - b.len), TL_ERR_TOO_LARGE);
    assert_int_equal(b.len, 1000);
    tl_buf_cleanup(&b);

    /* a huge length cannot wrap around */
    tl_buf_init(&b, 100);
    assert_int_equal(tl_buf_append(&b, "a", 1), TL_OK);
    assert_int_equal(tl_buf_append(&b, "a", SIZE_MAX), TL_ERR_TOO_LARGE);
    assert_int_equal(tl_buf_append(&b, "a", SIZE_MAX - 1), TL_ERR_TOO_LARGE);
    assert_int_equal(b.len, 1);
    tl_buf_cleanup(&b);

    /* max 0: only nothing fits */
    tl_buf_init(&b, 0);
    assert_int_equal(tl_buf_append(&b, "a", 1), TL_ERR_TOO_LARGE);
    tl_buf_cleanup(&b);
}

static void test_buf_printf(void **state)
{
    (void)state;
    tl_buf_t b;
    tl_buf_init(&b, 4096);
    assert_int_equal(tl_buf_printf(&b, "%s=%d", "n", 42), TL_OK);
    assert_int_equal(tl_buf_printf(&b, ";%05.1f;%lld", 3.14159, -9000000000LL), TL_OK);
    assert_string_equal(b.data, "n=42;003.1;-9000000000");
    assert_int_equal(b.len, strlen("n=42;003.1;-9000000000"));
    assert_int_equal(tl_buf_printf(&b, "%s", ""), TL_OK);
    assert_int_equal(b.len, strlen("n=42;003.1;-9000000000"));

    /* a long formatted string crossing the initial capacity */
    tl_buf_reset(&b);
    char big[1001];
    memset(big, 'q', 1000);
    big[1000] = '\0';
    assert_int_equal(tl_buf_printf(&b, "<%s>", big), TL_OK);
    assert_int_equal(b.len, 1002);
    assert_int_equal(b.data[0], '<');
    assert_int_equal(b.data[1001], '>');
    assert_int_equal(b.data[1002], '\0');
    tl_buf_cleanup(&b);

    /* printf on a fresh buffer */
    tl_buf_init(&b, 16);
    assert_int_equal(tl_buf_printf(&b, "%s", ""), TL_OK);
    assert_non_null(b.data);
    assert_string_equal(b.data, "");
    tl_buf_cleanup(&b);
}

static void test_buf_steal(void **state)
{
    (void)state;
    tl_buf_t b;
    tl_buf_init(&b, 64);
    assert_int_equal(tl_buf_puts(&b, "hello"), TL_OK);
    size_t len = 0;
    char *s = tl_buf_steal(&b, &len);
    assert_non_null(s);
    assert_int_equal(len, 5);
    assert_string_equal(s, "hello");
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, 0);
    assert_int_equal(b.max, 64);
    /* the buffer is usable again and independent of the stolen data */
    assert_int_equal(tl_buf_puts(&b, "world"), TL_OK);
    assert_string_equal(b.data, "world");
    assert_string_equal(s, "hello");
    free(s);
    s = tl_buf_steal(&b, NULL);
    assert_string_equal(s, "world");
    free(s);
    /* stealing an empty buffer gives NULL and length 0 */
    len = 99;
    assert_null(tl_buf_steal(&b, &len));
    assert_int_equal(len, 0);
    tl_buf_cleanup(&b);
}

/* ---- tl_map ---- */

static void test_map_put_get_replace(void **state)
{
    (void)state;
    tl_map_t m;
    tl_map_init(&m);
    int a = 1, b = 2, c = 3;
    assert_null(tl_map_get(&m, "a"));
    assert_int_equal(tl_map_put(&m, "a", &a), TL_OK);
    assert_int_equal(tl_map_put(&m, "b", &b), TL_OK);
    assert_ptr_equal(tl_map_get(&m, "a"), &a);
    assert_ptr_equal(tl_map_get(&m, "b"), &b);
    assert_null(tl_map_get(&m, "c"));
    assert_null(tl_map_get(&m, "A"));
    assert_null(tl_map_get(&m, ""));
    assert_int_equal(m.len, 2);

    assert_int_equal(tl_map_put(&m, "a", &c), TL_OK);
    assert_ptr_equal(tl_map_get(&m, "a"), &c);
    assert_int_equal(m.len, 2);

    /* the empty key is a key like any other */
    assert_int_equal(tl_map_put(&m, "", &b), TL_OK);
    assert_ptr_equal(tl_map_get(&m, ""), &b);
    assert_int_equal(m.len, 3);

    /* keys are copied */
    char key[8] = "tmp";
    assert_int_equal(tl_map_put(&m, key, &a), TL_OK);
    memcpy(key, "zzz", 4);
    assert_ptr_equal(tl_map_get(&m, "tmp"), &a);
    assert_null(tl_map_get(&m, "zzz"));
    tl_map_cleanup(&m);
    assert_int_equal(m.len, 0);
    assert_null(tl_map_get(&m, "a"));
}

static void test_map_growth(void **state)
{
    (void)state;
    enum { N = 5000 };
    static int vals[N];
    tl_map_t m;
    tl_map_init(&m);
    char key[48];
    for (int i = 0; i < N; i++) {
        vals[i] = i;
        snprintf(key, sizeof key, "0190a1b2-c3d4-7e5f-8a9b-%012d", i);
        assert_int_equal(tl_map_put(&m, key, &vals[i]), TL_OK);
        assert_int_equal(m.len, (size_t)i + 1);
    }
    assert_true(m.cap >= 2 * m.len);
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof key, "0190a1b2-c3d4-7e5f-8a9b-%012d", i);
        int *v = tl_map_get(&m, key);
        assert_non_null(v);
        assert_int_equal(*v, i);
    }
    for (int i = N; i < N + 100; i++) {
        snprintf(key, sizeof key, "0190a1b2-c3d4-7e5f-8a9b-%012d", i);
        assert_null(tl_map_get(&m, key));
    }
    /* replacing after growth */
    assert_int_equal(tl_map_put(&m, "0190a1b2-c3d4-7e5f-8a9b-000000000007", &vals[9]), TL_OK);
    assert_ptr_equal(tl_map_get(&m, "0190a1b2-c3d4-7e5f-8a9b-000000000007"), &vals[9]);
    assert_int_equal(m.len, N);
    tl_map_cleanup(&m);
}

/* ---- tl_pg array literals ---- */

static void test_pg_array(void **state)
{
    (void)state;
    tl_buf_t b;
    tl_buf_init(&b, 1024);
    assert_int_equal(tl_pg_array_begin(&b), TL_OK);
    assert_int_equal(tl_pg_array_add(&b, "plain"), TL_OK);
    assert_int_equal(tl_pg_array_add(&b, NULL), TL_OK);
    assert_int_equal(tl_pg_array_add(&b, "a,b"), TL_OK);
    assert_int_equal(tl_pg_array_add(&b, "say \"hi\""), TL_OK);
    assert_int_equal(tl_pg_array_add(&b, "back\\slash"), TL_OK);
    assert_int_equal(tl_pg_array_add(&b, ""), TL_OK);
    assert_int_equal(tl_pg_array_add(&b, "NULL"), TL_OK);
    assert_int_equal(tl_pg_array_add(&b, "{x}"), TL_OK);
    assert_int_equal(tl_pg_array_add(&b, " sp "), TL_OK);
    assert_int_equal(tl_pg_array_add(&b, "\\\""), TL_OK);
    assert_int_equal(tl_pg_array_end(&b), TL_OK);
    assert_string_equal(b.data, "{\"plain\",NULL,\"a,b\",\"say \\\"hi\\\"\",\"back\\\\slash\",\"\","
                                "\"NULL\",\"{x}\",\" sp \",\"\\\\\\\"\"}");
    tl_buf_cleanup(&b);
}

static void test_pg_array_edges(void **state)
{
    (void)state;
    tl_buf_t b;
    tl_buf_init(&b, 64);
    assert_int_equal(tl_pg_array_begin(&b), TL_OK);
    assert_int_equal(tl_pg_array_end(&b), TL_OK);
    assert_string_equal(b.data, "{}");
    tl_buf_cleanup(&b);

    tl_buf_init(&b, 64);
    assert_int_equal(tl_pg_array_begin(&b), TL_OK);
    assert_int_equal(tl_pg_array_add(&b, NULL), TL_OK);
    assert_int_equal(tl_pg_array_add(&b, NULL), TL_OK);
    assert_int_equal(tl_pg_array_end(&b), TL_OK);
    assert_string_equal(b.data, "{NULL,NULL}");
    tl_buf_cleanup(&b);

    /* a value ending in '{' is no array start: the next value still gets a comma */
    tl_buf_init(&b, 64);
    assert_int_equal(tl_pg_array_begin(&b), TL_OK);
    assert_int_equal(tl_pg_array_add(&b, "x{"), TL_OK);
    assert_int_equal(tl_pg_array_add(&b, "y"), TL_OK);
    assert_int_equal(tl_pg_array_end(&b), TL_OK);
    assert_string_equal(b.data, "{\"x{\",\"y\"}");
    tl_buf_cleanup(&b);

    /* the buffer's limit applies */
    tl_buf_init(&b, 8);
    assert_int_equal(tl_pg_array_begin(&b), TL_OK);
    assert_int_equal(tl_pg_array_add(&b, "abcdefghij"), TL_ERR_TOO_LARGE);
    tl_buf_cleanup(&b);
}

/* ---- tl_err ---- */

static void test_err_table(void **state)
{
    (void)state;
    for (int e = 0; e < TL_ERR__COUNT; e++) {
        const char *name = tl_err_name((tl_err_t)e), *msg = tl_err_str((tl_err_t)e);
        assert_non_null(name);
        assert_non_null(msg);
        assert_true(name[0] != '\0');
        assert_true(msg[0] != '\0');
        assert_string_not_equal(name, "UNKNOWN");
        assert_string_not_equal(msg, "unknown error");
        for (const char *p = name; *p; p++)
            assert_true(isupper((unsigned char)*p) || *p == '_');
        for (const char *p = msg; *p; p++)
            assert_false(isupper((unsigned char)*p));
        for (int f = 0; f < e; f++)
            assert_string_not_equal(name, tl_err_name((tl_err_t)f));
    }
    assert_int_equal(TL_OK, 0);
    assert_string_equal(tl_err_name(TL_OK), "OK");
    assert_string_equal(tl_err_name(TL_ERR_CONFLICT), "CONFLICT");
    assert_string_equal(tl_err_name(TL_ERR_TOO_LARGE), "TOO_LARGE");
    assert_string_equal(tl_err_name(TL_ERR_INTERNAL), "INTERNAL");
    assert_string_equal(tl_err_str(TL_OK), "success");
    assert_string_equal(tl_err_str(TL_ERR_TIMEOUT), "timed out");

    /* out of range: never NULL */
    assert_string_equal(tl_err_name(TL_ERR__COUNT), "UNKNOWN");
    assert_string_equal(tl_err_str(TL_ERR__COUNT), "unknown error");
    assert_string_equal(tl_err_name((tl_err_t)-1), "UNKNOWN");
    assert_string_equal(tl_err_str((tl_err_t)1000), "unknown error");
    assert_false(tl_err_is_retriable(TL_ERR__COUNT));
    assert_false(tl_err_is_retriable((tl_err_t)-1));
}

static void test_err_retriable(void **state)
{
    (void)state;
    assert_true(tl_err_is_retriable(TL_ERR_TRANSIENT));
    assert_true(tl_err_is_retriable(TL_ERR_UNAVAILABLE));
    assert_true(tl_err_is_retriable(TL_ERR_TIMEOUT));
    assert_false(tl_err_is_retriable(TL_ERR_CONFLICT));
    assert_false(tl_err_is_retriable(TL_ERR_INVALID));
    assert_false(tl_err_is_retriable(TL_OK));
    assert_false(tl_err_is_retriable(TL_ERR_MALFORMED));
    assert_false(tl_err_is_retriable(TL_ERR_RULE));
    assert_false(tl_err_is_retriable(TL_ERR_TOO_LARGE));
    assert_false(tl_err_is_retriable(TL_ERR_NOT_FOUND));
    assert_false(tl_err_is_retriable(TL_ERR_CONFIG));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_uuid_v7_format),
        cmocka_unit_test(test_uuid_v7_time_ordered),
        cmocka_unit_test(test_uuid_v5_known_value),
        cmocka_unit_test(test_uuid_v5_uppercase_namespace),
        cmocka_unit_test(test_uuid_valid),
        cmocka_unit_test(test_codecs), cmocka_unit_test(test_uuid_parse),
        cmocka_unit_test(test_date_known_values),
        cmocka_unit_test(test_date_design_examples),
        cmocka_unit_test(test_date_round_trip_1900_2100),
        cmocka_unit_test(test_date_parse_rejects),
        cmocka_unit_test(test_date_leap_years),
        cmocka_unit_test(test_date_today),
        cmocka_unit_test(test_buf_append),
        cmocka_unit_test(test_buf_max_enforced),
        cmocka_unit_test(test_buf_printf),
        cmocka_unit_test(test_buf_steal),
        cmocka_unit_test(test_map_put_get_replace),
        cmocka_unit_test(test_map_growth),
        cmocka_unit_test(test_pg_array),
        cmocka_unit_test(test_pg_array_edges),
        cmocka_unit_test(test_err_table),
        cmocka_unit_test(test_err_retriable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
