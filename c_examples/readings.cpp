// readings.cpp: the C++ wrapper (include/realer.hpp) in a small program. Reads the REALER_* variables (as
// firmware_loop.c does), lists the device's catalog, answers the pending desired states, posts one reading
// per usable sensor, then the same sensors as one batch, and shows how a failure arrives: as a realer::Error
// with Realer's details.
//
//   REALER_BASE_URL=... REALER_DEVICE_ID=... REALER_CLIENT_ID=... REALER_CLIENT_SECRET=... ./readings
//
// Exits 0 when every reading was stored.
#include <cstdio>
#include <string>
#include <vector>

#include "realer.hpp"

int main() {
    try {
        if (realer::version() != REALER_VERSION_STRING) {
            std::printf("built against librealer %s, running with %s\n", REALER_VERSION_STRING,
                        realer::version().c_str());
        }

        // A value the library refuses throws at once, before any I/O: plain http:// is refused.
        try {
            realer::Config().base_url("http://api.example.com");
            std::printf("FAIL: a plain http:// base URL was accepted\n");
            return 1;
        } catch (const realer::Error &e) {
            std::printf("refused as expected: %s\n", e.what());
        }

        realer::Config config;
        config.from_env().timeouts(5000, 15000);
        const realer::Client client(config);
        client.authenticate();

        const realer::Commands commands = client.commands();
        const realer::Sensors sensors = client.sensors();
        std::printf("catalog: %zu commands, %zu sensors\n", commands.size(), sensors.size());

        // What Realer wants: pending desired states, applied (a real device drives its actuator to state.value
        // first) or, when expired or out of sequence, reported stale; or, on an older service (desired_id NULL),
        // the catalog values new since the last fetch, applied and reported as the physical value.
        const realer::DesiredStates desired = client.desired_states();
        for (const realer_desired_state &state : desired) {
            const bool apply = state.action == REALER_DESIRED_ACTION_APPLY;
            const realer_feed_item report =
                realer::answer(state, state.value, apply ? REALER_REPORT_STATUS_APPLIED : REALER_REPORT_STATUS_STALE);
            client.post(report);
            if (state.desired_id != nullptr) {
                std::printf("  command %s: desired state %s %s\n", state.command_id, state.desired_id,
                            apply ? "applied" : "reported stale");
            } else {
                std::printf("  command %s: catalog value %s applied\n", state.command_id, state.value);
            }
        }
        std::printf("desired states: %zu answered\n", desired.size());

        // One reading per usable sensor, one by one. The ids point into `sensors`, which outlives the items.
        std::vector<realer_feed_item> items;
        for (const realer_sensor &sensor : sensors) {
            if (sensor.error_type != nullptr) {
                std::printf("  sensor %s: not usable (%s)\n", sensor.id, sensor.error_type);
                continue;
            }
            realer_feed_item item = realer::feed_item();
            item.sensor_id = sensor.id;
            item.value = "21.5";
            const realer_feed_result result = client.post(item);
            std::printf("  sensor %s: stored as feed_data_id %lld (message_id %s)\n", sensor.id,
                        static_cast<long long>(result.feed_data_id), result.message_id);
            items.push_back(item);
        }

        // The same sensors as one batch: each item's fate is in the result.
        const realer::BatchResult batch = client.post(items);
        size_t stored = 0;
        for (const realer_item_result &r : batch) {
            if (r.outcome == REALER_FEED_OUTCOME_CREATED || r.outcome == REALER_FEED_OUTCOME_IDEMPOTENT) {
                stored++;
            } else {
                std::printf("  batch item %s: %s\n", r.message_id, r.error_message ? r.error_message : "not sent");
            }
        }
        std::printf("batch: %zu of %zu stored\n", stored, batch.size());
        if (items.empty() || stored != items.size()) {
            return 1;
        }

        // A reading for a sensor the device does not have: Realer refuses it, and the exception says why;
        // its result carries the message_id a retry would use.
        realer_feed_item unknown = realer::feed_item();
        unknown.sensor_id = "no_such_sensor";
        unknown.value = "1";
        try {
            client.post(unknown);
            std::printf("FAIL: a reading for an unknown sensor was stored\n");
            return 1;
        } catch (const realer::FeedError &e) {
            std::printf("refused by Realer as expected: HTTP %d, code %d, %s (message_id %s)\n", e.http_status(),
                        e.code(), e.type().c_str(), e.result().message_id);
        }
        std::printf("done: %zu readings stored one by one and %zu in a batch\n", items.size(), stored);
        return 0;
    } catch (const realer::Error &e) {
        std::fprintf(stderr, "realer: %s (HTTP %d, code %d, request_id %s)\n", e.what(), e.http_status(), e.code(),
                     e.request_id().c_str());
        return 1;
    }
}
