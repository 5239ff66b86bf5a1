"""One pass of a Realer device's loop (contract section 7) with the librealer Python binding: the same loop as
c_examples/firmware_loop.c.

    1. authenticate; 2. read commands and sensors; 3. answer every pending desired state ("applied" after
    applying it, or "stale"); 4. report one local physical command change (no desired_id); 5. post one reading
    per sensor, one by one, then the same sensors again as one batch.

Configured only from the environment (REALER_BASE_URL, REALER_DEVICE_ID, REALER_CLIENT_ID,
REALER_CLIENT_SECRET, optional REALER_CA_FILE and REALER_SCOPE); every id comes from the catalog.
Exit status 0 when every step succeeded, 1 otherwise.
"""

import sys

import realer


def reading_for(sensor, n):
    """Hardware stand-in: a real device reads its sensor driver here."""
    base = {"celsius_temperature": 21.4, "relative_humidity": 48.0}.get(sensor.qc, 1.0)
    return f"{base + 0.1 * n:.1f}"


def main():
    with realer.Client.from_env() as client:
        client.authenticate()
        print("1. Authenticated.")

        commands = client.commands()
        sensors = [s for s in client.sensors() if s.error_type is None]
        usable = [c for c in commands if c.error_type is None]
        print(f"2. The catalog has {len(commands)} command(s) and {len(sensors)} usable sensor(s).")

        print("3. Answering pending desired states.")
        for cmd in usable:
            action = client.desired_action(cmd)
            if action == "none":
                continue
            # "apply": drive the actuator to cmd.value here, then report what happened.
            status = "applied" if action == "apply" else "stale"
            result = client.post(
                command_id=cmd.id,
                value=cmd.value,
                desired_id=cmd.desired_id,
                report_status=status,
                sequence_number=cmd.sequence_number,
            )
            print(f"  command {cmd.id}: {status} report {result.outcome}, feed_data_id {result.feed_data_id}")

        print("4. Reporting a local physical change.")
        local = next((c for c in usable if c.desired_id is None), usable[0] if usable else None)
        if local is not None:
            result = client.post(command_id=local.id, value=local.value)
            print(f"  command {local.id}: local change to {local.value}: {result.outcome}")

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
    print("Done: every step succeeded.")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except realer.RealerError as e:
        print(f"FAILED: {e.status_name}: {e.message} (code {e.code}, request_id {e.request_id})", file=sys.stderr)
        sys.exit(1)
