"""One requests.Session (one keep-alive connection) at 20 req/s until a stop file exists.

Usage: session_client.py BASE_URL KEY keyed|plain STOP_FILE

Alternates GET / with POST /count?key=KEY. With mode "keyed" every POST carries an Idempotency-Key (kf may
resend it; the backend answers a repeated key without counting again); with "plain" it has none (kf never
resends it). Prints one JSON line: requests, failed, posts_ok, errors, connections (opened by urllib3).
"""

import json
import os
import sys
import time
import uuid

import requests

base, key, mode, stop = sys.argv[1:5]
session = requests.Session()
result = {"requests": 0, "failed": 0, "posts_ok": 0, "errors": []}
i = 0
while not os.path.exists(stop):
    i += 1
    started = time.monotonic()
    post = i % 2 == 0
    error = None
    try:
        if post:
            headers = {"Idempotency-Key": str(uuid.uuid4())} if mode == "keyed" else {}
            response = session.post(f"{base}/count?key={key}", data=b"x", headers=headers, timeout=35)
        else:
            response = session.get(f"{base}/", timeout=35)
        if response.status_code != 200:
            error = f"{response.status_code} {response.headers.get('X-Kf-Error', '')} {response.text.strip()[:200]}"
        elif post:
            result["posts_ok"] += 1
    except Exception as e:  # noqa: BLE001 - every failure counts
        error = repr(e)[:300]
    result["requests"] += 1
    if error:
        result["failed"] += 1
        result["errors"].append(error)
    time.sleep(max(0.0, 0.05 - (time.monotonic() - started)))

manager = session.get_adapter(base).poolmanager
result["connections"] = sum(manager.pools[key].num_connections for key in manager.pools.keys())
print(json.dumps(result))
