#!/usr/bin/env bash
# cli.sh: evt on a nats store against the nats CLI on the same nats-server,
# paired A B A B, and a store of 1M streams against one of 1000.
# Run from anywhere:  testdata/bench/natscompare/cli.sh [-n EVENTS] [-r RUNS] [-p ROUNDS] [-m STREAMS] [WORKLOAD...]
# Workloads: bench proc scale (default: all).
#
#   bench  RUNS rounds of: `evt bench --store URL/E<i> --only bulk,replay,fold,consume`
#          (EVENTS events of 200 B over 1000 streams; bulk appends 1000 at a
#          time, the server's atomic-batch limit), then `nats bench js pub
#          async`, `js pub atomic --batch 1000` (the like-for-like peer of
#          evt's atomic appends), `js ordered` and `js consume` of EVENTS
#          messages of 200 B into and from a stream of their own, and `js
#          ordered` of evt's stream itself (the same messages evt reads). Both sides' figures are the
#          rates the tools print (timed inside the process, connection
#          and stream creation left out alike).
#   proc   ROUNDS rounds (procpair, ../procpair) of one process each:
#          `evt --store URL append account-1 Deposited {"amount":1} -q`
#          (evt hands it to evt-nats) and `nats pub -J` of the same data
#          into a JetStream stream, shuffled within each round.
#   scale  a store of STREAMS streams (default 1M) and one of 1000, one
#          event each, then 99 more of account-1 in both (100 events):
#          `evt streams account-1` (a head read) and `evt tail account-1
#          -n 100`, each ROUNDS times through procpair, shuffled.
#
# Everything is built with CGO_ENABLED=0: evt and evt-nats from the project
# root, nats-server from the root module's go.mod (v2.15.3), natscli v0.5.0
# with go install (the newest that resolves here, go-partial.tsv), procpair.
# One nats-server on 127.0.0.1 with JetStream on disk under the temp dir and
# its defaults (no fsync per message: sync_interval 2 min). Every figure is
# printed with the load average at the time: the machine is shared.
set -uo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../../.." && pwd)
N=100000 RUNS=3 ROUNDS=200 M=1000000
while getopts n:r:p:m: o; do case $o in n) N=$OPTARG;; r) RUNS=$OPTARG;; p) ROUNDS=$OPTARG;; m) M=$OPTARG;; *) exit 2;; esac; done
shift $((OPTIND-1)); WORK=${*:-bench proc scale}
W=$(mktemp -d /tmp/evt-natscli.XXXXXX); PORT=16423; URL=nats://127.0.0.1:$PORT; NPID=
trap '[ -n "$NPID" ] && kill "$NPID" 2>/dev/null; rm -rf "$W"' EXIT
export CGO_ENABLED=0 NO_COLOR=1
(cd "$ROOT" && go build -o "$W/evt" . && go build -o "$W/evt-nats" ./cmd/evt-nats &&
  go build -o "$W/nats-server" github.com/nats-io/nats-server/v2) || { echo "evt does not build"; exit 1; }
(cd "$HERE/../procpair" && go build -o "$W/procpair" .) || exit 1
(cd "$W" && GOBIN="$W" go install github.com/nats-io/natscli/nats@v0.5.0) >"$W/natscli.log" 2>&1 ||
  { echo "natscli v0.5.0 does not build here:"; tail "$W/natscli.log"; exit 1; }
EVT=$W/evt NATS="$W/nats -s $URL"

mkdir "$W/js"
"$W/nats-server" -js -sd "$W/js" -a 127.0.0.1 -p $PORT >"$W/nats.log" 2>&1 & NPID=$!
for _ in $(seq 100); do $NATS stream ls >/dev/null 2>&1 && break; sleep 0.05; done
load() { cut -d' ' -f1 /proc/loadavg; }
median() { sort -g | awk '{a[NR]=$1} END{if(!NR){print "nan";exit} print (NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (a=="nan"||b=="nan"||b==0) print "n/a"; else printf "%.2f", a/b }'; }
# natsrate: the msgs/sec the nats bench output in $1 states
natsrate() { grep -o 'stats: [0-9,]* msgs/sec' "$1" | head -1 | tr -d , | awk '{print $2}'; }
# evtrate FILE WORKLOAD: events_per_s of that row of evt bench -o json
evtrate() { grep "\"workload\":\"$2\"" "$1" | grep -o '"events_per_s":[0-9.]*' | cut -d: -f2; }
ROWS=()
row() { ROWS+=("$(printf '%-8s | %10s | %-34s | %10s | %6s | %-7s | %s' "$1" "$2" "$3" "$4" "$(ratio "$2" "$4")" "$5" "$6")"); }

for w in $WORK; do case $w in
bench)
  declare -A e p; loads=()
  for i in $(seq "$RUNS"); do
    loads+=("$(load)")
    "$EVT" --store "$URL/E$i" bench --events "$N" --streams 1000 --only bulk,replay,fold,consume -o json >"$W/evt$i.json" 2>"$W/err" || { cat "$W/err"; exit 1; }
    for k in bulk replay fold consume; do e[$k]+="$(evtrate "$W/evt$i.json" $k) "; done
    $NATS bench js pub async "nb$i.x" --stream "NB$i" --create --storage file --msgs "$N" --size 200 --no-progress >"$W/pub$i" 2>&1
    $NATS bench js pub atomic "na$i.x" --stream "NA$i" --create --storage file --msgs "$N" --size 200 --batch 1000 --no-progress >"$W/atom$i" 2>&1
    $NATS bench js ordered --stream "NB$i" --msgs "$N" --no-progress >"$W/ord$i" 2>&1
    $NATS bench js consume --stream "NB$i" --msgs "$N" --no-progress >"$W/con$i" 2>&1
    $NATS bench js ordered --stream "E$i" --msgs "$N" --no-progress >"$W/orde$i" 2>&1
    p[bulk]+="$(natsrate "$W/pub$i") "; p[atomic]+="$(natsrate "$W/atom$i") "; p[replay]+="$(natsrate "$W/ord$i") "; p[consume]+="$(natsrate "$W/con$i") "; p[evtmsgs]+="$(natsrate "$W/orde$i") "
  done
  med() { printf '%s\n' $1 | median; }
  L="${loads[*]}"
  row bulk "$(med "${e[bulk]}")" "nats bench js pub async (batch 500)" "$(med "${p[bulk]}")" ">= 0.67" "$L"
  row bulk "$(med "${e[bulk]}")" "nats bench js pub atomic --batch 1000" "$(med "${p[atomic]}")" "-" "$L"
  row replay "$(med "${e[replay]}")" "nats bench js ordered" "$(med "${p[replay]}")" ">= 0.67" "$L"
  row replay "$(med "${e[replay]}")" "js ordered of evt's own stream E<i>" "$(med "${p[evtmsgs]}")" "-" "$L"
  row fold "$(med "${e[fold]}")" "nats bench js ordered" "$(med "${p[replay]}")" "-" "$L"
  row consume "$(med "${e[consume]}")" "nats bench js consume (acks)" "$(med "${p[consume]}")" ">= 0.67" "$L"
  echo "bench rows: events/s, $N events of 200 B, $RUNS rounds, medians; evt per round: ${e[*]}; nats: ${p[*]}" ;;
proc)
  $NATS stream add PUB --subjects 'pub.>' --storage file --defaults >/dev/null || exit 1
  l=$(load)
  "$W/procpair" -rounds "$ROUNDS" -base nats \
    "nats=$W/nats -s $URL pub -J pub.account-1 {\"amount\":1}" \
    "evt=$EVT --store $URL/P append account-1 Deposited {\"amount\":1} -q" | tee "$W/proc"
  en=$(awk '$1=="evt" && $2!="="{print $2}' "$W/proc"); nn=$(awk '$1=="nats" && $2!="="{print $2}' "$W/proc")
  row proc "$(ratio 1000 "$en")" "nats pub -J, one process each" "$(ratio 1000 "$nn")" "> 1" "$l $(load)"
  echo "proc rows: events/s = 1000 / median ms of one process ($ROUNDS rounds)" ;;
scale)
  l=$(load)
  # The same shape in both: STREAMS or 1000 streams of one event each
  # (evt bench's bulk), then 99 more events of account-1 in one append.
  "$EVT" --store "$URL/BIG" bench --events "$M" --streams "$M" --only bulk -o json >"$W/big.json" 2>"$W/err" || { cat "$W/err"; exit 1; }
  "$EVT" --store "$URL/SMALL" bench --events 1000 --streams 1000 --only bulk -o json >"$W/small.json" 2>"$W/err" || { cat "$W/err"; exit 1; }
  for st in BIG SMALL; do
    for _ in $(seq 99); do echo '{"stream":"account-1","type":"Deposited","data":{"amount":1}}'; done | "$EVT" --store "$URL/$st" append -q || exit 1
  done
  echo "loaded: $M streams ($(evtrate "$W/big.json" bulk) events/s), 1000 streams ($(evtrate "$W/small.json" bulk) events/s); load $l"
  l=$(load)
  "$W/procpair" -rounds "$ROUNDS" -base head-1k \
    "head-1k=$EVT --store $URL/SMALL streams account-1 -o json" \
    "head-1m=$EVT --store $URL/BIG streams account-1 -o json" \
    "tail-1k=$EVT --store $URL/SMALL tail account-1 -n 100 -o json" \
    "tail-1m=$EVT --store $URL/BIG tail account-1 -n 100 -o json" | tee "$W/scale"
  ms() { awk -v n="$1" '$1==n && $2!="="{print $2}' "$W/scale"; }
  row head "$(ms head-1m)" "the same in 1000 streams (ms)" "$(ms head-1k)" "<= 1.5" "$l $(load)"
  row tail-100 "$(ms tail-1m)" "the same in 1000 streams (ms)" "$(ms tail-1k)" "<= 1.5" "$l $(load)"
  echo "scale rows: median ms of one process in a store of $M streams, against 1000 streams; ratio = 1M / 1k" ;;
*) echo "unknown workload $w"; exit 2 ;;
esac; done

echo "evt on nats vs the nats CLI, nats-server $("$W/nats-server" --version | awk '{print $NF}'), $(nproc) cores, $(date -u +'%F %H:%M'), evt $(cd "$ROOT" && git describe --always --dirty 2>/dev/null)"
printf '%-8s | %10s | %-34s | %10s | %6s | %-7s | %s\n' workload evt peer peer ratio target "load (1 min)"
for r in "${ROWS[@]}"; do echo "$r"; done
