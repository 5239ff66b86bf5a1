/* harness_feed.c: feed items, single posts and batches, timestamps. */

#include "harness.h"

/* ---- feed data -------------------------------------------------------------------------------------- */


void test_feed_item_init(void)
{
    realer_feed_item item;

    memset(&item, 0x5a, sizeof item);
    CHECK_STATUS(realer_feed_item_init(&item), REALER_OK);
    CHECK(item.sensor_id == NULL && item.command_id == NULL && item.value == NULL);
    CHECK(item.value_received_at == NULL && item.message_id == NULL && item.desired_id == NULL);
    CHECK(item.report_status == REALER_REPORT_STATUS_NONE);
    CHECK(item.sequence_number == -1);
    CHECK_STATUS(realer_feed_item_init(NULL), REALER_ERR_INVALID_ARGUMENT);
}

/* An item the library must refuse before any I/O: REALER_ERR_INVALID_ARGUMENT naming `field`, NOT_SENT. */
static void check_invalid_item_at(const realer_client *client, const realer_feed_item *item, const char *field,
                                  const char *file, int line)
{
    realer_feed_result result;
    realer_status status;
    char what[256];

    memset(&result, 0x5a, sizeof result);
    status = realer_feed_post(client, item, &result);
    snprintf(what, sizeof what, "invalid item (%s): status %s, outcome %d, message \"%s\"", field,
             realer_status_str(status), (int)result.outcome, realer_last_error()->message);
    check_at(status == REALER_ERR_INVALID_ARGUMENT && realer_last_error()->status == REALER_ERR_INVALID_ARGUMENT &&
                 contains(realer_last_error()->message, field) && result.outcome == REALER_FEED_OUTCOME_NOT_SENT &&
                 result.feed_data_id == -1 && result.http_status == 0 && result.code == 0 &&
                 memchr(result.message_id, '\0', sizeof result.message_id) != NULL,
             file, line, what);
}

#define CHECK_INVALID_ITEM(item, field) check_invalid_item_at(client, (item), (field), __FILE__, __LINE__)

/* Stored by test_feed_single, replayed by test_feed_batch. */
static char stored_message_id[REALER_MESSAGE_ID_MAX + 1];
static char stored_at[REALER_TIMESTAMP_SIZE];
static int64_t stored_feed_data_id = -1;

void test_feed_single(const realer_client *client, const struct catalog_picks *p)
{
    realer_feed_item item;
    realer_feed_result result;
    realer_feed_result replay;
    char message_id[REALER_MESSAGE_ID_MAX + 1];
    char long_id[REALER_MESSAGE_ID_MAX + 2];
    char at[REALER_TIMESTAMP_SIZE];

    if (p->sensor == NULL || p->apply == NULL || p->stale == NULL || p->plain == NULL) {
        return;
    }

    /* Created, then the same message_id and payload again: idempotent, the same feed_data_id. */
    now_timestamp(stored_at);
    make_message_id(stored_message_id, sizeof stored_message_id, "reading-1");
    realer_feed_item_init(&item);
    item.sensor_id = p->sensor->id;
    item.value = "21.4";
    item.value_received_at = stored_at;
    item.message_id = stored_message_id;
    CHECK_STATUS(realer_feed_post(client, &item, &result), REALER_OK);
    CHECK(result.outcome == REALER_FEED_OUTCOME_CREATED);
    CHECK(result.feed_data_id > 0);
    CHECK(result.http_status == 201);
    CHECK(result.code == 2000);
    CHECK(strcmp(result.message_id, stored_message_id) == 0);
    stored_feed_data_id = result.feed_data_id;

    CHECK_STATUS(realer_feed_post(client, &item, &replay), REALER_OK);
    CHECK(replay.outcome == REALER_FEED_OUTCOME_IDEMPOTENT);
    CHECK(replay.feed_data_id == stored_feed_data_id);
    CHECK(replay.http_status == 200);
    CHECK(strcmp(replay.message_id, stored_message_id) == 0);

    /* Same message_id, different value: a conflict, refused for good. */
    item.value = "99.9";
    CHECK_STATUS(realer_feed_post(client, &item, &result), REALER_ERR_API);
    CHECK(result.outcome == REALER_FEED_OUTCOME_REJECTED);
    CHECK(result.code == 4009);
    CHECK(result.http_status == 409);
    CHECK(result.feed_data_id == -1);
    CHECK(strcmp(result.message_id, stored_message_id) == 0);
    CHECK(realer_last_error()->code == 4009);
    CHECK(realer_last_error()->http_status == 409);
    CHECK(strcmp(realer_last_error()->type, "conflict") == 0);
    CHECK(!realer_last_error()->retryable);

    /* No message_id: the library makes one and says which. */
    realer_feed_item_init(&item);
    item.sensor_id = p->sensor->id;
    item.value = "21.5";
    CHECK_STATUS(realer_feed_post(client, &item, &result), REALER_OK);
    CHECK(result.outcome == REALER_FEED_OUTCOME_CREATED);
    CHECK(result.message_id[0] != '\0' && strlen(result.message_id) <= REALER_MESSAGE_ID_MAX);
    CHECK(result.feed_data_id > stored_feed_data_id);

    /* An unknown sensor: validation, with details naming sensor_id. */
    make_message_id(message_id, sizeof message_id, "unknown-sensor");
    item.sensor_id = "987654321";
    item.message_id = message_id;
    CHECK_STATUS(realer_feed_post(client, &item, &result), REALER_ERR_API);
    CHECK(result.outcome == REALER_FEED_OUTCOME_REJECTED);
    CHECK(result.code == 4022 && result.http_status == 422);
    CHECK(strcmp(result.message_id, message_id) == 0);
    CHECK(realer_last_error()->status == REALER_ERR_API);
    CHECK(realer_last_error()->http_status == 422);
    CHECK(realer_last_error()->code == 4022);
    CHECK(strcmp(realer_last_error()->type, "validation_failed") == 0);
    CHECK(realer_last_error()->request_id[0] != '\0');
    CHECK(contains(realer_last_error()->details_json, "sensor_id"));
    CHECK(realer_last_error()->message[0] != '\0');
    CHECK(!realer_last_error()->retryable);
    CHECK(realer_last_error()->retry_after_ms == -1);

    /* A command id as a sensor id is unknown too. */
    item.sensor_id = p->plain->id;
    make_message_id(message_id, sizeof message_id, "command-as-sensor");
    CHECK_STATUS(realer_feed_post(client, &item, &result), REALER_ERR_API);
    CHECK(result.code == 4022);

    /* Answer the pending desired state: applied, with its desired_id and sequence_number. */
    CHECK_STATUS(realer_feed_item_init_answer(&item, p->apply, p->apply->value, REALER_REPORT_STATUS_APPLIED),
                 REALER_OK);
    CHECK_STATUS(realer_feed_post(client, &item, &result), REALER_OK);
    CHECK(result.outcome == REALER_FEED_OUTCOME_CREATED);
    CHECK(realer_last_warnings() != NULL && realer_last_warnings()[0] == '\0');
    /* The expired one: stale, with the actuator's current value. */
    CHECK_STATUS(realer_feed_item_init_answer(&item, p->stale, "0.0", REALER_REPORT_STATUS_STALE), REALER_OK);
    CHECK_STATUS(realer_feed_post(client, &item, &result), REALER_OK);
    CHECK(result.outcome == REALER_FEED_OUTCOME_CREATED);
    /* Both answered: Realer lists them no more, and the client would not offer them again anyway. */
    {
        realer_desired_states *again = NULL;

        CHECK_STATUS(realer_desired_states_fetch(client, &again), REALER_OK);
        CHECK(realer_desired_states_len(again) == 0);
        realer_desired_states_free(again);
    }

    /* A local physical change: no desired_id; report_status omitted, then explicitly "reported". */
    realer_feed_item_init(&item);
    item.command_id = p->plain->id;
    item.value = p->plain->value;
    CHECK_STATUS(realer_feed_post(client, &item, &result), REALER_OK);
    CHECK(result.outcome == REALER_FEED_OUTCOME_CREATED);
    item.report_status = REALER_REPORT_STATUS_REPORTED;
    CHECK_STATUS(realer_feed_post(client, &item, &result), REALER_OK);
    CHECK(result.outcome == REALER_FEED_OUTCOME_CREATED);

    /* A desired_id the server does not know for this command: validation. */
    item.report_status = REALER_REPORT_STATUS_APPLIED;
    item.desired_id = "des_unknown";
    CHECK_STATUS(realer_feed_post(client, &item, &result), REALER_ERR_API);
    CHECK(result.code == 4022);
    CHECK(contains(realer_last_error()->details_json, "desired_id"));

    /* Another device's sensor, reported by this device: refused as invalid for this device. */
    if (other_device_id != NULL) {
        realer_config *oc = realer_config_new();
        realer_client *other = NULL;
        realer_sensors *other_sensors = NULL;

        realer_config_set_base_url(oc, base_url);
        realer_config_set_ca_file(oc, ca_file);
        realer_config_set_device_id(oc, other_device_id);
        realer_config_set_credentials(oc, other_client_id, other_client_secret);
        CHECK_STATUS(realer_client_new(oc, &other), REALER_OK);
        CHECK_STATUS(realer_sensors_fetch(other, &other_sensors), REALER_OK);
        CHECK(realer_sensors_len(other_sensors) >= 1);
        if (realer_sensors_len(other_sensors) >= 1) {
            realer_feed_item_init(&item);
            item.sensor_id = sensor_at(other_sensors, 0)->id;
            item.value = "1.0";
            CHECK_STATUS(realer_feed_post(client, &item, &result), REALER_ERR_API);
            CHECK(result.outcome == REALER_FEED_OUTCOME_REJECTED);
            CHECK(result.code == 4022);
            CHECK(contains(realer_last_error()->details_json, "sensor_id"));
            /* ...and by its own device, accepted. */
            CHECK_STATUS(realer_feed_post(other, &item, &result), REALER_OK);
        }
        realer_sensors_free(other_sensors);
        realer_client_free(other);
        realer_config_free(oc);
    }

    /* Items that break the contract: refused before any I/O, naming the field. */
    now_timestamp(at);
    realer_feed_item_init(&item);
    item.sensor_id = p->sensor->id;
    item.command_id = p->plain->id;
    item.value = "1";
    CHECK_INVALID_ITEM(&item, "sensor_id");
    item.sensor_id = NULL;
    item.command_id = NULL;
    CHECK_INVALID_ITEM(&item, "sensor_id");
    item.sensor_id = p->sensor->id;
    item.value = NULL;
    CHECK_INVALID_ITEM(&item, "value");
    item.value = NOT_UTF8;
    CHECK_INVALID_ITEM(&item, "value");
    item.value = "1";
    item.value_received_at = "yesterday";
    CHECK_INVALID_ITEM(&item, "value_received_at");
    item.value_received_at = "2026-04-24 10:15:00";
    CHECK_INVALID_ITEM(&item, "value_received_at");
    item.value_received_at = "2026-04-24T10:15:00+0200"; /* "+02:00" would be converted to UTC and sent */
    CHECK_INVALID_ITEM(&item, "value_received_at");
    item.value_received_at = "2026-04-24T10:15:00"; /* no offset: the zone is unknown */
    CHECK_INVALID_ITEM(&item, "value_received_at");
    item.value_received_at = at;
    item.message_id = "has space";
    CHECK_INVALID_ITEM(&item, "message_id");
    item.message_id = "";
    CHECK_INVALID_ITEM(&item, "message_id");
    memset(long_id, 'm', sizeof long_id - 1);
    long_id[sizeof long_id - 1] = '\0'; /* 129 characters */
    item.message_id = long_id;
    CHECK_INVALID_ITEM(&item, "message_id");
    item.message_id = "tab\there";
    CHECK_INVALID_ITEM(&item, "message_id");
    item.message_id = NOT_UTF8;
    CHECK_INVALID_ITEM(&item, "message_id");
    item.message_id = NULL;
    item.report_status = REALER_REPORT_STATUS_REPORTED; /* never on a sensor */
    CHECK_INVALID_ITEM(&item, "report_status");
    item.report_status = REALER_REPORT_STATUS_NONE;
    item.desired_id = "des_x"; /* only on command reports */
    CHECK_INVALID_ITEM(&item, "desired_id");
    item.desired_id = NULL;
    item.sequence_number = -2; /* -1 is absent; any other negative number is refused */
    CHECK_INVALID_ITEM(&item, "sequence_number");
    item.sequence_number = -1;
    item.sensor_id = "bad/id";
    CHECK_INVALID_ITEM(&item, "sensor_id");
    item.sensor_id = NOT_UTF8;
    CHECK_INVALID_ITEM(&item, "sensor_id");

    realer_feed_item_init(&item);
    item.command_id = p->apply->command_id;
    item.value = "1";
    item.desired_id = p->apply->desired_id;
    item.report_status = 42;
    CHECK_INVALID_ITEM(&item, "report_status");
    item.report_status = -1;
    CHECK_INVALID_ITEM(&item, "report_status");
    item.report_status = REALER_REPORT_STATUS_REPORTED; /* with a desired_id: applied, rejected or stale */
    CHECK_INVALID_ITEM(&item, "report_status");
    item.report_status = REALER_REPORT_STATUS_APPLIED;
    item.sequence_number = -5;
    CHECK_INVALID_ITEM(&item, "sequence_number");
    item.sequence_number = -1;
    item.desired_id = "";
    CHECK_INVALID_ITEM(&item, "desired_id");
    item.desired_id = NOT_UTF8;
    CHECK_INVALID_ITEM(&item, "desired_id");
    item.desired_id = NULL; /* applied without desired_id: only "reported" is valid */
    CHECK_INVALID_ITEM(&item, "report_status");
    item.report_status = REALER_REPORT_STATUS_STALE;
    CHECK_INVALID_ITEM(&item, "report_status");

    /* The invalid item's own message_id is echoed, so the caller sees which event it was. */
    realer_feed_item_init(&item);
    item.sensor_id = p->sensor->id;
    item.message_id = "echo-me";
    CHECK_STATUS(realer_feed_post(client, &item, &result), REALER_ERR_INVALID_ARGUMENT);
    CHECK(strcmp(result.message_id, "echo-me") == 0);

    /* NULL arguments. */
    item.value = "1";
    CHECK_STATUS(realer_feed_post(NULL, &item, &result), REALER_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(realer_feed_post(client, NULL, &result), REALER_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(realer_feed_post(client, &item, NULL), REALER_ERR_INVALID_ARGUMENT);
}

void test_feed_batch(const realer_client *client, const struct catalog_picks *p)
{
    realer_feed_item items[4];
    realer_batch_result *results = NULL;
    const realer_item_result *r;
    char new_id[REALER_MESSAGE_ID_MAX + 1];
    char at[REALER_TIMESTAMP_SIZE];

    if (p->sensor == NULL || p->sensor2 == NULL || p->plain == NULL || stored_feed_data_id < 0) {
        return;
    }
    now_timestamp(at);
    make_message_id(new_id, sizeof new_id, "batch-new");

    /* [0] new reading: created; [1] unknown sensor: rejected; [2] replay of test_feed_single's reading:
     * idempotent; [3] a local command change without message_id: created. */
    realer_feed_item_init(&items[0]);
    items[0].sensor_id = p->sensor2->id;
    items[0].value = "48.2";
    items[0].value_received_at = at;
    items[0].message_id = new_id;
    realer_feed_item_init(&items[1]);
    items[1].sensor_id = "987654321";
    items[1].value = "1";
    realer_feed_item_init(&items[2]);
    items[2].sensor_id = p->sensor->id;
    items[2].value = "21.4";
    items[2].value_received_at = stored_at;
    items[2].message_id = stored_message_id;
    realer_feed_item_init(&items[3]);
    items[3].command_id = p->plain->id;
    items[3].value = p->plain->value;
    items[3].report_status = REALER_REPORT_STATUS_REPORTED;

    CHECK_STATUS(realer_feed_post_batch(client, items, 4, &results), REALER_OK);
    CHECK(results != NULL);
    CHECK(realer_batch_result_len(results) == 4);
    if (realer_batch_result_len(results) == 4) {
        r = batch_result_at(results, 0);
        CHECK(r->outcome == REALER_FEED_OUTCOME_CREATED);
        CHECK(r->feed_data_id > 0 && r->code == 2000);
        CHECK(strcmp(r->message_id, new_id) == 0);
        CHECK(r->error_type == NULL && r->error_message == NULL && r->details_json == NULL);

        r = batch_result_at(results, 1);
        CHECK(r->outcome == REALER_FEED_OUTCOME_REJECTED);
        CHECK(r->feed_data_id == -1);
        CHECK(r->code == 4022);
        CHECK(r->message_id != NULL && r->message_id[0] != '\0'); /* generated */
        CHECK(r->error_type != NULL && strcmp(r->error_type, "validation_failed") == 0);
        CHECK(r->error_message != NULL);
        CHECK(contains(r->details_json, "sensor_id"));

        r = batch_result_at(results, 2);
        CHECK(r->outcome == REALER_FEED_OUTCOME_IDEMPOTENT);
        CHECK(r->feed_data_id == stored_feed_data_id);
        CHECK(strcmp(r->message_id, stored_message_id) == 0);

        r = batch_result_at(results, 3);
        CHECK(r->outcome == REALER_FEED_OUTCOME_CREATED);
        CHECK(r->feed_data_id > 0);
        CHECK(r->message_id != NULL && r->message_id[0] != '\0');
    }
    CHECK(batch_result_at(results, 4) == NULL);
    CHECK(batch_result_at(results, (size_t)-1) == NULL);
    realer_batch_result_free(results);
    results = NULL;

    /* The same message_id with different data, inside a batch: that item is rejected as a conflict. */
    items[0].value = "48.3";
    CHECK_STATUS(realer_feed_post_batch(client, items, 1, &results), REALER_OK);
    CHECK(realer_batch_result_len(results) == 1);
    r = batch_result_at(results, 0);
    CHECK(r != NULL && r->outcome == REALER_FEED_OUTCOME_REJECTED && r->code == 4009);
    realer_batch_result_free(results);
    results = NULL;

    /* One bad item fails the whole call before anything is sent; every item is NOT_SENT. */
    items[0].value = "48.2";
    items[1].sensor_id = p->sensor->id;
    items[1].command_id = p->plain->id;
    CHECK_STATUS(realer_feed_post_batch(client, items, 2, &results), REALER_ERR_INVALID_ARGUMENT);
    /* The message names the item (the library says "item 1" or "items[1]") and the field. */
    CHECK(contains(realer_last_error()->message, "item 1") || contains(realer_last_error()->message, "items[1]"));
    CHECK_MESSAGE_HAS("sensor_id");
    CHECK(results != NULL);
    CHECK(realer_batch_result_len(results) == 2);
    if (realer_batch_result_len(results) == 2) {
        CHECK(batch_result_at(results, 0)->outcome == REALER_FEED_OUTCOME_NOT_SENT);
        CHECK(batch_result_at(results, 1)->outcome == REALER_FEED_OUTCOME_NOT_SENT);
        CHECK(strcmp(batch_result_at(results, 0)->message_id, new_id) == 0);
    }
    realer_batch_result_free(results);
    results = NULL;
    items[1].command_id = NULL;
    items[1].report_status = 42;
    CHECK_STATUS(realer_feed_post_batch(client, items, 2, &results), REALER_ERR_INVALID_ARGUMENT);
    CHECK(contains(realer_last_error()->message, "item 1") || contains(realer_last_error()->message, "items[1]"));
    CHECK_MESSAGE_HAS("report_status");
    realer_batch_result_free(results);
    results = NULL;

    /* Argument errors: *out is NULL afterwards (set before anything else). */
    results = (realer_batch_result *)&n_passed;
    CHECK_STATUS(realer_feed_post_batch(client, items, 0, &results), REALER_ERR_INVALID_ARGUMENT);
    CHECK_MESSAGE_HAS("count");
    CHECK(results == NULL);
    results = (realer_batch_result *)&n_passed;
    CHECK_STATUS(realer_feed_post_batch(client, NULL, 2, &results), REALER_ERR_INVALID_ARGUMENT);
    CHECK_MESSAGE_HAS("items");
    CHECK(results == NULL);
    results = (realer_batch_result *)&n_passed;
    CHECK_STATUS(realer_feed_post_batch(NULL, items, 1, &results), REALER_ERR_INVALID_ARGUMENT);
    CHECK(results == NULL);
    CHECK_STATUS(realer_feed_post_batch(client, items, 1, NULL), REALER_ERR_INVALID_ARGUMENT);
    CHECK_MESSAGE_HAS("out");

    CHECK(realer_batch_result_len(NULL) == 0);
    CHECK(realer_batch_result_get(NULL, 0, NULL) == REALER_ERR_INVALID_ARGUMENT);
    realer_batch_result_free(NULL);
}

/* ---- timestamps ------------------------------------------------------------------------------------- */

void test_format_timestamp(void)
{
    char buf[REALER_TIMESTAMP_SIZE];
    char big[64];

    CHECK_STATUS(realer_timestamp_format(1777025700000LL, buf, sizeof buf), REALER_OK);
    CHECK(strcmp(buf, "2026-04-24T10:15:00.000Z") == 0);
    CHECK_STATUS(realer_timestamp_format(1777025700123LL, big, sizeof big), REALER_OK);
    CHECK(strcmp(big, "2026-04-24T10:15:00.123Z") == 0);
    CHECK_STATUS(realer_timestamp_format(1, buf, sizeof buf), REALER_OK);
    CHECK(strcmp(buf, "1970-01-01T00:00:00.001Z") == 0);
    CHECK_STATUS(realer_timestamp_format(0, buf, sizeof buf), REALER_OK); /* now */
    CHECK(strlen(buf) == REALER_TIMESTAMP_SIZE - 1 && buf[4] == '-' && buf[10] == 'T' && buf[23] == 'Z');
    CHECK(strncmp(buf, "20", 2) == 0);

    memset(buf, 'x', sizeof buf);
    CHECK_STATUS(realer_timestamp_format(1777025700000LL, buf, sizeof buf - 1), REALER_ERR_BUFFER_TOO_SMALL);
    CHECK(buf[0] == 'x'); /* nothing written */
    CHECK_STATUS(realer_timestamp_format(1777025700000LL, buf, 0), REALER_ERR_BUFFER_TOO_SMALL);
    CHECK_STATUS(realer_timestamp_format(1777025700000LL, NULL, sizeof buf), REALER_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(realer_timestamp_format(-1, buf, sizeof buf), REALER_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(realer_timestamp_format(253402300800000LL, buf, sizeof buf), REALER_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(realer_timestamp_format(253402300799999LL, buf, sizeof buf), REALER_OK);
    CHECK(strcmp(buf, "9999-12-31T23:59:59.999Z") == 0);
}
