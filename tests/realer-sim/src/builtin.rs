//! Names in the built-in fixture ([`crate::Fixture::builtin`]), for tests and the demo.

/// The demo device.
pub const DEVICE_ID: &str = "12345";
/// Its OAuth client id (30 characters, `cdv_` prefix, as Realer's control-device ids).
pub const CLIENT_ID: &str = "cdv_0123456789abcdefghijklmnop";
pub const CLIENT_SECRET: &str = "demo-secret";
/// A second device, for cross-device checks (403/4003).
pub const OTHER_DEVICE_ID: &str = "12346";
pub const OTHER_CLIENT_ID: &str = "cdv_zyxwvutsrqponmlkjihgfedcba";
pub const OTHER_CLIENT_SECRET: &str = "other-secret";

/// Command 1 (relay, confirmed value "0.0"): desired value "1.0" pending, expiring one hour after start.
pub const PENDING_COMMAND_ID: u64 = 1;
pub const PENDING_DESIRED_ID: &str = "des_0123456789abcdefghijklmnop";
pub const PENDING_DESIRED_VALUE: &str = "1.0";
pub const PENDING_SEQUENCE_NUMBER: u64 = 3;
/// Command 2 (relay): desired value "1.0" whose state expired one hour before start.
pub const EXPIRED_COMMAND_ID: u64 = 2;
pub const EXPIRED_DESIRED_ID: &str = "des_expired0123456789abcdefghi";
pub const EXPIRED_SEQUENCE_NUMBER: u64 = 5;
/// Command 3: Realer cannot represent it (the catalog shows only `id` and `error`).
pub const UNREPRESENTABLE_COMMAND_ID: u64 = 3;
/// Command 4: no desired state (value "20.5").
pub const PLAIN_COMMAND_ID: u64 = 4;
/// Sensor 7: thermistor, celsius_temperature, pin "5".
pub const TEMPERATURE_SENSOR_ID: u64 = 7;
/// Sensor 8: humidity, relative_humidity, pin "4".
pub const HUMIDITY_SENSOR_ID: u64 = 8;
/// The other device's only sensor and command.
pub const OTHER_SENSOR_ID: u64 = 9;
pub const OTHER_COMMAND_ID: u64 = 5;
