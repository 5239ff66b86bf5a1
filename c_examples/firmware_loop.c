/* firmware_loop.c: a Realer device's loop (contract section 7) with librealer.
 *
 *   1. authenticate with the device's OAuth client credentials;
 *   then, each pass:
 *   2. read the catalog: commands (the device's actuators) and sensors (what may be reported); when Realer
 *      cannot be reached, the loop goes on with the catalog it read last;
 *   3. ask what Realer wants the actuators at, drive the ones that differ, and answer: on a newer service
 *      every pending desired state is answered "applied" or "stale" with its desired_id; on an older one
 *      (the catalog's values) librealer hands over only the values that are new (first seen, or changed in
 *      Realer since), and each actuator that changed is reported with its new physical value;
 *   4. report one local physical command change (someone pressed the first actuator's button; no
 *      desired_id): the next pass does not undo it, since the catalog value it differs from was acted on
 *      already;
 *   5. post one reading per sensor, one by one;
 *   6. post a new reading of the same sensors as one batch;
 *   7. with --outbox only: send the outbox.
 *
 * Usage: firmware_loop [--outbox PATH] [--passes N] [--interval-ms MS]
 *
 * One pass by default; --passes N runs steps 2-7 N times, --interval-ms MS apart (default 1000), as a real
 * firmware does periodically. A loop keeps going while Realer or the network is away: a failed authentication
 * at the start ends it only when the credentials were refused (every call asks for a token when it needs one),
 * and a pass that cannot read the catalog goes on with the one it read last, so readings keep going into the
 * outbox. (A device that starts while Realer is away stores readings once it has read its catalog once; a
 * firmware that knows its sensors from its own configuration need not wait.)
 *
 * With --outbox PATH, step 5 stores the readings in a durable outbox (an SQLite file at PATH) instead of
 * posting them, and a step 7 sends the outbox. A reading is then never lost: when the network or Realer is
 * away, it waits in the file for the next run (or the next pass), under the message_id it got when it was
 * stored, so a resend is never a duplicate. Answers to Realer stay direct posts: one that cannot be sent is
 * answered again when the next pass asks (the desired state stays pending until then). The outbox file also
 * keeps which desired states were answered and which catalog values were acted on, so a restarted device
 * never applies an old one again, nor undoes a local change.
 *
 * The same code works against both kinds of Realer service: librealer asks /desired-states and falls back
 * to the catalog's values where the service does not offer it.
 *
 * Everything comes from the environment and the catalog; nothing about the device is hard-coded:
 *   REALER_BASE_URL       https://api.therealer.com (the default) or a test server
 *   REALER_DEVICE_ID      the device's Realer id, such as 12345
 *   REALER_CLIENT_ID      the device's OAuth client id (cdv_...)
 *   REALER_CLIENT_SECRET  its secret
 *   REALER_CA_FILE        optional: trust only these CA certificates (PEM) instead of the bundled roots
 *   REALER_SCOPE          optional: the OAuth scope to request (leave it unset: Realer grants its default
 *                         HTTPS scopes; a list without iot:desired-state:read gets no desired state)
 *
 * Exit status 0 when every step succeeded, or when the only failure was a transient one while sending the
 * outbox (the readings wait in it for the next run), or when SIGTERM or SIGINT stopped it (see stop_waiter);
 * 1 otherwise (the reason is printed on stderr); 2 for bad arguments.
 * Where it would talk to hardware, this example says so: its actuators are simulated, and all start at "0". */

#define _POSIX_C_SOURCE 200809L /* pthread_sigmask, sigwait, nanosleep */

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "realer.h"

/* Stopping on SIGTERM (what systemd sends to stop a service) or SIGINT (Ctrl-C), without waiting on the
 * network: the signals are blocked in every thread, and one thread waits for them with sigwait(), so that no
 * librealer function runs inside a signal handler. That thread cancels the client: a call blocked on the
 * network returns REALER_ERR_CANCELLED at once, the loop stops between steps, and whatever was not sent
 * stays in the outbox (or is sent again by the next run, under the same message_id). */
static pthread_mutex_t stop_lock = PTHREAD_MUTEX_INITIALIZER;
static const realer_client *stop_client; /* cancelled on a stop signal; NULL when there is none yet */
static int stop_signal;                  /* the signal that asked to stop; 0 while running */

static void *stop_waiter(void *arg)
{
    const sigset_t *signals = arg;
    int sig = 0;

    while (sigwait(signals, &sig) != 0) {
    }
    if (sig == SIGUSR1) {
        return NULL; /* main() is done: nobody asked to stop */
    }
    pthread_mutex_lock(&stop_lock);
    stop_signal = sig;
    if (stop_client != NULL) {
        realer_client_cancel(stop_client);
    }
    pthread_mutex_unlock(&stop_lock);
    return NULL;
}

/* The signal that asked to stop, 0 while the loop may go on. */
static int stopping(void)
{
    int sig;

    pthread_mutex_lock(&stop_lock);
    sig = stop_signal;
    pthread_mutex_unlock(&stop_lock);
    return sig;
}

/* Hands the client to the stop thread (NULL takes it back); cancels it at once if a stop came first. */
static void watch_client(const realer_client *client)
{
    pthread_mutex_lock(&stop_lock);
    stop_client = client;
    if (client != NULL && stop_signal != 0) {
        realer_client_cancel(client);
    }
    pthread_mutex_unlock(&stop_lock);
}

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
    realer_status status = realer_feed_post(client, item, &result);

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

/* Stores one item in the outbox and says so. Returns 0 when it is on disk. */
static int store_item(const realer_client *client, const realer_feed_item *item, const char *what)
{
    /* The message_id the item will carry through every resend, fixed now (generated: item->message_id is NULL). */
    char message_id[REALER_MESSAGE_ID_MAX + 1];
    realer_status status = realer_outbox_push(client, item, message_id, sizeof message_id);

    if (status != REALER_OK) {
        /* REALER_ERR_OUTBOX_FULL: the outbox refuses new items until a flush makes room. */
        print_failure(what, status);
        return -1;
    }
    printf("  %s: stored in the outbox, message_id %s\n", what, message_id);
    return 0;
}

/* Step 1: a client configured from the environment (and with an outbox at `outbox_path` unless it is NULL),
 * with a token already fetched, or (`looping`) after a transient failure to fetch one. NULL on failure. */
static realer_client *connect_from_env(const char *outbox_path, int looping)
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
    if (outbox_path != NULL) {
        /* At most 10000 readings (0 = no byte limit): days of readings for a device that reports a few
         * sensors every minute. When it is full, the oldest readings make room for new ones; the default,
         * REALER_OUTBOX_FULL_REFUSE, would keep the old ones and refuse the new instead. */
        status = realer_config_set_outbox(config, outbox_path, 10000, 0);
        if (status == REALER_OK) {
            status = realer_config_set_outbox_when_full(config, REALER_OUTBOX_FULL_DROP_OLDEST);
        }
        if (status != REALER_OK) {
            print_failure("configuring the outbox", status);
            realer_config_free(config);
            return NULL;
        }
    }
    /* With an outbox, this opens (or creates) its file: REALER_ERR_CONFIG or REALER_ERR_STORAGE when it cannot. */
    status = realer_client_new(config, &client);
    realer_config_free(config); /* the client keeps its own copy */
    if (status != REALER_OK) {
        print_failure("creating the client", status);
        return NULL;
    }
    /* Optional (every call fetches a token when it needs one), but it tells bad credentials apart early. */
    status = realer_client_authenticate(client);
    if (status != REALER_OK && looping && realer_last_error()->retryable) {
        /* Realer or the network is away: the loop stores readings meanwhile and tries again each pass. */
        printf("1. Not authenticated yet (%s: %s): going on.\n", realer_status_str(status),
               realer_last_error()->message);
        return client;
    }
    if (status != REALER_OK) {
        print_failure("authenticating", status);
        realer_client_free(client);
        return NULL;
    }
    printf("1. Authenticated.\n");
    return client;
}

/* Simulated actuators, one per usable command, all starting at "0": where a real device drives its relays.
 * They keep their values from pass to pass; the catalog's strings are copied (each pass reads a new list). */
#define MAX_ACTUATORS 64
struct actuator {
    char command_id[130];
    char value_type[64];
    char value[256];
};

static struct actuator actuators[MAX_ACTUATORS];
static size_t n_actuators;

static struct actuator *actuator_for(const char *command_id)
{
    size_t i;

    for (i = 0; i < n_actuators; i++) {
        if (strcmp(actuators[i].command_id, command_id) == 0) {
            return &actuators[i];
        }
    }
    return NULL;
}

/* The actuator of a usable command, made (at "0") the first time the catalog lists it; NULL when there is no
 * room, or its id or value type is too long for this example. */
static struct actuator *actuator_of(const realer_command *c)
{
    struct actuator *a = actuator_for(c->id);
    const char *value_type = c->value_type != NULL ? c->value_type : "";

    if (a != NULL) {
        snprintf(a->value_type, sizeof a->value_type, "%s", value_type);
        return a;
    }
    if (n_actuators == MAX_ACTUATORS || strlen(c->id) >= sizeof a->command_id ||
        strlen(value_type) >= sizeof a->value_type) {
        return NULL;
    }
    a = &actuators[n_actuators++];
    snprintf(a->command_id, sizeof a->command_id, "%s", c->id);
    snprintf(a->value_type, sizeof a->value_type, "%s", value_type);
    strcpy(a->value, "0");
    return a;
}

/* Hardware: drive the actuator to `value`. Returns 0 on success (-1: the value does not fit this device). */
static int drive(struct actuator *a, const char *value)
{
    if (strlen(value) >= sizeof a->value) {
        return -1;
    }
    strcpy(a->value, value);
    return 0;
}

/* Step 2: prints the catalog, and makes one simulated actuator per usable command (once). */
static void print_catalog(const realer_commands *commands, const realer_sensors *sensors)
{
    size_t i;

    printf("2. The catalog has %zu command(s) and %zu sensor(s).\n", realer_commands_len(commands),
           realer_sensors_len(sensors));
    for (i = 0; i < realer_commands_len(commands); i++) {
        realer_command item;
        const realer_command *c = &item;

        if (realer_commands_get(commands, i, &item) != REALER_OK) {
            continue;
        }

        if (c->error_type != NULL) {
            printf("  command %s: Realer cannot represent it (%s: %s)\n", c->id, c->error_type,
                   or_none(c->error_message));
            continue;
        }
        printf("  command %s: %s on pin %s, value %s (%s)\n", c->id, or_none(c->kind), or_none(c->pin_port),
               or_none(c->value), or_none(c->value_type));
        if (actuator_of(c) == NULL) {
            printf("  command %s: no room for its actuator in this example\n", c->id);
        }
    }
    for (i = 0; i < realer_sensors_len(sensors); i++) {
        realer_sensor item;
        const realer_sensor *s = &item;

        if (realer_sensors_get(sensors, i, &item) != REALER_OK) {
            continue;
        }
        if (s->error_type != NULL) {
            printf("  sensor %s: Realer cannot represent it (%s: %s)\n", s->id, s->error_type,
                   or_none(s->error_message));
            continue;
        }
        printf("  sensor %s: %s on pin %s, %s in %s\n", s->id, or_none(s->kind), or_none(s->pin_port),
               or_none(s->qc), or_none(s->mu));
    }
}

/* Answers one desired state with the actuator's physical value. Returns 0 when Realer has the answer. */
static int answer(const realer_client *client, const realer_desired_state *d, const struct actuator *a,
                  realer_report_status report_status, const char *what)
{
    realer_feed_item item;
    realer_status status = realer_feed_item_init_answer(&item, d, a->value, report_status);

    if (status != REALER_OK) {
        print_failure(what, status);
        return -1;
    }
    return post_item(client, &item, what);
}

/* Step 3: asks what Realer wants, drives the actuators that differ, and answers as the contract says.
 * Returns the number of failures. */
static int apply_what_realer_wants(const realer_client *client)
{
    realer_desired_states *wanted = NULL;
    realer_status status = realer_desired_states_fetch(client, &wanted);
    int failures = 0;
    int newer;
    size_t i;

    if (status != REALER_OK) {
        print_failure("asking what Realer wants", status);
        return 1;
    }
    newer = realer_desired_states_source(wanted) == REALER_DESIRED_SOURCE_DESIRED_STATES;
    printf("3. Realer wants %zu setting(s) (%s).\n", realer_desired_states_len(wanted),
           newer ? "pending desired states" : "catalog values new since the last pass");
    for (i = 0; i < realer_desired_states_len(wanted); i++) {
        realer_desired_state item;
        const realer_desired_state *d = &item;
        struct actuator *a;
        char what[200];

        if (realer_desired_states_get(wanted, i, &item) != REALER_OK) {
            continue;
        }
        a = actuator_for(d->command_id);
        if (a == NULL) {
            printf("  command %s: no actuator on this device\n", d->command_id);
            continue;
        }
        if (d->action == REALER_DESIRED_ACTION_STALE) {
            /* Expired, or older than one already answered: leave the actuator, say so. */
            printf("  command %s: desired state %s is stale, not applying it\n", d->command_id, d->desired_id);
            snprintf(what, sizeof what, "command %s: stale answer", d->command_id);
            failures += answer(client, d, a, REALER_REPORT_STATUS_STALE, what) != 0;
            continue;
        }
        if (d->value != NULL && realer_values_equal(a->value_type, a->value, d->value)) {
            if (d->desired_id == NULL) {
                continue; /* a catalog value the actuator already holds: nothing to report */
            }
            printf("  command %s: already at %s\n", d->command_id, a->value);
        } else if (d->value == NULL || drive(a, d->value) != 0) {
            printf("  command %s: cannot drive the actuator to %s\n", d->command_id, or_none(d->value));
            snprintf(what, sizeof what, "command %s: rejected answer", d->command_id);
            failures += answer(client, d, a, REALER_REPORT_STATUS_REJECTED, what) != 0;
            continue;
        } else {
            printf("  command %s: actuator driven to %s\n", d->command_id, a->value);
        }
        /* With a desired_id: "applied" with it and its sequence number; without: the new physical value. */
        snprintf(what, sizeof what, "command %s: %s %s", d->command_id, d->desired_id != NULL ? "applied" : "now",
                 a->value);
        failures += answer(client, d, a, REALER_REPORT_STATUS_APPLIED, what) != 0;
    }
    realer_desired_states_free(wanted);
    return failures;
}

/* Step 4: reports a local physical change (someone pressed the first actuator's button): its new value,
 * without desired_id. Returns 0 on success. */
static int report_local_change(const realer_client *client)
{
    realer_feed_item item;
    char what[200];
    struct actuator *a = n_actuators > 0 ? &actuators[0] : NULL;

    printf("4. Reporting a local physical change.\n");
    if (a == NULL) {
        printf("  no actuator: nothing to report.\n");
        return 0;
    }
    drive(a, strcmp(a->value, "0") == 0 ? "1" : "0");
    realer_feed_item_init(&item);
    item.command_id = a->command_id;
    item.value = a->value;
    /* No desired_id: this change did not come from Realer. report_status stays NONE (omitted), which
     * Realer reads as "reported"; sequence_number stays -1 (absent). */
    snprintf(what, sizeof what, "command %s: local change to %s", a->command_id, a->value);
    return post_item(client, &item, what);
}

/* Step 5a: one reading per usable sensor, one request each, or (use_outbox) stored in the outbox one by one.
 * Returns the number of failures. */
static int post_readings_one_by_one(const realer_client *client, const realer_sensors *sensors, int use_outbox)
{
    int failures = 0;
    size_t i;

    if (use_outbox) {
        printf("5. Storing one reading per sensor in the outbox, one by one.\n");
    } else {
        printf("5. Posting one reading per sensor, one by one.\n");
    }
    for (i = 0; i < realer_sensors_len(sensors); i++) {
        realer_sensor sensor;
        const realer_sensor *s = &sensor;
        char value[32];
        char observed_at[REALER_TIMESTAMP_SIZE];
        char what[160];
        realer_feed_item item;
        realer_status status;

        if (realer_sensors_get(sensors, i, &sensor) != REALER_OK || s->error_type != NULL) {
            continue;
        }
        read_sensor(s, 0, value, sizeof value);
        /* When the value was observed, not when it is sent: readings may wait in a queue. */
        status = realer_timestamp_format(0, observed_at, sizeof observed_at);
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
         * later (after a reboot, say), store result.message_id with the reading and send it again; the
         * outbox does exactly that for you. */
        snprintf(what, sizeof what, "sensor %s: reading %s at %s", s->id, value, observed_at);
        if ((use_outbox ? store_item(client, &item, what) : post_item(client, &item, what)) != 0) {
            failures++;
        }
    }
    return failures;
}

/* Step 5b: a new reading of every usable sensor, all in one batch, or (use_outbox) stored in the outbox in
 * one transaction. Returns the number of failures. */
static int post_readings_as_batch(const realer_client *client, const realer_sensors *sensors, int use_outbox)
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

    if (use_outbox) {
        printf("6. Storing a new reading of every sensor in the outbox, all at once.\n");
    } else {
        printf("6. Posting a new reading of every sensor as one batch.\n");
    }
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
    status = realer_timestamp_format(0, observed_at, sizeof observed_at);
    if (status != REALER_OK) {
        print_failure("formatting the readings' time", status);
        failures++;
        goto done;
    }
    for (i = 0; i < n_sensors; i++) {
        realer_sensor item;
        const realer_sensor *s = &item;

        if (realer_sensors_get(sensors, i, &item) != REALER_OK) {
            continue;
        }
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

    if (use_outbox) {
        /* All of them on disk, or (on any error) none: a power cut cannot leave half a group. */
        status = realer_outbox_push_many(client, items, count);
        if (status != REALER_OK) {
            print_failure("storing the readings in the outbox", status);
            failures++;
            goto done;
        }
        for (i = 0; i < count; i++) {
            printf("  sensor %s: reading %s at %s: stored in the outbox\n", items[i].sensor_id, items[i].value,
                   observed_at);
        }
        goto done;
    }

    /* REALER_OK means Realer answered; each item may still have been rejected on its own. */
    status = realer_feed_post_batch(client, items, count, &results);
    if (status != REALER_OK) {
        print_failure("posting the batch", status);
        failures++;
    }
    /* results is set whenever the items could be read, also on failure: it says which items to resend. */
    for (i = 0; i < realer_batch_result_len(results); i++) {
        realer_item_result item;
        const realer_item_result *r = &item;

        if (realer_batch_result_get(results, i, &item) != REALER_OK) {
            continue;
        }

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

/* Prints the dead letters (items Realer refused for good), then clears them. A real device would keep them
 * for its maintainer, or report them through its own channel: resending them unchanged cannot succeed. */
static void print_and_clear_dead_letters(const realer_client *client)
{
    realer_dead_letters *dead = NULL;
    realer_status status = realer_dead_letters_fetch(client, &dead);
    size_t i;

    if (status != REALER_OK) {
        print_failure("reading the outbox's dead letters", status);
        return;
    }
    for (i = 0; i < realer_dead_letters_len(dead); i++) {
        realer_dead_letter item;
        const realer_dead_letter *d = &item;

        if (realer_dead_letters_get(dead, i, &item) != REALER_OK) {
            continue;
        }

        fprintf(stderr, "FAILED: refused for good: message_id %s, code %d (%s: %s)\n", d->message_id, (int)d->code,
                d->error_type, d->error_message);
        fprintf(stderr, "  item:    %s\n", d->item_json);
        if (d->details_json[0] != '\0') {
            fprintf(stderr, "  details: %s\n", d->details_json);
        }
    }
    realer_dead_letters_free(dead);
    status = realer_dead_letters_clear(client, NULL);
    if (status != REALER_OK) {
        print_failure("clearing the outbox's dead letters", status);
    }
}

/* Step 7 (with --outbox): sends everything the outbox holds: this run's readings, and any an earlier run
 * could not send. Returns the number of failures. A transient failure (no network, Realer busy) is none:
 * the readings stay in the outbox for the next run, which is what it is for; *waiting is set then. */
static int flush_outbox(const realer_client *client, int *waiting)
{
    realer_flush_report report;
    realer_outbox_stats stats;
    realer_status status;
    int failures = 0;

    printf("7. Sending the outbox.\n");
    /* 0 = every pending item, oldest first, in batches of up to 100. The report is written also on failure. */
    status = realer_outbox_flush(client, 0, &report);
    printf("  sent %llu, already stored before %llu (replays), refused for good %llu, still pending %llu\n",
           (unsigned long long)report.sent, (unsigned long long)report.replayed,
           (unsigned long long)report.rejected, (unsigned long long)report.pending);
    if (status != REALER_OK && realer_last_error()->retryable) {
        printf("  not sent now (%s: %s): the readings stay in the outbox for the next run.\n",
               realer_status_str(status), realer_last_error()->message);
        *waiting = 1;
    } else if (status != REALER_OK) {
        print_failure("sending the outbox", status);
        failures++;
    }
    if (report.rejected > 0) {
        print_and_clear_dead_letters(client);
        failures++;
    }

    status = realer_outbox_stats_read(client, &stats);
    if (status != REALER_OK) {
        print_failure("reading the outbox's state", status);
        return failures + 1;
    }
    printf("  outbox: %llu pending (%llu bytes", (unsigned long long)stats.pending,
           (unsigned long long)stats.bytes);
    if (stats.oldest_age_ms >= 0) {
        printf(", the oldest stored %lld ms ago", (long long)stats.oldest_age_ms);
    }
    printf("), %llu dead letter(s), %llu dropped when it was full\n", (unsigned long long)stats.dead,
           (unsigned long long)stats.dropped);
    return failures;
}

/* The catalog the last pass could read: when Realer cannot be reached, the loop goes on with it. */
static realer_commands *known_commands;
static realer_sensors *known_sensors;

/* Step 2: reads the catalog. Returns 0 when it was read (and replaces the one kept). */
static int read_catalog(const realer_client *client)
{
    realer_commands *new_commands = NULL;
    realer_sensors *new_sensors = NULL;
    realer_status status = realer_commands_fetch(client, &new_commands);

    if (status != REALER_OK) {
        print_failure("reading the commands", status);
        return -1;
    }
    status = realer_sensors_fetch(client, &new_sensors);
    if (status != REALER_OK) {
        print_failure("reading the sensors", status);
        realer_commands_free(new_commands);
        return -1;
    }
    realer_commands_free(known_commands);
    realer_sensors_free(known_sensors);
    known_commands = new_commands;
    known_sensors = new_sensors;
    print_catalog(known_commands, known_sensors);
    return 0;
}

/* Steps 2-7, once. Returns the number of failures; *waiting is set when readings wait in the outbox. */
static int run_pass(const realer_client *client, const char *outbox_path, int *waiting)
{
    int failures = 0;

    if (read_catalog(client) != 0) {
        if (known_sensors == NULL) {
            return 1; /* no catalog read yet: nothing is known to report */
        }
        printf("2. Going on with the catalog read before.\n");
        failures++;
    }

    /* Each step starts only while nobody asked to stop; one under way is cancelled by the stop thread. */
    if (!stopping()) {
        failures += apply_what_realer_wants(client);
    }
    if (!stopping()) {
        failures += report_local_change(client) != 0;
    }
    if (!stopping()) {
        failures += post_readings_one_by_one(client, known_sensors, outbox_path != NULL);
    }
    if (!stopping()) {
        failures += post_readings_as_batch(client, known_sensors, outbox_path != NULL);
    }
    if (!stopping() && outbox_path != NULL) {
        failures += flush_outbox(client, waiting);
    }
    return failures;
}

/* Waits `ms` milliseconds between passes, in steps short enough to stop soon after a stop signal. */
static void wait_between_passes(long ms)
{
    while (ms > 0 && !stopping()) {
        long step = ms < 50 ? ms : 50;
        struct timespec t = {0, step * 1000000L};

        nanosleep(&t, NULL);
        ms -= step;
    }
}

/* A positive decimal number from an argument; 0 when it is not one. */
static long positive(const char *arg)
{
    char *end = NULL;
    long n = strtol(arg, &end, 10);

    return (end != arg && *end == '\0' && n > 0) ? n : 0;
}

static const char USAGE[] = "usage: firmware_loop [--outbox PATH] [--passes N] [--interval-ms MS]\n";

int main(int argc, char **argv)
{
    const char *outbox_path = NULL;
    long passes = 1;
    long interval_ms = 1000;
    long pass;
    int waiting = 0;
    int i;
    realer_client *client = NULL;
    int failures = 0;
    sigset_t signals;
    pthread_t waiter;

    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--outbox") == 0 && i + 1 < argc && outbox_path == NULL) {
            outbox_path = argv[++i];
        } else if (strcmp(argv[i], "--passes") == 0 && i + 1 < argc && (passes = positive(argv[++i])) > 0) {
            continue;
        } else if (strcmp(argv[i], "--interval-ms") == 0 && i + 1 < argc &&
                   (interval_ms = positive(argv[++i])) > 0) {
            continue;
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(USAGE, stdout);
            return EXIT_SUCCESS;
        } else {
            fputs(USAGE, stderr);
            return 2;
        }
    }

    /* Before any other thread exists, so that every thread inherits the mask. */
    sigemptyset(&signals);
    sigaddset(&signals, SIGTERM);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGUSR1);
    if (pthread_sigmask(SIG_BLOCK, &signals, NULL) != 0 || pthread_create(&waiter, NULL, stop_waiter, &signals) != 0) {
        fprintf(stderr, "FAILED: cannot set up the stop signals\n");
        return EXIT_FAILURE;
    }

    /* Line by line, as a service's log should be, also into a file or a pipe. */
    setvbuf(stdout, NULL, _IOLBF, 0);
    /* The header this program was built with and the library it runs with should agree. */
    printf("librealer %s (built with header %s)\n", realer_version(), REALER_VERSION_STRING);

    client = connect_from_env(outbox_path, passes > 1);
    if (client == NULL) {
        pthread_kill(waiter, SIGUSR1);
        pthread_join(waiter, NULL);
        return EXIT_FAILURE;
    }
    watch_client(client);

    for (pass = 1; pass <= passes && !stopping(); pass++) {
        if (pass > 1) {
            wait_between_passes(interval_ms);
            if (stopping()) {
                break;
            }
            printf("Pass %ld of %ld.\n", pass, passes);
        }
        failures += run_pass(client, outbox_path, &waiting);
    }

    watch_client(NULL);
    pthread_kill(waiter, SIGUSR1); /* ends the stop thread if no signal did */
    pthread_join(waiter, NULL);
    realer_sensors_free(known_sensors);
    realer_commands_free(known_commands);
    realer_client_free(client);
    if (stopping()) {
        printf("Stopped by %s: what was not sent %s.\n", stopping() == SIGTERM ? "SIGTERM" : "SIGINT",
               outbox_path != NULL ? "waits in the outbox for the next run" : "is sent again by the next run");
        return EXIT_SUCCESS;
    }
    if (failures != 0) {
        fprintf(stderr, "The loop failed: %d step(s) went wrong.\n", failures);
        return EXIT_FAILURE;
    }
    if (waiting) {
        printf("Done: the readings not sent wait in the outbox %s for the next run.\n", outbox_path);
        return EXIT_SUCCESS;
    }
    printf("Done: every step succeeded.\n");
    return EXIT_SUCCESS;
}
