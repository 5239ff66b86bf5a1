/* harness_client.c: clients, authentication, cancel, the logger, a token used on another device. */

#include "harness.h"

/* ---- clients and authentication --------------------------------------------------------------------- */

/* Cancel without threads: calls started after a cancel return REALER_ERR_CANCELLED at once, nothing is
 * sent, a post says which message_id to send again; resume lets them run. (tests/c/cancel.c cancels calls
 * blocked on a silent server from other threads.) */
void test_cancel_and_resume(void)
{
    realer_config *c = demo_config();
    realer_client *client = client_from(c);
    realer_feed_item item;
    realer_feed_result result;
    realer_desired_states *wanted = NULL;

    CHECK_STATUS(realer_client_cancel(NULL), REALER_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(realer_client_resume(NULL), REALER_ERR_INVALID_ARGUMENT);
    if (client == NULL) {
        realer_config_free(c);
        return;
    }
    CHECK_STATUS(realer_client_cancel(client), REALER_OK);
    CHECK_STATUS(realer_client_cancel(client), REALER_OK); /* twice is fine */
    CHECK_STATUS(realer_client_authenticate(client), REALER_ERR_CANCELLED);
    CHECK(realer_last_error()->retryable);
    CHECK(strcmp(realer_status_str(REALER_ERR_CANCELLED), "REALER_ERR_CANCELLED") == 0);
    CHECK_STATUS(realer_desired_states_fetch(client, &wanted), REALER_ERR_CANCELLED);
    CHECK(wanted == NULL);
    realer_feed_item_init(&item);
    item.sensor_id = "7";
    item.value = "1";
    item.message_id = "harness-cancelled-post";
    CHECK_STATUS(realer_feed_post(client, &item, &result), REALER_ERR_CANCELLED);
    CHECK(result.outcome == REALER_FEED_OUTCOME_NOT_SENT);
    CHECK(strcmp(result.message_id, "harness-cancelled-post") == 0);
    CHECK_STATUS(realer_client_resume(client), REALER_OK);
    CHECK_STATUS(realer_client_authenticate(client), REALER_OK);
    realer_client_free(client);
    realer_config_free(c);
}

void test_client_new_and_auth(void)
{
    realer_config *c = realer_config_new();
    realer_client *client = NULL;

    realer_client_free(NULL);
    CHECK_STATUS(realer_client_authenticate(NULL), REALER_ERR_INVALID_ARGUMENT);

    /* Incomplete: no device id, then no credentials. */
    CHECK_STATUS(realer_config_set_base_url(c, base_url), REALER_OK);
    CHECK_STATUS(realer_config_set_ca_file(c, ca_file), REALER_OK);
    CHECK_STATUS(realer_client_new(c, &client), REALER_ERR_CONFIG);
    CHECK_MESSAGE_HAS("device id");
    CHECK(client == NULL);
    CHECK_STATUS(realer_config_set_device_id(c, device_id), REALER_OK);
    CHECK_STATUS(realer_client_new(c, &client), REALER_ERR_CONFIG);
    CHECK_MESSAGE_HAS("credentials");
    CHECK(client == NULL);
    CHECK_STATUS(realer_config_set_credentials(c, client_id, client_secret), REALER_OK);

    CHECK_STATUS(realer_client_new(NULL, &client), REALER_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(realer_client_new(c, NULL), REALER_ERR_INVALID_ARGUMENT);
    CHECK_MESSAGE_HAS("out");

    /* The client copies the configuration: freeing it right away is fine. */
    CHECK_STATUS(realer_client_new(c, &client), REALER_OK);
    CHECK(client != NULL);
    realer_config_free(c);
    CHECK_STATUS(realer_client_authenticate(client), REALER_OK);
    CHECK_STATUS(realer_client_authenticate(client), REALER_OK); /* cached token */
    realer_client_free(client);

    /* Wrong secret: REALER_ERR_AUTH from authenticate, and from any call that needs a token. */
    c = demo_config();
    CHECK(c != NULL);
    CHECK_STATUS(realer_config_set_credentials(c, client_id, "not-the-secret"), REALER_OK);
    client = client_from(c);
    CHECK(client != NULL);
    CHECK_STATUS(realer_client_authenticate(client), REALER_ERR_AUTH);
    CHECK(realer_last_error()->http_status == 401);
    CHECK(strcmp(realer_last_error()->type, "invalid_client") == 0);
    CHECK(!contains(realer_last_error()->message, "not-the-secret"));
    CHECK(!realer_last_error()->retryable);
    {
        realer_commands *commands = NULL;

        CHECK_STATUS(realer_commands_fetch(client, &commands), REALER_ERR_AUTH);
        CHECK(commands == NULL);
    }
    realer_client_free(client);
    realer_config_free(c);

    /* Unknown client id. */
    c = demo_config();
    CHECK_STATUS(realer_config_set_credentials(c, "cdv_nobody00000000000000000000", client_secret), REALER_OK);
    client = client_from(c);
    CHECK_STATUS(realer_client_authenticate(client), REALER_ERR_AUTH);
    realer_client_free(client);
    realer_config_free(c);

    /* A CA that did not sign the server's certificate: REALER_ERR_TLS, not retried into a timeout. */
    if (wrong_ca_file != NULL) {
        c = demo_config();
        CHECK_STATUS(realer_config_set_ca_file(c, wrong_ca_file), REALER_OK);
        client = client_from(c);
        CHECK_STATUS(realer_client_authenticate(client), REALER_ERR_TLS);
        realer_client_free(client);
        realer_config_free(c);
    }
}

/* ---- logger ----------------------------------------------------------------------------------------- */

struct log_sink {
    int lines;
    int bad_level;
    int leaked_secret;
    int leaked_token;
};

static void count_log_line(void *user_data, realer_log_level level, const char *message)
{
    struct log_sink *sink = user_data;

    sink->lines++;
    if (level < REALER_LOG_ERROR || level > REALER_LOG_DEBUG) {
        sink->bad_level++;
    }
    if (message == NULL || strstr(message, client_secret) != NULL) {
        sink->leaked_secret++;
    }
    if (message != NULL && (strstr(message, "Bearer ") != NULL || strstr(message, "Basic ") != NULL)) {
        sink->leaked_token++;
    }
}

void test_logger(void)
{
    struct log_sink sink = {0, 0, 0, 0};
    realer_config *c = demo_config();
    realer_client *client;
    realer_sensors *sensors = NULL;
    realer_feed_item item;
    realer_feed_result result;

    CHECK_STATUS(realer_config_set_logger(c, count_log_line, &sink, 0), REALER_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(realer_config_set_logger(c, count_log_line, &sink, 5), REALER_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(realer_config_set_logger(c, count_log_line, &sink, -1), REALER_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(realer_config_set_logger(c, count_log_line, &sink, REALER_LOG_DEBUG), REALER_OK);
    client = client_from(c);
    CHECK(client != NULL);
    CHECK_STATUS(realer_client_authenticate(client), REALER_OK);
    CHECK_STATUS(realer_sensors_fetch(client, &sensors), REALER_OK);
    realer_feed_item_init(&item);
    item.sensor_id = realer_sensors_len(sensors) > 0 ? sensor_at(sensors, 0)->id : "0";
    item.value = "19.5";
    CHECK_STATUS(realer_feed_post(client, &item, &result), REALER_OK);
    realer_sensors_free(sensors);
    realer_client_free(client);
    realer_config_free(c);

    CHECK(sink.lines > 0);
    CHECK(sink.bad_level == 0);
    CHECK(sink.leaked_secret == 0);
    CHECK(sink.leaked_token == 0);

    /* A refused secret: the failure may be logged, the secret never. */
    sink.lines = 0;
    c = demo_config();
    CHECK_STATUS(realer_config_set_credentials(c, client_id, "wrong-secret-in-log"), REALER_OK);
    CHECK_STATUS(realer_config_set_logger(c, count_log_line, &sink, REALER_LOG_DEBUG), REALER_OK);
    client = client_from(c);
    CHECK_STATUS(realer_client_authenticate(client), REALER_ERR_AUTH);
    realer_client_free(client);
    realer_config_free(c);
    CHECK(sink.leaked_secret == 0);
    CHECK(sink.leaked_token == 0);
}

/* A token for the demo device used on another device's paths: 403 / 4003. The library always puts its own
 * device id in the path, so the mismatch is made with a config whose device id is not the credentials'. */
void test_forbidden(void)
{
    realer_config *c = demo_config();
    realer_client *client;
    realer_commands *commands = NULL;
    realer_batch_result *results = NULL;
    realer_feed_item item;
    realer_feed_result result;

    if (other_device_id == NULL) {
        realer_config_free(c);
        return;
    }
    CHECK_STATUS(realer_config_set_device_id(c, other_device_id), REALER_OK);
    client = client_from(c);
    CHECK(client != NULL);
    CHECK_STATUS(realer_client_authenticate(client), REALER_OK); /* the credentials themselves are fine */
    CHECK_STATUS(realer_commands_fetch(client, &commands), REALER_ERR_API);
    CHECK(realer_last_error()->code == 4003);
    CHECK(realer_last_error()->http_status == 403);
    CHECK(strcmp(realer_last_error()->type, "forbidden") == 0);
    CHECK(!realer_last_error()->retryable);
    CHECK(commands == NULL);

    realer_feed_item_init(&item);
    item.sensor_id = "1";
    item.value = "1";
    /* A refusal of the request, not a judgement of the item: NOT_SENT, to send again later. */
    CHECK_STATUS(realer_feed_post(client, &item, &result), REALER_ERR_API);
    CHECK(result.outcome == REALER_FEED_OUTCOME_NOT_SENT);
    CHECK(result.code == 4003 && result.http_status == 403);
    CHECK(result.message_id[0] != '\0');
    CHECK(realer_last_error()->code == 4003);

    /* A batch refused as a whole: its items are not sent either. */
    CHECK_STATUS(realer_feed_post_batch(client, &item, 1, &results), REALER_ERR_API);
    CHECK(realer_last_error()->code == 4003);
    CHECK(realer_batch_result_len(results) == 1);
    CHECK(realer_batch_result_len(results) == 1 &&
          batch_result_at(results, 0)->outcome == REALER_FEED_OUTCOME_NOT_SENT);
    realer_batch_result_free(results);
    realer_client_free(client);
    realer_config_free(c);
}
