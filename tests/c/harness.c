/* harness.c: calls every function of include/realer.h against a running realer-sim, success and failure
 * paths, as a C program would. Run by tests/c_harness.rs (and under valgrind by .ci/run).
 *
 * Environment (the sim's coordinates, with its built-in fixture):
 *   REALER_BASE_URL, REALER_DEVICE_ID, REALER_CLIENT_ID, REALER_CLIENT_SECRET, REALER_CA_FILE  the demo device
 *   REALER_OTHER_DEVICE_ID, REALER_OTHER_CLIENT_ID, REALER_OTHER_CLIENT_SECRET                 a second device
 *   REALER_WRONG_CA_FILE  optional: a CA that did not sign the sim's certificate (for REALER_ERR_TLS)
 *   REALER_TEST_DIR       a writable directory for the outbox files (this run's files are named after run_id)
 *
 * Prints each failed check with file:line, then "N passed, M failed"; exits 0 only when M is 0.
 *
 * The checks are split by concept: harness.h (the CHECK macros, the environment, the shared helpers, the list
 * of parts), harness_check.c (their definitions), harness_errors.c, harness_config.c, harness_client.c,
 * harness_catalog.c, harness_desired.c, harness_feed.c, harness_outbox.c; this file reads the environment and
 * runs them in order. Every tests/c/harness*.c file is compiled into the one program. */

#include "harness.h"

static const char *need_env(const char *name)
{
    const char *v = getenv(name);

    if (v == NULL || v[0] == '\0') {
        fprintf(stderr, "harness: %s is not set (see the top of tests/c/harness.c)\n", name);
        exit(2);
    }
    return v;
}

/* ---- main ------------------------------------------------------------------------------------------- */

int main(void)
{
    realer_config *config;
    realer_client *client;
    struct catalog_picks picks;

    /* Before anything can fail. */
    test_last_error_initial();

    base_url = need_env("REALER_BASE_URL");
    device_id = need_env("REALER_DEVICE_ID");
    client_id = need_env("REALER_CLIENT_ID");
    client_secret = need_env("REALER_CLIENT_SECRET");
    ca_file = need_env("REALER_CA_FILE");
    other_device_id = need_env("REALER_OTHER_DEVICE_ID");
    other_client_id = need_env("REALER_OTHER_CLIENT_ID");
    other_client_secret = need_env("REALER_OTHER_CLIENT_SECRET");
    wrong_ca_file = getenv("REALER_WRONG_CA_FILE");
    test_dir = need_env("REALER_TEST_DIR");
    snprintf(run_id, sizeof run_id, "harness-%ld-%ld", (long)time(NULL), (long)getpid());

    test_version_and_status();
    test_config_setters();
    test_config_from_env();
    test_config_from_file();
    test_client_new_and_auth();
    test_cancel_and_resume();
    test_logger();
    test_feed_item_init();
    test_format_timestamp();
    test_outbox_config();

    config = demo_config();
    CHECK(config != NULL);
    client = client_from(config);
    CHECK(client != NULL);
    if (client != NULL) {
        test_catalog(client);
        pick_catalog(client, &picks);
        test_desired_states(client, &picks);
        test_feed_single(client, &picks);
        test_feed_batch(client, &picks);
        test_outbox_not_configured(client, &picks);
        test_outbox_push_and_flush(&picks);
        test_outbox_bounded(client, &picks);
        realer_commands_free(picks.commands);
        realer_sensors_free(picks.sensors);
        realer_desired_states_free(picks.wanted);
    }
    test_forbidden();
    realer_client_free(client);
    realer_config_free(config);

    CHECK(last_error_sane());
    printf("%d passed, %d failed\n", n_passed, n_failed);
    return n_failed == 0 ? 0 : 1;
}
