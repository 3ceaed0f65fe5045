#!/bin/sh
# Every benchmark of docs/benchmarks.md, one after another, in one sitting.
#
#   bench/run_all.sh [OUTPUT_DIR]      (default: bench-results/<UTC start time>)
#
# Each script's output goes to OUTPUT_DIR/<name>.txt; summary.txt says when each ran and
# the load average then. The reach curve is given the plan time bench 1 just measured.
# Takes about 40 minutes on 2 cores. Run nothing else on the bench's Redis db (6).
set -eu
cd "$(dirname "$0")/.."
out=${1:-bench-results/$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$out"
python=.venv/bin/python

run() {
    name=$1
    shift
    echo "$name: start $(date -u +%H:%M:%S) UTC, load $(cut -d' ' -f1-3 /proc/loadavg); python -m $*" \
        | tee -a "$out/summary.txt"
    # One script failing is recorded and the sitting goes on to the next.
    status=0
    nice "$python" -m "$@" > "$out/$name.txt" 2>&1 || status=$?
    echo "$name: end   $(date -u +%H:%M:%S) UTC, load $(cut -d' ' -f1-3 /proc/loadavg), exit $status" \
        | tee -a "$out/summary.txt"
}

result() {  # a figure from a script's RESULT line
    sed -n 's/^RESULT //p' "$out/$1.txt" | "$python" -c "import json, sys; print(json.load(sys.stdin)['$2'])"
}

echo "commit $(git rev-parse --short HEAD)$(git diff --quiet || echo ' + uncommitted changes')" \
    > "$out/summary.txt"
run 1-plan-sqlite bench.plan_and_queue --residents 1000000 --database sqlite --roster both
run 1-plan-postgresql bench.plan_and_queue --residents 1000000 --database postgresql --roster both
run 2-roster-import bench.roster_import --residents 1000000
run 3-delivery bench.delivery_throughput --deliveries 100000 --database sqlite
run 4-loudspeakers-2000 bench.loudspeaker_latency --devices 2000 --database sqlite
run 4-loudspeakers-20000 bench.loudspeaker_latency --devices 20000 --database sqlite
run 5-rate bench.rate_fidelity --messages 2000 --rate 50 --database sqlite
run 6-status bench.console_load --deliveries 10000000 --notices 10 --clients 50 --database sqlite
run 7-reach bench.reach_curve --residents 6000 --full-residents 1000000 \
    --plan-seconds "$(result 1-plan-sqlite seconds)" --plot "$out/reach-curve.png"
echo "all done; results in $out"
