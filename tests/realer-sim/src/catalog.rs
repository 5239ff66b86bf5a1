//! The device catalog: command and sensor collections and single items (contract section 3).

use serde_json::json;

use crate::api::{error, ok, Ctx};
use crate::http::Response;

pub(crate) fn commands(ctx: &mut Ctx<'_>, device: usize, item: Option<&str>) -> Response {
    let flavour = ctx.state.flavour;
    let commands = &ctx.state.devices[device].commands;
    let items: Vec<_> = match item {
        None => commands.iter().map(|c| c.json(flavour)).collect(),
        Some(id) => match commands.iter().find(|c| c.id.to_string() == id) {
            Some(c) => vec![c.json(flavour)],
            None => return error(ctx.rng, 404, 4004, &format!("no command {id} on this device"), None),
        },
    };
    ok(ctx.rng, 200, &json!({"code": 2000, "commands": items}))
}

pub(crate) fn sensors(ctx: &mut Ctx<'_>, device: usize, item: Option<&str>) -> Response {
    let sensors = &ctx.state.devices[device].sensors;
    let items: Vec<_> = match item {
        None => sensors.iter().map(|s| s.json.clone()).collect(),
        Some(id) => match sensors.iter().find(|s| s.id.to_string() == id) {
            Some(s) => vec![s.json.clone()],
            None => return error(ctx.rng, 404, 4004, &format!("no sensor {id} on this device"), None),
        },
    };
    ok(ctx.rng, 200, &json!({"code": 2000, "sensors": items}))
}

/// `GET …/desired-states` (contract section 3b): every pending desired state of the device. Only the v2
/// flavour serves it; the route answers 404 in v1, as a service without the endpoint does.
pub(crate) fn desired_states(ctx: &mut Ctx<'_>, device: usize) -> Response {
    let states = ctx.state.devices[device].desired_states();
    ok(ctx.rng, 200, &json!({"code": 2000, "desired_states": states}))
}
