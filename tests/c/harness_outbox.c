/* harness_outbox.c: the outbox: configuration, push, flush, dead letters, bounds. */

#include "harness.h"

/* ---- outbox ----------------------------------------------------------------------------------------- */

static void outbox_file(char *buf, size_t len, const char *name)
{
    snprintf(buf, len, "%s/%s-%s.db", test_dir, run_id, name);
}

/* A demo client whose outbox is this run's file `name`; a negative `policy` keeps the default. */
static realer_client *outbox_client(const char *name, uint64_t max_items, uint64_t max_bytes, int policy)
{
    realer_config *c = demo_config();
    realer_client *client = NULL;
    char path[1024];

    if (c == NULL) {
        return NULL;
    }
    outbox_file(path, sizeof path, name);
    CHECK_STATUS(realer_config_set_outbox(c, path, max_items, max_bytes), REALER_OK);
    if (policy >= 0) {
        CHECK_STATUS(realer_config_set_outbox_when_full(c, policy), REALER_OK);
    }
    CHECK_STATUS(realer_client_new(c, &client), REALER_OK);
    realer_config_free(c);
    return client;
}

/* The outbox's state; a failed read is a failed check (with the caller's line) and reads as all -1. */
static realer_outbox_stats stats_at(const realer_client *client, const char *file, int line)
{
    realer_outbox_stats s;

    memset(&s, 0xff, sizeof s);
    check_status_at(realer_outbox_stats_read(client, &s), REALER_OK, file, line, "realer_outbox_stats_read");
    return s;
}

#define STATS(client) stats_at((client), __FILE__, __LINE__)

/* A reading of `sensor` with a fixed message_id (NULL: generated) and value_received_at (NULL: now). */
static void reading(realer_feed_item *item, const realer_sensor *sensor, const char *value, const char *at,
                    const char *message_id)
{
    realer_feed_item_init(item);
    item->sensor_id = sensor->id;
    item->value = value;
    item->value_received_at = at;
    item->message_id = message_id;
}

/* A bad item pushed alone: REALER_ERR_INVALID_ARGUMENT naming `field`, and nothing stored. */
static void check_push_refused_at(const realer_client *client, const realer_feed_item *item, const char *field,
                                  const char *file, int line)
{
    uint64_t before = stats_at(client, file, line).pending;
    realer_status status = realer_outbox_push(client, item, NULL, 0);
    char what[256];

    snprintf(what, sizeof what, "outbox push of a bad item (%s): status %s, message \"%s\"", field,
             realer_status_str(status), realer_last_error()->message);
    check_at(status == REALER_ERR_INVALID_ARGUMENT && realer_last_error()->status == REALER_ERR_INVALID_ARGUMENT &&
                 contains(realer_last_error()->message, field) && stats_at(client, file, line).pending == before,
             file, line, what);
}

#define CHECK_PUSH_REFUSED(item, field) check_push_refused_at(client, (item), (field), __FILE__, __LINE__)

/* realer_client_new could not open the outbox: `want`, a message naming `mention` (the path, or at least
 * the outbox), and no client. */
static void check_outbox_unopenable_at(const char *path, realer_status want, const char *mention, const char *file,
                                       int line)
{
    realer_config *c = demo_config();
    realer_client *client = NULL;
    realer_status status;
    char what[1280];

    check_status_at(realer_config_set_outbox(c, path, 0, 0), REALER_OK, file, line, "realer_config_set_outbox");
    status = realer_client_new(c, &client);
    snprintf(what, sizeof what, "realer_client_new with the outbox %s: %s, expected %s, message \"%s\"", path,
             realer_status_str(status), realer_status_str(want), realer_last_error()->message);
    check_at(status == want && realer_last_error()->status == want && contains(realer_last_error()->message, mention) &&
                 client == NULL,
             file, line, what);
    realer_client_free(client);
    realer_config_free(c);
}

void test_outbox_config(void)
{
    realer_config *c = realer_config_new();
    char path[1024];
    char garbage[1024];
    FILE *f;

    /* The policy needs an outbox to apply to. */
    CHECK_STATUS(realer_config_set_outbox_when_full(c, REALER_OUTBOX_FULL_REFUSE), REALER_ERR_CONFIG);
    CHECK_MESSAGE_HAS("realer_config_set_outbox");

    outbox_file(path, sizeof path, "config");
    CHECK_STATUS(realer_config_set_outbox(NULL, path, 0, 0), REALER_ERR_INVALID_ARGUMENT);
    CHECK_MESSAGE_HAS("config");
    CHECK_STATUS(realer_config_set_outbox(c, NULL, 0, 0), REALER_ERR_INVALID_ARGUMENT);
    CHECK_MESSAGE_HAS("path");
    CHECK_STATUS(realer_config_set_outbox(c, NOT_UTF8, 0, 0), REALER_ERR_INVALID_ARGUMENT);
    CHECK_MESSAGE_HAS("UTF-8");
    CHECK_STATUS(realer_config_set_outbox(c, "", 0, 0), REALER_ERR_CONFIG);
    CHECK_STATUS(realer_config_set_outbox(c, path, 0, 0), REALER_OK);
    CHECK_STATUS(realer_config_set_outbox(c, path, 10000, 1 << 20), REALER_OK);

    CHECK_STATUS(realer_config_set_outbox_when_full(NULL, REALER_OUTBOX_FULL_REFUSE), REALER_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(realer_config_set_outbox_when_full(c, 2), REALER_ERR_INVALID_ARGUMENT);
    CHECK_MESSAGE_HAS("policy");
    CHECK_STATUS(realer_config_set_outbox_when_full(c, -1), REALER_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(realer_config_set_outbox_when_full(c, REALER_OUTBOX_FULL_DROP_OLDEST), REALER_OK);
    CHECK_STATUS(realer_config_set_outbox_when_full(c, REALER_OUTBOX_FULL_REFUSE), REALER_OK);
    realer_config_free(c);

    /* The file is opened by realer_client_new: a missing directory is a configuration error naming the path. */
    snprintf(path, sizeof path, "%s/%s-missing-dir/outbox.db", test_dir, run_id);
    check_outbox_unopenable_at(path, REALER_ERR_CONFIG, path, __FILE__, __LINE__);
    /* A file that is not an SQLite database: a storage error. */
    outbox_file(garbage, sizeof garbage, "not-a-database");
    f = fopen(garbage, "w");
    CHECK(f != NULL);
    if (f != NULL) {
        fputs("this is not an SQLite database, just text long enough to have a header of 100 bytes..........\n", f);
        fclose(f);
        /* The message says "outbox" but not which file (the path is named only for CONFIG errors at open). */
        check_outbox_unopenable_at(garbage, REALER_ERR_STORAGE, "outbox", __FILE__, __LINE__);
    }
}

/* Every outbox call on a client configured without one: REALER_ERR_CONFIG, saying how to configure it. */
void test_outbox_not_configured(const realer_client *client, const struct catalog_picks *p)
{
    realer_feed_item item;
    realer_flush_report report;
    realer_outbox_stats stats;
    realer_dead_letters *dead = (realer_dead_letters *)&n_passed;
    uint64_t cleared = 77;

    if (p->sensor == NULL) {
        return;
    }
    reading(&item, p->sensor, "1.0", NULL, NULL);
    CHECK_STATUS(realer_outbox_push(client, &item, NULL, 0), REALER_ERR_CONFIG);
    CHECK_MESSAGE_HAS("realer_config_set_outbox");
    CHECK_STATUS(realer_outbox_push_many(client, &item, 1), REALER_ERR_CONFIG);
    memset(&report, 0x5a, sizeof report);
    CHECK_STATUS(realer_outbox_flush(client, 0, &report), REALER_ERR_CONFIG);
    /* The report is written also on failure. */
    CHECK(report.sent == 0 && report.replayed == 0 && report.rejected == 0 && report.pending == 0);
    CHECK_STATUS(realer_outbox_stats_read(client, &stats), REALER_ERR_CONFIG);
    CHECK_STATUS(realer_dead_letters_fetch(client, &dead), REALER_ERR_CONFIG);
    CHECK(dead == (realer_dead_letters *)&n_passed); /* out-parameters are written only on success */
    CHECK_STATUS(realer_dead_letters_clear(client, &cleared), REALER_ERR_CONFIG);
    CHECK(cleared == 77);
}

void test_outbox_push_and_flush(const struct catalog_picks *p)
{
    realer_client *client;
    realer_client *second;
    realer_feed_item item;
    realer_feed_item items[4];
    realer_flush_report report;
    realer_outbox_stats s;
    realer_dead_letters *dead = NULL;
    const realer_dead_letter *d;
    char message_id[REALER_MESSAGE_ID_MAX + 1];
    char fixed_id[REALER_MESSAGE_ID_MAX + 1];
    char unknown_id[REALER_MESSAGE_ID_MAX + 1];
    char ids[4][REALER_MESSAGE_ID_MAX + 1];
    char small[16];
    char at[REALER_TIMESTAMP_SIZE];
    char fixed_at[REALER_TIMESTAMP_SIZE];
    uint64_t cleared = 0;
    size_t i;

    if (p->sensor == NULL || p->sensor2 == NULL) {
        return;
    }
    client = outbox_client("main", 0, 0, -1);
    CHECK(client != NULL);
    if (client == NULL) {
        return;
    }
    s = STATS(client);
    CHECK(s.pending == 0 && s.bytes == 0 && s.oldest_age_ms == -1 && s.dead == 0 && s.dropped == 0 && s.dead_dropped == 0);

    /* A reading without message_id or time: both are fixed now, and the message_id is handed back. */
    reading(&item, p->sensor, "20.1", NULL, NULL);
    memset(message_id, 'x', sizeof message_id);
    CHECK_STATUS(realer_outbox_push(client, &item, message_id, sizeof message_id), REALER_OK);
    CHECK(memchr(message_id, '\0', sizeof message_id) != NULL && message_id[0] != '\0' && message_id[0] != 'x');
    s = STATS(client);
    CHECK(s.pending == 1 && s.bytes > 0 && s.oldest_age_ms >= 0 && s.oldest_age_ms < 600000 && s.dead == 0);

    /* A buffer too small for any message_id: refused before anything is stored. */
    now_timestamp(fixed_at);
    make_message_id(fixed_id, sizeof fixed_id, "outbox-fixed");
    reading(&item, p->sensor2, "48.1", fixed_at, fixed_id);
    memset(small, 'x', sizeof small);
    CHECK_STATUS(realer_outbox_push(client, &item, small, sizeof small), REALER_ERR_BUFFER_TOO_SMALL);
    CHECK(small[0] == 'x');
    CHECK_STATUS(realer_outbox_push(client, &item, message_id, REALER_MESSAGE_ID_MAX), REALER_ERR_BUFFER_TOO_SMALL);
    CHECK(STATS(client).pending == 1);
    /* The same item with room for its id: stored now, so it was not before. */
    CHECK_STATUS(realer_outbox_push(client, &item, message_id, sizeof message_id), REALER_OK);
    CHECK(strcmp(message_id, fixed_id) == 0);
    CHECK(STATS(client).pending == 2);
    /* The same item again (a retry after a crash, say): accepted, not a second copy. A NULL buffer is fine. */
    CHECK_STATUS(realer_outbox_push(client, &item, NULL, 0), REALER_OK);
    CHECK(STATS(client).pending == 2);
    /* The same message_id with another payload: refused. */
    item.value = "48.9";
    CHECK_PUSH_REFUSED(&item, "message_id");
    item.value = "48.1";

    /* Bad items: refused before anything is stored, naming the field. */
    reading(&item, p->sensor, "1.0", NULL, NULL);
    item.command_id = p->plain != NULL ? p->plain->id : "1";
    CHECK_PUSH_REFUSED(&item, "sensor_id");
    reading(&item, p->sensor, NULL, NULL, NULL);
    CHECK_PUSH_REFUSED(&item, "value");
    item.value = NOT_UTF8;
    CHECK_PUSH_REFUSED(&item, "value");
    reading(&item, p->sensor, "1.0", "yesterday", NULL);
    CHECK_PUSH_REFUSED(&item, "value_received_at");
    reading(&item, p->sensor, "1.0", NULL, "has space");
    CHECK_PUSH_REFUSED(&item, "message_id");
    reading(&item, p->sensor, "1.0", NULL, NULL);
    item.desired_id = "des_x";
    CHECK_PUSH_REFUSED(&item, "desired_id");

    /* NULL arguments. */
    reading(&item, p->sensor, "1.0", NULL, NULL);
    CHECK_STATUS(realer_outbox_push(NULL, &item, NULL, 0), REALER_ERR_INVALID_ARGUMENT);
    CHECK_MESSAGE_HAS("client");
    CHECK_STATUS(realer_outbox_push(client, NULL, NULL, 0), REALER_ERR_INVALID_ARGUMENT);
    CHECK_MESSAGE_HAS("item");
    CHECK(STATS(client).pending == 2);

    /* A group: all or nothing. */
    now_timestamp(at);
    for (i = 0; i < 4; i++) {
        char what[32];

        snprintf(what, sizeof what, "outbox-group-%zu", i);
        make_message_id(ids[i], sizeof ids[i], what);
        reading(&items[i], i % 2 == 0 ? p->sensor : p->sensor2, "30.5", at, ids[i]);
    }
    items[2].value_received_at = "2026-04-24 10:15:00";
    CHECK_STATUS(realer_outbox_push_many(client, items, 4), REALER_ERR_INVALID_ARGUMENT);
    CHECK(contains(realer_last_error()->message, "items[2]") || contains(realer_last_error()->message, "item 2"));
    CHECK_MESSAGE_HAS("value_received_at");
    CHECK(STATS(client).pending == 2);
    items[2].value_received_at = at;
    CHECK_STATUS(realer_outbox_push_many(client, items, 0), REALER_ERR_INVALID_ARGUMENT);
    CHECK_MESSAGE_HAS("count");
    /* Above the maximum: refused before the items are read. */
    CHECK_STATUS(realer_outbox_push_many(client, items, (size_t)REALER_BATCH_MAX_ITEMS + 1),
                 REALER_ERR_INVALID_ARGUMENT);
    CHECK_MESSAGE_HAS("count");
    CHECK_STATUS(realer_outbox_push_many(client, NULL, 4), REALER_ERR_INVALID_ARGUMENT);
    CHECK_MESSAGE_HAS("items");
    CHECK_STATUS(realer_outbox_push_many(NULL, items, 4), REALER_ERR_INVALID_ARGUMENT);
    CHECK(STATS(client).pending == 2);
    CHECK_STATUS(realer_outbox_push_many(client, items, 4), REALER_OK);
    CHECK(STATS(client).pending == 6);

    /* A reading of a sensor Realer does not know: valid here, refused for good by the server. */
    make_message_id(unknown_id, sizeof unknown_id, "outbox-unknown-sensor");
    realer_feed_item_init(&item);
    item.sensor_id = "987654321";
    item.value = "1.0";
    item.message_id = unknown_id;
    CHECK_STATUS(realer_outbox_push(client, &item, NULL, 0), REALER_OK);
    CHECK(STATS(client).pending == 7);

    /* Another client on the same file sees the same outbox. */
    second = outbox_client("main", 0, 0, -1);
    CHECK(second != NULL);
    if (second != NULL) {
        CHECK(STATS(second).pending == 7);
    }

    memset(&report, 0x5a, sizeof report);
    CHECK_STATUS(realer_outbox_flush(client, 0, &report), REALER_OK);
    CHECK(report.sent == 6);
    CHECK(report.replayed == 0);
    CHECK(report.rejected == 1);
    CHECK(report.pending == 0);
    s = STATS(client);
    CHECK(s.pending == 0 && s.bytes == 0 && s.oldest_age_ms == -1 && s.dead == 1 && s.dropped == 0 && s.dead_dropped == 0);
    if (second != NULL) {
        CHECK(STATS(second).pending == 0);
    }

    /* The dead letter says what Realer said. */
    CHECK_STATUS(realer_dead_letters_fetch(client, &dead), REALER_OK);
    CHECK(realer_dead_letters_len(dead) == 1);
    d = dead_letter_at(dead, 0);
    CHECK(d != NULL);
    if (d != NULL) {
        CHECK(strcmp(d->message_id, unknown_id) == 0);
        CHECK(d->code == 4022);
        CHECK(strcmp(d->error_type, "validation_failed") == 0);
        CHECK(d->error_message != NULL && d->error_message[0] != '\0');
        CHECK(contains(d->details_json, "sensor_id"));
        CHECK(contains(d->item_json, "987654321") && contains(d->item_json, unknown_id));
        CHECK(d->failed_at_unix_ms > (int64_t)(time(NULL) - 600) * 1000);
    }
    CHECK(dead_letter_at(dead, 1) == NULL);
    CHECK(dead_letter_at(dead, (size_t)-1) == NULL);
    realer_dead_letters_free(dead);
    dead = NULL;
    CHECK_STATUS(realer_dead_letters_fetch(NULL, &dead), REALER_ERR_INVALID_ARGUMENT);
    CHECK(dead == NULL);
    CHECK_STATUS(realer_dead_letters_fetch(client, NULL), REALER_ERR_INVALID_ARGUMENT);
    CHECK_MESSAGE_HAS("out");

    /* An item already sent, pushed again with the same message_id and value_received_at (a device that
     * restarted before it learned the flush went through): Realer answers idempotent, a replay. */
    reading(&item, p->sensor2, "48.1", fixed_at, fixed_id);
    CHECK_STATUS(realer_outbox_push(client, &item, NULL, 0), REALER_OK);
    CHECK(STATS(client).pending == 1);
    CHECK_STATUS(realer_outbox_flush(client, 0, &report), REALER_OK);
    CHECK(report.sent == 0 && report.replayed == 1 && report.rejected == 0 && report.pending == 0);

    /* max_items bounds one flush; the rest waits for the next. A NULL report is fine. */
    now_timestamp(at);
    for (i = 0; i < 3; i++) {
        char what[32];

        snprintf(what, sizeof what, "outbox-bounded-flush-%zu", i);
        make_message_id(ids[i], sizeof ids[i], what);
        reading(&items[i], p->sensor, "22.0", at, ids[i]);
    }
    CHECK_STATUS(realer_outbox_push_many(client, items, 3), REALER_OK);
    CHECK_STATUS(realer_outbox_flush(client, 2, &report), REALER_OK);
    CHECK(report.sent == 2 && report.pending == 1);
    CHECK_STATUS(realer_outbox_flush(client, 0, NULL), REALER_OK);
    CHECK(STATS(client).pending == 0);
    CHECK_STATUS(realer_outbox_flush(client, 0, &report), REALER_OK); /* nothing to send */
    CHECK(report.sent == 0 && report.replayed == 0 && report.rejected == 0 && report.pending == 0);
    CHECK_STATUS(realer_outbox_flush(NULL, 0, &report), REALER_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(realer_outbox_stats_read(NULL, &s), REALER_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(realer_outbox_stats_read(client, NULL), REALER_ERR_INVALID_ARGUMENT);
    CHECK_MESSAGE_HAS("out");

    /* Clearing the dead letters, with the count... */
    CHECK_STATUS(realer_dead_letters_clear(client, &cleared), REALER_OK);
    CHECK(cleared == 1);
    CHECK(STATS(client).dead == 0);
    CHECK_STATUS(realer_dead_letters_fetch(client, &dead), REALER_OK);
    CHECK(dead != NULL && realer_dead_letters_len(dead) == 0);
    CHECK(dead_letter_at(dead, 0) == NULL);
    realer_dead_letters_free(dead);
    dead = NULL;
    CHECK_STATUS(realer_dead_letters_clear(client, &cleared), REALER_OK);
    CHECK(cleared == 0);
    /* ...and without. */
    make_message_id(unknown_id, sizeof unknown_id, "outbox-unknown-sensor-2");
    realer_feed_item_init(&item);
    item.sensor_id = "987654321";
    item.value = "2.0";
    item.message_id = unknown_id;
    CHECK_STATUS(realer_outbox_push(client, &item, NULL, 0), REALER_OK);
    CHECK_STATUS(realer_outbox_flush(client, 0, &report), REALER_OK);
    CHECK(report.rejected == 1 && report.pending == 0);
    CHECK(STATS(client).dead == 1);
    CHECK_STATUS(realer_dead_letters_clear(client, NULL), REALER_OK);
    CHECK(STATS(client).dead == 0);
    CHECK_STATUS(realer_dead_letters_clear(NULL, &cleared), REALER_ERR_INVALID_ARGUMENT);

    CHECK(realer_dead_letters_len(NULL) == 0);
    CHECK(realer_dead_letters_get(NULL, 0, NULL) == REALER_ERR_INVALID_ARGUMENT);
    realer_dead_letters_free(NULL);
    realer_client_free(second);
    realer_client_free(client);
}

/* Counts the library's warnings about dropped items. */
static void count_drop_warning(void *user_data, realer_log_level level, const char *message)
{
    int *warnings = user_data;

    if (level == REALER_LOG_WARN && contains(message, "dropped")) {
        (*warnings)++;
    }
}

/* A bounded outbox: refusing new items when full, or dropping the oldest. */
void test_outbox_bounded(const realer_client *direct, const struct catalog_picks *p)
{
    realer_client *client;
    realer_config *c;
    realer_feed_item items[5];
    realer_feed_item item;
    realer_feed_result result;
    realer_flush_report report;
    realer_outbox_stats s;
    char ids[5][REALER_MESSAGE_ID_MAX + 1];
    realer_feed_item big[4];
    char big_ids[4][REALER_MESSAGE_ID_MAX + 1];
    char extra_id[REALER_MESSAGE_ID_MAX + 1];
    char at[REALER_TIMESTAMP_SIZE];
    char path[1024];
    int warnings = 0;
    size_t i;

    if (p->sensor == NULL) {
        return;
    }
    now_timestamp(at);
    for (i = 0; i < 5; i++) {
        char what[32];

        snprintf(what, sizeof what, "outbox-full-%zu", i);
        make_message_id(ids[i], sizeof ids[i], what);
        reading(&items[i], p->sensor, "23.0", at, ids[i]);
    }
    make_message_id(extra_id, sizeof extra_id, "outbox-full-extra");

    /* Refuse (set explicitly, though it is the default): nothing stored is lost, the new item is refused. */
    client = outbox_client("refuse", 3, 0, REALER_OUTBOX_FULL_REFUSE);
    CHECK(client != NULL);
    if (client != NULL) {
        CHECK_STATUS(realer_outbox_push_many(client, items, 3), REALER_OK);
        CHECK_STATUS(realer_outbox_push(client, &items[3], NULL, 0), REALER_ERR_OUTBOX_FULL);
        CHECK(realer_last_error()->message[0] != '\0');
        CHECK_STATUS(realer_outbox_push_many(client, &items[3], 2), REALER_ERR_OUTBOX_FULL);
        /* An item already pending takes no room: accepted. */
        CHECK_STATUS(realer_outbox_push(client, &items[0], NULL, 0), REALER_OK);
        s = STATS(client);
        CHECK(s.pending == 3 && s.dropped == 0);
        CHECK_STATUS(realer_outbox_flush(client, 0, &report), REALER_OK);
        CHECK(report.sent == 3 && report.pending == 0);
        /* Room again. */
        reading(&item, p->sensor, "23.5", at, extra_id);
        CHECK_STATUS(realer_outbox_push(client, &item, NULL, 0), REALER_OK);
        CHECK_STATUS(realer_outbox_flush(client, 0, &report), REALER_OK);
        CHECK(report.sent == 1 && report.pending == 0);
        realer_client_free(client);
    }

    /* Drop the oldest, counted and logged. */
    c = demo_config();
    outbox_file(path, sizeof path, "drop-oldest");
    CHECK_STATUS(realer_config_set_outbox(c, path, 3, 0), REALER_OK);
    CHECK_STATUS(realer_config_set_outbox_when_full(c, REALER_OUTBOX_FULL_DROP_OLDEST), REALER_OK);
    CHECK_STATUS(realer_config_set_logger(c, count_drop_warning, &warnings, REALER_LOG_WARN), REALER_OK);
    client = client_from(c);
    realer_config_free(c);
    CHECK(client != NULL);
    if (client == NULL) {
        return;
    }
    for (i = 0; i < 5; i++) {
        /* Other message_ids than the refuse outbox's: those are stored in Realer already. */
        char what[32];

        snprintf(what, sizeof what, "outbox-drop-%zu", i);
        make_message_id(ids[i], sizeof ids[i], what);
        CHECK_STATUS(realer_outbox_push(client, &items[i], NULL, 0), REALER_OK);
    }
    s = STATS(client);
    CHECK(s.pending == 3 && s.dropped == 2);
    CHECK(warnings == 2);
    /* A group of more new items than the whole outbox holds is refused even so: dropping cannot make room. */
    for (i = 0; i < 4; i++) {
        char what[32];

        snprintf(what, sizeof what, "outbox-drop-big-%zu", i);
        make_message_id(big_ids[i], sizeof big_ids[i], what);
        reading(&big[i], p->sensor, "23.0", at, big_ids[i]);
    }
    CHECK_STATUS(realer_outbox_push_many(client, big, 4), REALER_ERR_OUTBOX_FULL);
    s = STATS(client);
    CHECK(s.pending == 3 && s.dropped == 2);
    CHECK_STATUS(realer_outbox_flush(client, 0, &report), REALER_OK);
    CHECK(report.sent == 3 && report.pending == 0);
    s = STATS(client);
    CHECK(s.pending == 0 && s.dropped == 2); /* dropped counts ever, not only what is pending */
    realer_client_free(client);

    /* The newest were sent (a direct post of one is a replay), the two oldest never were. */
    CHECK_STATUS(realer_feed_post(direct, &items[4], &result), REALER_OK);
    CHECK(result.outcome == REALER_FEED_OUTCOME_IDEMPOTENT);
    CHECK_STATUS(realer_feed_post(direct, &items[0], &result), REALER_OK);
    CHECK(result.outcome == REALER_FEED_OUTCOME_CREATED);

    /* A byte bound smaller than any item: every push is refused. */
    client = outbox_client("tiny", 0, 16, -1);
    CHECK(client != NULL);
    if (client != NULL) {
        CHECK_STATUS(realer_outbox_push(client, &items[0], NULL, 0), REALER_ERR_OUTBOX_FULL);
        CHECK(STATS(client).pending == 0);
        realer_client_free(client);
    }
}
