#!/usr/bin/env bash
# run.sh: evt against NATS JetStream on the same events, in one run.
# Run from anywhere:  testdata/bench/natscompare/run.sh [-n EVENTS] [-r RUNS] [-s SYNC_EVENTS] [WORKLOAD...]
# Workloads: bulk bulk-sync proc replay consume (default: all). Prints a table
# of medians and the ratio evt/peer (>1 means evt is faster), in the format of
# ../shared/bench/compare.sh.
#
# Everything is built here with CGO_ENABLED=0 (static, as evt is shipped):
# evt from the project root, nats-server v2.15.2 (this module's go.mod `tool`)
# and natscompare (the client, main.go) from this directory, the generator
# from ../shared/bench/tools, and `nats` (natscli v0.5.0) with go install for
# the proc row, which is skipped if it does not build. Each nats-server is a
# separate process on 127.0.0.1 with a fresh file store under the temp dir
# (/tmp), like evt's store.
#
# Durability: evt appends with --sync always (one fdatasync per batch before
# it returns). nats-server's default file store does not fsync per message
# (sync_interval 2m): that is the `bulk` row. `bulk-sync` runs JetStream with
# `jetstream { sync_interval: always }` (an fsync per message) against evt on
# the first SYNC_EVENTS events (default 100000, since it is slow).
set -uo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../../.." && pwd)
TOOLS=$(cd "$ROOT/../shared/bench/tools" && pwd) || { echo "no ../shared/bench/tools"; exit 1; }
N=1000000 RUNS=3 S=100000
while getopts n:r:s: o; do case $o in n) N=$OPTARG;; r) RUNS=$OPTARG;; s) S=$OPTARG;; *) exit 2;; esac; done
shift $((OPTIND-1)); WORK=${*:-bulk bulk-sync proc replay consume}
[ "$S" -gt "$N" ] && S=$N
W=$(mktemp -d /tmp/evt-natscompare.XXXXXX); PORT=16422; URL=nats://127.0.0.1:$PORT; NPID=
trap '[ -n "$NPID" ] && kill "$NPID" 2>/dev/null; rm -rf "$W"' EXIT
export CGO_ENABLED=0 NO_COLOR=1
(cd "$ROOT" && go build -o "$W/evt" .) || { echo "evt does not build"; exit 1; }
(cd "$HERE" && go build -o "$W/natscompare" . && go build -o "$W/nats-server" github.com/nats-io/nats-server/v2) || exit 1
(cd "$TOOLS" && go build -o "$W/" ./...) || exit 1
NATSCLI=
if (cd "$W" && GOBIN="$W" go install github.com/nats-io/natscli/nats@v0.5.0) >"$W/natscli.log" 2>&1; then
  NATSCLI=$W/nats
else
  echo "natscli v0.5.0 does not build here; skipping proc (see $W/natscli.log)"
fi
EVT=$W/evt NC=$W/natscompare
"$W/gen" -n "$N" -accounts $((N / 10)) -size 200 -o "$W/events.ndjson"
head -n "$S" "$W/events.ndjson" >"$W/sync.ndjson"

now() { echo "$EPOCHREALTIME"; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.6f", b-a}'; }
median() { sort -g | awk '{a[NR]=$1} END{if(!NR){print "nan";exit} print (NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2}'; }
nats_up() { # nats_up default|always: a fresh server with an empty store
  [ -n "$NPID" ] && { kill "$NPID"; wait "$NPID" 2>/dev/null; NPID=; }
  rm -rf "$W/js"; mkdir -p "$W/js"
  local sync=; [ "$1" = always ] && sync='sync_interval: always'
  printf 'listen: 127.0.0.1:%s\njetstream { store_dir: "%s", %s }\n' "$PORT" "$W/js" "$sync" >"$W/nats.conf"
  "$W/nats-server" -c "$W/nats.conf" >"$W/nats.log" 2>&1 & NPID=$!
  for _ in $(seq 100); do "$NC" ping -url "$URL" 2>/dev/null && return; sleep 0.05; done
  echo "nats-server did not start:"; tail "$W/nats.log"; exit 1
}
ROWS=()
row() { # row WORKLOAD UNIT EVT_VALUE PEER PEER_VALUE TARGET
  local r; r=$(awk -v a="$3" -v b="$5" 'BEGIN{ if (a=="nan"||b=="nan"||b==0) print "n/a"; else printf "%.2f", a/b }')
  ROWS+=("$(printf '%-9s | %-12s | %12s | %-32s | %12s | %6s | %s' "$1" "$2" "$3" "$4" "$5" "$r" "$6")")
}
rate() { awk -v n="$1" -v s="$2" 'BEGIN{ if (s=="nan"||s<=0) print "nan"; else printf "%.0f", n/s }'; }
# timed CMD...: prints the seconds CMD took, or nan if it failed (its stderr in $W/err)
timed() { local t; t=$(now); "$@" >/dev/null 2>"$W/err" && secs "$t" "$(now)" || { echo nan; cat "$W/err" >&2; }; }

for w in $WORK; do case $w in
bulk)
  e=(); p=()
  for i in $(seq "$RUNS"); do
    rm -rf "$W/store"; e+=("$(timed "$EVT" --dir "$W/store" append -q --sync always <"$W/events.ndjson")")
    nats_up default; p+=("$(timed "$NC" bulk -url "$URL" -file "$W/events.ndjson")")
  done
  row bulk events/s "$(rate "$N" "$(printf '%s\n' "${e[@]}" | median)")" "JetStream async pub, no fsync" "$(rate "$N" "$(printf '%s\n' "${p[@]}" | median)")" "-" ;;
bulk-sync)
  e=(); p=()
  for i in $(seq "$RUNS"); do
    rm -rf "$W/s1"; e+=("$(timed "$EVT" --dir "$W/s1" append -q --sync always <"$W/sync.ndjson")")
    nats_up always; p+=("$(timed "$NC" bulk -url "$URL" -file "$W/sync.ndjson")")
  done
  row bulk-sync events/s "$(rate "$S" "$(printf '%s\n' "${e[@]}" | median)")" "JetStream async pub, sync always" "$(rate "$S" "$(printf '%s\n' "${p[@]}" | median)")" "-" ;;
proc)
  [ -n "$NATSCLI" ] || { echo "proc: skipped, no nats CLI"; continue; }
  M=200; e=(); p=(); nats_up always
  "$NC" bulk -url "$URL" -file "$W/sync.ndjson" -n 1 >/dev/null 2>&1 # creates the stream
  for i in $(seq "$RUNS"); do
    rm -rf "$W/s2"; t=$(now); ok=1
    for j in $(seq $M); do "$EVT" --dir "$W/s2" append account-1 Deposited '{"amount":1}' -q >/dev/null 2>&1 || ok=0; done
    [ $ok = 1 ] && e+=("$(secs "$t" "$(now)")") || e+=(nan)
    t=$(now); ok=1
    for j in $(seq $M); do "$NATSCLI" -s "$URL" pub -J events.account-1 '{"amount":1}' >/dev/null 2>&1 || ok=0; done
    [ $ok = 1 ] && p+=("$(secs "$t" "$(now)")") || p+=(nan)
  done
  row proc events/s "$(rate $M "$(printf '%s\n' "${e[@]}" | median)")" "nats pub -J per process, always" "$(rate $M "$(printf '%s\n' "${p[@]}" | median)")" "-" ;;
replay)
  [ -d "$W/store" ] || "$EVT" --dir "$W/store" append -q <"$W/events.ndjson" >/dev/null 2>&1
  nats_up default; "$NC" bulk -url "$URL" -file "$W/events.ndjson" 2>/dev/null || { echo "replay: bulk load failed"; exit 1; }
  e=(); p=()
  for i in $(seq "$RUNS"); do
    e+=("$(timed "$EVT" --dir "$W/store" replay -o json)")
    p+=("$(timed "$NC" replay -url "$URL")")
  done
  row replay events/s "$(rate "$N" "$(printf '%s\n' "${e[@]}" | median)")" "JetStream ordered consumer" "$(rate "$N" "$(printf '%s\n' "${p[@]}" | median)")" "-" ;;
consume)
  [ -d "$W/store" ] || "$EVT" --dir "$W/store" append -q <"$W/events.ndjson" >/dev/null 2>&1
  nats_up default; "$NC" bulk -url "$URL" -file "$W/events.ndjson" 2>/dev/null || { echo "consume: bulk load failed"; exit 1; }
  e=(); p=()
  for i in $(seq "$RUNS"); do
    "$EVT" --dir "$W/store" group rm bench >/dev/null 2>&1
    e+=("$(timed sh -c '"$1" --dir "$2" group create bench "account-*" --from start && "$1" --dir "$2" consume bench --once -o json' sh "$EVT" "$W/store")")
    p+=("$(timed "$NC" consume -url "$URL" -durable "g$i" -batch 100)")
  done
  row consume events/s "$(rate "$N" "$(printf '%s\n' "${e[@]}" | median)")" "JetStream pull x100 + ack each" "$(rate "$N" "$(printf '%s\n' "${p[@]}" | median)")" "-" ;;
*) echo "unknown workload $w"; exit 2 ;;
esac; done

echo "evt vs NATS JetStream (nats-server v2.15.2, file store): $N events of 200 B (bulk-sync: the first $S), $RUNS runs each, medians; $(nproc) cores; $(date -u +%F)"
printf '%-9s | %-12s | %12s | %-32s | %12s | %6s | %s\n' workload unit evt peer peer ratio target
for r in "${ROWS[@]}"; do echo "$r"; done
