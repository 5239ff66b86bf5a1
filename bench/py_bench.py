"""py_bench: the same N readings from Python, one by one, with the librealer binding or with requests.

    PYTHONPATH=python REALER_LIB=target/release/librealer.so python3 bench/py_bench.py realer|requests N BASE_URL CA_FILE

One token, then N posts over one kept-alive connection. Prints the line realer_bench prints: CPU (user + sys)
and wall time of the measured phase (the N readings), and the process's peak RSS (interpreter included).
"""

import resource
import sys
import time

SENSOR_ID = 7
VALUE = "21.4"
RECEIVED_AT = "2026-04-24T10:15:00Z"
CLIENT_ID = "cdv_bench_client_0123456789ab"
CLIENT_SECRET = "bench-secret"


def cpu_s():
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime, ru.ru_stime


def message_id(i):
    # The same shape and length as librealer's own ids.
    return "rl-%012x-%016x" % (0x19D0000000, i)


def bench_realer(n, base_url, ca_file):
    import realer

    client = realer.Client(
        base_url=base_url,
        device_id="12345",
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        ca_file=ca_file,
    )
    client.authenticate()

    def run():
        for i in range(n):
            r = client.post(sensor_id=SENSOR_ID, value=VALUE, value_received_at=RECEIVED_AT, message_id=message_id(i))
            if r.outcome != "created" or r.http_status != 201 or r.code != 2000:
                raise SystemExit(f"py_bench: reading {i}: {r}")

    return run, client.close


def bench_requests(n, base_url, ca_file):
    import requests

    session = requests.Session()
    session.trust_env = False  # no proxy or CA bundle from the environment: the CA is passed explicitly
    session.verify = ca_file
    r = session.post(
        f"{base_url}/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(CLIENT_ID, CLIENT_SECRET),
        headers={"Accept": "application/json"},
        timeout=(10, 30),
    )
    r.raise_for_status()
    token = r.json()["access_token"]
    session.headers.update(
        {"Authorization": f"Bearer {token}", "Accept": "application/json", "User-Agent": "py-requests-bench/0.1.0"}
    )
    url = f"{base_url}/iot/v1/devices/12345/feed-data"

    def run():
        for i in range(n):
            body = {"message_id": message_id(i), "sensor_id": SENSOR_ID, "value": VALUE, "value_received_at": RECEIVED_AT}
            r = session.post(url, json=body, timeout=(10, 30))
            if r.status_code != 201 or r.json().get("code") != 2000:
                raise SystemExit(f"py_bench: reading {i}: HTTP {r.status_code}: {r.text}")

    return run, session.close


def main():
    if len(sys.argv) != 5 or sys.argv[1] not in ("realer", "requests"):
        raise SystemExit(__doc__)
    kind, n, base_url, ca_file = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    start_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    run, close = (bench_realer if kind == "realer" else bench_requests)(n, base_url, ca_file)
    (user0, sys0), wall0 = cpu_s(), time.monotonic()
    run()
    (user1, sys1), wall = cpu_s(), time.monotonic() - wall0
    user, sys_ = user1 - user0, sys1 - sys0
    close()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    name = "librealer-python" if kind == "realer" else "requests-python"
    print(f"RESULT client={name} n={n} cpu_s={user + sys_:.6f} user_s={user:.6f} sys_s={sys_:.6f} wall_s={wall:.6f} maxrss_kb={rss} start_rss_kb={start_rss}")


if __name__ == "__main__":
    main()
