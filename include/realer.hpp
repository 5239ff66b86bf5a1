/* librealer for C++17: a header-only wrapper over realer.h.
 *
 * - Ownership: every object the library allocates is held by a move-only C++ object that frees it once
 *   (Config, Client, Commands, Sensors, DesiredStates, BatchResult, DeadLetters). A list's elements
 *   (realer_command, realer_sensor, realer_desired_state, realer_item_result, realer_dead_letter) are structs
 *   its `_get` fills, given by value; their strings point into the list and live as long as it.
 * - Errors: a failing call throws realer::Error, which carries realer_last_error() as it was right after the
 *   call (status, HTTP status, Realer code, error.type, message, request_id, details JSON, retryable,
 *   retry-after). Client::post throws realer::FeedError, which also carries the feed result: its message_id and
 *   value_received_at are what a retry must send. Nothing else throws but std::bad_alloc.
 * - Threads: a Client may be shared between threads (const methods only, as in C); Config is not shared.
 * - The C API stays available: realer::Client::get() and friends give the C handle.
 *
 * Compiles with -std=c++17 -Wall -Wextra -pedantic; needs only the C++ standard library and librealer. */
#ifndef REALER_HPP
#define REALER_HPP

#include <cstddef>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "realer.h"

namespace realer {

/// What realer_last_error() said about a failed call, copied (the C record changes with the next call).
class Error : public std::runtime_error {
  public:
    explicit Error(const realer_error &e)
        : std::runtime_error(std::string(realer_status_str(e.status)) + ": " + text(e.message)),
          status_(e.status), http_status_(e.http_status), code_(e.code), type_(text(e.type)),
          message_(text(e.message)), request_id_(text(e.request_id)), details_json_(text(e.details_json)),
          retryable_(e.retryable), retry_after_ms_(e.retry_after_ms) {}

    /// The REALER_ERR_* status the call returned.
    realer_status status() const noexcept { return status_; }
    /// HTTP status of the server's answer, 0 when none arrived.
    int32_t http_status() const noexcept { return http_status_; }
    /// Realer's numeric code (4022...), 0 when none.
    int32_t code() const noexcept { return code_; }
    /// Realer's error.type, such as "validation_failed"; empty when none.
    const std::string &type() const noexcept { return type_; }
    /// What went wrong, in words (never contains a secret).
    const std::string &message() const noexcept { return message_; }
    /// The server's request_id, for Realer support; empty when none.
    const std::string &request_id() const noexcept { return request_id_; }
    /// Realer's error.details as JSON; empty when none.
    const std::string &details_json() const noexcept { return details_json_; }
    /// Whether the same call may succeed later unchanged (same message_id).
    bool retryable() const noexcept { return retryable_; }
    /// The server's Retry-After in milliseconds, -1 when it sent none.
    int64_t retry_after_ms() const noexcept { return retry_after_ms_; }

  private:
    static std::string text(const char *s) { return s ? std::string(s) : std::string(); }

    realer_status status_;
    int32_t http_status_;
    int32_t code_;
    std::string type_, message_, request_id_, details_json_;
    bool retryable_;
    int64_t retry_after_ms_;
};

/// A failed Client::post: the error, and the feed result the library always writes (message_id and
/// value_received_at to retry with, the outcome, Realer's code).
class FeedError : public Error {
  public:
    FeedError(const realer_error &e, const realer_feed_result &result) : Error(e), result_(result) {}
    const realer_feed_result &result() const noexcept { return result_; }

  private:
    realer_feed_result result_;
};

namespace detail {
/// Throws realer::Error for any status but REALER_OK.
inline void check(realer_status status) {
    if (status != REALER_OK) {
        throw Error(*realer_last_error());
    }
}

template <class T, void (*Free)(T *)> struct Deleter {
    void operator()(T *p) const noexcept { Free(p); }
};

/// A list the library allocated: indexable and iterable, freed once. An element is a struct filled by the
/// list's `_get` (a copy, by value); its strings point into the list and live as long as it.
template <class Handle, class Item, size_t (*Len)(const Handle *),
          realer_status (*Get)(const Handle *, size_t, Item *), void (*Free)(Handle *)>
class List {
  public:
    class iterator {
      public:
        using value_type = Item;
        using reference = Item;
        /// What `operator->` gives: the element, held for the expression.
        struct pointer {
            Item item;
            const Item *operator->() const { return &item; }
        };
        using difference_type = std::ptrdiff_t;
        using iterator_category = std::input_iterator_tag;

        iterator(const List *list, size_t index) : list_(list), index_(index) {}
        reference operator*() const { return (*list_)[index_]; }
        pointer operator->() const { return pointer{(*list_)[index_]}; }
        iterator &operator++() {
            ++index_;
            return *this;
        }
        iterator operator++(int) {
            iterator before = *this;
            ++index_;
            return before;
        }
        bool operator==(const iterator &other) const { return list_ == other.list_ && index_ == other.index_; }
        bool operator!=(const iterator &other) const { return !(*this == other); }

      private:
        const List *list_;
        size_t index_;
    };

    /// Takes ownership of `handle` (NULL makes an empty list).
    explicit List(Handle *handle = nullptr) noexcept : handle_(handle) {}

    size_t size() const noexcept { return handle_ ? Len(handle_.get()) : 0; }
    bool empty() const noexcept { return size() == 0; }
    /// The element at `index` (its strings point into the list); throws std::out_of_range past the end.
    Item operator[](size_t index) const {
        Item item{};
        if (!handle_ || index >= size() || Get(handle_.get(), index, &item) != REALER_OK) {
            throw std::out_of_range("realer: list index out of range");
        }
        return item;
    }
    iterator begin() const noexcept { return iterator(this, 0); }
    iterator end() const noexcept { return iterator(this, size()); }
    /// The C handle, still owned by this list.
    const Handle *get() const noexcept { return handle_.get(); }

  private:
    std::unique_ptr<Handle, Deleter<Handle, Free>> handle_;
};
} // namespace detail

/// Commands (realer_command) from the catalog, with their pending desired states.
using Commands = detail::List<realer_commands, realer_command, realer_commands_len, realer_commands_get,
                              realer_commands_free>;
/// Sensors (realer_sensor) from the catalog.
using Sensors =
    detail::List<realer_sensors, realer_sensor, realer_sensors_len, realer_sensors_get, realer_sensors_free>;
/// One realer_item_result per item of a batch, in the items' order.
using BatchResult = detail::List<realer_batch_result, realer_item_result, realer_batch_result_len,
                                 realer_batch_result_get, realer_batch_result_free>;
/// Desired states to answer (realer_desired_state, each with its `action`), from /desired-states or the
/// catalog; `source()` says which.
class DesiredStates : public detail::List<realer_desired_states, realer_desired_state, realer_desired_states_len,
                                          realer_desired_states_get, realer_desired_states_free> {
  public:
    using List::List;
    /// REALER_DESIRED_SOURCE_DESIRED_STATES or REALER_DESIRED_SOURCE_CATALOG.
    realer_desired_source source() const noexcept { return realer_desired_states_source(get()); }
};
/// The outbox's dead letters (realer_dead_letter): items Realer refused for good.
using DeadLetters = detail::List<realer_dead_letters, realer_dead_letter, realer_dead_letters_len,
                                 realer_dead_letters_get, realer_dead_letters_free>;

/// The library's version ("0.2.0"); compare with REALER_VERSION_STRING, the header's.
inline std::string version() { return realer_version(); }

/// A feed item with every field at its default (NULL strings, no report status, no sequence number).
inline realer_feed_item feed_item() {
    realer_feed_item item;
    detail::check(realer_feed_item_init(&item));
    return item;
}

/// The report answering `state`, with `value` the physical value now at the actuator; its strings point into
/// `state` and `value`, which must outlive it.
inline realer_feed_item answer(const realer_desired_state &state, const char *value, realer_report_status status) {
    realer_feed_item item;
    detail::check(realer_feed_item_init_answer(&item, &state, value, status));
    return item;
}

/// A Unix time in milliseconds (0 = now) as RFC 3339 UTC text, such as "2026-04-24T10:15:00.000Z".
inline std::string format_timestamp(int64_t unix_ms) {
    char buf[REALER_TIMESTAMP_SIZE];
    detail::check(realer_timestamp_format(unix_ms, buf, sizeof buf));
    return buf;
}

/// A client's configuration. Setters throw realer::Error on a rejected value and return *this for chaining.
class Config {
  public:
    Config() : config_(realer_config_new()) {
        if (!config_) {
            throw std::bad_alloc();
        }
    }

    /// Reads the REALER_* variables (REALER_BASE_URL, REALER_DEVICE_ID, REALER_CLIENT_ID, ...).
    Config &from_env() { return set(realer_config_from_env(c())); }
    /// Reads the settings from a file (see realer_config_from_file).
    Config &from_file(const std::string &path) { return set(realer_config_from_file(c(), path.c_str())); }
    Config &base_url(const std::string &url) { return set(realer_config_set_base_url(c(), url.c_str())); }
    /// Plain http:// to 127.0.0.1 or ::1 only, for local tests.
    Config &allow_insecure_loopback(bool allow) {
        return set(realer_config_allow_insecure_loopback(c(), allow ? 1 : 0));
    }
    Config &device_id(const std::string &id) { return set(realer_config_set_device_id(c(), id.c_str())); }
    Config &credentials(const std::string &client_id, const std::string &client_secret) {
        return set(realer_config_set_credentials(c(), client_id.c_str(), client_secret.c_str()));
    }
    Config &scope(const std::string &scope) { return set(realer_config_set_scope(c(), scope.c_str())); }
    /// Trust only the CA certificates of this PEM file (instead of the bundled Mozilla roots).
    Config &ca_file(const std::string &path) { return set(realer_config_set_ca_file(c(), path.c_str())); }
    Config &ca_pem(const std::string &pem) {
        return set(realer_config_set_ca_pem(c(), reinterpret_cast<const uint8_t *>(pem.data()), pem.size()));
    }
    Config &timeouts(uint32_t connect_ms, uint32_t request_ms) {
        return set(realer_config_set_timeouts(c(), connect_ms, request_ms));
    }
    Config &retry(uint32_t max_attempts, uint32_t base_delay_ms, uint32_t max_delay_ms) {
        return set(realer_config_set_retry(c(), max_attempts, base_delay_ms, max_delay_ms));
    }
    Config &user_agent(const std::string &agent) { return set(realer_config_set_user_agent(c(), agent.c_str())); }
    Config &proxy(const std::string &url) { return set(realer_config_set_proxy(c(), url.c_str())); }
    Config &keepalive(uint32_t stall_ms, uint32_t idle_ms) {
        return set(realer_config_set_keepalive(c(), stall_ms, idle_ms));
    }
    /// The C callback and its user_data, which must outlive every client made from this configuration.
    Config &logger(realer_log_callback callback, void *user_data, realer_log_level max_level) {
        return set(realer_config_set_logger(c(), callback, user_data, max_level));
    }
    /// The offline outbox: a SQLite file, bounded by items and bytes of item JSON (0 = no limit).
    Config &outbox(const std::string &path, uint64_t max_items, uint64_t max_bytes) {
        return set(realer_config_set_outbox(c(), path.c_str(), max_items, max_bytes));
    }
    Config &outbox_when_full(realer_outbox_full_policy policy) {
        return set(realer_config_set_outbox_when_full(c(), policy));
    }

    /// The C handle, still owned by this object.
    const realer_config *get() const noexcept { return config_.get(); }

  private:
    realer_config *c() const noexcept { return config_.get(); }
    Config &set(realer_status status) {
        detail::check(status);
        return *this;
    }

    std::unique_ptr<realer_config, detail::Deleter<realer_config, realer_config_free>> config_;
};

/// A client of Realer's device API. Every call is bounded by the configured timeouts and throws
/// realer::Error when it fails. Const methods may be called from several threads at once.
class Client {
  public:
    /// Makes a client from a complete configuration (the configuration may be dropped afterwards).
    explicit Client(const Config &config) {
        realer_client *client = nullptr;
        detail::check(realer_client_new(config.get(), &client));
        client_.reset(client);
    }

    /// Fetches a token now (otherwise the first call does).
    void authenticate() const { detail::check(realer_client_authenticate(c())); }

    /// The device's commands, with their pending desired states.
    Commands commands() const {
        realer_commands *out = nullptr;
        detail::check(realer_commands_fetch(c(), &out));
        return Commands(out);
    }
    /// One command (a list of one).
    Commands command(const std::string &id) const {
        realer_commands *out = nullptr;
        detail::check(realer_command_fetch(c(), id.c_str(), &out));
        return Commands(out);
    }
    Sensors sensors() const {
        realer_sensors *out = nullptr;
        detail::check(realer_sensors_fetch(c(), &out));
        return Sensors(out);
    }
    Sensors sensor(const std::string &id) const {
        realer_sensors *out = nullptr;
        detail::check(realer_sensor_fetch(c(), id.c_str(), &out));
        return Sensors(out);
    }
    /// The desired states to answer, each with what to do (`action`: REALER_DESIRED_ACTION_APPLY or _STALE).
    DesiredStates desired_states() const {
        realer_desired_states *out = nullptr;
        detail::check(realer_desired_states_fetch(c(), &out));
        return DesiredStates(out);
    }
    /// Stops the calls in progress on this client (from another thread) until resume().
    void cancel() const { detail::check(realer_client_cancel(c())); }
    void resume() const { detail::check(realer_client_resume(c())); }

    /// Posts one item. Throws realer::FeedError, with the result to retry with, when it is not stored.
    realer_feed_result post(const realer_feed_item &item) const {
        realer_feed_result result;
        realer_status status = realer_feed_post(c(), &item, &result);
        if (status != REALER_OK) {
            throw FeedError(*realer_last_error(), result);
        }
        return result;
    }
    /// Posts items in batches (100 per request); each item's fate is in the result, also when some were
    /// rejected. Throws only when the call as a whole fails.
    BatchResult post(const std::vector<realer_feed_item> &items) const {
        realer_batch_result *out = nullptr;
        detail::check(realer_feed_post_batch(c(), items.data(), items.size(), &out));
        return BatchResult(out);
    }

    /// Stores the item in the outbox (fsynced) and returns its message_id.
    std::string outbox_push(const realer_feed_item &item) const {
        char message_id[REALER_MESSAGE_ID_MAX + 1];
        detail::check(realer_outbox_push(c(), &item, message_id, sizeof message_id));
        return message_id;
    }
    /// Stores all the items in one transaction, or none.
    void outbox_push(const std::vector<realer_feed_item> &items) const {
        detail::check(realer_outbox_push_many(c(), items.data(), items.size()));
    }
    /// Sends up to `max_items` pending items (0 = all), oldest first.
    realer_flush_report outbox_flush(size_t max_items = 0) const {
        realer_flush_report report{};
        detail::check(realer_outbox_flush(c(), max_items, &report));
        return report;
    }
    realer_outbox_stats outbox_stats() const {
        realer_outbox_stats stats{};
        detail::check(realer_outbox_stats_read(c(), &stats));
        return stats;
    }
    DeadLetters outbox_dead_letters() const {
        realer_dead_letters *out = nullptr;
        detail::check(realer_dead_letters_fetch(c(), &out));
        return DeadLetters(out);
    }
    /// Deletes the dead letters; returns how many there were.
    uint64_t outbox_clear_dead() const {
        uint64_t cleared = 0;
        detail::check(realer_dead_letters_clear(c(), &cleared));
        return cleared;
    }

    /// The C handle, still owned by this object.
    const realer_client *get() const noexcept { return client_.get(); }

  private:
    const realer_client *c() const noexcept { return client_.get(); }

    std::unique_ptr<realer_client, detail::Deleter<realer_client, realer_client_free>> client_;
};

} // namespace realer

#endif /* REALER_HPP */
