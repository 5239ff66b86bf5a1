/* harness_catalog.c: commands and sensors, and the picks the feed tests use. */

#include "harness.h"

/* ---- catalog ---------------------------------------------------------------------------------------- */

void test_catalog(const realer_client *client)
{
    realer_commands *commands = NULL;
    realer_commands *one_command = NULL;
    realer_sensors *sensors = NULL;
    realer_sensors *one_sensor = NULL;
    realer_commands *untouched = (realer_commands *)&n_passed; /* must stay as is after a failure */
    size_t i;

    CHECK_STATUS(realer_commands_fetch(client, &commands), REALER_OK);
    CHECK(commands != NULL);
    CHECK(realer_commands_len(commands) >= 1);
    for (i = 0; i < realer_commands_len(commands); i++) {
        const realer_command *c = command_at(commands, i);

        CHECK(c != NULL && c->id != NULL && c->id[0] != '\0');
        if (c == NULL) {
            continue;
        }
        if (c->error_type != NULL) {
            /* Realer cannot represent it: only id and error. */
            CHECK(c->error_message != NULL);
            CHECK(c->value == NULL && c->kind == NULL);
        } else {
            CHECK(c->value != NULL && c->value_type != NULL && c->kind != NULL && c->pin_port != NULL);
            CHECK(c->error_message == NULL);
        }
    }
    CHECK(command_at(commands, realer_commands_len(commands)) == NULL);
    CHECK(command_at(commands, (size_t)-1) == NULL);
    CHECK(realer_commands_len(NULL) == 0);
    CHECK(realer_commands_get(NULL, 0, NULL) == REALER_ERR_INVALID_ARGUMENT);

    /* One command by id: a list of exactly that one. */
    if (realer_commands_len(commands) > 0) {
        const char *id = command_at(commands, 0)->id;

        CHECK_STATUS(realer_command_fetch(client, id, &one_command), REALER_OK);
        CHECK(realer_commands_len(one_command) == 1);
        CHECK(realer_commands_len(one_command) == 1 && strcmp(command_at(one_command, 0)->id, id) == 0);
        CHECK(command_at(one_command, 1) == NULL);
        realer_commands_free(one_command);
    }
    one_command = untouched;
    CHECK_STATUS(realer_command_fetch(client, "987654321", &one_command), REALER_ERR_API);
    CHECK(realer_last_error()->code == 4004);
    CHECK(realer_last_error()->http_status == 404);
    CHECK(strcmp(realer_last_error()->type, "not_found") == 0);
    CHECK(!realer_last_error()->retryable);
    CHECK(one_command == untouched); /* out-parameters are written only on success */
    CHECK_STATUS(realer_command_fetch(client, "cmd_unknown0000000000000000000", &one_command), REALER_ERR_API);
    CHECK(realer_last_error()->code == 4004);
    CHECK_STATUS(realer_command_fetch(client, NULL, &one_command), REALER_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(realer_command_fetch(client, NOT_UTF8, &one_command), REALER_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(realer_command_fetch(client, "1/../../x", &one_command), REALER_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(realer_command_fetch(client, "", &one_command), REALER_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(realer_command_fetch(NULL, "1", &one_command), REALER_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(realer_command_fetch(client, "1", NULL), REALER_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(realer_commands_fetch(NULL, &one_command), REALER_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(realer_commands_fetch(client, NULL), REALER_ERR_INVALID_ARGUMENT);
    CHECK(one_command == untouched);

    CHECK_STATUS(realer_sensors_fetch(client, &sensors), REALER_OK);
    CHECK(realer_sensors_len(sensors) >= 1);
    for (i = 0; i < realer_sensors_len(sensors); i++) {
        const realer_sensor *s = sensor_at(sensors, i);

        CHECK(s != NULL && s->id != NULL && s->id[0] != '\0');
        if (s != NULL && s->error_type == NULL) {
            CHECK(s->kind != NULL && s->qc != NULL && s->mu != NULL && s->pin_port != NULL);
            CHECK(s->error_message == NULL);
        }
    }
    CHECK(sensor_at(sensors, realer_sensors_len(sensors)) == NULL);
    CHECK(realer_sensors_len(NULL) == 0);
    CHECK(realer_sensors_get(NULL, 0, NULL) == REALER_ERR_INVALID_ARGUMENT);
    if (realer_sensors_len(sensors) > 0) {
        const char *id = sensor_at(sensors, 0)->id;

        CHECK_STATUS(realer_sensor_fetch(client, id, &one_sensor), REALER_OK);
        CHECK(realer_sensors_len(one_sensor) == 1 && strcmp(sensor_at(one_sensor, 0)->id, id) == 0);
        CHECK(sensor_at(one_sensor, 1) == NULL);
        realer_sensors_free(one_sensor);
        one_sensor = NULL;
    }
    CHECK_STATUS(realer_sensor_fetch(client, "987654321", &one_sensor), REALER_ERR_API);
    CHECK(realer_last_error()->code == 4004);
    CHECK(realer_last_error()->request_id[0] != '\0');
    CHECK(one_sensor == NULL);
    CHECK_STATUS(realer_sensor_fetch(client, NULL, &one_sensor), REALER_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(realer_sensor_fetch(client, NOT_UTF8, &one_sensor), REALER_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(realer_sensor_fetch(NULL, "7", &one_sensor), REALER_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(realer_sensor_fetch(client, "7", NULL), REALER_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(realer_sensors_fetch(NULL, &sensors), REALER_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(realer_sensors_fetch(client, NULL), REALER_ERR_INVALID_ARGUMENT);

    realer_commands_free(commands);
    realer_sensors_free(sensors);
    realer_commands_free(NULL);
    realer_sensors_free(NULL);
}

static int wanted_for(const struct catalog_picks *p, const char *command_id)
{
    size_t i;

    for (i = 0; i < realer_desired_states_len(p->wanted); i++) {
        if (strcmp(desired_state_at(p->wanted, i)->command_id, command_id) == 0) {
            return 1;
        }
    }
    return 0;
}

void pick_catalog(const realer_client *client, struct catalog_picks *p)
{
    size_t i;

    memset(p, 0, sizeof *p);
    CHECK_STATUS(realer_commands_fetch(client, &p->commands), REALER_OK);
    CHECK_STATUS(realer_sensors_fetch(client, &p->sensors), REALER_OK);
    CHECK_STATUS(realer_desired_states_fetch(client, &p->wanted), REALER_OK);
    for (i = 0; i < realer_desired_states_len(p->wanted); i++) {
        const realer_desired_state *d = desired_state_at(p->wanted, i);

        if (d->action == REALER_DESIRED_ACTION_APPLY) {
            p->apply = p->apply ? p->apply : (p->kept_states[0] = *d, &p->kept_states[0]);
        } else if (d->action == REALER_DESIRED_ACTION_STALE) {
            p->stale = p->stale ? p->stale : (p->kept_states[1] = *d, &p->kept_states[1]);
        }
    }
    for (i = 0; i < realer_commands_len(p->commands); i++) {
        const realer_command *c = command_at(p->commands, i);

        if (c->error_type != NULL) {
            p->broken = p->broken ? p->broken : (p->kept_commands[0] = *c, &p->kept_commands[0]);
        } else if (!wanted_for(p, c->id)) {
            p->plain = p->plain ? p->plain : (p->kept_commands[1] = *c, &p->kept_commands[1]);
        }
    }
    for (i = 0; i < realer_sensors_len(p->sensors); i++) {
        const realer_sensor *s = sensor_at(p->sensors, i);

        if (s->error_type != NULL) {
            continue;
        }
        if (p->sensor == NULL) {
            p->sensor = (p->kept_sensors[0] = *s, &p->kept_sensors[0]);
        } else if (p->sensor2 == NULL) {
            p->sensor2 = (p->kept_sensors[1] = *s, &p->kept_sensors[1]);
        }
    }
    /* The built-in fixture, served as a newer service (v2), has one of each. */
    CHECK(p->apply != NULL);
    CHECK(p->stale != NULL);
    CHECK(p->plain != NULL);
    CHECK(p->broken != NULL);
    CHECK(p->sensor != NULL);
    CHECK(p->sensor2 != NULL);
}
