#!/usr/bin/env bash
# Benchmarks pt2conv against its baselines on a VGG16 checkpoint and prints a markdown
# report; with --write it also replaces BENCHMARKS.md with it. Run from anywhere:
#
#   bench/run.sh [--write] [--only scaling]
#
# --only scaling runs just the many-tensors section (bench/scaling.sh), which the full run
# appends to the report; with --write it replaces only that section of BENCHMARKS.md.
#
# Every baseline is measured in the same run as pt2conv, so the ratios hold on the machine
# that produced them. Each command runs once untimed first (so every file it reads is in
# the page cache), then the number of times set below; the report gives the median wall
# time, the median CPU time (user + system, which stays honest when other work shares the
# machine) and the largest peak RSS, and for the verification commands the largest peak of
# anonymous memory (RssAnon: what the process allocates, not the file pages it maps or
# reads). Outputs are deleted before each run, untimed, so that no command pays for
# unlinking the previous run's file. As root, the conversion is also timed on an XFS image
# with reflink and on a btrfs image, mounted from loop files under BENCH_OUT, with the disk
# space each output added.
#
# Environment:
#   BENCH_RUNS          timed runs of cp and pt2conv convert (default 5)
#   BENCH_VERIFY_RUNS   timed runs of pt2conv's verification commands (default 3)
#   BENCH_TORCH_RUNS    timed runs of each torch conversion (default 3)
#   BENCH_TORCH_VERIFY_RUNS  timed runs of each torch verification (default 2)
#   BENCH_INSPECT_RUNS  timed runs of pt2conv inspect (default 30)
#   BENCH_BIG_RUNS      timed runs of the 2 GB conversion (default 2)
#   BENCH_COW_RUNS      timed runs of each command on XFS and btrfs (default 5)
#   BENCH_COW=0         skip the XFS and btrfs rows (they need root, mkfs.xfs, mkfs.btrfs)
#   BENCH_SGEMM_TIME    -benchtime of the matrix product benchmarks (default 2x)
#   BENCH_OUT           scratch directory for builds and checkpoints (default bench/out)
#   TORCH113            python with torch 1.x (default /usr/bin/python3)
#   PT2CONV_TORCH26_ROOT  chroot holding python3 with torch 2.x; the torch 2.x rows are
#                       skipped when it does not exist (default /opt/torch26)
#   GO                  go command (default go)
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
WRITE=0
ONLY=
for ((argi = 1; argi <= $#; argi++)); do
	arg=${!argi}
	case $arg in
	--write) WRITE=1 ;;
	--only)
		argi=$((argi + 1))
		ONLY=${!argi:-}
		[[ $ONLY == scaling ]] || { echo "run.sh: --only takes one of: scaling" >&2; exit 2; }
		;;
	-h | --help)
		sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
		exit 0
		;;
	*)
		echo "run.sh: unknown argument $arg" >&2
		exit 2
		;;
	esac
done

if [[ $ONLY == scaling ]]; then
	if ((WRITE)); then exec bench/scaling.sh --write; else exec bench/scaling.sh; fi
fi

RUNS=${BENCH_RUNS:-5}
VERIFY_RUNS=${BENCH_VERIFY_RUNS:-3}
TORCH_RUNS=${BENCH_TORCH_RUNS:-3}
TORCH_VERIFY_RUNS=${BENCH_TORCH_VERIFY_RUNS:-2}
INSPECT_RUNS=${BENCH_INSPECT_RUNS:-30}
BIG_RUNS=${BENCH_BIG_RUNS:-2}
. bench/lib.sh
bench_setup run


# --- measurement ------------------------------------------------------------------------

declare -A WALL CPU RSS NOTE ANON SPACE
FAILURES=()
# When ANON=1, measure also records the peak RssAnon (MiB) of the command's own process.
ANON=0


# measure LABEL RUNS WARMUP PREP CMD...: runs PREP (a shell snippet, untimed) and then CMD,
# WARMUP times untimed and RUNS times timed, and records WALL (s), CPU (s) and RSS (MiB).
# A failing command is recorded, its error shown, and the run goes on.
measure() {
	local label=$1 runs=$2 warmup=$3 prep=$4
	shift 4
	local i walls=() cpus=() rss=0 anon=0 t0 t1 wrap=()
	if ((ANON)); then wrap=("$OUT/peak_anon" -o "$SCRATCH/anon" --); fi
	log "$label: $warmup warm-up + $runs runs"
	for ((i = 0; i < warmup + runs; i++)); do
		eval "$prep"
		t0=$(date +%s%N)
		if ! $TIME -v -o "$SCRATCH/time" "${wrap[@]}" "$@" >"$SCRATCH/stdout" 2>"$SCRATCH/stderr"; then
			local err
			err=$(grep -v -e cpuinfo -e UCX "$SCRATCH/stderr" | tail -n 5)
			log "$label FAILED: $*"
			printf '%s\n' "$err" >&2
			FAILURES+=("$label: \`$*\` failed: ${err//$'\n'/ }")
			WALL[$label]=FAIL
			return 0
		fi
		t1=$(date +%s%N)
		((i < warmup)) && continue
		walls+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f", (b - a) / 1e9 }')")
		cpus+=("$(awk -F': ' '/User time|System time/ { s += $2 } END { printf "%.3f", s }' "$SCRATCH/time")")
		local kb
		kb=$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$SCRATCH/time")
		((kb > rss)) && rss=$kb
		if ((ANON)); then
			kb=$(cat "$SCRATCH/anon")
			((kb > anon)) && anon=$kb
		fi
	done
	if ((ANON)); then ANON[$label]=$(awk -v k="$anon" 'BEGIN { printf "%.1f", k / 1024 }'); fi
	WALL[$label]=$(printf '%s\n' "${walls[@]}" | median)
	CPU[$label]=$(printf '%s\n' "${cpus[@]}" | median)
	RSS[$label]=$(awk -v k="$rss" 'BEGIN { printf "%.0f", k / 1024 }')
	NOTE[$label]=$(grep -v -e cpuinfo -e UCX "$SCRATCH/stdout" | tail -n 1 || true)
	log "$label: wall ${WALL[$label]} s, cpu ${CPU[$label]} s, rss ${RSS[$label]} MiB"
}

ok() { [[ -n ${WALL[$1]:-} && ${WALL[$1]} != FAIL ]]; }

# ratio A B [FORMAT]: WALL-like value A divided by B, or "n/a".
ratio() {
	if [[ $1 =~ ^[0-9.e+-]+$ && $2 =~ ^[0-9.e+-]+$ ]]; then
		awk -v a="$1" -v b="$2" -v f="${3:-%.2f}" 'BEGIN { if (b == 0) print "n/a"; else printf f "\n", a / b }'
	else
		echo n/a
	fi
}

# --- inputs -----------------------------------------------------------------------------

START=$(date -u '+%Y-%m-%d %H:%M UTC')
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
SECONDS=0

log "building pt2conv"
PT2CONV=$OUT/pt2conv
(cd "$ROOT" && CGO_ENABLED=0 $GO build -o "$PT2CONV" ./cmd/pt2conv)
(cd "$ROOT/bench" && CGO_ENABLED=0 $GO build -o "$OUT/verify_head" verify_head.go)
(cd "$ROOT/bench" && CGO_ENABLED=0 $GO build -o "$OUT/peak_anon" peak_anon.go)

VGG=$OUT/vgg16.pt
BIG=$OUT/vgg16-2gb.pt
# The inputs are made once; delete them to remake (after changing make_vgg16.py).
[[ -s $VGG ]] || { log "making $VGG"; "$TORCH113" bench/make_vgg16.py "$VGG" >&2; }
[[ -s $BIG ]] || { log "making $BIG"; "$TORCH113" bench/make_vgg16.py "$BIG" --target-gb 2 >&2; }
VGG_MB=$(awk -v s="$(stat -c %s "$VGG")" 'BEGIN { printf "%.0f", s / 1e6 }')
BIG_MB=$(awk -v s="$(stat -c %s "$BIG")" 'BEGIN { printf "%.0f", s / 1e6 }')

HEAD=(--layer classifier.0=512x7x7 --layer classifier.3 --layer classifier.6)
CONV=$OUT/vgg16-conv.pt
TORCH_CONV=$OUT/vgg16-torch.pt
COPY=$OUT/vgg16-copy.pt
BIG_CONV=$OUT/vgg16-2gb-conv.pt
# torch_info PYTHON...: "VERSION BLAS_INFO", the last line of its output (the chroot's torch
# prints unrelated warnings first).
torch_info() {
	"$@" -c 'import re, torch; m = re.search(r"BLAS_INFO=(\w+)", torch.__config__.show()); print(torch.__version__, m.group(1) if m else "unknown")' 2>/dev/null | tail -n 1
}
read -r TORCH113_VERSION TORCH113_BLAS < <(torch_info "$TORCH113")

HAVE_T26=0
if [[ -x $T26_ROOT/usr/bin/python3 ]]; then
	HAVE_T26=1
	T26_DIR=$(mktemp -d "$T26_ROOT/tmp/pt2conv-bench.XXXXXX")
	T26_IN=/tmp/$(basename "$T26_DIR")
	# A hard link costs nothing; the chroot may be on another file system, then copy.
	ln "$VGG" "$T26_DIR/vgg16.pt" 2>/dev/null || cp "$VGG" "$T26_DIR/vgg16.pt"
	cp bench/torch_convert.py bench/torch_verify.py "$T26_DIR/"
	read -r TORCH26_VERSION TORCH26_BLAS < <(torch_info chroot "$T26_ROOT" python3)
fi

# --- conversion -------------------------------------------------------------------------

measure "cp" "$RUNS" 1 'rm -f "$COPY"' cp "$VGG" "$COPY"
measure "cp + fsync" "$RUNS" 1 'rm -f "$COPY"' sh -c 'cp "$1" "$2" && sync "$2"' sh "$VGG" "$COPY"
measure "pt2conv convert" "$RUNS" 1 'rm -f "$CONV"' "$PT2CONV" convert "$VGG" -o "$CONV" "${HEAD[@]}" --force
measure "torch $TORCH113_VERSION convert + fsync" "$TORCH_RUNS" 1 'rm -f "$TORCH_CONV"' \
	sh -c '"$1" bench/torch_convert.py "$2" "$3" && sync "$3"' sh "$TORCH113" "$VGG" "$TORCH_CONV"
if ((HAVE_T26)); then
	measure "torch $TORCH26_VERSION convert + fsync" "$TORCH_RUNS" 1 'rm -f "$T26_DIR/vgg16-torch.pt"' \
		sh -c 'chroot "$1" python3 "$2/torch_convert.py" "$2/vgg16.pt" "$2/vgg16-torch.pt" && sync "$3"' \
		sh "$T26_ROOT" "$T26_IN" "$T26_DIR/vgg16-torch.pt"
fi
measure "pt2conv inspect" "$INSPECT_RUNS" 1 : "$PT2CONV" inspect "$VGG"
# Small files: every zip fixture, converted without layer specs (a re-save) into a directory,
# against copying them there and syncing each copy.
SMALL=("$ROOT"/fixtures/*.pt)
SMALL_DIR=$SCRATCH/small
measure "cp + fsync, ${#SMALL[@]} fixtures" "$RUNS" 1 'rm -rf "$SMALL_DIR"; mkdir "$SMALL_DIR"' \
	sh -c 'd=$1; shift; cp "$@" "$d" && sync "$d"/*' sh "$SMALL_DIR" "${SMALL[@]}"
measure "pt2conv convert, ${#SMALL[@]} fixtures" "$RUNS" 1 'rm -rf "$SMALL_DIR"; mkdir "$SMALL_DIR"' \
	"$PT2CONV" convert "${SMALL[@]}" --out-dir "$SMALL_DIR"
SMALL_IN=$(cat "${SMALL[@]}" | wc -c)
SMALL_OUT=$(cat "$SMALL_DIR"/*.pt | wc -c)
rm -rf "$SMALL_DIR"
measure "pt2conv convert, ${BIG_MB} MB" "$BIG_RUNS" 1 'rm -f "$BIG_CONV"' "$PT2CONV" convert "$BIG" -o "$BIG_CONV" "${HEAD[@]}" --force
# One run is enough to see torch's memory grow with the file; the input is already cached.
measure "torch $TORCH113_VERSION convert + fsync, ${BIG_MB} MB" 1 0 'rm -f "$BIG_CONV"' \
	sh -c '"$1" bench/torch_convert.py "$2" "$3" && sync "$3"' sh "$TORCH113" "$BIG" "$BIG_CONV"
rm -f "$BIG_CONV" "$COPY"

# --- verification -----------------------------------------------------------------------

if ok "pt2conv convert"; then
	ANON=1
	measure "pt2conv verify" "$VERIFY_RUNS" 1 : "$PT2CONV" verify "$VGG" "$CONV"
	measure "pt2conv verify --grow 7, 512x14x14" "$VERIFY_RUNS" 1 : "$PT2CONV" verify --grow 7 --samples 1 "$VGG" "$CONV"
	measure "pt2conv head, 512x14x14" "$VERIFY_RUNS" 1 : "$OUT/verify_head" -size 14 "$VGG" "$CONV"
	# The warm-up runs above put both files in the page cache, and torch's runs take long:
	# no warm-up of their own.
	measure "torch $TORCH113_VERSION head, 512x14x14" "$TORCH_VERIFY_RUNS" 0 : \
		"$TORCH113" bench/torch_verify.py --size 14 "$VGG" "$CONV"
	# What every torch row pays before it does anything: starting python and importing torch.
	measure "torch $TORCH113_VERSION import torch" "$TORCH_VERIFY_RUNS" 1 : "$TORCH113" -c 'import torch'
	if ((HAVE_T26)); then
		ln "$CONV" "$T26_DIR/vgg16-conv.pt" 2>/dev/null || cp "$CONV" "$T26_DIR/vgg16-conv.pt"
		measure "torch $TORCH26_VERSION head, 512x14x14" "$TORCH_VERIFY_RUNS" 0 : \
			chroot "$T26_ROOT" python3 "$T26_IN/torch_verify.py" --size 14 "$T26_IN/vgg16.pt" "$T26_IN/vgg16-conv.pt"
		measure "torch $TORCH26_VERSION import torch" "$TORCH_VERIFY_RUNS" 1 : chroot "$T26_ROOT" python3 -c 'import torch'
	fi
	ANON=0
else
	FAILURES+=("verification benchmarks skipped: no converted file")
fi

# --- copy-on-write file systems ----------------------------------------------------------

COW_RUNS=${BENCH_COW_RUNS:-5}
COW_FS=()

# cow FSTYPE MKFS...: formats a loop image, mounts it, copies the inputs in (without
# sharing: they stand for files written there by torch) and times the copies and pt2conv.
cow() {
	local fs=$1
	shift
	local dir="$SCRATCH/$fs" img="$SCRATCH/$fs.img" size=2G
	[[ $fs == xfs ]] && size=8G
	log "$fs: making a $size image"
	if ! { mkdir -p "$dir" && truncate -s "$size" "$img" && "$@" "$img" >/dev/null &&
		mount -o loop -t "$fs" "$img" "$dir"; }; then
		FAILURES+=("$fs rows skipped: could not make or mount the image")
		return 0
	fi
	MOUNTS+=("$dir")
	COW_FS+=("$fs")
	local in="$dir/vgg16.pt" copy="$dir/copy.pt" conv="$dir/conv.pt"
	cp --reflink=never "$VGG" "$in" && sync -f "$dir/."
	measure "$fs: cp" "$COW_RUNS" 1 'rm -f "$copy"' cp "$in" "$copy"
	measure "$fs: cp --reflink=never" "$COW_RUNS" 1 'rm -f "$copy"' cp --reflink=never "$in" "$copy"
	measure "$fs: cp + fsync" "$COW_RUNS" 1 'rm -f "$copy"' sh -c 'cp "$1" "$2" && sync "$2"' sh "$in" "$copy"
	measure "$fs: pt2conv convert" "$COW_RUNS" 1 'rm -f "$conv"' "$PT2CONV" convert "$in" -o "$conv" "${HEAD[@]}" --force
	rm -f "$copy" "$conv"
	space "$fs: cp" "$dir" cp "$in" "$copy"
	rm -f "$copy"
	space "$fs: cp + fsync" "$dir" sh -c 'cp "$1" "$2" && sync "$2"' sh "$in" "$copy"
	rm -f "$copy"
	space "$fs: cp --reflink=never" "$dir" cp --reflink=never "$in" "$copy"
	rm -f "$copy"
	space "$fs: pt2conv convert" "$dir" "$PT2CONV" convert "$in" -o "$conv" "${HEAD[@]}" --force
	rm -f "$conv" "$in"
	if [[ $fs == xfs ]]; then
		local big="$dir/big.pt" bigconv="$dir/big_conv.pt"
		cp --reflink=never "$BIG" "$big" && sync -f "$dir/."
		measure "$fs: cp, ${BIG_MB} MB" "$COW_RUNS" 1 'rm -f "$copy"' cp "$big" "$copy"
		measure "$fs: pt2conv convert, ${BIG_MB} MB" "$COW_RUNS" 1 'rm -f "$bigconv"' "$PT2CONV" convert "$big" -o "$bigconv" "${HEAD[@]}" --force
		rm -f "$copy" "$bigconv"
		space "$fs: cp, ${BIG_MB} MB" "$dir" cp "$big" "$copy"
		rm -f "$copy"
		space "$fs: pt2conv convert, ${BIG_MB} MB" "$dir" "$PT2CONV" convert "$big" -o "$bigconv" "${HEAD[@]}" --force
		rm -f "$bigconv" "$big"
	fi
	umount "$dir" && MOUNTS=("${MOUNTS[@]/$dir/}")
	rm -f "$img"
}

if [[ ${BENCH_COW:-1} == 0 ]]; then
	:
elif [[ $(id -u) -ne 0 ]]; then
	FAILURES+=("XFS and btrfs rows skipped: mounting an image needs root")
else
	cow xfs mkfs.xfs -q -f -m reflink=1
	cow btrfs mkfs.btrfs -q -f
fi

log "sgemm benchmarks"
SGEMM=$(cd "$ROOT" && $GO test ./internal/sgemm -run '^$' -bench 'Sgemm' -benchtime "${BENCH_SGEMM_TIME:-2x}" 2>&1 |
	awk '/^BenchmarkSgemm/ { name = $1; sub(/^BenchmarkSgemm\//, "", name); sub(/-[0-9]+$/, "", name);
		for (i = 2; i < NF; i++) if ($(i + 1) == "GFLOPS") printf "| %s | %.1f |\n", name, $i }') || true

log "scaling benchmarks"
if ! BENCH_OUT=$OUT TORCH113=$TORCH113 GO=$GO bench/scaling.sh >"$SCRATCH/scaling.md"; then
	FAILURES+=("bench/scaling.sh failed")
fi

LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)
ELAPSED=$SECONDS

# --- report -----------------------------------------------------------------------------

row() { # row LABEL
	local l=$1
	if ! ok "$l"; then
		printf '| %s | failed | | |\n' "$l"
		return
	fi
	printf '| %s | %s | %s | %s |\n' "$l" "${WALL[$l]}" "${CPU[$l]}" "${RSS[$l]}"
}

T113="torch $TORCH113_VERSION"
INSPECT_MS=$(ratio "${WALL[pt2conv inspect]:-}" 0.001 %.1f)
INSPECT_VERDICT=$(awk -v m="$INSPECT_MS" 'BEGIN { print (m != "n/a" && m < 50) ? "under 50 ms: pass" : "NOT under 50 ms" }')
T26="torch ${TORCH26_VERSION:-}"

blas_packages() {
	local p
	p=$(dpkg-query -W -f='${db:Status-Abbrev} ${Package} ${Version}\n' libblas3 'libopenblas*' 'libblis*' libmkl-rt 2>/dev/null |
		awk '$1 == "ii" { printf "%s%s %s", sep, $2, $3; sep = ", " }') || true
	echo "${p:-unknown}"
}

conversion_rows() {
	row "cp"
	row "cp + fsync"
	row "pt2conv convert"
	row "$T113 convert + fsync"
	if ((HAVE_T26)); then row "$T26 convert + fsync"; fi
	row "pt2conv convert, ${BIG_MB} MB"
	row "$T113 convert + fsync, ${BIG_MB} MB"
	row "pt2conv inspect"
	row "cp + fsync, ${#SMALL[@]} fixtures"
	row "pt2conv convert, ${#SMALL[@]} fixtures"
}

conversion_ratios() {
	local c=${WALL[pt2conv convert]:-}
	printf '| convert / cp, wall | %s |\n' "$(ratio "$c" "${WALL[cp]:-}")"
	printf '| convert / (cp + fsync), wall | %s |\n' "$(ratio "$c" "${WALL[cp + fsync]:-}")"
	printf '| convert / %s, wall | %s |\n' "$T113" "$(ratio "$c" "${WALL[$T113 convert + fsync]:-}")"
	if ((HAVE_T26)); then
		printf '| convert / %s, wall | %s |\n' "$T26" "$(ratio "$c" "${WALL[$T26 convert + fsync]:-}")"
	fi
	printf '| convert / %s, peak RSS | %s |\n' "$T113" \
		"$(ratio "${RSS[pt2conv convert]:-}" "${RSS[$T113 convert + fsync]:-}")"
	printf '| pt2conv convert peak RSS, %s MB / %s MB file | %s |\n' "$BIG_MB" "$VGG_MB" \
		"$(ratio "${RSS[pt2conv convert, ${BIG_MB} MB]:-}" "${RSS[pt2conv convert]:-}")"
	printf '| convert / (cp + fsync), %s fixtures, wall | %s |\n' "${#SMALL[@]}" \
		"$(ratio "${WALL[pt2conv convert, ${#SMALL[@]} fixtures]:-}" "${WALL[cp + fsync, ${#SMALL[@]} fixtures]:-}")"
	printf '| %s fixtures: bytes out / bytes in | %s |\n' "${#SMALL[@]}" "$(ratio "$SMALL_OUT" "$SMALL_IN" %.3f)"
	printf '| %s convert peak RSS, %s MB / %s MB file | %s |\n' "$T113" "$BIG_MB" "$VGG_MB" \
		"$(ratio "${RSS[$T113 convert + fsync, ${BIG_MB} MB]:-}" "${RSS[$T113 convert + fsync]:-}")"
}

head_ratios() {
	local h=${WALL[pt2conv head, 512x14x14]:-}
	printf '| head: pt2conv / %s, wall | %s |\n' "$T113" "$(ratio "$h" "${WALL[$T113 head, 512x14x14]:-}")"
	printf '| head: pt2conv / %s, CPU | %s |\n' "$T113" \
		"$(ratio "${CPU[pt2conv head, 512x14x14]:-}" "${CPU[$T113 head, 512x14x14]:-}")"
	if ((HAVE_T26)); then
		printf '| head: pt2conv / %s, wall | %s |\n' "$T26" "$(ratio "$h" "${WALL[$T26 head, 512x14x14]:-}")"
		printf '| head: pt2conv / %s, CPU | %s |\n' "$T26" \
			"$(ratio "${CPU[pt2conv head, 512x14x14]:-}" "${CPU[$T26 head, 512x14x14]:-}")"
	fi
	local bare
	bare=$(awk -v a="${WALL[$T113 head, 512x14x14]:-0}" -v b="${WALL[$T113 import torch]:-0}" 'BEGIN { printf "%.3f", a - b }')
	printf '| head: pt2conv / (%s head − import torch), wall | %s |\n' "$T113" "$(ratio "$h" "$bare")"
	printf '| pt2conv verify --grow 7 (all checks) / %s head, wall | %s |\n' "$T113" \
		"$(ratio "${WALL[pt2conv verify --grow 7, 512x14x14]:-}" "${WALL[$T113 head, 512x14x14]:-}")"
	printf '| head: pt2conv / %s, peak RSS | %s |\n' "$T113" \
		"$(ratio "${RSS[pt2conv head, 512x14x14]:-}" "${RSS[$T113 head, 512x14x14]:-}")"
}
MEM_KB=$(awk '/MemTotal/ { print $2 }' /proc/meminfo)

# busy_note warns, under the machine table, when other work shared the cores during the run.
busy_note() {
	awk -v a="${LOAD_START%% *}" -v b="${LOAD_END%% *}" -v n="$(nproc)" 'BEGIN {
		if (a > n || b > n) printf "\nThe machine was busy with other work (load average above its %d cores): every absolute\ntime here is inflated, unevenly; the ratios between rows of this run are the figures to compare.\n", n }'
}

cow_report() {
	((${#COW_FS[@]})) || return 0
	cat <<EOF
## Conversion on copy-on-write file systems

The same conversion on an XFS image made with \`mkfs.xfs -m reflink=1\` and on a btrfs image,
each mounted from a loop file, the inputs copied there first without sharing. Plain \`cp\`
clones the file there (coreutils' default, \`--reflink=auto\`); \`cp --reflink=never\` copies
its bytes. pt2conv places the storage records at the same offset modulo 4 KiB as in the input
and clones their whole blocks. Space added is \`df\` before and after one more run, both after
a sync.

| command | wall (s) | CPU (s) | peak RSS (MiB) | space added (MiB) |
|---|---:|---:|---:|---:|
EOF
	local fs l c
	for fs in "${COW_FS[@]}"; do
		for l in "$fs: cp" "$fs: cp --reflink=never" "$fs: cp + fsync" "$fs: pt2conv convert" \
			"$fs: cp, ${BIG_MB} MB" "$fs: pt2conv convert, ${BIG_MB} MB"; do
			[[ -n ${WALL[$l]:-} ]] || continue
			if ! ok "$l"; then
				printf '| %s | failed | | | |\n' "$l"
				continue
			fi
			printf '| %s | %s | %s | %s | %s |\n' "$l" "${WALL[$l]}" "${CPU[$l]}" "${RSS[$l]}" "${SPACE[$l]:-}"
		done
	done
	printf '\n| ratio | value |\n|---|---:|\n'
	for fs in "${COW_FS[@]}"; do
		c=${WALL[$fs: pt2conv convert]:-}
		printf '| %s: convert / cp, wall | %s |\n' "$fs" "$(ratio "$c" "${WALL[$fs: cp]:-}")"
		printf '| %s: convert / (cp + fsync), wall | %s |\n' "$fs" "$(ratio "$c" "${WALL[$fs: cp + fsync]:-}")"
		printf '| %s: convert / cp --reflink=never, wall | %s |\n' "$fs" "$(ratio "$c" "${WALL[$fs: cp --reflink=never]:-}")"
		if [[ -n ${WALL[$fs: pt2conv convert, ${BIG_MB} MB]:-} ]]; then
			printf '| %s: convert, %s MB / %s MB file, wall | %s |\n' "$fs" "$BIG_MB" "$VGG_MB" \
				"$(ratio "${WALL[$fs: pt2conv convert, ${BIG_MB} MB]:-}" "$c")"
		fi
	done
}

report() {
	cat <<EOF
# Benchmarks

Produced by \`make bench\` (\`bench/run.sh --write\`) on $START in $((ELAPSED / 60)) min $((ELAPSED % 60)) s.
Every baseline ran in the same run as pt2conv; the ratios are the figures to compare across
machines. Each command ran once untimed first so that its inputs were in the page cache, then
timed: cp and pt2conv convert $RUNS times, torch's conversions $TORCH_RUNS times, the 2 GB
conversion $BIG_RUNS times (torch's once, its input already cached), pt2conv's verifications
$VERIFY_RUNS times, torch's $TORCH_VERIFY_RUNS times (no warm-up of their own: pt2conv's had
already cached both files), \`inspect\` $INSPECT_RUNS times. Outputs were deleted before each
run, untimed. Wall and CPU (user + system) times are medians, peak RSS the largest of the
runs, from \`/usr/bin/time -v\`.

## Machine

| | |
|---|---|
| CPU | $(lscpu | awk -F': *' '/^Model name/ { print $2; exit }'), $(nproc) cores |
| memory | $(awk -v k="$MEM_KB" 'BEGIN { printf "%.1f GiB", k / 1048576 }') |
| kernel | $(uname -sr) |
| Go | $($GO env GOVERSION) |
| torch | $TORCH113_VERSION (host, BLAS_INFO=$TORCH113_BLAS)$( ((HAVE_T26)) && printf ', %s (chroot, BLAS_INFO=%s)' "$TORCH26_VERSION" "$TORCH26_BLAS") |
| system BLAS | $(blas_packages) |
| load average | $LOAD_START at start, $LOAD_END at end |
$(busy_note)

## Conversion: VGG16 state_dict, ${VGG_MB} MB, 138,357,544 float32 parameters

\`pt2conv convert IN -o OUT --layer classifier.0=512x7x7 --layer classifier.3 --layer classifier.6 --force\`
against copying the file and against the same job in PyTorch (\`bench/torch_convert.py\`: torch.load,
\`.view\` the three weights, torch.save). pt2conv syncs its output to disk before renaming it into place,
so the baselines sync their output too (\`sync FILE\`); plain \`cp\` is shown for reference.

| command | wall (s) | CPU (s) | peak RSS (MiB) |
|---|---:|---:|---:|
$(conversion_rows)

| ratio | value |
|---|---:|
$(conversion_ratios)
| inspect, median of $INSPECT_RUNS | ${INSPECT_MS} ms ($INSPECT_VERDICT) |

$(cow_report)

## Verification: the VGG16 head in both forms

\`pt2conv verify --grow 7 --samples 1 ORIGINAL CONVERTED\` proves both files exactly (every value,
and every storage byte of both files compared) and runs all its numeric checks on the three
converted layers: one position each, the 8×8 = 64 sliding windows of a 512×14×14 input for
each layer, and the head as a chain on that input, each with a second product of the squared
weights and inputs for the tolerance (see \`verify.Check\`), more work than the torch script
does. The head rows do exactly one fixed computation on both sides: decode the head from both files, run the Linear form on
each of the 8×8 = 64 windows of one random 512×14×14 input and the Conv2d form (fc6 as a
512×7×7 convolution, fc7 and fc8 as 1×1) on the whole input, ReLU between layers, and compare
every output (\`bench/verify_head.go\`, built on the \`verify\` package, against
\`bench/torch_verify.py\`, F.linear and F.conv2d with every core). The last column splits each
side's compute into its conv and linear parts: torch runs F.conv2d on oneDNN but F.linear on
the BLAS it was built against, and a build reporting BLAS_INFO=generic calls the system's
libblas, which is only as fast as the package installed there (see Machine). Every torch row
includes starting python and \`import torch\`; the "import torch" rows time that alone.

\`pt2conv verify ORIGINAL CONVERTED\` is the command with its defaults. pt2conv reads storage
bytes and float32 weights a block of at most 4 MiB at a time (on both cores), so peak RSS and
peak RssAnon, the memory the process allocates itself, stay small whatever the model.

| command | wall (s) | CPU (s) | peak RSS (MiB) | peak RssAnon (MiB) | last line |
|---|---:|---:|---:|---:|---|
EOF
	local l
	for l in "pt2conv verify" "pt2conv verify --grow 7, 512x14x14" "pt2conv head, 512x14x14" "$T113 head, 512x14x14" \
		"$T26 head, 512x14x14" "$T113 import torch" "$T26 import torch"; do
		ok "$l" || continue
		printf '| %s | %s | %s | %s | %s | %s |\n' "$l" "${WALL[$l]}" "${CPU[$l]}" "${RSS[$l]}" "${ANON[$l]:-}" "${NOTE[$l]//|/\\|}"
	done
	cat <<EOF

| ratio | value |
|---|---:|
$(head_ratios)

## Matrix products

\`go test ./internal/sgemm -bench Sgemm\`: the products of the head check in both orientations
verify uses, pt2conv's kernel against gonum's pure-Go BLAS: \`conv\` is Conv2d's weight [m, k]
times 64 im2col columns, \`linear\` is Linear's 64 input rows times the transposed weight
[n, k].

| product | GFLOPS |
|---|---:|
$SGEMM
EOF
	if [[ -s $SCRATCH/scaling.md ]]; then
		printf '\n'
		cat "$SCRATCH/scaling.md"
	fi
	if ((${#FAILURES[@]})); then
		printf '\n## Failures\n\n'
		printf -- '- %s\n' "${FAILURES[@]}"
	fi
}

report >"$SCRATCH/report.md"
cat "$SCRATCH/report.md"
if ((WRITE)); then
	cp "$SCRATCH/report.md" "$ROOT/BENCHMARKS.md"
	log "wrote BENCHMARKS.md"
	BENCH_OUT="$OUT" GO="$GO" TORCH113="$TORCH113" PT2CONV_TORCH26_ROOT="$T26_ROOT" bench/safetensors.sh --write >/dev/null
fi
log "done in ${ELAPSED} s"
((${#FAILURES[@]} == 0))
