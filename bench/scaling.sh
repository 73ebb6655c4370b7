#!/usr/bin/env bash
# Times pt2conv on state_dicts of 1,000, 10,000 and 100,000 small tensors (bench/make_experts.py,
# a mixture-of-experts shape: Linear "model.layers.L.experts.E.w1" and a LayerNorm per expert)
# against cp + sync and torch's load + save, and prints a markdown section. bench/run.sh
# includes it in BENCHMARKS.md; run alone it can replace just that section:
#
#   bench/scaling.sh [--write]        (also: bench/run.sh --only scaling [--write])
#
# Each command runs once untimed (to fill the page cache) and then BENCH_SCALING_RUNS times;
# the table gives the median wall and CPU (user + system) times and the largest peak RSS. A
# command that runs longer than BENCH_SCALING_TIMEOUT seconds is stopped and shown as such.
#
# Environment:
#   BENCH_SCALING_COUNTS   tensor counts (default "1000 10000 100000")
#   BENCH_SCALING_RUNS     timed runs per command (default 3)
#   BENCH_SCALING_TIMEOUT  seconds before a run is stopped (default 120)
#   BENCH_OUT, TORCH113, GO  as for bench/run.sh
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
WRITE=0
for arg in "$@"; do
	case $arg in
	--write) WRITE=1 ;;
	-h | --help)
		sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
		exit 0
		;;
	*)
		echo "scaling.sh: unknown argument $arg" >&2
		exit 2
		;;
	esac
done

COUNTS=${BENCH_SCALING_COUNTS:-1000 10000 100000}
RUNS=${BENCH_SCALING_RUNS:-3}
LIMIT=${BENCH_SCALING_TIMEOUT:-120}
. bench/lib.sh
bench_setup scaling



declare -A WALL CPU RSS

# measure KEY PREP CMD...: PREP (a shell snippet) runs untimed before each run of CMD.
measure() {
	local key=$1 prep=$2
	shift 2
	local i walls=() cpus=() rss=0 t0 t1 status
	for ((i = 0; i < 1 + RUNS; i++)); do
		eval "$prep"
		t0=$(date +%s%N)
		status=0
		timeout "$LIMIT" $TIME -v -o "$SCRATCH/time" "$@" >"$SCRATCH/stdout" 2>"$SCRATCH/stderr" || status=$?
		t1=$(date +%s%N)
		if ((status == 124)); then
			log "$key: stopped after $LIMIT s"
			WALL[$key]="> $LIMIT"
			return 0
		elif ((status != 0)); then
			log "$key FAILED: $*"
			grep -v -e cpuinfo -e UCX "$SCRATCH/stderr" | tail -n 5 >&2 || true
			WALL[$key]=failed
			return 0
		fi
		((i == 0)) && continue
		walls+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f", (b - a) / 1e9 }')")
		cpus+=("$(awk -F': ' '/User time|System time/ { s += $2 } END { printf "%.3f", s }' "$SCRATCH/time")")
		local kb
		kb=$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$SCRATCH/time")
		((kb > rss)) && rss=$kb
	done
	WALL[$key]=$(printf '%s\n' "${walls[@]}" | median)
	CPU[$key]=$(printf '%s\n' "${cpus[@]}" | median)
	RSS[$key]=$(awk -v k="$rss" 'BEGIN { printf "%.0f", k / 1024 }')
	log "$key: wall ${WALL[$key]} s, cpu ${CPU[$key]} s, rss ${RSS[$key]} MiB"
}

START=$(date -u '+%Y-%m-%d %H:%M UTC')
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
SECONDS=0

log "building pt2conv"
PT2CONV=$SCRATCH/pt2conv
(cd "$ROOT" && CGO_ENABLED=0 $GO build -o "$PT2CONV" ./cmd/pt2conv)
TORCH_VERSION=$("$TORCH113" -c 'import torch; print(torch.__version__)' 2>/dev/null | tail -n 1)

COMMANDS=("cp + sync" "pt2conv inspect" "pt2conv convert, one layer" "pt2conv convert, every Linear"
	"pt2conv verify" "torch $TORCH_VERSION load + save + sync")
declare -A SIZE
for n in $COUNTS; do
	in=$OUT/experts-$n.pt
	# Made once; delete to remake (after changing make_experts.py).
	[[ -s $in ]] || { log "making $in"; "$TORCH113" bench/make_experts.py "$in" --tensors "$n" >&2; }
	SIZE[$n]=$(awk -v s="$(stat -c %s "$in")" 'BEGIN { printf "%.1f", s / 1e6 }')
	one=$SCRATCH/one-$n.pt all=$SCRATCH/all-$n.pt copy=$SCRATCH/copy-$n.pt
	measure "$n/cp + sync" 'rm -f "$copy"' sh -c 'cp "$1" "$2" && sync "$2"' sh "$in" "$copy"
	measure "$n/pt2conv inspect" : "$PT2CONV" inspect "$in"
	measure "$n/pt2conv convert, one layer" 'rm -f "$one"' \
		"$PT2CONV" convert "$in" -o "$one" --layer model.layers.0.experts.0.w1
	measure "$n/pt2conv convert, every Linear" 'rm -f "$all"' \
		"$PT2CONV" convert "$in" -o "$all" --layer 'model.layers.*.w1'
	if [[ -s $all ]]; then
		measure "$n/pt2conv verify" : "$PT2CONV" verify "$in" "$all"
	else
		WALL[$n/pt2conv verify]="no input"
	fi
	measure "$n/torch $TORCH_VERSION load + save + sync" 'rm -f "$copy"' \
		sh -c '"$1" bench/torch_resave.py "$2" "$3" && sync "$3"' sh "$TORCH113" "$in" "$copy"
	rm -f "$one" "$all" "$copy"
done
log "object model size"
MODEL_BYTES=$(cd "$ROOT" && $GO test ./pickle -run '^TestModelBytesPerTensor$' -count=1 -v 2>&1 |
	sed -n 's/.*object model of an opened checkpoint: \([0-9]*\) bytes per tensor.*/\1/p') || true
ELAPSED=$SECONDS

is_number() { [[ ${1:-} =~ ^[0-9.]+$ ]]; }

# growth CMD: wall time at the largest count over wall time at the one before it.
growth() {
	local counts=($COUNTS) a b
	((${#counts[@]} >= 2)) || { echo n/a; return; }
	a=${WALL[${counts[-2]}/$1]:-} b=${WALL[${counts[-1]}/$1]:-}
	if is_number "$a" && is_number "$b"; then
		awk -v a="$a" -v b="$b" 'BEGIN { if (a == 0) print "n/a"; else printf "%.1f×\n", b / a }'
	else
		echo n/a
	fi
}

report() {
	local counts=($COUNTS) n c header="| command |" rule="|---|"
	for n in "${counts[@]}"; do
		header+=" $n: wall (s) | CPU (s) | RSS (MiB) |"
		rule+="---:|---:|---:|"
	done
	local prev=?
	((${#counts[@]} >= 2)) && prev=${counts[-2]}
	header+=" ${counts[-1]} / $prev wall |"
	rule+="---:|"
	cat <<-EOT
	## Scaling: many small tensors

	Produced by \`bench/scaling.sh\` on $START in $((ELAPSED / 60)) min $((ELAPSED % 60)) s (load average
	$LOAD_START at start, $(cut -d' ' -f1-3 /proc/loadavg) at end). Inputs: \`bench/make_experts.py --tensors N\`
	under torch $TORCH_VERSION, state_dicts of N float32 tensors in as many storages (N/4 experts, each a
	Linear(16, 16) \`model.layers.L.experts.E.w1\` and a LayerNorm(16)); $(for n in "${counts[@]}"; do printf '%s: %s MB; ' "$n" "${SIZE[$n]}"; done)
	Commands: \`inspect IN\`; \`convert IN -o OUT --layer model.layers.0.experts.0.w1\` (one layer);
	\`convert IN -o OUT --layer 'model.layers.*.w1'\` (every Linear, N/4 layers); \`verify IN OUT\` of
	the latter; \`cp IN OUT && sync OUT\`; torch: \`torch.save(torch.load(IN), OUT)\` and sync. Each ran once
	untimed, then $RUNS times: median wall and CPU (user + system), largest peak RSS; runs longer than
	$LIMIT s were stopped. The last column is how much the wall time grows from the second-largest
	to the largest N (10× the tensors: about 10× is linear).

	An opened checkpoint holds ${MODEL_BYTES:-?} bytes of heap per tensor (its Tensor, Storage, key
	and dict entry; \`go test ./pickle -run TestModelBytesPerTensor -v\`); storage bytes stay in the file.

	$header
	$rule
	EOT
	for c in "${COMMANDS[@]}"; do
		printf '| %s |' "$c"
		for n in "${counts[@]}"; do
			printf ' %s | %s | %s |' "${WALL[$n/$c]:-}" "${CPU[$n/$c]:-}" "${RSS[$n/$c]:-}"
		done
		printf ' %s |\n' "$(growth "$c")"
	done
}

report >"$SCRATCH/section.md"
cat "$SCRATCH/section.md"
if ((WRITE)); then
	# Replace the section in BENCHMARKS.md (or append it), keeping everything else.
	python3 - "$ROOT/BENCHMARKS.md" "$SCRATCH/section.md" <<-'EOP'
		import re, sys
		path, section = sys.argv[1], open(sys.argv[2]).read().rstrip("\n") + "\n"
		try:
		    text = open(path).read()
		except FileNotFoundError:
		    text = "# Benchmarks\n"
		# The section ends at the next heading, or at the comment line that introduces it.
		m = re.search(r"^## Scaling: .*?(?=^<!--[^\n]*-->\n## |^## |\Z)", text, flags=re.S | re.M)
		if m:
		    text = text[:m.start()] + section + ("\n" if m.end() < len(text) else "") + text[m.end():]
		else:
		    text = text.rstrip("\n") + "\n\n" + section
		open(path, "w").write(text)
	EOP
	log "wrote the scaling section of BENCHMARKS.md"
fi
log "done in ${ELAPSED} s"
