/* realer_bench: librealer from C, as firmware would use it. One token, then N readings posted one by one
 * (realer_feed_post) or in batches of 100 (realer_feed_post_batch), over the connection the token
 * request opened. Prints one machine-readable line: the CPU (user + sys), wall time and peak RSS of the
 * measured phase (the N readings; configuration, TLS handshake and token come before it).
 *
 *   realer_bench single|batch N BASE_URL CA_FILE
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "realer.h"
#include "measure.h"

#define BATCH 100
#define SENSOR_ID "7"
#define VALUE "21.4"
#define RECEIVED_AT "2026-04-24T10:15:00Z"

static void fail(const char *what, realer_status status) {
    const struct realer_error *e = realer_last_error();
    fprintf(stderr, "realer_bench: %s: %s (http %d, code %d): %s\n", what, realer_status_str(status),
            (int)e->http_status, (int)e->code, e->message);
    exit(1);
}

/* The same shape and length as librealer's own ids ("rl-" + 12 + "-" + 16 hex digits). */
static void message_id(char *buf, size_t len, unsigned long long i) {
    snprintf(buf, len, "rl-%012llx-%016llx", 0x19d0000000ULL, i);
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: %s single|batch N BASE_URL CA_FILE\n", argv[0]);
        return 2;
    }
    const char *mode = argv[1];
    long n = strtol(argv[2], NULL, 10);
    int batch = strcmp(mode, "batch") == 0;
    if ((!batch && strcmp(mode, "single") != 0) || n <= 0 || (batch && n % BATCH != 0)) {
        fprintf(stderr, "realer_bench: bad mode or N (batch needs a multiple of %d)\n", BATCH);
        return 2;
    }
    long rss_start = maxrss_kb();

    realer_config *config = realer_config_new();
    realer_status s;
    if (!config) fail("realer_config_new", REALER_ERR_INTERNAL);
    if ((s = realer_config_set_base_url(config, argv[3])) != REALER_OK) fail("base url", s);
    if ((s = realer_config_set_device_id(config, "12345")) != REALER_OK) fail("device id", s);
    if ((s = realer_config_set_credentials(config, "cdv_bench_client_0123456789ab", "bench-secret")) != REALER_OK)
        fail("credentials", s);
    if ((s = realer_config_set_ca_file(config, argv[4])) != REALER_OK) fail("ca file", s);
    realer_client *client = NULL;
    if ((s = realer_client_new(config, &client)) != REALER_OK) fail("realer_client_new", s);
    realer_config_free(config);
    if ((s = realer_client_authenticate(client)) != REALER_OK) fail("realer_client_authenticate", s);

    double user0 = user_s(), sys0 = sys_s(), wall0 = now_s();
    if (!batch) {
        char id[64];
        for (long i = 0; i < n; i++) {
            realer_feed_item item;
            realer_feed_item_init(&item);
            item.sensor_id = SENSOR_ID;
            item.value = VALUE;
            item.value_received_at = RECEIVED_AT;
            message_id(id, sizeof id, (unsigned long long)i);
            item.message_id = id;
            realer_feed_result out;
            if ((s = realer_feed_post(client, &item, &out)) != REALER_OK) fail("realer_feed_post", s);
            if (out.outcome != REALER_FEED_OUTCOME_CREATED || out.http_status != 201 || out.code != 2000) {
                fprintf(stderr, "realer_bench: reading %ld: outcome %d, http %d, code %d\n", i, (int)out.outcome,
                        (int)out.http_status, (int)out.code);
                return 1;
            }
        }
    } else {
        static char ids[BATCH][64];
        realer_feed_item items[BATCH];
        for (long first = 0; first < n; first += BATCH) {
            for (int j = 0; j < BATCH; j++) {
                realer_feed_item_init(&items[j]);
                items[j].sensor_id = SENSOR_ID;
                items[j].value = VALUE;
                items[j].value_received_at = RECEIVED_AT;
                message_id(ids[j], sizeof ids[j], (unsigned long long)(first + j));
                items[j].message_id = ids[j];
            }
            realer_batch_result *results = NULL;
            if ((s = realer_feed_post_batch(client, items, BATCH, &results)) != REALER_OK)
                fail("realer_feed_post_batch", s);
            if (realer_batch_result_len(results) != BATCH) {
                fprintf(stderr, "realer_bench: %zu results for %d items\n", realer_batch_result_len(results), BATCH);
                return 1;
            }
            for (int j = 0; j < BATCH; j++) {
                realer_item_result item;
                const realer_item_result *r = &item;
                if (realer_batch_result_get(results, (size_t)j, &item) != REALER_OK) {
                    fprintf(stderr, "realer_bench: no result for batch item %ld\n", first + j);
                    return 1;
                }
                if (r->outcome != REALER_FEED_OUTCOME_CREATED || r->code != 2000 ||
                    strcmp(r->message_id, ids[j]) != 0) {
                    fprintf(stderr, "realer_bench: batch item %ld: outcome %d, code %d\n", first + j,
                            (int)r->outcome, (int)r->code);
                    return 1;
                }
            }
            realer_batch_result_free(results);
        }
    }
    double wall = now_s() - wall0, user = user_s() - user0, sys = sys_s() - sys0;

    realer_client_free(client);
    printf("RESULT client=%s n=%ld cpu_s=%.6f user_s=%.6f sys_s=%.6f wall_s=%.6f maxrss_kb=%ld start_rss_kb=%ld\n",
           batch ? "librealer-c-batch" : "librealer-c", n, user + sys, user, sys, wall, maxrss_kb(), rss_start);
    return 0;
}
