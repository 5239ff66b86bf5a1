/* cancel.c: realer_client_cancel from other threads while calls are blocked on a server that never answers.
 * Run by tests/c_harness.rs (and under valgrind by .ci/run) against a realer-sim that hangs every feed-data,
 * batch and catalog request.
 *
 * Three calls block (a post, a catalog fetch, an outbox flush of 10 items); then 8 threads cancel at once.
 * Each call must return REALER_ERR_CANCELLED within a second of the cancel (the delays are printed); the post
 * says which message_id to send again, the outbox still holds its 10 items; calls after the cancel are refused
 * at once, and realer_client_resume lets them run again. No thread is left blocked, nothing leaks.
 *
 * Environment: REALER_BASE_URL, REALER_DEVICE_ID, REALER_CLIENT_ID, REALER_CLIENT_SECRET, REALER_CA_FILE,
 * REALER_TEST_DIR (for the outbox file), optional REALER_CANCEL_LIMIT_MS (default 1000). Prints "N passed, M failed"; exits 0 only when M is 0. */

#define _POSIX_C_SOURCE 200809L

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "realer.h"

static int n_passed;
static int n_failed;

#define CHECK(cond)                                                                                           \
    do {                                                                                                      \
        if (cond) {                                                                                           \
            n_passed++;                                                                                       \
        } else {                                                                                              \
            n_failed++;                                                                                       \
            printf("FAIL %s:%d: %s\n     last error: %s\n", __FILE__, __LINE__, #cond,                        \
                   realer_last_error()->message);                                                             \
        }                                                                                                     \
    } while (0)

static double now_ms(void)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1000.0 + (double)t.tv_nsec / 1e6;
}

enum kind { POST, FETCH, FLUSH };

struct job {
    const realer_client *client;
    enum kind kind;
    realer_status status;
    realer_feed_result result;
    realer_flush_report report;
    double ended_ms;
};

static void *run_job(void *arg)
{
    struct job *job = arg;
    realer_feed_item item;
    realer_commands *commands = NULL;

    switch (job->kind) {
    case POST:
        realer_feed_item_init(&item);
        item.sensor_id = "7";
        item.value = "21.4";
        item.message_id = "cancel-c-post";
        job->status = realer_feed_post(job->client, &item, &job->result);
        break;
    case FETCH:
        job->status = realer_commands_fetch(job->client, &commands);
        realer_commands_free(commands);
        break;
    case FLUSH:
        job->status = realer_outbox_flush(job->client, 0, &job->report);
        break;
    }
    job->ended_ms = now_ms();
    return NULL;
}

static void *cancel_client(void *arg)
{
    CHECK(realer_client_cancel(arg) == REALER_OK);
    return NULL;
}

static const char *need_env(const char *name)
{
    const char *v = getenv(name);

    if (v == NULL) {
        fprintf(stderr, "%s is not set\n", name);
        exit(2);
    }
    return v;
}

int main(void)
{
    realer_config *config = realer_config_new();
    realer_client *client = NULL;
    struct job jobs[3];
    pthread_t workers[3];
    pthread_t cancellers[8];
    realer_feed_item items[10];
    realer_outbox_stats stats;
    struct timespec settle = {0, 300 * 1000 * 1000};
    char outbox[1024];
    double cancelled_ms;
    /* Within a second; valgrind makes everything 20 to 50 times slower, so the driver gives more then. */
    double limit_ms = getenv("REALER_CANCEL_LIMIT_MS") ? atof(getenv("REALER_CANCEL_LIMIT_MS")) : 1000.0;
    int i;

    snprintf(outbox, sizeof outbox, "%s/cancel-outbox.db", need_env("REALER_TEST_DIR"));
    remove(outbox);
    CHECK(realer_config_from_env(config) == REALER_OK);
    CHECK(realer_config_set_timeouts(config, 5000, 30000) == REALER_OK);
    CHECK(realer_config_set_outbox(config, outbox, 0, 0) == REALER_OK);
    CHECK(realer_client_new(config, &client) == REALER_OK);
    realer_config_free(config);
    if (client == NULL) {
        printf("%d passed, %d failed\n", n_passed, n_failed + 1);
        return 1;
    }
    CHECK(realer_client_authenticate(client) == REALER_OK);
    for (i = 0; i < 10; i++) {
        realer_feed_item_init(&items[i]);
        items[i].sensor_id = "8";
        items[i].value = "48";
    }
    CHECK(realer_outbox_push_many(client, items, 10) == REALER_OK);

    for (i = 0; i < 3; i++) {
        memset(&jobs[i], 0, sizeof jobs[i]);
        jobs[i].client = client;
        jobs[i].kind = (enum kind)i;
        CHECK(pthread_create(&workers[i], NULL, run_job, &jobs[i]) == 0);
    }
    nanosleep(&settle, NULL); /* all three are blocked on the silent server by now */
    cancelled_ms = now_ms();
    for (i = 0; i < 8; i++) {
        CHECK(pthread_create(&cancellers[i], NULL, cancel_client, client) == 0);
    }
    for (i = 0; i < 8; i++) {
        pthread_join(cancellers[i], NULL);
    }
    for (i = 0; i < 3; i++) {
        static const char *names[] = {"post", "catalog fetch", "outbox flush"};
        double took;

        pthread_join(workers[i], NULL);
        took = jobs[i].ended_ms - cancelled_ms;
        printf("%s: %s %.1f ms after the cancel\n", names[i], realer_status_str(jobs[i].status), took);
        CHECK(jobs[i].status == REALER_ERR_CANCELLED);
        CHECK(took < limit_ms);
    }
    CHECK(jobs[POST].result.outcome == REALER_FEED_OUTCOME_NOT_SENT);
    CHECK(strcmp(jobs[POST].result.message_id, "cancel-c-post") == 0);
    CHECK(jobs[FLUSH].report.pending == 10 && jobs[FLUSH].report.sent == 0);
    CHECK(realer_outbox_stats_read(client, &stats) == REALER_OK);
    CHECK(stats.pending == 10);

    /* Refused at once until resume; then calls run again (the token endpoint answers). */
    CHECK(realer_client_authenticate(client) == REALER_ERR_CANCELLED);
    CHECK(realer_client_resume(client) == REALER_OK);
    CHECK(realer_client_authenticate(client) == REALER_OK);

    realer_client_free(client);
    remove(outbox);
    printf("%d passed, %d failed\n", n_passed, n_failed);
    return n_failed == 0 ? 0 : 1;
}
