/* An application that uses the system's SQLite (datetime(), json_extract(): both left out of librealer's own
 * SQLite) and librealer's outbox (its own SQLite) in one program linked with librealer.a. Before the archive
 * was localized, the program's sqlite3_* calls reached librealer's trimmed copy ("no such function:
 * datetime"), or a static libsqlite3.a failed to link with duplicate definitions.
 * Usage: sqlite_clash <outbox file>; prints "N passed, M failed". */
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>

#include "realer.h"

static int passed, failed;

static void check(int ok, const char *what, const char *detail) {
    if (ok) {
        passed++;
        printf("ok   %s\n", what);
    } else {
        failed++;
        printf("FAIL %s: %s\n", what, detail ? detail : "");
    }
}

/* The first column of the first row of `sql`, into `out`. */
static int query_text(sqlite3 *db, const char *sql, char *out, size_t len) {
    sqlite3_stmt *stmt = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &stmt, NULL);
    if (rc == SQLITE_OK && (rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        const unsigned char *text = sqlite3_column_text(stmt, 0);
        snprintf(out, len, "%s", text ? (const char *)text : "(null)");
        rc = SQLITE_OK;
    } else {
        snprintf(out, len, "%s", sqlite3_errmsg(db));
    }
    sqlite3_finalize(stmt);
    return rc;
}

int main(int argc, char **argv) {
    char text[256];
    sqlite3 *db = NULL;
    if (argc != 2) {
        fprintf(stderr, "usage: %s <outbox file>\n", argv[0]);
        return 2;
    }

    /* The system's SQLite, as the program was compiled against it. */
    check(strcmp(sqlite3_libversion(), SQLITE_VERSION) == 0, "sqlite3_libversion() is the system's", sqlite3_libversion());
    check(sqlite3_open(":memory:", &db) == SQLITE_OK, "sqlite3_open", NULL);
    int rc = query_text(db, "SELECT datetime('2024-02-28 23:30:00', '+1 day')", text, sizeof text);
    check(rc == SQLITE_OK && strcmp(text, "2024-02-29 23:30:00") == 0, "datetime()", text);
    rc = query_text(db, "SELECT json_extract('{\"reading\": {\"value\": [21.5, 22]}}', '$.reading.value[1]')", text,
                    sizeof text);
    check(rc == SQLITE_OK && strcmp(text, "22") == 0, "json_extract()", text);
    rc = query_text(db, "SELECT sqlite_version()", text, sizeof text);
    check(rc == SQLITE_OK && strcmp(text, SQLITE_VERSION) == 0, "sqlite_version() is the system's", text);
    sqlite3_close(db);

    /* librealer, with its outbox in its own SQLite, in the same process. */
    check(strcmp(realer_version(), REALER_VERSION_STRING) == 0, "realer_version()", realer_version());
    struct realer_config *config = realer_config_new();
    struct realer_client *client = NULL;
    check(config != NULL, "realer_config_new", NULL);
    if (config) {
        int ok = realer_config_set_base_url(config, "https://api.example.invalid") == REALER_OK &&
                 realer_config_set_device_id(config, "12345") == REALER_OK &&
                 realer_config_set_credentials(config, "cdv_0123456789abcdefghijklmnop", "secret") == REALER_OK &&
                 realer_config_set_outbox(config, argv[1], 100, 0) == REALER_OK &&
                 realer_client_new(config, &client) == REALER_OK;
        check(ok, "a client with an outbox", realer_last_error()->message);
    }
    if (client) {
        struct realer_feed_item item;
        char message_id[REALER_MESSAGE_ID_MAX + 1] = "";
        realer_feed_item_init(&item);
        item.sensor_id = "temperature";
        item.value = "21.5";
        rc = realer_outbox_push(client, &item, message_id, sizeof message_id);
        check(rc == REALER_OK && message_id[0] != '\0', "realer_outbox_push stores the item in librealer's SQLite",
              realer_last_error()->message);
    }
    realer_client_free(client);
    realer_config_free(config);

    /* The outbox file, read back through the system's SQLite: the item is there. */
    check(sqlite3_open_v2(argv[1], &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK, "the outbox opens with the system's SQLite", NULL);
    rc = query_text(db, "SELECT count(*) FROM sqlite_schema WHERE type = 'table'", text, sizeof text);
    check(rc == SQLITE_OK && strcmp(text, "0") != 0, "the outbox has tables", text);
    sqlite3_close(db);

    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
