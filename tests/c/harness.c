/* harness.c: calls every function of include/realer.h against a running realer-sim, success and failure
 * paths, as a C program would. Run by tests/c_harness.rs (and under valgrind by .ci/run).
 *
 * Environment (the sim's coordinates, with its built-in fixture):
 *   REALER_BASE_URL, REALER_DEVICE_ID, REALER_CLIENT_ID, REALER_CLIENT_SECRET, REALER_CA_FILE  the demo device
 *   REALER_OTHER_DEVICE_ID, REALER_OTHER_CLIENT_ID, REALER_OTHER_CLIENT_SECRET                 a second device
 *   REALER_WRONG_CA_FILE  optional: a CA that did not sign the sim's certificate (for REALER_ERR_TLS)
 *   REALER_TEST_DIR       a writable directory for the outbox files (this run's files are named after run_id)
 *
 * Prints each failed check with file:line, then "N passed, M failed"; exits 0 only when M is 0. */

#define _POSIX_C_SOURCE 200809L /* setenv, unsetenv, mkstemp, getpid */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "realer.h"

/* ---- checks ---------------------------------------------------------------------------------------- */

static int n_passed;
static int n_failed;

static void fail_at(const char *file, int line, const char *what)
{
    const realer_error *e = realer_last_error();

    n_failed++;
    printf("FAIL %s:%d: %s\n", file, line, what);
    if (e != NULL && e->message != NULL && e->message[0] != '\0') {
        printf("     last error: %s: %s\n", realer_status_str(e->status), e->message);
    }
}

static void check_at(int ok, const char *file, int line, const char *what)
{
    if (ok) {
        n_passed++;
    } else {
        fail_at(file, line, what);
    }
}

#define CHECK(cond) check_at((cond) != 0, __FILE__, __LINE__, #cond)

/* The last error is never NULL and none of its strings are. */
static int last_error_sane(void)
{
    const realer_error *e = realer_last_error();

    return e != NULL && e->type != NULL && e->message != NULL && e->request_id != NULL && e->details_json != NULL;
}

/* A call returned `want`; a failure also left a sane last error with that status. */
static void check_status_at(realer_status got, realer_status want, const char *file, int line, const char *call)
{
    char what[512];

    if (got == want && last_error_sane() && (want == REALER_OK || realer_last_error()->status == want)) {
        n_passed++;
        return;
    }
    snprintf(what, sizeof what, "%s returned %s, expected %s", call, realer_status_str(got), realer_status_str(want));
    fail_at(file, line, what);
}

#define CHECK_STATUS(call, want) check_status_at((call), (want), __FILE__, __LINE__, #call)

/* Some out-of-range values may fairly be called a refused configuration value or an out-of-range argument:
 * the header allows both. Either is accepted, as long as the call failed cleanly. */
static void check_refused_at(realer_status got, const char *file, int line, const char *call)
{
    char what[512];

    if ((got == REALER_ERR_CONFIG || got == REALER_ERR_INVALID_ARGUMENT) && last_error_sane() &&
        realer_last_error()->status == got && realer_last_error()->message[0] != '\0') {
        n_passed++;
        return;
    }
    snprintf(what, sizeof what, "%s returned %s, expected REALER_ERR_CONFIG or REALER_ERR_INVALID_ARGUMENT", call,
             realer_status_str(got));
    fail_at(file, line, what);
}

#define CHECK_REFUSED(call) check_refused_at((call), __FILE__, __LINE__, #call)

static int contains(const char *haystack, const char *needle)
{
    return haystack != NULL && needle != NULL && strstr(haystack, needle) != NULL;
}

/* The last error's message names `word` (a field, a variable, an argument). */
#define CHECK_MESSAGE_HAS(word) check_at(contains(realer_last_error()->message, (word)), __FILE__, __LINE__, \
                                         "last error message contains \"" word "\"")

/* A list's `_get` fills the caller's struct and returns a status: REALER_ERR_INVALID_ARGUMENT, with a message
 * and the struct left as it was, for a NULL list or out or an index past the end. `name(list, i)` calls it,
 * checks that, and returns a copy of the item (from a ring of 8, enough for the copies a test holds at once),
 * or NULL when it was refused. */
#define LIST_AT(name, list_t, item_t, get)                                                                     \
    static const item_t *name(const list_t *list, size_t index)                                                \
    {                                                                                                          \
        static item_t ring[8];                                                                                 \
        static unsigned next;                                                                                  \
        item_t *out = &ring[next++ % 8];                                                                       \
        const unsigned char *bytes = (const unsigned char *)out;                                               \
        realer_status st;                                                                                      \
        size_t k;                                                                                              \
        int kept = 1;                                                                                          \
                                                                                                               \
        CHECK(get(list, index, NULL) == REALER_ERR_INVALID_ARGUMENT && contains(realer_last_error()->message,  \
                                                                                list ? "out" : "list"));       \
        memset(out, 0xA5, sizeof *out);                                                                        \
        st = get(list, index, out);                                                                            \
        if (st == REALER_OK) {                                                                                 \
            return out;                                                                                        \
        }                                                                                                      \
        for (k = 0; k < sizeof *out; k++) {                                                                    \
            kept &= bytes[k] == 0xA5;                                                                          \
        }                                                                                                      \
        CHECK(st == REALER_ERR_INVALID_ARGUMENT && kept && last_error_sane());                                  \
        CHECK(contains(realer_last_error()->message, list ? "past the end" : "list is NULL"));                 \
        return NULL;                                                                                           \
    }
LIST_AT(command_at, realer_commands, realer_command, realer_commands_get)
LIST_AT(sensor_at, realer_sensors, realer_sensor, realer_sensors_get)
LIST_AT(desired_state_at, realer_desired_states, realer_desired_state, realer_desired_states_get)
LIST_AT(batch_result_at, realer_batch_result, realer_item_result, realer_batch_result_get)
LIST_AT(dead_letter_at, realer_dead_letters, realer_dead_letter, realer_dead_letters_get)

/* ---- environment ------------------------------------------------------------------------------------ */

static const char *base_url;
static const char *test_dir; /* where the outbox and configuration files go */
static const char *device_id;
static const char *client_id;
static const char *client_secret;
static const char *ca_file;
static const char *other_device_id;
static const char *other_client_id;
static const char *other_client_secret;
static const char *wrong_ca_file;

/* A unique prefix for this run's message_ids, so the harness may run twice against one sim. */
static char run_id[64];

static const char *need_env(const char *name)
{
    const char *v = getenv(name);

    if (v == NULL || v[0] == '\0') {
        fprintf(stderr, "harness: %s is not set (see the top of tests/c/harness.c)\n", name);
        exit(2);
    }
    return v;
}

static const char *const NOT_UTF8 = "\xff\xfe";

/* A configuration for the demo device, set with explicit setters (not the environment). */
static realer_config *demo_config(void)
{
    realer_config *c = realer_config_new();

    if (c == NULL) {
        return NULL;
    }
    if (realer_config_set_base_url(c, base_url) != REALER_OK || realer_config_set_ca_file(c, ca_file) != REALER_OK ||
        realer_config_set_device_id(c, device_id) != REALER_OK ||
        realer_config_set_credentials(c, client_id, client_secret) != REALER_OK ||
        realer_config_set_timeouts(c, 5000, 20000) != REALER_OK ||
        realer_config_set_retry(c, 3, 20, 200) != REALER_OK) {
        realer_config_free(c);
        return NULL;
    }
    return c;
}

static realer_client *client_from(const realer_config *config)
{
    realer_client *client = NULL;

    if (config == NULL || realer_client_new(config, &client) != REALER_OK) {
        return NULL;
    }
    return client;
}

/* ---- version, status names, the last error ---------------------------------------------------------- */

static void test_version_and_status(void)
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
static void test_last_error_initial(void)
{
    const realer_error *e = realer_last_error();

    CHECK(e != NULL);
    CHECK(last_error_sane());
    CHECK(e->status == REALER_OK);
    CHECK(e->message[0] == '\0' && e->type[0] == '\0' && e->request_id[0] == '\0' && e->details_json[0] == '\0');
    CHECK(e->http_status == 0 && e->code == 0);
}

/* ---- configuration ---------------------------------------------------------------------------------- */

/* Writes `text` to a fresh temporary file; the caller removes it. */
static int write_temp_file(const char *text, char *path, size_t len)
{
    const char *tmp = getenv("TMPDIR");
    FILE *f;
    int fd;

    snprintf(path, len, "%s/realer-harness-XXXXXX", tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp");
    fd = mkstemp(path);
    if (fd < 0) {
        return -1;
    }
    f = fdopen(fd, "w");
    if (f == NULL) {
        close(fd);
        remove(path);
        return -1;
    }
    fputs(text, f);
    fclose(f);
    return 0;
}

/* Reads a whole (small) file into a malloc'd buffer. */
static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    size_t n;

    if (f == NULL) {
        return NULL;
    }
    buf = malloc(1 << 20);
    if (buf == NULL) {
        fclose(f);
        return NULL;
    }
    n = fread(buf, 1, (1 << 20) - 1, f);
    fclose(f);
    buf[n] = '\0';
    *len = n;
    return buf;
}

static void test_config_setters(void)
{
    realer_config *c = realer_config_new();
    char not_a_cert[512];
    char *pem;
    size_t pem_len = 0;
    static const char key_only[] = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIOk=\n-----END PRIVATE KEY-----\n";

    CHECK(c != NULL);
    if (c == NULL) {
        return;
    }
    realer_config_free(NULL);

    /* base URL */
    CHECK_STATUS(realer_config_set_base_url(c, base_url), REALER_OK);
    CHECK_STATUS(realer_config_set_base_url(c, "https://api.therealer.com/"), REALER_OK);
    CHECK_STATUS(realer_config_set_base_url(c, "https://[::1]:8443/prefix"), REALER_OK);
    CHECK_STATUS(realer_config_set_base_url(NULL, base_url), REALER_ERR_INVALID_ARGUMENT);
    CHECK_MESSAGE_HAS("config");
    CHECK_STATUS(realer_config_set_base_url(c, NULL), REALER_ERR_INVALID_ARGUMENT);
    CHECK_MESSAGE_HAS("base_url");
    CHECK_STATUS(realer_config_set_base_url(c, NOT_UTF8), REALER_ERR_INVALID_ARGUMENT);
    CHECK_MESSAGE_HAS("UTF-8");
    CHECK_STATUS(realer_config_set_base_url(c, ""), REALER_ERR_CONFIG);
    CHECK_STATUS(realer_config_set_base_url(c, "api.therealer.com"), REALER_ERR_CONFIG);
    CHECK_STATUS(realer_config_set_base_url(c, "ftp://api.therealer.com"), REALER_ERR_CONFIG);
    /* Plain HTTP: refused, then allowed for loopback only after the explicit opt-in. */
    CHECK_STATUS(realer_config_set_base_url(c, "http://127.0.0.1:8080"), REALER_ERR_CONFIG);
    CHECK_STATUS(realer_config_set_base_url(c, "http://api.therealer.com"), REALER_ERR_CONFIG);
    CHECK_STATUS(realer_config_allow_insecure_loopback(NULL, 1), REALER_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(realer_config_allow_insecure_loopback(c, 1), REALER_OK);
    CHECK_STATUS(realer_config_set_base_url(c, "http://127.0.0.1:8080"), REALER_OK);
    CHECK_STATUS(realer_config_set_base_url(c, "http://[::1]:8080"), REALER_OK);
    CHECK_STATUS(realer_config_set_base_url(c, "http://api.therealer.com"), REALER_ERR_CONFIG);
    CHECK_STATUS(realer_config_set_base_url(c, "http://10.0.0.1:8080"), REALER_ERR_CONFIG);
    CHECK_STATUS(realer_config_set_base_url(c, "http://localhost.example.com"), REALER_ERR_CONFIG);
    CHECK_STATUS(realer_config_allow_insecure_loopback(c, 0), REALER_OK);
    CHECK_STATUS(realer_config_set_base_url(c, "http://127.0.0.1:8080"), REALER_ERR_CONFIG);
    CHECK_STATUS(realer_config_set_base_url(c, base_url), REALER_OK);

    /* device id */
    CHECK_STATUS(realer_config_set_device_id(c, device_id), REALER_OK);
    CHECK_STATUS(realer_config_set_device_id(c, "cdv_0123456789abcdefghijklmnop"), REALER_OK);
    CHECK_STATUS(realer_config_set_device_id(NULL, device_id), REALER_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(realer_config_set_device_id(c, NULL), REALER_ERR_INVALID_ARGUMENT);
    CHECK_MESSAGE_HAS("device_id");
    CHECK_STATUS(realer_config_set_device_id(c, NOT_UTF8), REALER_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(realer_config_set_device_id(c, ""), REALER_ERR_CONFIG);
    CHECK_STATUS(realer_config_set_device_id(c, "12/345"), REALER_ERR_CONFIG);
    CHECK_STATUS(realer_config_set_device_id(c, "12345?x=1"), REALER_ERR_CONFIG);

    /* credentials */
    CHECK_STATUS(realer_config_set_credentials(c, client_id, client_secret), REALER_OK);
    CHECK_STATUS(realer_config_set_credentials(NULL, client_id, client_secret), REALER_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(realer_config_set_credentials(c, NULL, client_secret), REALER_ERR_INVALID_ARGUMENT);
    CHECK_MESSAGE_HAS("client_id");
    CHECK_STATUS(realer_config_set_credentials(c, client_id, NULL), REALER_ERR_INVALID_ARGUMENT);
    CHECK_MESSAGE_HAS("client_secret");
    CHECK_STATUS(realer_config_set_credentials(c, NOT_UTF8, client_secret), REALER_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(realer_config_set_credentials(c, client_id, NOT_UTF8), REALER_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(realer_config_set_credentials(c, "", client_secret), REALER_ERR_CONFIG);
    CHECK_STATUS(realer_config_set_credentials(c, "cdv:colon", client_secret), REALER_ERR_CONFIG);
    CHECK_STATUS(realer_config_set_credentials(c, client_id, ""), REALER_ERR_CONFIG);
    /* No refusal may repeat the secret back. */
    CHECK_STATUS(realer_config_set_credentials(c, client_id, "secret-with\ncontrol"), REALER_ERR_CONFIG);
    CHECK(!contains(realer_last_error()->message, "secret-with"));

    /* scope */
    CHECK_STATUS(realer_config_set_scope(c, "iot:catalog:read iot:feed-data:write"), REALER_OK);
    CHECK_STATUS(realer_config_set_scope(c, ""), REALER_OK);
    CHECK_STATUS(realer_config_set_scope(NULL, "iot:catalog:read"), REALER_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(realer_config_set_scope(c, NULL), REALER_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(realer_config_set_scope(c, NOT_UTF8), REALER_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(realer_config_set_scope(c, "iot:catalog:read\"x"), REALER_ERR_CONFIG);

    /* CA from a file */
    CHECK_STATUS(realer_config_set_ca_file(c, ca_file), REALER_OK);
    CHECK_STATUS(realer_config_set_ca_file(NULL, ca_file), REALER_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(realer_config_set_ca_file(c, NULL), REALER_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(realer_config_set_ca_file(c, NOT_UTF8), REALER_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(realer_config_set_ca_file(c, "/nonexistent/realer-harness-ca.pem"), REALER_ERR_CONFIG);
    CHECK_MESSAGE_HAS("/nonexistent/realer-harness-ca.pem");
    CHECK(write_temp_file("this is not a certificate\n", not_a_cert, sizeof not_a_cert) == 0);
    CHECK_STATUS(realer_config_set_ca_file(c, not_a_cert), REALER_ERR_CONFIG);
    CHECK_MESSAGE_HAS("CERTIFICATE");
    remove(not_a_cert);
    CHECK(write_temp_file(key_only, not_a_cert, sizeof not_a_cert) == 0);
    CHECK_STATUS(realer_config_set_ca_file(c, not_a_cert), REALER_ERR_CONFIG);
    remove(not_a_cert);

    /* CA from memory */
    pem = read_file(ca_file, &pem_len);
    CHECK(pem != NULL && pem_len > 0);
    if (pem != NULL) {
        CHECK_STATUS(realer_config_set_ca_pem(c, (const uint8_t *)pem, pem_len), REALER_OK);
        CHECK_STATUS(realer_config_set_ca_pem(NULL, (const uint8_t *)pem, pem_len), REALER_ERR_INVALID_ARGUMENT);
        /* A certificate cut in half does not parse. */
        CHECK_STATUS(realer_config_set_ca_pem(c, (const uint8_t *)pem, pem_len / 2), REALER_ERR_CONFIG);
        free(pem);
    }
    CHECK_STATUS(realer_config_set_ca_pem(c, NULL, 10), REALER_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(realer_config_set_ca_pem(c, (const uint8_t *)"", 0), REALER_ERR_CONFIG);
    CHECK_STATUS(realer_config_set_ca_pem(c, (const uint8_t *)key_only, sizeof key_only - 1), REALER_ERR_CONFIG);
    CHECK_MESSAGE_HAS("CERTIFICATE");

    /* timeouts */
    CHECK_STATUS(realer_config_set_timeouts(c, 5000, 20000), REALER_OK);
    CHECK_STATUS(realer_config_set_timeouts(c, 1, 3600000), REALER_OK);
    CHECK_STATUS(realer_config_set_timeouts(NULL, 5000, 20000), REALER_ERR_INVALID_ARGUMENT);
    CHECK_REFUSED(realer_config_set_timeouts(c, 0, 20000));
    CHECK_REFUSED(realer_config_set_timeouts(c, 5000, 0));
    CHECK_REFUSED(realer_config_set_timeouts(c, 3600001, 20000));
    CHECK_REFUSED(realer_config_set_timeouts(c, 5000, 3600001));

    /* retry */
    CHECK_STATUS(realer_config_set_retry(c, 5, 500, 30000), REALER_OK);
    CHECK_STATUS(realer_config_set_retry(c, 1, 0, 0), REALER_OK);
    CHECK_STATUS(realer_config_set_retry(NULL, 5, 500, 30000), REALER_ERR_INVALID_ARGUMENT);
    CHECK_REFUSED(realer_config_set_retry(c, 0, 500, 30000));
    CHECK_REFUSED(realer_config_set_retry(c, 101, 500, 30000));
    CHECK_REFUSED(realer_config_set_retry(c, 5, 30001, 30000));

    /* user agent */
    CHECK_STATUS(realer_config_set_user_agent(c, "realer-harness/1.0 (C)"), REALER_OK);
    CHECK_STATUS(realer_config_set_user_agent(NULL, "x"), REALER_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(realer_config_set_user_agent(c, NULL), REALER_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(realer_config_set_user_agent(c, NOT_UTF8), REALER_ERR_INVALID_ARGUMENT);
    CHECK_REFUSED(realer_config_set_user_agent(c, ""));
    CHECK_REFUSED(realer_config_set_user_agent(c, "line\nbreak"));

    /* logger arguments (the logger itself: test_logger) */
    CHECK_STATUS(realer_config_set_logger(NULL, NULL, NULL, REALER_LOG_INFO), REALER_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(realer_config_set_logger(c, NULL, NULL, REALER_LOG_INFO), REALER_OK);
    CHECK_STATUS(realer_config_set_logger(c, NULL, NULL, 99), REALER_OK); /* removing ignores the level */

    realer_config_free(c);
}

/* Sets or unsets (value NULL) an environment variable. */
static void put_env(const char *name, const char *value)
{
    if (value != NULL) {
        setenv(name, value, 1);
    } else {
        unsetenv(name);
    }
}

static void test_config_from_env(void)
{
    realer_config *c = realer_config_new();
    realer_client *client = NULL;

    CHECK_STATUS(realer_config_from_env(NULL), REALER_ERR_INVALID_ARGUMENT);
    /* The harness's own environment holds the demo device's coordinates. */
    CHECK_STATUS(realer_config_from_env(c), REALER_OK);
    CHECK_STATUS(realer_client_new(c, &client), REALER_OK);
    CHECK_STATUS(realer_client_authenticate(client), REALER_OK);
    realer_client_free(client);

    /* A refused value fails the call and names its variable. */
    put_env("REALER_BASE_URL", "http://api.therealer.com");
    CHECK_STATUS(realer_config_from_env(c), REALER_ERR_CONFIG);
    CHECK_MESSAGE_HAS("REALER_BASE_URL");
    put_env("REALER_BASE_URL", base_url);

    put_env("REALER_CA_FILE", "/nonexistent/realer-harness-ca.pem");
    CHECK_STATUS(realer_config_from_env(c), REALER_ERR_CONFIG);
    CHECK_MESSAGE_HAS("REALER_CA_FILE");
    put_env("REALER_CA_FILE", ca_file);

    put_env("REALER_DEVICE_ID", "not/an/id");
    CHECK_STATUS(realer_config_from_env(c), REALER_ERR_CONFIG);
    CHECK_MESSAGE_HAS("REALER_DEVICE_ID");
    put_env("REALER_DEVICE_ID", device_id);

    put_env("REALER_SCOPE", "iot:catalog:read");
    CHECK_STATUS(realer_config_from_env(c), REALER_OK);
    put_env("REALER_SCOPE", NULL);

    /* The client id and secret go together. */
    put_env("REALER_CLIENT_SECRET", NULL);
    CHECK_STATUS(realer_config_from_env(c), REALER_ERR_CONFIG);
    CHECK_MESSAGE_HAS("REALER_CLIENT_SECRET");
    put_env("REALER_CLIENT_SECRET", client_secret);

    CHECK_STATUS(realer_config_from_env(c), REALER_OK);
    realer_config_free(c);
}

/* The same settings from a file: the secret need not sit in the environment, and the file must be private. */
static void test_config_from_file(void)
{
    realer_config *c = realer_config_new();
    realer_client *client = NULL;
    char path[1024];
    FILE *f;

    snprintf(path, sizeof path, "%s/realer.conf", test_dir);
    f = fopen(path, "w");
    CHECK(f != NULL);
    if (f == NULL) {
        realer_config_free(c);
        return;
    }
    fprintf(f, "# the demo device\nREALER_BASE_URL=%s\nREALER_CA_FILE=%s\nREALER_DEVICE_ID=%s\n", base_url, ca_file,
            device_id);
    fprintf(f, "REALER_CLIENT_ID=%s\nREALER_CLIENT_SECRET=%s\n", client_id, client_secret);
    fclose(f);
    CHECK(chmod(path, 0644) == 0);
    CHECK_STATUS(realer_config_from_file(c, path), REALER_ERR_CONFIG);
    CHECK_MESSAGE_HAS("chmod 600");
    CHECK(!contains(realer_last_error()->message, client_secret));
    CHECK(chmod(path, 0600) == 0);
    CHECK_STATUS(realer_config_from_file(c, path), REALER_OK);
    CHECK_STATUS(realer_client_new(c, &client), REALER_OK);
    CHECK_STATUS(realer_client_authenticate(client), REALER_OK);
    realer_client_free(client);

    CHECK_STATUS(realer_config_from_file(NULL, path), REALER_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(realer_config_from_file(c, NULL), REALER_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(realer_config_from_file(c, NOT_UTF8), REALER_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(realer_config_from_file(c, "/nonexistent/realer.conf"), REALER_ERR_CONFIG);
    CHECK_STATUS(realer_config_from_file(c, test_dir), REALER_ERR_CONFIG);
    CHECK_MESSAGE_HAS("regular file");
    f = fopen(path, "w");
    if (f != NULL) {
        fputs("REALER_DEVICE_ID=1\nREALER_PASSWORD=x\n", f);
        fclose(f);
    }
    CHECK_STATUS(realer_config_from_file(c, path), REALER_ERR_CONFIG);
    CHECK_MESSAGE_HAS("line 2");
    remove(path);
    realer_config_free(c);
}

/* ---- clients and authentication --------------------------------------------------------------------- */

/* Cancel without threads: calls started after a cancel return REALER_ERR_CANCELLED at once, nothing is
 * sent, a post says which message_id to send again; resume lets them run. (tests/c/cancel.c cancels calls
 * blocked on a silent server from other threads.) */
static void test_cancel_and_resume(void)
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

static void test_client_new_and_auth(void)
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

static void test_logger(void)
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

/* ---- catalog ---------------------------------------------------------------------------------------- */

static void test_catalog(const realer_client *client)
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

/* ---- feed data -------------------------------------------------------------------------------------- */

/* The current time as RFC 3339, for items that are replayed (a replay must carry the same payload). */
static void now_timestamp(char buf[REALER_TIMESTAMP_SIZE])
{
    if (realer_timestamp_format(0, buf, REALER_TIMESTAMP_SIZE) != REALER_OK) {
        snprintf(buf, REALER_TIMESTAMP_SIZE, "2026-01-01T00:00:00Z");
    }
}

static void make_message_id(char *buf, size_t len, const char *what)
{
    snprintf(buf, len, "%s-%s", run_id, what);
}

static void test_feed_item_init(void)
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

static void pick_catalog(const realer_client *client, struct catalog_picks *p)
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

static void test_desired_states(const realer_client *client, const struct catalog_picks *p)
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

/* Stored by test_feed_single, replayed by test_feed_batch. */
static char stored_message_id[REALER_MESSAGE_ID_MAX + 1];
static char stored_at[REALER_TIMESTAMP_SIZE];
static int64_t stored_feed_data_id = -1;

static void test_feed_single(const realer_client *client, const struct catalog_picks *p)
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
    item.value_received_at = "2026-04-24T10:15:00+02:00";
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

static void test_feed_batch(const realer_client *client, const struct catalog_picks *p)
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

/* A token for the demo device used on another device's paths: 403 / 4003. The library always puts its own
 * device id in the path, so the mismatch is made with a config whose device id is not the credentials'. */
static void test_forbidden(void)
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

static void test_outbox_config(void)
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
static void test_outbox_not_configured(const realer_client *client, const struct catalog_picks *p)
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
    CHECK_STATUS(realer_outbox_dead_letters(client, &dead), REALER_ERR_CONFIG);
    CHECK(dead == (realer_dead_letters *)&n_passed); /* out-parameters are written only on success */
    CHECK_STATUS(realer_outbox_clear_dead(client, &cleared), REALER_ERR_CONFIG);
    CHECK(cleared == 77);
}

static void test_outbox_push_and_flush(const struct catalog_picks *p)
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
    CHECK_STATUS(realer_outbox_dead_letters(client, &dead), REALER_OK);
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
    CHECK_STATUS(realer_outbox_dead_letters(NULL, &dead), REALER_ERR_INVALID_ARGUMENT);
    CHECK(dead == NULL);
    CHECK_STATUS(realer_outbox_dead_letters(client, NULL), REALER_ERR_INVALID_ARGUMENT);
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
    CHECK_STATUS(realer_outbox_clear_dead(client, &cleared), REALER_OK);
    CHECK(cleared == 1);
    CHECK(STATS(client).dead == 0);
    CHECK_STATUS(realer_outbox_dead_letters(client, &dead), REALER_OK);
    CHECK(dead != NULL && realer_dead_letters_len(dead) == 0);
    CHECK(dead_letter_at(dead, 0) == NULL);
    realer_dead_letters_free(dead);
    dead = NULL;
    CHECK_STATUS(realer_outbox_clear_dead(client, &cleared), REALER_OK);
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
    CHECK_STATUS(realer_outbox_clear_dead(client, NULL), REALER_OK);
    CHECK(STATS(client).dead == 0);
    CHECK_STATUS(realer_outbox_clear_dead(NULL, &cleared), REALER_ERR_INVALID_ARGUMENT);

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
static void test_outbox_bounded(const realer_client *direct, const struct catalog_picks *p)
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

/* ---- timestamps ------------------------------------------------------------------------------------- */

static void test_format_timestamp(void)
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
