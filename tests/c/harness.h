/* harness.h: what the parts of the C harness share (tests/c/harness*.c, one program; see harness.c): the
 * checks and their counters, the environment, the helpers every part uses, and the parts main runs. */

#ifndef REALER_HARNESS_H
#define REALER_HARNESS_H

#define _POSIX_C_SOURCE 200809L /* setenv, unsetenv, mkstemp, getpid */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "realer.h"

/* ---- checks (harness_check.c) ----------------------------------------------------------------------- */

extern int n_passed;
extern int n_failed;

void fail_at(const char *file, int line, const char *what);
void check_at(int ok, const char *file, int line, const char *what);

#define CHECK(cond) check_at((cond) != 0, __FILE__, __LINE__, #cond)

/* The last error is never NULL and none of its strings are. */
int last_error_sane(void);

/* A call returned `want`; a failure also left a sane last error with that status. */
void check_status_at(realer_status got, realer_status want, const char *file, int line, const char *call);

#define CHECK_STATUS(call, want) check_status_at((call), (want), __FILE__, __LINE__, #call)

/* Some out-of-range values may fairly be called a refused configuration value or an out-of-range argument:
 * the header allows both. Either is accepted, as long as the call failed cleanly. */
void check_refused_at(realer_status got, const char *file, int line, const char *call);

#define CHECK_REFUSED(call) check_refused_at((call), __FILE__, __LINE__, #call)

int contains(const char *haystack, const char *needle);

/* The last error's message names `word` (a field, a variable, an argument). */
#define CHECK_MESSAGE_HAS(word) check_at(contains(realer_last_error()->message, (word)), __FILE__, __LINE__, \
                                         "last error message contains \"" word "\"")

/* ---- environment (set by main) ---------------------------------------------------------------------- */

extern const char *base_url;
extern const char *test_dir; /* where the outbox and configuration files go */
extern const char *device_id;
extern const char *client_id;
extern const char *client_secret;
extern const char *ca_file;
extern const char *other_device_id;
extern const char *other_client_id;
extern const char *other_client_secret;
extern const char *wrong_ca_file;

/* A unique prefix for this run's message_ids, so the harness may run twice against one sim. */
extern char run_id[64];

extern const char *const NOT_UTF8;

/* A configuration for the demo device, set with explicit setters (not the environment). */
realer_config *demo_config(void);
realer_client *client_from(const realer_config *config);

/* The current time as RFC 3339, for items that are replayed (a replay must carry the same payload). */
void now_timestamp(char buf[REALER_TIMESTAMP_SIZE]);
void make_message_id(char *buf, size_t len, const char *what);

/* The catalog entries and desired states the feed tests use, found by their properties, not their ids. */
struct catalog_picks {
    realer_commands *commands;
    realer_sensors *sensors;
    realer_desired_states *wanted;
    const realer_desired_state *apply; /* a pending desired state to apply */
    const realer_desired_state *stale; /* an expired one */
    const realer_command *plain;       /* a command without desired state */
    const realer_command *broken;      /* Realer cannot represent it */
    const realer_sensor *sensor;       /* a usable sensor */
    const realer_sensor *sensor2;      /* another one, if any */
    /* What the pointers above point at: copies filled by the lists' _get (their strings are the lists'). */
    realer_desired_state kept_states[2];
    realer_command kept_commands[2];
    realer_sensor kept_sensors[2];
};

/* A list's `_get` fills the caller's struct and returns a status: REALER_ERR_INVALID_ARGUMENT, with a message
 * and the struct left as it was, for a NULL list or out or an index past the end. `name(list, i)` calls it,
 * checks that, and returns a copy of the item (from a ring of 8, enough for the copies a test holds at once),
 * or NULL when it was refused (harness_check.c). */
const realer_command *command_at(const realer_commands *list, size_t index);
const realer_sensor *sensor_at(const realer_sensors *list, size_t index);
const realer_desired_state *desired_state_at(const realer_desired_states *list, size_t index);
const realer_item_result *batch_result_at(const realer_batch_result *list, size_t index);
const realer_dead_letter *dead_letter_at(const realer_dead_letters *list, size_t index);

/* ---- the parts, in the order main runs them --------------------------------------------------------- */

/* harness_errors.c */
void test_last_error_initial(void);
void test_version_and_status(void);

/* harness_config.c */
void test_config_setters(void);
void test_config_from_env(void);
void test_config_from_file(void);

/* harness_client.c */
void test_client_new_and_auth(void);
void test_cancel_and_resume(void);
void test_logger(void);
void test_forbidden(void);

/* harness_feed.c */
void test_feed_item_init(void);
void test_format_timestamp(void);
void test_feed_single(const realer_client *client, const struct catalog_picks *p);
void test_feed_batch(const realer_client *client, const struct catalog_picks *p);

/* harness_catalog.c */
void test_catalog(const realer_client *client);
void pick_catalog(const realer_client *client, struct catalog_picks *p);

/* harness_desired.c */
void test_desired_states(const realer_client *client, const struct catalog_picks *p);

/* harness_outbox.c */
void test_outbox_config(void);
void test_outbox_not_configured(const realer_client *client, const struct catalog_picks *p);
void test_outbox_push_and_flush(const struct catalog_picks *p);
void test_outbox_bounded(const realer_client *direct, const struct catalog_picks *p);

#endif
