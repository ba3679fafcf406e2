"""The peers' way to read 7 days of TAP SIEM, for comparison with kri in the same run: fetch each
hourly window of /v2/siem/all one after another, json.loads the whole answer, count.

python3 peer_siem.py BASE_URL PRINCIPAL:SECRET
Prints one JSON line: seconds, peak memory (KiB), calls, delivered in 24 h.
"""
import base64
import datetime as dt
import json
import resource
import sys
import time
import urllib.request

base, creds = sys.argv[1], sys.argv[2]
auth = "Basic " + base64.b64encode(creds.encode()).decode()
start = time.monotonic()
now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
oldest = now - dt.timedelta(days=7) + dt.timedelta(minutes=15)
current = now.replace(minute=0, second=0)
fmt = lambda t: t.strftime("%Y-%m-%dT%H:%M:%SZ")
delivered, calls = set(), 0
for back in range(168):
    slot = current - dt.timedelta(hours=back)
    begin, end = max(slot, oldest), min(slot + dt.timedelta(hours=1), now)
    if (end - begin).total_seconds() < 30:
        continue
    url = f"{base}/v2/siem/all?interval={fmt(begin)}/{fmt(end)}&format=json"
    req = urllib.request.Request(url, headers={"Authorization": auth})
    with urllib.request.urlopen(req, timeout=600) as resp:
        body = resp.read()
    calls += 1
    answer = json.loads(body) if body else {}
    if back < 24:
        for m in answer.get("messagesDelivered") or []:
            delivered.add((m.get("id"), m.get("GUID"), json.dumps(m.get("recipient"))))
print(json.dumps({
    "seconds": time.monotonic() - start,
    "maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    "calls": calls,
    "delivered_24h": len(delivered),
}))
