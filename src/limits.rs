//! The contract's limits and this library's own bounds, in one place. The C header's constants repeat the
//! ones a C program needs (cbindgen copies literal values only); `ffi` checks at compile time that they agree.

/// Longest device, command or sensor id, in bytes (ours: Realer's ids are 30 characters or integers).
pub(crate) const MAX_ID_LEN: usize = 128;
/// Longest `message_id` (contract section 4, ours: 1-128 printable ASCII characters).
pub(crate) const MAX_MESSAGE_ID_LEN: usize = 128;
/// Longest `desired_id` accepted in an answer (Realer's are 30 characters).
pub(crate) const MAX_DESIRED_ID_LEN: usize = 128;
/// Largest feed-data `value`, in bytes (realer-sim's byte budget is 64 KiB per request).
pub(crate) const MAX_VALUE_BYTES: usize = 16 * 1024;
/// Items in one batch request (contract section 5).
pub(crate) const MAX_BATCH_ITEMS: usize = 100;
/// Items in one batch call from C (several requests of `MAX_BATCH_ITEMS`).
pub(crate) const MAX_ITEMS_PER_CALL: usize = 100_000;
/// Largest answer body read, in bytes.
pub(crate) const MAX_ANSWER_BYTES: u64 = 8 << 20;
/// Bytes of the C result's `message_id` buffer: the longest `message_id` and its NUL.
pub(crate) const MESSAGE_ID_BUFFER: usize = MAX_MESSAGE_ID_LEN + 1;
/// Bytes of the C result's `value_received_at` buffer: the longest RFC 3339 time this library sends or
/// accepts (`2026-04-24T10:15:00.123456789+00:00`, 35) and its NUL, rounded up.
pub(crate) const TIMESTAMP_BUFFER: usize = 40;
/// Bytes `realer_timestamp_format` writes: `2026-04-24T10:15:00.000Z` and its NUL.
pub(crate) const FORMATTED_TIMESTAMP: usize = 25;
