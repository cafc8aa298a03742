#include "tl_http_client.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tl_buf.h"

static pthread_once_t once = PTHREAD_ONCE_INIT;

static void global_init(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

static size_t on_data(char *p, size_t size, size_t n, void *ud)
{
    tl_buf_t *b = ud;
    return tl_buf_append(b, p, size * n) ? 0 : size * n; /* 0: curl stops, over the limit */
}

tl_err_t tl_http_client_json(const char *method, const char *url, const json_t *body,
                             const char *authorization, long timeout_ms, long *status, json_t **out)
{
    *status = 0;
    *out = NULL;
    if (!url || (strncmp(url, "http://", 7) && strncmp(url, "https://", 8)))
        return TL_ERR_INVALID;
    pthread_once(&once, global_init);
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    char auth[1200];
    tl_buf_t resp;
    tl_buf_init(&resp, TL_HTTP_CLIENT_BODY_MAX);
    struct curl_slist *h = curl_slist_append(NULL, "Accept: application/vnd.schemaregistry.v1+json,"
                                                   " application/json");
    h = curl_slist_append(h, "Content-Type: application/vnd.schemaregistry.v1+json");
    if (authorization &&
        snprintf(auth, sizeof auth, "Authorization: %s", authorization) < (int)sizeof auth)
        h = curl_slist_append(h, auth);
    CURL *c = curl_easy_init();
    tl_err_t err = TL_ERR_NOMEM;
    if (c && h && (text || !body)) {
        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
        curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, &resp);
        if (text)
            curl_easy_setopt(c, CURLOPT_POSTFIELDS, text);
        err = TL_ERR_UNAVAILABLE;
        if (curl_easy_perform(c) == CURLE_OK) {
            curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
            *out = resp.len ? json_loadb(resp.data, resp.len, JSON_DECODE_ANY, NULL) : NULL;
            err = TL_OK;
        }
    }
    curl_easy_cleanup(c);
    curl_slist_free_all(h);
    tl_buf_cleanup(&resp);
    free(text);
    return err;
}
