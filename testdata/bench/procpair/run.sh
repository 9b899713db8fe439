#!/usr/bin/env bash
# run.sh: one `evt append` process per event against `redis-cli XADD` to a
# running throw-away Redis, /bin/true and a Go hello-world, interleaved
# round by round (procpair, main.go here), medians and ratios.
# Run from anywhere:  testdata/bench/procpair/run.sh [-n ROUNDS] [NAME=EVT_BINARY...]
#
# Builds evt from the project root, the runner and hello/ with
# CGO_ENABLED=0 (static, as evt is shipped). Each extra NAME=EVT_BINARY is
# timed too, appending to a store of its own, e.g. a build of another
# commit: `base=/tmp/evt-main`. Redis is redis-server on 127.0.0.1 with AOF
# `everysec` (as ../shared/bench/compare.sh starts it), already running
# when the rounds start; `redis-cli XADD` does not wait for a sync, while
# every `evt append` fdatasyncs its event before it exits 0. The evt-1p row
# is the same append with GOMAXPROCS=1 in its environment (what a script
# that appends one event per process can set; see the report).
# Needs: go, redis-server and redis-cli (installed with apt-get if missing).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../../.." && pwd)
N=400
while getopts n: o; do case $o in n) N=$OPTARG;; *) exit 2;; esac; done
shift $((OPTIND-1))
W=$(mktemp -d /tmp/evt-procpair.XXXXXX); PORT=16393; RPID=
trap '[ -n "$RPID" ] && kill "$RPID" 2>/dev/null; rm -rf "$W"' EXIT
command -v redis-server >/dev/null && command -v redis-cli >/dev/null ||
  { apt-get update -qq >/dev/null; apt-get install -y -qq redis-server redis-tools >/dev/null; }
export CGO_ENABLED=0 NO_COLOR=1
(cd "$ROOT" && go build -o "$W/evt" .)
(cd "$HERE" && go build -o "$W/procpair" . && go build -o "$W/hello" ./hello)

mkdir "$W/redis"
redis-server --port $PORT --bind 127.0.0.1 --dir "$W/redis" --appendonly yes --appendfsync everysec --save '' >/dev/null & RPID=$!
for _ in $(seq 100); do redis-cli -p $PORT ping >/dev/null 2>&1 && break; sleep 0.05; done

extra=()
for a in "$@"; do
  name=${a%%=*} bin=${a#*=}
  extra+=("$name=$bin --dir $W/store-$name append s-1 T {\"a\":1} -q")
done
echo "$(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $(uname -r), $(go version | cut -d' ' -f3), evt $(cd "$ROOT" && git describe --always --dirty 2>/dev/null || echo '?')"
"$W/procpair" -rounds "$N" -base redis \
  "redis=redis-cli -p $PORT XADD s-1 * e {\"a\":1}" \
  "evt=$W/evt --dir $W/store append s-1 T {\"a\":1} -q" \
  "evt-1p=GOMAXPROCS=1 $W/evt --dir $W/store-1p append s-1 T {\"a\":1} -q" \
  "${extra[@]}" \
  "true=/bin/true" \
  "hello=$W/hello"
echo "events stored: evt $("$W/evt" --dir "$W/store" streams -o json | grep -o '"version":[0-9]*' | head -1), redis $(redis-cli -p $PORT XLEN s-1)"
