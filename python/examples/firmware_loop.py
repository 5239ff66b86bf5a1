"""A Realer device's loop (contract section 7) with the librealer Python binding: the same loop as
c_examples/firmware_loop.c.

    1. authenticate; then, each pass: 2. read commands and sensors; 3. ask what Realer wants, drive the
    simulated actuators (they start at "0") that differ, and answer: every pending desired state "applied" or
    "stale" with its desired_id on a newer service; on an older one librealer hands over only the catalog
    values that are new (first seen, or changed in Realer since), and each changed actuator's new value is
    reported; 4. report one local physical command change (no desired_id): the next pass does not undo it;
    5. post one reading per sensor, one by one, then the same sensors again as one batch.

Usage: firmware_loop.py [--passes N] [--interval-ms MS]   (one pass by default; passes MS apart, default 1000)

Configured only from the environment (REALER_BASE_URL, REALER_DEVICE_ID, REALER_CLIENT_ID,
REALER_CLIENT_SECRET, optional REALER_CA_FILE and REALER_SCOPE); every id comes from the catalog.
Exit status 0 when every step succeeded, 1 otherwise, 2 for bad arguments.
"""

import argparse
import sys
import time

import realer


def reading_for(sensor, n):
    """Hardware stand-in: a real device reads its sensor driver here."""
    base = {"celsius_temperature": 21.4, "relative_humidity": 48.0}.get(sensor.qc, 1.0)
    return f"{base + 0.1 * n:.1f}"


def run_pass(client, actuators):
    """Steps 2-5, once; `actuators` (command id -> value) keeps the simulated hardware between passes.
    Returns 0 when every step succeeded."""
    commands = client.commands()
    sensors = [s for s in client.sensors() if s.error_type is None]
    usable = [c for c in commands if c.error_type is None]
    print(f"2. The catalog has {len(commands)} command(s) and {len(sensors)} usable sensor(s).")
    # Simulated actuators, one per usable command: where a real device drives its relays.
    for c in usable:
        actuators.setdefault(c.id, "0")
    value_types = {c.id: c.value_type for c in usable}

    wanted = client.desired_states()
    print(f"3. Realer wants {len(wanted)} setting(s) ({wanted.source}).")
    for state in wanted:
        if state.command_id not in value_types:
            print(f"  command {state.command_id}: no actuator on this device")
            continue
        current = actuators[state.command_id]
        if state.action == "stale":
            print(f"  command {state.command_id}: desired state {state.desired_id} is stale, not applying it")
            status = "stale"
        elif state.value is not None and realer.values_equal(value_types[state.command_id], current, state.value):
            if state.desired_id is None:
                continue  # a catalog value the actuator already holds: nothing to report
            status = "applied"
        elif state.value is None:
            status = "rejected"
        else:
            actuators[state.command_id] = state.value  # drive the actuator here
            status = "applied"
        result = client.post_item(state.answer(actuators[state.command_id], status))
        print(f"  command {state.command_id}: {status} {actuators[state.command_id]}: {result.outcome}")

    print("4. Reporting a local physical change.")
    if usable:
        local = usable[0].id
        actuators[local] = "1" if actuators[local] == "0" else "0"
        result = client.post(command_id=local, value=actuators[local])
        print(f"  command {local}: local change to {actuators[local]}: {result.outcome}")

    print("5. Posting one reading per sensor, one by one, then as one batch.")
    for sensor in sensors:
        result = client.post(sensor_id=sensor.id, value=reading_for(sensor, 0))
        print(f"  sensor {sensor.id}: {result.outcome}, message_id {result.message_id}")
    if sensors:
        results = client.post_batch([{"sensor_id": s.id, "value": reading_for(s, 1)} for s in sensors])
        for sensor, r in zip(sensors, results):
            print(f"  sensor {sensor.id}: {r.outcome}, message_id {r.message_id}")
            if r.outcome not in ("created", "idempotent"):
                print(f"FAILED: sensor {sensor.id}: {r.error_type}: {r.error_message}", file=sys.stderr)
                return 1
    return 0


def positive(text):
    n = int(text)
    if n <= 0:
        raise argparse.ArgumentTypeError("must be a positive number")
    return n


def main(argv):
    parser = argparse.ArgumentParser(description="A Realer device's loop with librealer.")
    parser.add_argument("--passes", type=positive, default=1, help="how many passes of steps 2-5 (default 1)")
    parser.add_argument("--interval-ms", type=positive, default=1000, help="between passes (default 1000)")
    args = parser.parse_args(argv)
    with realer.Client.from_env() as client:
        client.authenticate()
        print("1. Authenticated.")
        actuators = {}
        for n in range(1, args.passes + 1):
            if n > 1:
                time.sleep(args.interval_ms / 1000)
                print(f"Pass {n} of {args.passes}.")
            if run_pass(client, actuators) != 0:
                return 1
    print("Done: every step succeeded.")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except realer.RealerError as e:
        print(f"FAILED: {e.status_name}: {e.message} (code {e.code}, request_id {e.request_id})", file=sys.stderr)
        sys.exit(1)
