#!/usr/bin/env bash
# Benchmarks pt2conv's .pt -> .safetensors conversion of a VGG16 state_dict against copying
# the file (cp + sync) and against the Python way (safetensors.torch.save_file(torch.load(..))
# under torch 2.x with the safetensors library, + sync), and the same conversion of a VGG16
# whose weights are all transposed views; then a header-only change (the classifier's Linear
# weights of a .safetensors file rewritten as convolutions) on ext4 and, as root, on an XFS
# image with reflink and a btrfs image, where the data region is cloned. Prints a markdown
# section; with --write it replaces the "Safetensors" section of BENCHMARKS.md (bench/run.sh
# --write calls it so).
#
#   bench/safetensors.sh [--write]
#
# Environment: BENCH_RUNS (timed runs of cp and pt2conv, default 5), BENCH_TORCH_RUNS
# (default 3), BENCH_OUT (default bench/out, where vgg16.pt is made once), TORCH113,
# PT2CONV_TORCH26_ROOT, GO, as for bench/run.sh; BENCH_COW=0 skips the XFS and btrfs rows.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
WRITE=0
[[ ${1:-} == --write ]] && WRITE=1
RUNS=${BENCH_RUNS:-5}
TORCH_RUNS=${BENCH_TORCH_RUNS:-3}
. bench/lib.sh
bench_setup st

declare -A WALL CPU RSS SPACE

# measure LABEL RUNS PREP CMD...: one untimed warm-up, then RUNS timed runs, PREP (untimed)
# before each; records the median wall and CPU time and the largest peak RSS.
measure() {
	local label=$1 runs=$2 prep=$3 i walls=() cpus=() rss=0 t0 t1 kb
	shift 3
	log "$label: 1 warm-up + $runs runs"
	for ((i = 0; i <= runs; i++)); do
		eval "$prep"
		t0=$(date +%s%N)
		$TIME -v -o "$SCRATCH/time" "$@" >"$SCRATCH/out" 2>&1 || { cat "$SCRATCH/out" >&2; WALL[$label]=FAIL; return 0; }
		t1=$(date +%s%N)
		((i == 0)) && continue
		walls+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f", (b - a) / 1e9 }')")
		cpus+=("$(awk -F': ' '/User time|System time/ { s += $2 } END { printf "%.3f", s }' "$SCRATCH/time")")
		kb=$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$SCRATCH/time")
		((kb > rss)) && rss=$kb
	done
	WALL[$label]=$(printf '%s\n' "${walls[@]}" | median)
	CPU[$label]=$(printf '%s\n' "${cpus[@]}" | median)
	RSS[$label]=$(awk -v k="$rss" 'BEGIN { printf "%.0f", k / 1024 }')
	log "$label: wall ${WALL[$label]} s, cpu ${CPU[$label]} s, rss ${RSS[$label]} MiB"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a !~ /^[0-9.]+$/ || b !~ /^[0-9.]+$/ || b == 0) print "n/a"; else printf "%.2f\n", a / b }'; }

START=$(date -u '+%Y-%m-%d %H:%M UTC')
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
SECONDS=0
PT2CONV=$OUT/pt2conv
(cd "$ROOT" && CGO_ENABLED=0 $GO build -o "$PT2CONV" ./cmd/pt2conv)
VGG=$OUT/vgg16.pt
TVGG=$OUT/vgg16-transposed.pt
[[ -s $VGG ]] || { log "making $VGG"; "$TORCH113" bench/make_vgg16.py "$VGG" >&2; }
[[ -s $TVGG ]] || { log "making $TVGG"; "$TORCH113" bench/make_transposed.py "$VGG" "$TVGG" >&2; }
VGG_MB=$(awk -v s="$(stat -c %s "$VGG")" 'BEGIN { printf "%.0f", s / 1e6 }')
COPY=$OUT/st-copy.pt
ST=$OUT/vgg16.safetensors

measure "cp + fsync" "$RUNS" 'rm -f "$COPY"' sh -c 'cp "$1" "$2" && sync "$2"' sh "$VGG" "$COPY"
measure "pt2conv .pt -> .safetensors" "$RUNS" 'rm -f "$ST"' "$PT2CONV" convert "$VGG" -o "$ST"
measure "cp + fsync, transposed" "$RUNS" 'rm -f "$COPY"' sh -c 'cp "$1" "$2" && sync "$2"' sh "$TVGG" "$COPY"
measure "pt2conv .pt -> .safetensors, transposed" "$RUNS" 'rm -f "$ST"' "$PT2CONV" convert "$TVGG" -o "$ST"
rm -f "$COPY" "$ST"
T26=""
if chroot "$T26_ROOT" python3 -c 'import safetensors' 2>/dev/null; then
	T26=$(chroot "$T26_ROOT" python3 -c 'import torch, safetensors; print("torch", torch.__version__, "safetensors", safetensors.__version__)' 2>/dev/null | tail -n 1)
	T26_DIR=$(mktemp -d "$T26_ROOT/tmp/pt2conv-bench.XXXXXX")
	T26_IN=/tmp/$(basename "$T26_DIR")
	ln "$VGG" "$T26_DIR/vgg16.pt" 2>/dev/null || cp "$VGG" "$T26_DIR/vgg16.pt"
	ln "$TVGG" "$T26_DIR/vgg16-transposed.pt" 2>/dev/null || cp "$TVGG" "$T26_DIR/vgg16-transposed.pt"
	cp bench/torch_safetensors.py "$T26_DIR/"
	for v in "" "-transposed"; do
		measure "python save_file(torch.load())${v:+, transposed} + fsync" "$TORCH_RUNS" "rm -f '$T26_DIR/out.safetensors'" \
			sh -c 'chroot "$1" python3 "$2/torch_safetensors.py" "$2/vgg16$3.pt" "$2/out.safetensors" && sync "$4"' \
			sh "$T26_ROOT" "$T26_IN" "$v" "$T26_DIR/out.safetensors"
	done
fi

# --- a header-only change: Linear -> Conv2d in a .safetensors file ---------------------------

HEAD=(--layer classifier.0=512x7x7 --layer classifier.3 --layer classifier.6)
STIN=$OUT/vgg16-in.safetensors
STCONV=$OUT/vgg16-conv.safetensors
"$PT2CONV" convert "$VGG" -o "$STIN" --force >/dev/null
measure "cp + fsync, .safetensors" "$RUNS" 'rm -f "$COPY"' sh -c 'cp "$1" "$2" && sync "$2"' sh "$STIN" "$COPY"
measure "pt2conv .safetensors -> .safetensors, Linear -> Conv2d" "$RUNS" 'rm -f "$STCONV"' "$PT2CONV" convert "$STIN" -o "$STCONV" "${HEAD[@]}"
rm -f "$COPY" "$STCONV"


COW_FS=()
# cow FSTYPE MKFS...: the header-only change, and pt -> safetensors, on a loop image of
# FSTYPE, the inputs copied there first without sharing.
cow() {
	local fs=$1
	shift
	local dir="$SCRATCH/$fs" img="$SCRATCH/$fs.img"
	log "$fs: making an image"
	if ! { mkdir -p "$dir" && truncate -s 4G "$img" && "$@" "$img" >/dev/null &&
		mount -o loop -t "$fs" "$img" "$dir"; }; then
		log "$fs rows skipped: could not make or mount the image"
		return 0
	fi
	MOUNTS+=("$dir")
	COW_FS+=("$fs")
	local in="$dir/in.safetensors" pt="$dir/vgg16.pt" copy="$dir/copy" conv="$dir/conv.safetensors"
	cp --reflink=never "$STIN" "$in" && cp --reflink=never "$VGG" "$pt" && sync -f "$dir/."
	measure "$fs: cp" "$RUNS" 'rm -f "$copy"' cp "$in" "$copy"
	measure "$fs: cp --reflink=never" "$RUNS" 'rm -f "$copy"' cp --reflink=never "$in" "$copy"
	measure "$fs: pt2conv .safetensors -> .safetensors, Linear -> Conv2d" "$RUNS" 'rm -f "$conv"' "$PT2CONV" convert "$in" -o "$conv" "${HEAD[@]}"
	measure "$fs: pt2conv .pt -> .safetensors" "$RUNS" 'rm -f "$conv"' "$PT2CONV" convert "$pt" -o "$conv"
	rm -f "$copy" "$conv"
	space "$fs: cp" "$dir" cp "$in" "$copy"
	rm -f "$copy"
	space "$fs: cp --reflink=never" "$dir" cp --reflink=never "$in" "$copy"
	rm -f "$copy"
	space "$fs: pt2conv .safetensors -> .safetensors, Linear -> Conv2d" "$dir" "$PT2CONV" convert "$in" -o "$conv" "${HEAD[@]}"
	rm -f "$conv"
	space "$fs: pt2conv .pt -> .safetensors" "$dir" "$PT2CONV" convert "$pt" -o "$conv"
	rm -f "$conv" "$in" "$pt"
	umount "$dir" && MOUNTS=("${MOUNTS[@]/$dir/}")
	rm -f "$img"
}
if [[ ${BENCH_COW:-1} != 0 && $(id -u) -eq 0 ]]; then
	cow xfs mkfs.xfs -q -f -m reflink=1
	cow btrfs mkfs.btrfs -q -f
fi
rm -f "$STIN"

ELAPSED=$SECONDS
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)

row() { printf '| %s | %s | %s | %s |\n' "$1" "${WALL[$1]:-n/a}" "${CPU[$1]:-n/a}" "${RSS[$1]:-n/a}"; }
report() {
	local P="pt2conv .pt -> .safetensors" PT="pt2conv .pt -> .safetensors, transposed"
	local H="pt2conv .safetensors -> .safetensors, Linear -> Conv2d" fs
	local PY="python save_file(torch.load()) + fsync" PYT="python save_file(torch.load()), transposed + fsync"
	local r1 r2 m1 m2
	r1=$(ratio "${WALL[$P]}" "${WALL[cp + fsync]}")
	r2=$(ratio "${WALL[$PT]}" "${WALL[cp + fsync, transposed]}")
	m1=$(awk -v r="$r1" -v m="${RSS[$P]}" -v m2="${RSS[$PT]}" 'BEGIN { print (r != "n/a" && r <= 1.2 && m <= 32 && m2 <= 32) ? "pass" : "NOT met" }')
	cat <<EOF
<!-- safetensors: made by bench/safetensors.sh; bench/run.sh --write keeps it -->
## Safetensors: VGG16 .pt -> .safetensors, ${VGG_MB} MB

Produced by \`bench/safetensors.sh --write\` on $START in ${ELAPSED} s (load average $LOAD_START at
start, $LOAD_END at end). \`pt2conv convert vgg16.pt -o vgg16.safetensors\` against copying
the file and syncing it, and against the Python way (\`bench/torch_safetensors.py\`:
\`safetensors.torch.save_file(torch.load(IN))\`, ${T26:-not available}, then \`sync\`). The second
input holds the same weights as transposed views (\`bench/make_transposed.py\`: 2-D weights with
strides (1, out), conv weights channels-last), which safetensors cannot store as they are: every
weight is gathered in row-major order. One warm-up, then $RUNS timed runs (Python $TORCH_RUNS);
medians of wall and CPU time, the largest peak RSS.

| command | wall (s) | CPU (s) | peak RSS (MiB) |
|---|---:|---:|---:|
$(row "cp + fsync")
$(row "$P")
$(row "$PY")
$(row "cp + fsync, transposed")
$(row "$PT")
$(row "$PYT")

| ratio | value |
|---|---:|
| .pt -> .safetensors / (cp + fsync), wall | $r1 |
| .pt -> .safetensors / Python, wall | $(ratio "${WALL[$P]}" "${WALL[$PY]:-}") |
| transposed .pt -> .safetensors / (cp + fsync), wall | $r2 |
| target: at most 1.2x cp + fsync and 32 MiB peak RSS, transposed too | $m1 |

A header-only change: \`pt2conv convert vgg16.safetensors -o conv.safetensors --layer
classifier.0=512x7x7 --layer classifier.3 --layer classifier.6\`, the input written by pt2conv
from the .pt above. The header is padded (by less than 4 KiB) so that the data region lies at
the same offset modulo 4 KiB as in the input; on XFS with reflink and btrfs its whole blocks are
then cloned. There the inputs were copied onto a loop image first without sharing; plain \`cp\`
clones the whole file. Space added is \`df\` before and after one more run, both after a sync.

| command | wall (s) | CPU (s) | peak RSS (MiB) | space added (MiB) |
|---|---:|---:|---:|---:|
$(srow "cp + fsync, .safetensors")
$(srow "$H")
$(for fs in "${COW_FS[@]}"; do for l in "$fs: cp" "$fs: cp --reflink=never" "$fs: $H" "$fs: $P"; do srow "$l"; done; done)

| ratio | value |
|---|---:|
| header-only change / (cp + fsync), wall | $(ratio "${WALL[$H]:-}" "${WALL[cp + fsync, .safetensors]:-}") |
$(for fs in "${COW_FS[@]}"; do
	printf '| %s: header-only change / cp, wall | %s |\n' "$fs" "$(ratio "${WALL[$fs: $H]:-}" "${WALL[$fs: cp]:-}")"
	printf '| %s: header-only change / cp --reflink=never, wall | %s |\n' "$fs" "$(ratio "${WALL[$fs: $H]:-}" "${WALL[$fs: cp --reflink=never]:-}")"
	printf '| %s: .pt -> .safetensors / cp --reflink=never, wall | %s |\n' "$fs" "$(ratio "${WALL[$fs: $P]:-}" "${WALL[$fs: cp --reflink=never]:-}")"
done)
<!-- /safetensors -->
EOF
}
srow() { printf '| %s | %s | %s | %s | %s |\n' "$1" "${WALL[$1]:-n/a}" "${CPU[$1]:-n/a}" "${RSS[$1]:-n/a}" "${SPACE[$1]:-}"; }
report >"$SCRATCH/section.md"
cat "$SCRATCH/section.md"
if ((WRITE)); then
	python3 - "$ROOT/BENCHMARKS.md" "$SCRATCH/section.md" <<'PY'
import re, sys
path, section = sys.argv[1], open(sys.argv[2]).read()
text = open(path).read()
pattern = re.compile(r"<!-- safetensors:.*?<!-- /safetensors -->\n", re.S)
text = pattern.sub(lambda m: section, text) if pattern.search(text) else text.rstrip("\n") + "\n\n" + section
open(path, "w").write(text)
PY
	log "wrote the Safetensors section of BENCHMARKS.md"
fi
