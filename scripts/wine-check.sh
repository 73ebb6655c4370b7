#!/usr/bin/env bash
# Runs the windows/amd64 build of pt2conv under wine 10 (wine64 in the torch 2.x chroot, see
# scripts/torch-chroot.sh) as a windows user would: the README's main command, the same with
# --force over its own output (a replacing rename), and a batch with one broken file. Then both
# torches load what it wrote with weights_only=True and compare it with the input. It also runs
# the internal/osfile tests as a windows test binary. Exits non-zero on any failure.
#
#   PT2CONV_TORCH113      python3 with torch 1.x         (default /usr/bin/python3)
#   PT2CONV_TORCH26_ROOT  chroot with torch 2.x and wine (default /opt/torch26)
#
# Needs root (chroot, and /proc mounted in the chroot while wine runs).
set -euo pipefail
cd "$(dirname "$0")/.."

torch113=${PT2CONV_TORCH113:-/usr/bin/python3}
root=${PT2CONV_TORCH26_ROOT:-/opt/torch26}
wine=/usr/lib/wine/wine64
GO=${GO:-go}

say() { printf 'wine-check: %s\n' "$*"; }
fail() {
	say "FAIL: $*" >&2
	exit 1
}

[[ -x $root$wine ]] || fail "no wine64 in $root (run scripts/torch-chroot.sh)"

# The README's main command: the first `go run ./cmd/pt2conv` line of its first sh block.
readme_args=$(awk '/^```sh/{on=1; next} /^```/{if (on) exit} on' README.md |
	sed -e ':a' -e '/\\$/N; s/\\\n//; ta' | sed -n 's|^go run ./cmd/pt2conv ||p' | head -1)
[[ $readme_args == convert* ]] || fail "README's main command not found (got '$readme_args')"
read -r -a args <<<"$readme_args"
layers=()
for ((i = 0; i < ${#args[@]}; i++)); do
	[[ ${args[i]} == --layer ]] && layers+=(--layer "${args[i + 1]}")
done

work=$(mktemp -d "$root/tmp/pt2conv-wine.XXXXXX")
inside=/tmp/$(basename "$work")
mounted=
cleanup() {
	if [[ -n $mounted ]]; then umount "$root/proc" || umount -l "$root/proc"; fi
	# wineserver lingers a few seconds after the last program exits; stop it before removing
	# the prefix it serves.
	if [[ -d $work/prefix ]]; then
		chroot "$root" env WINEPREFIX="$inside/prefix" /usr/lib/wine/wineserver -k 2>/dev/null || true
		# wineserver keeps its socket in /tmp/wine-XXXXXX/server-<dev>-<inode of the prefix>
		# (both in hex), which outlives it.
		local server d
		server=$(stat -c %D "$work/prefix")-$(printf '%x' "$(stat -c %i "$work/prefix")")
		for d in "$root"/tmp/wine-*/server-"$server"; do
			[[ -d $d ]] && rm -rf "$d" && rmdir "$(dirname "$d")" 2>/dev/null
		done
	fi
	rm -rf --one-file-system "$work"
}
trap cleanup EXIT

say "building windows/amd64"
CGO_ENABLED=0 GOOS=windows GOARCH=amd64 "$GO" build -o "$work/pt2conv.exe" ./cmd/pt2conv
CGO_ENABLED=0 GOOS=windows GOARCH=amd64 "$GO" test -c -o "$work/osfile.test.exe" ./internal/osfile
mkdir -p "$work/fixtures" "$work/runs" "$work/converted" "$work/xdg"
chmod 700 "$work/xdg"
cp fixtures/vgg_tiny.pt "$work/fixtures/"
for i in 1 2 3; do cp fixtures/vgg_tiny.pt "$work/runs/vgg_$i.pt"; done
head -c 3000 fixtures/vgg_tiny.pt >"$work/runs/broken.pt"

if ! mountpoint -q "$root/proc"; then
	mount -t proc proc "$root/proc"
	mounted=1
fi

# wine_run CODE OUTFILE ARG...: runs ARG... under wine in the work directory, expecting exit
# status CODE; stdout and stderr go to OUTFILE.
wine_run() {
	local want=$1 log=$2 code=0
	shift 2
	chroot "$root" /usr/bin/env -C "$inside" WINEPREFIX="$inside/prefix" WINEDEBUG=-all \
		XDG_RUNTIME_DIR="$inside/xdg" UCX_LOG_LEVEL=fatal "$wine" "$@" >"$work/$log" 2>&1 || code=$?
	if [[ $code -ne $want ]]; then
		cat "$work/$log" >&2
		fail "wine $* exited $code, want $want"
	fi
}

say "wine $(chroot "$root" "$wine" --version 2>/dev/null); first start makes the prefix"
wine_run 0 version.log pt2conv.exe --version
grep -q 'windows/amd64' "$work/version.log" || fail "--version: $(cat "$work/version.log")"

say "README main command: pt2conv.exe ${args[*]}"
wine_run 0 main.log pt2conv.exe "${args[@]}"
grep -q 'checks passed' "$work/main.log" || fail "no passing verify table: $(cat "$work/main.log")"
out=$(awk '{for (i = 1; i < NF; i++) if ($i == "-o") print $(i + 1)}' <<<"${args[*]}")
[[ -s $work/$out ]] || fail "$out was not written"

say "again with --force, replacing $out"
wine_run 0 force.log pt2conv.exe "${args[@]}" --force

say "batch with a broken file"
wine_run 2 batch.log pt2conv.exe convert runs/vgg_1.pt runs/broken.pt runs/vgg_2.pt runs/vgg_3.pt \
	--out-dir converted -j 2 "${layers[@]}" --verify
cat "$work/batch.log"
grep -q 'broken.pt' "$work/batch.log" || fail "the batch did not name broken.pt"
grep -q '3 of 4 files converted, 1 failed' "$work/batch.log" || fail "batch summary missing"
[[ ! -e $work/converted/broken.pt ]] || fail "a broken input left an output"
leftovers=$(find "$work" -maxdepth 2 -name '*.pt2conv-tmp-*')
[[ -z $leftovers ]] || fail "temporary files left: $leftovers"

say "internal/osfile tests as a windows binary"
wine_run 0 osfile.log osfile.test.exe -test.v -test.count=1
grep -E '^(--- |ok|PASS|FAIL)' "$work/osfile.log" || true

# Every torch loads every output with weights_only=True; each tensor holds its input's values.
check=$(
	cat <<'PY'
import sys, torch
for out in sys.argv[2:]:
    a = torch.load(sys.argv[1], weights_only=True)
    b = torch.load(out, weights_only=True)
    assert list(a) == list(b), (out, "keys differ")
    four_d = 0
    for k in a:
        assert a[k].dtype == b[k].dtype and torch.equal(b[k].reshape(a[k].shape), a[k]), (out, k)
        four_d += a[k].dim() == 2 and b[k].dim() == 4
    assert four_d == 3, (out, "%d Linear weights in conv form, want 3" % four_d)
print("torch", torch.__version__, "loads", len(sys.argv) - 2, "files written under wine")
PY
)
outputs=("$out" converted/vgg_1.pt converted/vgg_2.pt converted/vgg_3.pt)
(cd "$work" && "$torch113" -c "$check" fixtures/vgg_tiny.pt "${outputs[@]}")
chroot "$root" /usr/bin/env -C "$inside" UCX_LOG_LEVEL=fatal python3 -c "$check" \
	fixtures/vgg_tiny.pt "${outputs[@]}" 2>"$work/torch26.log" || {
	cat "$work/torch26.log" >&2
	fail "torch 2.x"
}
say "ok"
