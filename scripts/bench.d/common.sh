# shellcheck shell=bash
# Helpers the benchmarks share (sourced): the API server's request counters. Needs $kubectl and
# $work.

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
