/* harness_check.c: the checks and their counters, the environment, the helpers every part uses. */

#include "harness.h"

/* ---- checks ---------------------------------------------------------------------------------------- */

int n_passed;
int n_failed;

void fail_at(const char *file, int line, const char *what)
{
    const realer_error *e = realer_last_error();

    n_failed++;
    printf("FAIL %s:%d: %s\n", file, line, what);
    if (e != NULL && e->message != NULL && e->message[0] != '\0') {
        printf("     last error: %s: %s\n", realer_status_str(e->status), e->message);
    }
}

void check_at(int ok, const char *file, int line, const char *what)
{
    if (ok) {
        n_passed++;
    } else {
        fail_at(file, line, what);
    }
}


/* The last error is never NULL and none of its strings are. */
int last_error_sane(void)
{
    const realer_error *e = realer_last_error();

    return e != NULL && e->type != NULL && e->message != NULL && e->request_id != NULL && e->details_json != NULL;
}

/* A call returned `want`; a failure also left a sane last error with that status. */
void check_status_at(realer_status got, realer_status want, const char *file, int line, const char *call)
{
    char what[512];

    if (got == want && last_error_sane() && (want == REALER_OK || realer_last_error()->status == want)) {
        n_passed++;
        return;
    }
    snprintf(what, sizeof what, "%s returned %s, expected %s", call, realer_status_str(got), realer_status_str(want));
    fail_at(file, line, what);
}


/* Some out-of-range values may fairly be called a refused configuration value or an out-of-range argument:
 * the header allows both. Either is accepted, as long as the call failed cleanly. */
void check_refused_at(realer_status got, const char *file, int line, const char *call)
{
    char what[512];

    if ((got == REALER_ERR_CONFIG || got == REALER_ERR_INVALID_ARGUMENT) && last_error_sane() &&
        realer_last_error()->status == got && realer_last_error()->message[0] != '\0') {
        n_passed++;
        return;
    }
    snprintf(what, sizeof what, "%s returned %s, expected REALER_ERR_CONFIG or REALER_ERR_INVALID_ARGUMENT", call,
             realer_status_str(got));
    fail_at(file, line, what);
}


int contains(const char *haystack, const char *needle)
{
    return haystack != NULL && needle != NULL && strstr(haystack, needle) != NULL;
}


/* ---- environment ------------------------------------------------------------------------------------ */

const char *base_url;
const char *test_dir; /* where the outbox and configuration files go */
const char *device_id;
const char *client_id;
const char *client_secret;
const char *ca_file;
const char *other_device_id;
const char *other_client_id;
const char *other_client_secret;
const char *wrong_ca_file;

/* A unique prefix for this run's message_ids, so the harness may run twice against one sim. */
char run_id[64];

const char *const NOT_UTF8 = "\xff\xfe";

/* A configuration for the demo device, set with explicit setters (not the environment). */
realer_config *demo_config(void)
{
    realer_config *c = realer_config_new();

    if (c == NULL) {
        return NULL;
    }
    if (realer_config_set_base_url(c, base_url) != REALER_OK || realer_config_set_ca_file(c, ca_file) != REALER_OK ||
        realer_config_set_device_id(c, device_id) != REALER_OK ||
        realer_config_set_credentials(c, client_id, client_secret) != REALER_OK ||
        realer_config_set_timeouts(c, 5000, 20000) != REALER_OK ||
        realer_config_set_retry(c, 3, 20, 200) != REALER_OK) {
        realer_config_free(c);
        return NULL;
    }
    return c;
}

realer_client *client_from(const realer_config *config)
{
    realer_client *client = NULL;

    if (config == NULL || realer_client_new(config, &client) != REALER_OK) {
        return NULL;
    }
    return client;
}

/* ---- message ids and timestamps for items ----------------------------------------------------------- */

/* The current time as RFC 3339, for items that are replayed (a replay must carry the same payload). */
void now_timestamp(char buf[REALER_TIMESTAMP_SIZE])
{
    if (realer_timestamp_format(0, buf, REALER_TIMESTAMP_SIZE) != REALER_OK) {
        snprintf(buf, REALER_TIMESTAMP_SIZE, "2026-01-01T00:00:00Z");
    }
}

void make_message_id(char *buf, size_t len, const char *what)
{
    snprintf(buf, len, "%s-%s", run_id, what);
}

/* The lists' `_get` helpers declared in harness.h. */
#define LIST_AT(name, list_t, item_t, get)                                                                     \
    const item_t *name(const list_t *list, size_t index)                                                       \
    {                                                                                                          \
        static item_t ring[8];                                                                                 \
        static unsigned next;                                                                                  \
        item_t *out = &ring[next++ % 8];                                                                       \
        const unsigned char *bytes = (const unsigned char *)out;                                               \
        realer_status st;                                                                                      \
        size_t k;                                                                                              \
        int kept = 1;                                                                                          \
                                                                                                               \
        CHECK(get(list, index, NULL) == REALER_ERR_INVALID_ARGUMENT && contains(realer_last_error()->message,  \
                                                                                list ? "out" : "NULL"));       \
        memset(out, 0xA5, sizeof *out);                                                                        \
        st = get(list, index, out);                                                                            \
        if (st == REALER_OK) {                                                                                 \
            return out;                                                                                        \
        }                                                                                                      \
        for (k = 0; k < sizeof *out; k++) {                                                                    \
            kept &= bytes[k] == 0xA5;                                                                          \
        }                                                                                                      \
        CHECK(st == REALER_ERR_INVALID_ARGUMENT && kept && last_error_sane());                                  \
        CHECK(contains(realer_last_error()->message, list ? "past the end" : "is NULL"));                      \
        return NULL;                                                                                           \
    }
LIST_AT(command_at, realer_commands, realer_command, realer_commands_get)
LIST_AT(sensor_at, realer_sensors, realer_sensor, realer_sensors_get)
LIST_AT(desired_state_at, realer_desired_states, realer_desired_state, realer_desired_states_get)
LIST_AT(batch_result_at, realer_batch_result, realer_item_result, realer_batch_result_get)
LIST_AT(dead_letter_at, realer_dead_letters, realer_dead_letter, realer_dead_letters_get)
