/* harness_config.c: configurations: the setters, the environment, a file. */

#include "harness.h"

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

void test_config_setters(void)
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

    /* proxy: http://[user:password@]host:port; the user info never in a message */
    CHECK_STATUS(realer_config_set_proxy(c, "http://proxy.example:3128"), REALER_OK);
    CHECK_STATUS(realer_config_set_proxy(c, "http://alice:c-pa55@[::1]:8080/"), REALER_OK);
    CHECK_STATUS(realer_config_set_proxy(c, ""), REALER_OK);
    CHECK_STATUS(realer_config_set_proxy(c, NULL), REALER_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(realer_config_set_proxy(NULL, "http://p:1"), REALER_ERR_INVALID_ARGUMENT);
    CHECK_REFUSED(realer_config_set_proxy(c, "https://proxy.example:3128"));
    CHECK_REFUSED(realer_config_set_proxy(c, "http://alice:c-pa55@proxy.example"));
    CHECK(strstr(realer_last_error()->message, "c-pa55") == NULL);
    CHECK_MESSAGE_HAS("port");

    /* kept-alive connections: stall and idle times, 0 allowed */
    CHECK_STATUS(realer_config_set_keepalive(c, 5000, 15000), REALER_OK);
    CHECK_STATUS(realer_config_set_keepalive(c, 0, 0), REALER_OK);
    CHECK_STATUS(realer_config_set_keepalive(NULL, 0, 0), REALER_ERR_INVALID_ARGUMENT);
    CHECK_REFUSED(realer_config_set_keepalive(c, 3600001, 0));
    CHECK_REFUSED(realer_config_set_keepalive(c, 0, 3600001));

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

void test_config_from_env(void)
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
void test_config_from_file(void)
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
