/* docs/openapi.yaml describes every route of the gateway's table, with the
 * roles the permission table gives it (x-roles): a route added or changed
 * without its documentation fails here. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <cmocka.h>

#include "gateway.h"

static char *read_file(const char *path, char *buf, size_t size)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t n = fread(buf, 1, size - 1, f);
    fclose(f);
    buf[n] = '\0';
    return buf;
}

/* docs/SECURITY.md shows the permission table too: its rows must be the
 * route table's. */
static void test_security_doc_has_the_table(void **state)
{
    (void)state;
    static char buf[128 * 1024];
    const char *doc = read_file(TL_SCHEMA_DIR "/../docs/SECURITY.md", buf, sizeof buf);
    static const char *const scope[] = {"", "study", "participant", "self", "form"};
    size_t n = 0;
    const tl_route_t *routes = tl_gw_routes(&n);
    for (size_t i = 0; i < n; i++) {
        char row[400];
        size_t len = (size_t)snprintf(row, sizeof row, "| `%s %s` |", routes[i].method,
                                      routes[i].pattern);
        if (routes[i].roles == TL_PUBLIC) {
            snprintf(row + len, sizeof row - len, " anyone, no token |");
        } else {
            for (int r = 0; r < TL_ROLE_COUNT; r++)
                len += (size_t)snprintf(row + len, sizeof row - len, " %s|",
                                        routes[i].roles & TL_ROLE_BIT(r) ? "✓ " : "");
            snprintf(row + len, sizeof row - len, " %s |\n", scope[routes[i].scope]);
        }
        if (!strstr(doc, row))
            fail_msg("docs/SECURITY.md should have the row\n%s", row);
    }
}

static char *read_doc(void)
{
    FILE *f = fopen(TL_SCHEMA_DIR "/../docs/openapi.yaml", "r");
    assert_non_null(f);
    static char buf[256 * 1024];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    return buf;
}

static void test_every_route_is_documented(void **state)
{
    (void)state;
    const char *doc = read_doc();
    size_t n = 0;
    const tl_route_t *routes = tl_gw_routes(&n);
    assert_true(n > 0);
    for (size_t i = 0; i < n; i++) {
        char key[300], method[16];
        snprintf(key, sizeof key, "\n  %s:\n", routes[i].pattern);
        const char *at = strstr(doc, key);
        if (!at)
            fail_msg("route %s is not in docs/openapi.yaml", routes[i].pattern);
        /* the method appears in that path's block, before the next path */
        snprintf(method, sizeof method, "\n    %s:", routes[i].method);
        for (char *p = method; *p; p++)
            *p = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
        const char *next = strstr(at + strlen(key), "\n  /");
        const char *m = strstr(at, method);
        if (!m || (next && m > next))
            fail_msg("%s %s is not in docs/openapi.yaml", routes[i].method, routes[i].pattern);
        /* the operation's first line says who may call it */
        char want[200] = "      security: []\n";
        if (routes[i].roles != TL_PUBLIC) {
            size_t len = (size_t)snprintf(want, sizeof want, "      x-roles: [");
            for (int r = 0; r < TL_ROLE_COUNT; r++)
                if (routes[i].roles & TL_ROLE_BIT(r))
                    len += (size_t)snprintf(want + len, sizeof want - len, "%s%s",
                                            want[len - 1] == '[' ? "" : ", ", tl_role_name(r));
            snprintf(want + len, sizeof want - len, "]\n");
        }
        const char *op = m + strlen(method) + 1;
        const char *line_end = strchr(op, '\n');
        const char *found = strstr(op, want);
        const char *second = line_end ? strchr(line_end + 1, '\n') : NULL;
        if (!found || (second && found > second))
            fail_msg("%s %s: docs/openapi.yaml should say %s", routes[i].method,
                     routes[i].pattern, want);
    }
}

/* The operation of route r in doc: from its method line to the next line
 * at the same indentation or the next path; *end its end. NULL: none. */
static const char *operation(const char *doc, const tl_route_t *r, const char **end)
{
    char key[300], method[16];
    snprintf(key, sizeof key, "\n  %s:\n", r->pattern);
    const char *at = strstr(doc, key);
    snprintf(method, sizeof method, "\n    %s:", r->method);
    for (char *p = method; *p; p++)
        *p = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
    const char *next = at ? strstr(at + strlen(key), "\n  /") : NULL;
    const char *m = at ? strstr(at, method) : NULL;
    if (!m || (next && m > next))
        return NULL;
    m += strlen(method);
    *end = m;
    /* the next line indented by exactly four spaces ends it */
    for (const char *l = strchr(m, '\n'); l; l = strchr(l + 1, '\n'))
        if (!strncmp(l, "\n    ", 5) && l[5] != ' ') {
            *end = l;
            return m;
        }
    *end = m + strlen(m);
    return m;
}

/* The query parameter a component (components/parameters/<name>) is, into
 * out; false when it is none. */
static bool component_query(const char *doc, const char *name, size_t len, char *out, size_t size)
{
    char key[100];
    snprintf(key, sizeof key, "\n    %.*s:", (int)len, name);
    const char *at = strstr(strstr(doc, "\ncomponents:"), key);
    if (!at)
        return false;
    const char *end = strstr(at + 1, "\n    ");
    while (end && end[5] == ' ')
        end = strstr(end + 1, "\n    ");
    const char *n = strstr(at, "name: "), *q = strstr(at, "in: query");
    if (!n || !q || (end && (n > end || q > end)))
        return false;
    n += 6;
    size_t l = strcspn(n, ",}\n ");
    snprintf(out, size, "%.*s", (int)l, n);
    return true;
}

/* Every query parameter a route reads (its table entry) is in its
 * operation's parameters, and the operation documents no other: the
 * gateway refuses any other with 400 invalid-query. */
static void test_query_parameters_documented(void **state)
{
    (void)state;
    const char *doc = read_doc();
    size_t n = 0;
    const tl_route_t *routes = tl_gw_routes(&n);
    for (size_t i = 0; i < n; i++) {
        const char *end = NULL, *op = operation(doc, &routes[i], &end);
        assert_non_null(op);
        char documented[20][64];
        size_t nd = 0;
        for (const char *p = op; (p = strstr(p, "name: ")) && p < end && nd < 20; p++) {
            const char *line_end = strchr(p, '\n');
            const char *q = strstr(p, "in: query");
            if (!q || q > line_end)
                continue;
            size_t l = strcspn(p + 6, ",} ");
            snprintf(documented[nd++], 64, "%.*s", (int)l, p + 6);
        }
        static const char ref[] = "$ref: '#/components/parameters/";
        for (const char *p = op; (p = strstr(p, ref)) && p < end && nd < 20; p++) {
            const char *name = p + strlen(ref);
            if (component_query(doc, name, strcspn(name, "'"), documented[nd], 64))
                nd++;
        }
        for (size_t d = 0; d < nd; d++)
            if (!tl_gw_query_known(routes[i].query, documented[d]))
                fail_msg("%s %s: docs/openapi.yaml documents query parameter %s, which the route"
                         " table does not accept",
                         routes[i].method, routes[i].pattern, documented[d]);
        for (const char *q = routes[i].query; q && *q;) {
            size_t l = strcspn(q, ",");
            bool found = false;
            for (size_t d = 0; d < nd && !found; d++)
                found = strlen(documented[d]) == l && !strncmp(documented[d], q, l);
            if (!found)
                fail_msg("%s %s: query parameter %.*s is not in docs/openapi.yaml",
                         routes[i].method, routes[i].pattern, (int)l, q);
            q += l + (q[l] == ',');
        }
    }
}

/* Every problem type of the reason table has its row in the Problem
 * schema's table (same status, same title), and every row there is a type
 * of the table: a reason added, renamed or retitled without its
 * documentation fails here. */
static void test_every_problem_type_is_documented(void **state)
{
    (void)state;
    const char *doc = read_doc();
    for (int r = TL_REASON_NONE + 1; r < TL_REASON_COUNT; r++) {
        const tl_reason_info_t *in = tl_reason_info((tl_reason_t)r);
        char row[300];
        snprintf(row, sizeof row, "\n        | `%s` | %d | %s |\n", in->type, in->status,
                 in->title);
        if (!strstr(doc, row))
            fail_msg("docs/openapi.yaml (Problem) should have the row%s", row);
    }
    /* and nothing else */
    const char *p = doc;
    size_t rows = 0;
    while ((p = strstr(p, "\n        | `"))) {
        p += strlen("\n        | `");
        const char *end = strchr(p, '`');
        assert_non_null(end);
        bool known = false;
        for (int r = TL_REASON_NONE + 1; !known && r < TL_REASON_COUNT; r++) {
            const char *t = tl_reason_info((tl_reason_t)r)->type;
            known = strlen(t) == (size_t)(end - p) && !strncmp(t, p, (size_t)(end - p));
        }
        if (!known)
            fail_msg("docs/openapi.yaml documents a problem type the reason table lacks: %.*s",
                     (int)(end - p), p);
        rows++;
    }
    assert_true(rows > 50);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_every_route_is_documented),
                                       cmocka_unit_test(test_query_parameters_documented),
                                       cmocka_unit_test(test_security_doc_has_the_table),
                                       cmocka_unit_test(test_every_problem_type_is_documented)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
