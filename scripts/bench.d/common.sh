# shellcheck shell=bash
# Helpers the benchmarks share (sourced): the API server's request counters (need $kubectl and
# $work) and the generated set of mixed objects.

# requests FILE: apiserver_request_total summed by verb and dry run, one "verb dry_run count" a line.
requests() {
	"$kubectl" get --raw /metrics | python3 -c '
import re, sys, collections
sums = collections.Counter()
for line in sys.stdin:
    if not line.startswith("apiserver_request_total{"):
        continue
    labels, value = line.rsplit(" ", 1)
    l = dict(re.findall(r"(\w+)=\"([^\"]*)\"", labels))
    sums[(l.get("verb", ""), "dry-run" if l.get("dry_run") else "real")] += float(value)
for (verb, dry), n in sorted(sums.items()):
    print(verb, dry, int(n))
' >"$1"
}

# delta BEFORE AFTER: "VERB(dry-run) n, VERB n, ..." for the counters that moved.
delta() {
	python3 - "$1" "$2" <<'PY'
import sys
def load(p):
    return {(v, d): int(n) for v, d, n in (l.split() for l in open(p))}
a, b = load(sys.argv[1]), load(sys.argv[2])
parts, total, writes, dry = [], 0, 0, 0
for key in sorted(b):
    n = b[key] - a.get(key, 0)
    if n <= 0:
        continue
    verb, mode = key
    total += n
    if mode == "dry-run":
        dry += n
    elif verb not in ("GET", "LIST", "WATCH", "WATCHLIST"):
        writes += n
    parts.append("%s%s %d" % (verb, " (dry run)" if mode == "dry-run" else "", n))
print("%d\t%d\t%d\t%s" % (total, dry, writes, ", ".join(parts) or "none"))
PY
}

# settle: waits until the cluster's own controllers stop writing (no write requests for 3 s).
settle() {
	local prev="" cur i
	for i in $(seq 1 120); do
		requests "$work/settle"
		cur="$(awk '$1 != "GET" && $1 != "LIST" && $1 != "WATCH" {s += $3} END {print s}' "$work/settle")"
		[[ "$cur" == "$prev" ]] && return 0
		prev="$cur"
		sleep 3
	done
	echo "the cluster did not settle within 6 minutes; measuring anyway" >&2
}

# generate DIR PREFIX N: N objects as plain YAML, 100 per file; the set's four Namespaces
# PREFIX-0..3 come first, then a repeating mix of ConfigMap, Secret, Service, ServiceAccount and
# Deployment (replicas 0 or 1) spread over them.
generate() {
	python3 - "$@" <<'PY'
import os, sys
out, prefix, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
os.makedirs(out)
namespaces = 4
docs = ["apiVersion: v1\nkind: Namespace\nmetadata:\n  name: %s-%d\n" % (prefix, i) for i in range(namespaces)]
for i in range(n - namespaces):
    ns, app, kind = "%s-%d" % (prefix, (i // 5) % namespaces), "app%d" % (i // 5), i % 5
    if kind == 0:
        docs.append(f"""apiVersion: v1
kind: ConfigMap
metadata:
  name: {app}-config
  namespace: {ns}
  labels: {{app: {app}}}
data:
  INDEX: "{i}"
  LOG_LEVEL: info
  settings.yaml: |
    listen: :8080
    upstream: http://{app}-backend.{ns}.svc:9000
    retries: 3
""")
    elif kind == 1:
        docs.append(f"""apiVersion: v1
kind: Secret
metadata:
  name: {app}-credentials
  namespace: {ns}
  labels: {{app: {app}}}
type: Opaque
stringData:
  username: {app}
  password: not-a-secret-{i}
""")
    elif kind == 2:
        docs.append(f"""apiVersion: v1
kind: Service
metadata:
  name: {app}
  namespace: {ns}
  labels: {{app: {app}}}
spec:
  selector: {{app: {app}}}
  ports:
    - {{name: http, port: 80, targetPort: http}}
""")
    elif kind == 3:
        docs.append(f"""apiVersion: v1
kind: ServiceAccount
metadata:
  name: {app}
  namespace: {ns}
  labels: {{app: {app}}}
""")
    else:
        docs.append(f"""apiVersion: apps/v1
kind: Deployment
metadata:
  name: {app}
  namespace: {ns}
  labels: {{app: {app}}}
spec:
  replicas: {(i // 5) % 2}
  selector:
    matchLabels: {{app: {app}}}
  template:
    metadata:
      labels: {{app: {app}}}
    spec:
      serviceAccountName: {app}
      containers:
        - name: app
          image: registry.example.com/{app}:1.0.{i}
          envFrom:
            - configMapRef: {{name: {app}-config}}
            - secretRef: {{name: {app}-credentials}}
          ports: [{{containerPort: 8080, name: http}}]
          resources:
            requests: {{cpu: 10m, memory: 32Mi}}
""")
for f in range(0, len(docs), 100):
    with open(os.path.join(out, "objects-%05d.yaml" % f), "w") as fh:
        fh.write("---\n".join(docs[f:f + 100]))
PY
}
