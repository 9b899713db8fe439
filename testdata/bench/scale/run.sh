#!/usr/bin/env bash
# Builds a store of N events over M streams and prints the tables of
# ../shared/SCALE.md for it: derived bytes per event by file kind, and
# wall time / CPU / max RSS per command. Run from the project root:
#
#   testdata/bench/scale/run.sh [-n EVENTS] [-m STREAMS] [-d DIR] [-b BATCH]
#
# Events are 200-byte NDJSON envelopes over streams account-0 … account-(M-1)
# (type Deposited), appended from a file on stdin in batches of BATCH
# (default 100000). The store is made in DIR (default a new temporary
# directory, removed at the end unless -k). Needs GNU time (/usr/bin/time).
# Caches are warm; other load on the machine inflates wall times, so
# compare CPU (user+sys) between runs.
set -euo pipefail

n=100000 m=1000 dir= batch=100000 keep=0
while getopts "n:m:d:b:k" o; do
	case $o in
	n) n=$OPTARG ;;
	m) m=$OPTARG ;;
	d) dir=$OPTARG ;;
	b) batch=$OPTARG ;;
	k) keep=1 ;;
	*) echo "usage: $0 [-n EVENTS] [-m STREAMS] [-d DIR] [-b BATCH] [-k]" >&2; exit 2 ;;
	esac
done
[ -x /usr/bin/time ] || { echo "$0: needs GNU time at /usr/bin/time" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if [ -z "$dir" ]; then
	if [ "$keep" = 1 ]; then dir=$(mktemp -d)/store; else dir=$work/store; fi
fi
evt=$work/evt
go build -o "$evt" . >&2
export EVT_STORE=$dir

# gen FROM COUNT: COUNT envelopes, the i-th on stream account-(i mod M),
# each line padded to 200 bytes with its note.
gen() {
	awk -v from="$1" -v count="$2" -v m="$m" 'BEGIN {
		pad = sprintf("%200s", ""); gsub(/ /, "x", pad)
		for (i = from; i < from + count; i++) {
			head = sprintf("{\"stream\":\"account-%d\",\"type\":\"Deposited\",\"data\":{\"amount\":%d,\"note\":\"", i % m, (i * 7919) % 10000)
			tail = "\"}}"
			print head substr(pad, 1, 199 - length(head) - length(tail)) tail
		}
	}'
}

# measure LABEL CMD...: one line "LABEL | wall / cpu / rss".
measure() {
	local label=$1
	shift
	/usr/bin/time -f '%e %U %S %M' -o "$work/t" "$@" >/dev/null 2>"$work/err" || {
		echo "| \`$label\` | failed: $(head -c 200 "$work/err" | tr '\n' ' ') |"
		return
	}
	read -r wall user sys rss <"$work/t"
	printf '| `%s` | %s / %.2f / %d |\n' "$label" "$wall" "$(echo "$user + $sys" | bc)" $((rss / 1024))
}

echo "Filling $n events over $m streams in $dir (batches of $batch)…" >&2
done=0 fill_cpu=0 start=$(date +%s.%N)
while [ "$done" -lt "$n" ]; do
	k=$((n - done < batch ? n - done : batch))
	gen "$done" "$k" >"$work/batch.ndjson"
	/usr/bin/time -f '%U %S' -o "$work/t" "$evt" append -q <"$work/batch.ndjson"
	read -r user sys <"$work/t"
	fill_cpu=$(echo "$fill_cpu + $user + $sys" | bc)
	done=$((done + k))
done
fill_wall=$(echo "$(date +%s.%N) - $start" | bc)
gen "$n" 1000 >"$work/1000.ndjson"
rm -f "$work/batch.ndjson"

echo
echo "## evt at $n events, $m streams ($(git rev-parse --short HEAD 2>/dev/null || echo ?), $(go env GOVERSION), $(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg))"
echo
printf 'Fill: %.2f s wall, %.2f s CPU (%d events/s wall).\n' "$fill_wall" "$fill_cpu" "$(echo "$n / $fill_wall" | bc)"
echo
echo "### Disk bytes per event, by file kind"
echo
echo "| file kind | bytes | bytes/event |"
echo "| --- | --- | --- |"
kind() { # LABEL FIND-ARGS...
	local label=$1
	shift
	local b
	b=$(find "$dir" -type f "$@" -printf '%s\n' | awk '{s += $1} END {print s + 0}')
	printf '| %s | %d | %.2f |\n' "$label" "$b" "$(echo "scale=4; $b / $n" | bc)"
}
kind 'segments `*.seg`' -name '*.seg'
kind 'offsets `*.idx`' -name '*.idx'
kind 'id index `ids`' -name ids
kind 'heads table `heads`' -name heads
kind 'name index `names*`' -name 'names*'
kind 'hash chain `chain`' -name chain
kind 'everything but segments' ! -name '*.seg'
kind 'total' -true

echo
echo "### Time and memory per command"
echo
echo "Wall (s) / CPU user+sys (s) / max RSS (MB); output to /dev/null."
echo
echo "| command | wall / CPU / RSS |"
echo "| --- | --- |"
measure "append account-7 Deposited '{…}'" "$evt" append account-7 Deposited '{"amount":5}'
measure 'append -q < 1,000 lines' sh -c "\"$evt\" append -q < \"$work/1000.ndjson\""
measure 'tail account-7 -n 10' "$evt" tail account-7 -n 10
measure 'tail -n 10' "$evt" tail -n 10
measure "tail 'account-7*' -n 10" "$evt" tail 'account-7*' -n 10
measure 'tail --type Deposited -n 10' "$evt" tail --type Deposited -n 10
measure 'tail account-7 --from start' "$evt" tail account-7 --from start
measure 'replay' "$evt" replay
measure 'fold account-7' "$evt" fold account-7
measure "fold 'account-*'" "$evt" fold 'account-*'
measure 'streams' "$evt" streams
measure "streams 'account-7*'" "$evt" streams 'account-7*'
measure '__complete tail account-99' "$evt" __complete tail account-99
measure 'stats' "$evt" stats
measure 'verify' "$evt" verify
measure 'group create g --from start' "$evt" group create g --from start
measure "group create h 'account-7*' --from start" "$evt" group create h 'account-7*' --from start
measure 'group ls (g: backlog = whole store)' "$evt" group ls
measure 'group show g' "$evt" group show g
measure 'group show h (a glob: scanned)' "$evt" group show h
c=$((n < 100000 ? n : 100000))
measure "consume g --count $c" "$evt" consume g --count "$c"
measure 'group show g (after consume)' "$evt" group show g
measure 'compact (no rules)' "$evt" compact
measure 'compact again' "$evt" compact
