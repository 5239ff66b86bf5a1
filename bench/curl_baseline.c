/* curl_baseline: the same N readings as realer_bench, with libcurl, written as a careful firmware engineer
 * would: one easy handle reused (so one kept-alive TLS connection), the token fetched once (form POST with
 * Basic auth), then per reading a JSON body built with snprintf, the same headers librealer sends, the
 * answer collected by a write callback and checked (HTTP 201 and "code":2000). Prints the same line as
 * realer_bench: CPU (user + sys), wall time and peak RSS of the measured phase (the N readings).
 *
 *   curl_baseline N BASE_URL CA_FILE
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include "measure.h"

#define SENSOR_ID 7
#define VALUE "21.4"
#define RECEIVED_AT "2026-04-24T10:15:00Z"

struct buffer {
    char data[16384];
    size_t len;
};

/* Appends the answer to a fixed buffer (answers here are small); a longer one is an error. */
static size_t on_body(char *ptr, size_t size, size_t nmemb, void *userdata) {
    struct buffer *b = userdata;
    size_t n = size * nmemb;
    if (n >= sizeof b->data - b->len) return 0;
    memcpy(b->data + b->len, ptr, n);
    b->len += n;
    b->data[b->len] = '\0';
    return n;
}

static void check(CURLcode rc, const char *what) {
    if (rc != CURLE_OK) {
        fprintf(stderr, "curl_baseline: %s: %s\n", what, curl_easy_strerror(rc));
        exit(1);
    }
}

/* The same shape and length as librealer's own ids ("rl-" + 12 + "-" + 16 hex digits). */
static void message_id(char *buf, size_t len, unsigned long long i) {
    snprintf(buf, len, "rl-%012llx-%016llx", 0x19d0000000ULL, i);
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s N BASE_URL CA_FILE\n", argv[0]);
        return 2;
    }
    long n = strtol(argv[1], NULL, 10);
    const char *base = argv[2], *ca_file = argv[3];
    if (n <= 0) return 2;
    long rss_start = maxrss_kb();

    check(curl_global_init(CURL_GLOBAL_DEFAULT), "curl_global_init");
    CURL *h = curl_easy_init();
    if (!h) return 1;
    static struct buffer answer;
    char url[512], error[CURL_ERROR_SIZE] = "";
    check(curl_easy_setopt(h, CURLOPT_CAINFO, ca_file), "CAINFO");
    check(curl_easy_setopt(h, CURLOPT_CAPATH, NULL), "CAPATH");
    check(curl_easy_setopt(h, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_3), "SSLVERSION");
    check(curl_easy_setopt(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1), "HTTP_VERSION");
    check(curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L), "NOSIGNAL");
    check(curl_easy_setopt(h, CURLOPT_PROXY, ""), "PROXY"); /* no proxy from the environment */
    check(curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 10000L), "CONNECTTIMEOUT");
    check(curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 30000L), "TIMEOUT");
    check(curl_easy_setopt(h, CURLOPT_USERAGENT, "curl-baseline/0.1.0"), "USERAGENT");
    check(curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body), "WRITEFUNCTION");
    check(curl_easy_setopt(h, CURLOPT_WRITEDATA, &answer), "WRITEDATA");
    check(curl_easy_setopt(h, CURLOPT_ERRORBUFFER, error), "ERRORBUFFER");

    /* The token: client credentials, Basic auth, form body. */
    snprintf(url, sizeof url, "%s/oauth/token", base);
    struct curl_slist *form_headers = curl_slist_append(NULL, "Accept: application/json");
    check(curl_easy_setopt(h, CURLOPT_URL, url), "URL");
    check(curl_easy_setopt(h, CURLOPT_HTTPHEADER, form_headers), "HTTPHEADER");
    check(curl_easy_setopt(h, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC), "HTTPAUTH");
    check(curl_easy_setopt(h, CURLOPT_USERNAME, "cdv_bench_client_0123456789ab"), "USERNAME");
    check(curl_easy_setopt(h, CURLOPT_PASSWORD, "bench-secret"), "PASSWORD");
    check(curl_easy_setopt(h, CURLOPT_POSTFIELDS, "grant_type=client_credentials"), "POSTFIELDS");
    answer.len = 0;
    if (curl_easy_perform(h) != CURLE_OK) {
        fprintf(stderr, "curl_baseline: token: %s\n", error);
        return 1;
    }
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    char token[512];
    const char *t = strstr(answer.data, "\"access_token\":\"");
    const char *end = t ? strchr(t + 16, '"') : NULL;
    if (status != 200 || !t || !end || (size_t)(end - t - 16) >= sizeof token) {
        fprintf(stderr, "curl_baseline: token: HTTP %ld: %s\n", status, answer.data);
        return 1;
    }
    memcpy(token, t + 16, (size_t)(end - t - 16));
    token[end - t - 16] = '\0';
    check(curl_easy_setopt(h, CURLOPT_HTTPAUTH, (long)CURLAUTH_NONE), "HTTPAUTH");
    check(curl_easy_setopt(h, CURLOPT_USERNAME, NULL), "USERNAME");
    check(curl_easy_setopt(h, CURLOPT_PASSWORD, NULL), "PASSWORD");

    /* The feed-data requests: URL and headers set once, only the body changes. */
    char bearer[600];
    snprintf(bearer, sizeof bearer, "Authorization: Bearer %s", token);
    struct curl_slist *json_headers = curl_slist_append(NULL, "Content-Type: application/json");
    json_headers = curl_slist_append(json_headers, "Accept: application/json");
    json_headers = curl_slist_append(json_headers, bearer);
    snprintf(url, sizeof url, "%s/iot/v1/devices/12345/feed-data", base);
    check(curl_easy_setopt(h, CURLOPT_URL, url), "URL");
    check(curl_easy_setopt(h, CURLOPT_HTTPHEADER, json_headers), "HTTPHEADER");

    double user0 = user_s(), sys0 = sys_s(), wall0 = now_s();
    char body[512], id[64];
    for (long i = 0; i < n; i++) {
        message_id(id, sizeof id, (unsigned long long)i);
        int len = snprintf(body, sizeof body,
                           "{\"message_id\":\"%s\",\"sensor_id\":%d,\"value\":\"%s\",\"value_received_at\":\"%s\"}", id,
                           SENSOR_ID, VALUE, RECEIVED_AT);
        if (len < 0 || (size_t)len >= sizeof body) return 1;
        check(curl_easy_setopt(h, CURLOPT_POSTFIELDS, body), "POSTFIELDS");
        check(curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)len), "POSTFIELDSIZE");
        answer.len = 0;
        answer.data[0] = '\0';
        if (curl_easy_perform(h) != CURLE_OK) {
            fprintf(stderr, "curl_baseline: reading %ld: %s\n", i, error);
            return 1;
        }
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
        if (status != 201 || !strstr(answer.data, "\"code\":2000")) {
            fprintf(stderr, "curl_baseline: reading %ld: HTTP %ld: %s\n", i, status, answer.data);
            return 1;
        }
    }
    double wall = now_s() - wall0, user = user_s() - user0, sys = sys_s() - sys0;

    curl_easy_cleanup(h);
    curl_slist_free_all(form_headers);
    curl_slist_free_all(json_headers);
    curl_global_cleanup();
    printf("RESULT client=libcurl-c n=%ld cpu_s=%.6f user_s=%.6f sys_s=%.6f wall_s=%.6f maxrss_kb=%ld start_rss_kb=%ld\n", n, user + sys, user, sys, wall,
           maxrss_kb(), rss_start);
    return 0;
}
