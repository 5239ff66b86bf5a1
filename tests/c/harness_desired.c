/* harness_desired.c: desired states, their answers, values compared by type. */

#include "harness.h"

/* ---- desired states --------------------------------------------------------------------------------- */

void test_desired_states(const realer_client *client, const struct catalog_picks *p)
{
    realer_desired_states *untouched = (realer_desired_states *)&n_passed; /* must stay as is after a failure */
    realer_desired_state synthetic;
    realer_feed_item item;
    size_t i;

    if (p->apply == NULL || p->stale == NULL) {
        return;
    }
    CHECK(realer_desired_states_source(p->wanted) == REALER_DESIRED_SOURCE_DESIRED_STATES);
    for (i = 0; i < realer_desired_states_len(p->wanted); i++) {
        const realer_desired_state *d = desired_state_at(p->wanted, i);

        CHECK(d->command_id != NULL && d->value != NULL && d->desired_id != NULL);
        CHECK(d->sequence_number >= 0 && d->expires_at != NULL && d->expires_at_unix_ms > 0);
    }
    CHECK(p->stale->expires_at_unix_ms <= (int64_t)time(NULL) * 1000);
    CHECK(desired_state_at(p->wanted, realer_desired_states_len(p->wanted)) == NULL);
    CHECK(realer_desired_states_len(NULL) == 0);
    CHECK(realer_desired_states_get(NULL, 0, NULL) == REALER_ERR_INVALID_ARGUMENT);
    CHECK(realer_desired_states_source(NULL) == 0);
    realer_desired_states_free(NULL);
    CHECK_STATUS(realer_desired_states_fetch(NULL, &untouched), REALER_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(realer_desired_states_fetch(client, NULL), REALER_ERR_INVALID_ARGUMENT);
    CHECK(untouched == (realer_desired_states *)&n_passed);

    /* The answer to a desired state: its desired_id, the status, the sequence echoed, the caller's value. */
    CHECK_STATUS(realer_feed_item_init_answer(&item, p->apply, "1.0", REALER_REPORT_STATUS_APPLIED), REALER_OK);
    CHECK(item.command_id == p->apply->command_id && item.desired_id == p->apply->desired_id);
    CHECK(item.sensor_id == NULL && item.message_id == NULL && item.value_received_at == NULL);
    CHECK(strcmp(item.value, "1.0") == 0);
    CHECK(item.report_status == REALER_REPORT_STATUS_APPLIED);
    CHECK(item.sequence_number == p->apply->sequence_number);
    CHECK_STATUS(realer_feed_item_init_answer(&item, p->stale, "0", REALER_REPORT_STATUS_STALE), REALER_OK);
    CHECK(item.report_status == REALER_REPORT_STATUS_STALE);
    CHECK_STATUS(realer_feed_item_init_answer(&item, p->apply, "1", REALER_REPORT_STATUS_REPORTED),
                 REALER_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(realer_feed_item_init_answer(&item, p->apply, "1", 99), REALER_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(realer_feed_item_init_answer(NULL, p->apply, "1", REALER_REPORT_STATUS_APPLIED),
                 REALER_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(realer_feed_item_init_answer(&item, NULL, "1", REALER_REPORT_STATUS_APPLIED),
                 REALER_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(realer_feed_item_init_answer(&item, p->apply, NULL, REALER_REPORT_STATUS_APPLIED),
                 REALER_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(realer_feed_item_init_answer(&item, p->apply, NOT_UTF8, REALER_REPORT_STATUS_APPLIED),
                 REALER_ERR_INVALID_ARGUMENT);

    /* A catalog value (an older service): a plain report of the physical value. */
    memset(&synthetic, 0, sizeof synthetic);
    synthetic.command_id = "harness-synthetic";
    synthetic.value = "1";
    synthetic.sequence_number = -1;
    synthetic.expires_at_unix_ms = -1;
    synthetic.action = REALER_DESIRED_ACTION_APPLY;
    CHECK_STATUS(realer_feed_item_init_answer(&item, &synthetic, "1", REALER_REPORT_STATUS_APPLIED), REALER_OK);
    CHECK(item.desired_id == NULL && item.report_status == REALER_REPORT_STATUS_NONE && item.sequence_number == -1);
    CHECK_STATUS(realer_feed_item_init_answer(&item, &synthetic, "1", REALER_REPORT_STATUS_STALE),
                 REALER_ERR_INVALID_ARGUMENT);
    synthetic.command_id = NOT_UTF8;
    CHECK_STATUS(realer_feed_item_init_answer(&item, &synthetic, "1", REALER_REPORT_STATUS_APPLIED),
                 REALER_ERR_INVALID_ARGUMENT);
    synthetic.command_id = NULL;
    CHECK_STATUS(realer_feed_item_init_answer(&item, &synthetic, "1", REALER_REPORT_STATUS_APPLIED),
                 REALER_ERR_INVALID_ARGUMENT);

    /* Values compare by value type. */
    CHECK(realer_values_equal("NumericRange", "0", "0.0"));
    CHECK(realer_values_equal("Binary", "1", "1.00"));
    CHECK(!realer_values_equal("Boolean", "on", "On"));
    CHECK(!realer_values_equal(NULL, "0", "0.0"));
    CHECK(realer_values_equal(NULL, "x", "x"));
    CHECK(!realer_values_equal("NumericRange", NULL, "0"));
    CHECK(!realer_values_equal(NOT_UTF8, "0", "0"));
}
