/* firmware_loop.c: one pass of a Realer device's loop (contract section 7) with librealer.
 *
 *   1. authenticate with the device's OAuth client credentials;
 *   2. read the catalog: commands (desired states) and sensors (what may be reported);
 *   3. answer every pending desired state: apply it and report "applied", or report "stale";
 *   4. report one local physical command change (no desired_id);
 *   5. post one reading per sensor, one by one, then the same sensors again as one batch.
 *
 * Everything comes from the environment and the catalog; nothing about the device is hard-coded:
 *   REALER_BASE_URL       https://api.therealer.com (the default) or a test server
 *   REALER_DEVICE_ID      the device's Realer id, such as 12345
 *   REALER_CLIENT_ID      the device's OAuth client id (cdv_...)
 *   REALER_CLIENT_SECRET  its secret
 *   REALER_CA_FILE        optional: trust only these CA certificates (PEM) instead of the bundled roots
 *   REALER_SCOPE          optional: the OAuth scope to request
 *
 * Exit status 0 when every step succeeded, 1 otherwise (the reason is printed on stderr).
 * A real firmware runs steps 2-5 periodically; where it would talk to hardware, this example says so. */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "realer.h"

/* Prints why the last librealer call failed: its status, and the details librealer kept for this thread. */
static void print_failure(const char *what, realer_status status)
{
    const realer_error *e = realer_last_error();

    fprintf(stderr, "FAILED: %s: %s\n", what, realer_status_str(status));
    fprintf(stderr, "  message:     %s\n", e->message);
    if (e->http_status != 0) {
        fprintf(stderr, "  http status: %d, Realer code %d, type \"%s\"\n", (int)e->http_status, (int)e->code,
                e->type);
    }
    if (e->request_id[0] != '\0') {
        fprintf(stderr, "  request_id:  %s (quote it to Realer support)\n", e->request_id);
    }
    if (e->details_json[0] != '\0') {
        fprintf(stderr, "  details:     %s\n", e->details_json);
    }
    if (e->retryable) {
        fprintf(stderr, "  retryable:   yes (send the same item again later, with the same message_id)\n");
    }
}

/* Catalog strings are NULL when absent. */
static const char *or_none(const char *s)
{
    return s != NULL ? s : "(none)";
}

static const char *outcome_name(realer_feed_outcome outcome)
{
    switch (outcome) {
    case REALER_FEED_OUTCOME_CREATED:
        return "stored";
    case REALER_FEED_OUTCOME_IDEMPOTENT:
        return "already stored (replay)";
    case REALER_FEED_OUTCOME_REJECTED:
        return "rejected";
    case REALER_FEED_OUTCOME_NOT_SENT:
        return "not sent";
    default:
        return "unknown outcome";
    }
}

/* Hardware stand-in: a real device reads its sensor driver here. The value is text, as Realer wants it. */
static void read_sensor(const realer_sensor *sensor, unsigned reading, char *value, size_t len)
{
    double base = 1.0;

    if (sensor->qc != NULL && strcmp(sensor->qc, "celsius_temperature") == 0) {
        base = 21.4;
    } else if (sensor->qc != NULL && strcmp(sensor->qc, "relative_humidity") == 0) {
        base = 48.0;
    }
    snprintf(value, len, "%.1f", base + 0.1 * reading);
}

/* Posts one item and says what happened. Returns 0 when Realer stored it (now or before). */
static int post_item(const realer_client *client, const realer_feed_item *item, const char *what)
{
    realer_feed_result result;
    realer_status status = realer_post_feed_data(client, item, &result);

    if (status != REALER_OK) {
        /* result.message_id is set even now: a retry of the same event must reuse it. */
        fprintf(stderr, "%s: %s, message_id %s\n", what, outcome_name(result.outcome), result.message_id);
        print_failure(what, status);
        return -1;
    }
    printf("  %s: %s, feed_data_id %lld, message_id %s\n", what, outcome_name(result.outcome),
           (long long)result.feed_data_id, result.message_id);
    return 0;
}

/* Step 1: a client configured from the environment, with a token already fetched. NULL on failure. */
static realer_client *connect_from_env(void)
{
    realer_config *config = realer_config_new();
    realer_client *client = NULL;
    realer_status status;

    if (config == NULL) {
        print_failure("creating the configuration", REALER_ERR_INTERNAL);
        return NULL;
    }
    status = realer_config_from_env(config);
    if (status != REALER_OK) {
        print_failure("reading the REALER_* environment variables", status);
        realer_config_free(config);
        return NULL;
    }
    status = realer_client_new(config, &client);
    realer_config_free(config); /* the client keeps its own copy */
    if (status != REALER_OK) {
        print_failure("creating the client", status);
        return NULL;
    }
    /* Optional (every call fetches a token when it needs one), but it tells bad credentials apart early. */
    status = realer_authenticate(client);
    if (status != REALER_OK) {
        print_failure("authenticating", status);
        realer_client_free(client);
        return NULL;
    }
    printf("1. Authenticated.\n");
    return client;
}

/* Step 2: prints the catalog. */
static void print_catalog(const realer_commands *commands, const realer_sensors *sensors)
{
    size_t i;

    printf("2. The catalog has %zu command(s) and %zu sensor(s).\n", realer_commands_len(commands),
           realer_sensors_len(sensors));
    for (i = 0; i < realer_commands_len(commands); i++) {
        const realer_command *c = realer_commands_get(commands, i);

        if (c->error_type != NULL) {
            printf("  command %s: Realer cannot represent it (%s: %s)\n", c->id, c->error_type,
                   or_none(c->error_message));
            continue;
        }
        printf("  command %s: %s on pin %s, value %s (%s)", c->id, or_none(c->kind), or_none(c->pin_port),
               or_none(c->value), or_none(c->value_type));
        if (c->desired_id != NULL) {
            printf(", desired state %s pending (sequence %lld, expires %s)", c->desired_id,
                   (long long)c->sequence_number, or_none(c->expires_at));
        }
        printf("\n");
    }
    for (i = 0; i < realer_sensors_len(sensors); i++) {
        const realer_sensor *s = realer_sensors_get(sensors, i);

        if (s->error_type != NULL) {
            printf("  sensor %s: Realer cannot represent it (%s: %s)\n", s->id, s->error_type,
                   or_none(s->error_message));
            continue;
        }
        printf("  sensor %s: %s on pin %s, %s in %s\n", s->id, or_none(s->kind), or_none(s->pin_port),
               or_none(s->qc), or_none(s->mu));
    }
}

/* Step 3: answers every pending desired state. Returns the number of failures. */
static int answer_desired_states(const realer_client *client, const realer_commands *commands)
{
    int failures = 0;
    int answered = 0;
    size_t i;

    printf("3. Answering pending desired states.\n");
    for (i = 0; i < realer_commands_len(commands); i++) {
        const realer_command *c = realer_commands_get(commands, i);
        realer_command_action action;
        realer_feed_item item;
        char what[160];

        if (c->error_type != NULL) {
            continue; /* not usable: Realer cannot represent it */
        }
        /* 0 = now. The library also remembers which sequence numbers this client already reported. */
        action = realer_command_desired_action(client, c, 0);
        if (action == REALER_COMMAND_ACTION_NONE) {
            continue;
        }
        if (action == REALER_COMMAND_ACTION_INVALID) {
            print_failure("deciding what to do with a desired state", realer_last_error()->status);
            failures++;
            continue;
        }

        realer_feed_item_init(&item);
        item.command_id = c->id;
        item.desired_id = c->desired_id;
        item.sequence_number = c->sequence_number; /* echoed as received (-1 = absent) */
        /* While a desired state is pending, the catalog's value is the desired value. */
        item.value = c->value;
        if (action == REALER_COMMAND_ACTION_APPLY) {
            /* Hardware: drive the actuator to c->value here. Report "rejected" instead if it cannot. */
            printf("  command %s: applying desired value %s (desired state %s)\n", c->id, c->value, c->desired_id);
            item.report_status = REALER_REPORT_STATUS_APPLIED;
            snprintf(what, sizeof what, "command %s: applied report", c->id);
        } else {
            /* Expired, or not newer than one already handled: leave the actuator as it is. A real device
             * reports the value its actuator holds; this one has no actuator, so it echoes the catalog. */
            printf("  command %s: desired state %s is stale, not applying it\n", c->id, c->desired_id);
            item.report_status = REALER_REPORT_STATUS_STALE;
            snprintf(what, sizeof what, "command %s: stale report", c->id);
        }
        answered++;
        if (post_item(client, &item, what) != 0) {
            failures++;
        }
    }
    if (answered == 0) {
        printf("  none pending.\n");
    }
    return failures;
}

/* Step 4: reports a local physical change (someone pressed the relay's button, say) on one command: a
 * command without desired state if there is one, else the first usable command. Returns 0 on success. */
static int report_local_change(const realer_client *client, const realer_commands *commands)
{
    const realer_command *chosen = NULL;
    realer_feed_item item;
    char what[160];
    size_t i;

    printf("4. Reporting a local physical change.\n");
    for (i = 0; i < realer_commands_len(commands); i++) {
        const realer_command *c = realer_commands_get(commands, i);

        if (c->error_type != NULL || c->value == NULL) {
            continue;
        }
        if (chosen == NULL || (chosen->desired_id != NULL && c->desired_id == NULL)) {
            chosen = c;
        }
    }
    if (chosen == NULL) {
        printf("  no usable command: nothing to report.\n");
        return 0;
    }

    realer_feed_item_init(&item);
    item.command_id = chosen->id;
    /* Hardware: the value the actuator now holds. This example reports the catalog's value. */
    item.value = chosen->value;
    /* No desired_id: this change did not come from Realer. report_status stays NONE (omitted), which
     * Realer reads as "reported"; sequence_number stays -1 (absent). */
    snprintf(what, sizeof what, "command %s: local change to %s", chosen->id, chosen->value);
    return post_item(client, &item, what);
}

/* Step 5a: one reading per usable sensor, one request each. Returns the number of failures. */
static int post_readings_one_by_one(const realer_client *client, const realer_sensors *sensors)
{
    int failures = 0;
    size_t i;

    printf("5. Posting one reading per sensor, one by one.\n");
    for (i = 0; i < realer_sensors_len(sensors); i++) {
        const realer_sensor *s = realer_sensors_get(sensors, i);
        char value[32];
        char observed_at[REALER_TIMESTAMP_SIZE];
        char what[160];
        realer_feed_item item;
        realer_status status;

        if (s->error_type != NULL) {
            continue;
        }
        read_sensor(s, 0, value, sizeof value);
        /* When the value was observed, not when it is sent: readings may wait in a queue. */
        status = realer_format_timestamp(0, observed_at, sizeof observed_at);
        if (status != REALER_OK) {
            print_failure("formatting the reading's time", status);
            failures++;
            continue;
        }

        realer_feed_item_init(&item);
        item.sensor_id = s->id;
        item.value = value;
        item.value_received_at = observed_at;
        /* message_id stays NULL: the library makes one and keeps it through its own retries. To retry
         * later (after a reboot, say), store result.message_id with the reading and send it again. */
        snprintf(what, sizeof what, "sensor %s: reading %s at %s", s->id, value, observed_at);
        if (post_item(client, &item, what) != 0) {
            failures++;
        }
    }
    return failures;
}

/* Step 5b: a new reading of every usable sensor, all in one batch. Returns the number of failures. */
static int post_readings_as_batch(const realer_client *client, const realer_sensors *sensors)
{
    size_t n_sensors = realer_sensors_len(sensors);
    realer_feed_item *items;
    char(*values)[32];
    char observed_at[REALER_TIMESTAMP_SIZE];
    realer_batch_result *results = NULL;
    realer_status status;
    size_t count = 0;
    size_t i;
    int failures = 0;

    printf("6. Posting a new reading of every sensor as one batch.\n");
    if (n_sensors == 0) {
        printf("  no sensors: nothing to post.\n");
        return 0;
    }
    items = calloc(n_sensors, sizeof *items);
    values = calloc(n_sensors, sizeof *values);
    if (items == NULL || values == NULL) {
        fprintf(stderr, "FAILED: out of memory\n");
        free(items);
        free(values);
        return 1;
    }
    status = realer_format_timestamp(0, observed_at, sizeof observed_at);
    if (status != REALER_OK) {
        print_failure("formatting the readings' time", status);
        failures++;
        goto done;
    }
    for (i = 0; i < n_sensors; i++) {
        const realer_sensor *s = realer_sensors_get(sensors, i);

        if (s->error_type != NULL) {
            continue;
        }
        read_sensor(s, 1, values[count], sizeof values[count]);
        realer_feed_item_init(&items[count]);
        items[count].sensor_id = s->id;
        items[count].value = values[count];
        items[count].value_received_at = observed_at;
        count++;
    }
    if (count == 0) {
        printf("  no usable sensors: nothing to post.\n");
        goto done;
    }

    /* REALER_OK means Realer answered; each item may still have been rejected on its own. */
    status = realer_post_feed_batch(client, items, count, &results);
    if (status != REALER_OK) {
        print_failure("posting the batch", status);
        failures++;
    }
    /* results is set whenever the items could be read, also on failure: it says which items to resend. */
    for (i = 0; i < realer_batch_result_len(results); i++) {
        const realer_item_result *r = realer_batch_result_get(results, i);

        if (r->outcome == REALER_FEED_OUTCOME_CREATED || r->outcome == REALER_FEED_OUTCOME_IDEMPOTENT) {
            printf("  sensor %s: reading %s %s, feed_data_id %lld, message_id %s\n", items[i].sensor_id,
                   items[i].value, outcome_name(r->outcome), (long long)r->feed_data_id, r->message_id);
        } else {
            fprintf(stderr, "FAILED: sensor %s: reading %s %s (code %d, %s: %s), message_id %s\n",
                    items[i].sensor_id, items[i].value, outcome_name(r->outcome), (int)r->code,
                    or_none(r->error_type), or_none(r->error_message), r->message_id);
            if (r->details_json != NULL) {
                fprintf(stderr, "  details: %s\n", r->details_json);
            }
            failures++;
        }
    }

done:
    realer_batch_result_free(results);
    free(values);
    free(items);
    return failures;
}

int main(void)
{
    realer_client *client = NULL;
    realer_commands *commands = NULL;
    realer_sensors *sensors = NULL;
    realer_status status;
    int failures = 0;

    /* The header this program was built with and the library it runs with should agree. */
    printf("librealer %s (built with header %s)\n", realer_version(), REALER_VERSION_STRING);

    client = connect_from_env();
    if (client == NULL) {
        return EXIT_FAILURE;
    }

    status = realer_fetch_commands(client, &commands);
    if (status != REALER_OK) {
        print_failure("reading the commands", status);
        failures++;
        goto done;
    }
    status = realer_fetch_sensors(client, &sensors);
    if (status != REALER_OK) {
        print_failure("reading the sensors", status);
        failures++;
        goto done;
    }
    print_catalog(commands, sensors);

    failures += answer_desired_states(client, commands);
    failures += report_local_change(client, commands) != 0;
    failures += post_readings_one_by_one(client, sensors);
    failures += post_readings_as_batch(client, sensors);

done:
    realer_sensors_free(sensors);
    realer_commands_free(commands);
    realer_client_free(client);
    if (failures != 0) {
        fprintf(stderr, "The loop failed: %d step(s) went wrong.\n", failures);
        return EXIT_FAILURE;
    }
    printf("Done: every step succeeded.\n");
    return EXIT_SUCCESS;
}
