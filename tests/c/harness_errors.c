/* harness_errors.c: the version, the status names and the last error. */

#include "harness.h"

/* ---- version, status names, the last error ---------------------------------------------------------- */

void test_version_and_status(void)
{
    static const struct {
        realer_status status;
        const char *name;
    } names[] = {
        {REALER_OK, "REALER_OK"},
        {REALER_ERR_INVALID_ARGUMENT, "REALER_ERR_INVALID_ARGUMENT"},
        {REALER_ERR_CONFIG, "REALER_ERR_CONFIG"},
        {REALER_ERR_TLS, "REALER_ERR_TLS"},
        {REALER_ERR_TLS_CERT_TIME, "REALER_ERR_TLS_CERT_TIME"},
        {REALER_ERR_NETWORK, "REALER_ERR_NETWORK"},
        {REALER_ERR_TIMEOUT, "REALER_ERR_TIMEOUT"},
        {REALER_ERR_AUTH, "REALER_ERR_AUTH"},
        {REALER_ERR_API, "REALER_ERR_API"},
        {REALER_ERR_PROTOCOL, "REALER_ERR_PROTOCOL"},
        {REALER_ERR_BUFFER_TOO_SMALL, "REALER_ERR_BUFFER_TOO_SMALL"},
        {REALER_ERR_INTERNAL, "REALER_ERR_INTERNAL"},
        {REALER_ERR_OUTBOX_FULL, "REALER_ERR_OUTBOX_FULL"},
        {REALER_ERR_STORAGE, "REALER_ERR_STORAGE"},
    };
    char built[32];
    size_t i;

    CHECK(realer_version() != NULL);
    CHECK(strcmp(realer_version(), REALER_VERSION_STRING) == 0);
    snprintf(built, sizeof built, "%d.%d.%d", REALER_VERSION_MAJOR, REALER_VERSION_MINOR, REALER_VERSION_PATCH);
    CHECK(strcmp(built, REALER_VERSION_STRING) == 0);

    for (i = 0; i < sizeof names / sizeof names[0]; i++) {
        const char *s = realer_status_str(names[i].status);

        check_at(s != NULL && strcmp(s, names[i].name) == 0, __FILE__, __LINE__, names[i].name);
    }
    /* Every status from 0 up has a distinct REALER_ name, up to the first value that is not a status. */
    for (i = 0; i < 1000 && strcmp(realer_status_str((realer_status)i), "REALER_ERR_UNKNOWN") != 0; i++) {
        CHECK(strncmp(realer_status_str((realer_status)i), "REALER_", 7) == 0);
        CHECK(i == 0 || strcmp(realer_status_str((realer_status)i), realer_status_str((realer_status)i - 1)) != 0);
    }
    CHECK(i > (size_t)REALER_ERR_STORAGE && i < 1000);
    CHECK(strcmp(realer_status_str(-1), "REALER_ERR_UNKNOWN") == 0);
    CHECK(strcmp(realer_status_str(1000), "REALER_ERR_UNKNOWN") == 0);
    CHECK(strcmp(realer_status_str(INT32_MAX), "REALER_ERR_UNKNOWN") == 0);
    CHECK(strcmp(realer_status_str(INT32_MIN), "REALER_ERR_UNKNOWN") == 0);
}

/* Runs first: before any failure the last error is REALER_OK with empty strings. */
void test_last_error_initial(void)
{
    const realer_error *e = realer_last_error();

    CHECK(e != NULL);
    CHECK(last_error_sane());
    CHECK(e->status == REALER_OK);
    CHECK(e->message[0] == '\0' && e->type[0] == '\0' && e->request_id[0] == '\0' && e->details_json[0] == '\0');
    CHECK(e->http_status == 0 && e->code == 0);
}
