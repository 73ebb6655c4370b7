# Shared by the bench scripts (sourced, not run): where inputs and outputs go, a scratch
# directory that is removed on exit together with any loop mounts, logging, medians and the
# disk space a command adds.
#
# bench_setup PREFIX: sets OUT (absolute), TORCH113, T26_ROOT, GO and TIME, and SCRATCH, a new
# directory under OUT named PREFIX.XXXXXX; file systems appended to MOUNTS are unmounted on exit.
bench_setup() {
	OUT=${BENCH_OUT:-bench/out}
	TORCH113=${TORCH113:-/usr/bin/python3}
	T26_ROOT=${PT2CONV_TORCH26_ROOT:-/opt/torch26}
	GO=${GO:-go}
	TIME=/usr/bin/time
	mkdir -p "$OUT"
	OUT=$(cd "$OUT" && pwd)
	SCRATCH=$(mktemp -d "$OUT/$1.XXXXXX")
	T26_DIR=
	MOUNTS=()
	trap bench_cleanup EXIT
	if [[ ! -x $TIME ]]; then
		log "installing GNU time for peak RSS"
		apt-get install -y time >/dev/null
	fi
}

bench_cleanup() {
	local m
	for m in "${MOUNTS[@]}"; do
		[[ -n $m ]] || continue
		umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
	done
	rm -rf "$SCRATCH"
	if [[ -n $T26_DIR ]]; then rm -rf "$T26_DIR"; fi
}

log() { printf '%s %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

# median: the median of the numbers on stdin, nothing when there are none.
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) exit; if (NR % 2) m = v[(NR + 1) / 2]; else m = (v[NR / 2] + v[NR / 2 + 1]) / 2; printf "%.3f\n", m }'; }

# used_kib DIR: the file system's used space in KiB, after syncing it.
used_kib() {
	sync -f "$1/."
	df -k --output=used "$1" | tail -n 1 | tr -d ' '
}

# space LABEL DIR CMD...: runs CMD once more and records in SPACE[LABEL] the space it added on
# DIR's file system (MiB); the output stays until the caller removes it.
space() {
	local label=$1 dir=$2 before after
	shift 2
	before=$(used_kib "$dir")
	"$@" >/dev/null 2>&1 || {
		SPACE[$label]=failed
		return 0
	}
	after=$(used_kib "$dir")
	SPACE[$label]=$(awk -v k=$((after - before)) 'BEGIN { printf "%.2f", k / 1024 }')
}
