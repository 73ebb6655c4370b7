#!/usr/bin/env bash
# The project's test command (`make test`). On a Debian machine with Go it installs what the
# tests need and is missing (run as root): PyTorch 1.x from Debian, a C compiler for the race
# detector, qemu-user-static to run the linux/arm64 tests, XFS and btrfs tools for the
# copy-on-write tests, and a Debian trixie chroot with PyTorch 2.x and wine 10
# (scripts/torch-chroot.sh). Then it runs every check, prints a summary and exits non-zero if
# any check failed.
#
#   PT2CONV_TORCH113      python3 with torch 1.x         (default /usr/bin/python3)
#   PT2CONV_TORCH26_ROOT  chroot with torch 2.x          (default /opt/torch26)
#   PT2CONV_FUZZTIME      time per fuzz target           (default 20s)
#   PT2CONV_NO_INSTALL=1  check only; install nothing
set -uo pipefail

cd "$(dirname "$0")/.."

export PT2CONV_TORCH113=${PT2CONV_TORCH113:-/usr/bin/python3}
export PT2CONV_TORCH26_ROOT=${PT2CONV_TORCH26_ROOT:-/opt/torch26}
# Interop tests fail instead of skipping when torch is missing.
export PT2CONV_REQUIRE_TORCH=1
# torch 2.x loads UCX, which prints a complaint about the chroot on stdout unless told not to.
export UCX_LOG_LEVEL=fatal
fuzztime=${PT2CONV_FUZZTIME:-20s}

if ! command -v go >/dev/null && [[ -x /usr/local/go/bin/go ]]; then
	export PATH=$PATH:/usr/local/go/bin
fi

say() { printf '\n== %s\n' "$*"; }
die() {
	printf 'test.sh: %s\n' "$*" >&2
	exit 1
}

# ---------------------------------------------------------------------------------------------
# Install what is missing.

apt_packages=(python3-torch python3-numpy debootstrap time gcc libc6-dev qemu-user-static zip unzip xfsprogs btrfs-progs)

install_missing() {
	local missing=()
	for p in "${apt_packages[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
			missing+=("$p")
	done
	if ((${#missing[@]} > 0)); then
		[[ $(id -u) -eq 0 ]] || die "missing packages ${missing[*]}: run as root to install them"
		say "installing ${missing[*]}"
		DEBIAN_FRONTEND=noninteractive apt-get update -q || die "apt-get update failed"
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" ||
			die "apt-get install ${missing[*]} failed"
	fi
	say "torch 2.x chroot at $PT2CONV_TORCH26_ROOT"
	bash scripts/torch-chroot.sh || die "could not set up the torch 2.x chroot"
}

command -v go >/dev/null || die "go is not installed"
if [[ ${PT2CONV_NO_INSTALL:-} != 1 ]]; then
	install_missing
fi

# ---------------------------------------------------------------------------------------------
# Checks. Each runs even when an earlier one failed, so one run shows every problem.

passed=()
failed=()

check() {
	local name=$1
	shift
	say "$name"
	local start=$SECONDS
	if "$@"; then
		passed+=("$name")
		printf -- '-- ok: %s (%ds)\n' "$name" $((SECONDS - start))
	else
		failed+=("$name")
		printf -- '-- FAILED: %s (%ds)\n' "$name" $((SECONDS - start))
	fi
}

gofmt_clean() {
	local out
	out=$(gofmt -l .) || return 1
	if [[ -n $out ]]; then
		printf 'not gofmt-ed:\n%s\n' "$out"
		return 1
	fi
}

torch_versions() {
	"$PT2CONV_TORCH113" -c 'import torch; print("host  ", torch.__version__)' 2>/dev/null &&
		chroot "$PT2CONV_TORCH26_ROOT" python3 -c 'import torch; print("chroot", torch.__version__)' 2>/dev/null
}

# fixtures_fresh regenerates the torch 1.x fixtures into a copy of fixtures/ and compares what
# they hold, so that a change to fixtures/gen.py comes with regenerated fixtures (make fixtures).
# Tensor bytes and expected outputs are left out: float rounding may differ between CPUs.
fixtures_fresh() {
	local tmp rc=0
	tmp=$(mktemp -d) || return 1
	cp -r fixtures "$tmp/fixtures"
	if "$PT2CONV_TORCH113" fixtures/gen.py "$tmp/fixtures" >/dev/null; then
		"$PT2CONV_TORCH113" - fixtures "$tmp/fixtures" <<-'EOF' || rc=1
			import json, os, sys
			def shape(path):
			    def strip(v):
			        if isinstance(v, dict):
			            return {k: strip(x) for k, x in v.items() if k != "sha256"}
			        if isinstance(v, list):
			            return [strip(x) for x in v] if not all(isinstance(x, float) for x in v) else len(v)
			        return v
			    with open(path) as f:
			        return strip(json.load(f))
			old, new = sys.argv[1:]
			names = sorted(os.listdir(os.path.join(old, "expected")))
			stale = sorted(set(os.listdir(old)) ^ set(os.listdir(new)))
			stale += [n for n in ["manifest.json"] + ["expected/" + e for e in names]
			          if shape(os.path.join(old, n)) != shape(os.path.join(new, n))]
			if stale:
			    sys.exit("fixtures/ is stale (run make fixtures): " + ", ".join(stale))
		EOF
	else
		rc=1
	fi
	rm -rf "$tmp"
	return $rc
}

check "torch versions" torch_versions
check "gofmt" gofmt_clean
check "go vet" go vet ./...
check "fixtures up to date" fixtures_fresh
results=$(mktemp -d)
trap 'rm -rf "$results"' EXIT
go build -o "$results/testsummary" scripts/testsummary.go || die "cannot build scripts/testsummary.go"

# go_test NAME ARGS...: go test -json ARGS..., printed as plain go test prints, with the names
# and results of all top-level tests written to $results/NAME.
# -timeout: the command's tests, which run real torch and, under emulation, every instruction
# of the conversions, take longer than go test's default 10 minutes on two cores.
go_test() {
	local name=$1
	shift
	go test -json -timeout 40m "$@" | "$results/testsummary" -list "$results/$name"
}

# The six release platforms build and vet, without cgo as released.
targets=(linux/amd64 linux/arm64 darwin/amd64 darwin/arm64 windows/amd64 windows/arm64)
cross_build() {
	local t rc=0
	for t in "${targets[@]}"; do
		printf '%s\n' "$t"
		CGO_ENABLED=0 GOOS=${t%/*} GOARCH=${t#*/} go build ./... || rc=1
		CGO_ENABLED=0 GOOS=${t%/*} GOARCH=${t#*/} go vet ./... || rc=1
	done
	return $rc
}

# The whole suite again as linux/arm64 under user-mode emulation, torch interop included (torch
# runs natively beside the emulated test binary). The race detector does not run under qemu.
# Every test must pass, and the same tests must run (not skip) as in the native run, whether
# those passed or not.
arm64_tests() {
	local rc=0
	PT2CONV_TEST_EXEC=qemu-aarch64-static PT2CONV_SMALL_SCALE=1 CGO_ENABLED=0 GOARCH=arm64 \
		go_test arm64 -exec qemu-aarch64-static -count=1 ./... || rc=1
	# Tests of amd64-only code (build-tagged amd64), which arm64 does not have.
	local amd64_only='^github.com/pt2conv/pt2conv/internal/sgemm TestSgemmFaultReachesCaller '
	if ! diff -u <(grep -v -e "$amd64_only" "$results/native" | sed 's/ \(pass\|fail\)$/ ran/') \
		<(sed 's/ \(pass\|fail\)$/ ran/' "$results/arm64"); then
		echo "linux/arm64 under emulation did not run the same tests as the native run"
		rc=1
	fi
	return $rc
}

# make dist into a scratch directory: six archives and a checksum file; every binary carries
# its version and commit, and the ones this machine can start print them.
dist_snapshot() {
	local out=$results/dist commit version f bin
	PT2CONV_DIST_DIR=$out bash scripts/dist.sh || return 1
	commit=$(git rev-parse HEAD)
	version=$(basename "$out"/pt2conv_*_checksums.txt _checksums.txt)
	version=${version#pt2conv_}
	(cd "$out" && sha256sum -c --quiet -- *_checksums.txt) || return 1
	[[ $(ls "$out"/*.tar.gz "$out"/*.zip | wc -l) -eq 6 ]] || { echo "want 6 archives"; return 1; }
	mkdir "$out/x"
	for f in "$out"/*.tar.gz; do tar -C "$out/x" -xzf "$f"; done
	for f in "$out"/*.zip; do unzip -q -d "$out/x" "$f"; done
	for bin in "$out"/x/*/pt2conv "$out"/x/*/pt2conv.exe; do
		[[ -f $(dirname "$bin")/README.md && -f $(dirname "$bin")/BENCHMARKS.md ]] ||
			{ echo "$bin: README.md or BENCHMARKS.md missing beside it"; return 1; }
		# -trimpath keeps -ldflags out of the build info, so look for the stamped string itself.
		grep -q -a -F "$commit" "$bin" || { echo "$bin: commit $commit not stamped"; return 1; }
		grep -q -a -F "$version" "$bin" || { echo "$bin: version $version not stamped"; return 1; }
	done
	local v
	v=$("$out"/x/*_linux_amd64/pt2conv --version) && echo "$v" &&
		[[ $v == *"$version (commit ${commit:0:12}"*linux/amd64* ]] || return 1
	v=$(qemu-aarch64-static "$out"/x/*_linux_arm64/pt2conv --version) && echo "$v" &&
		[[ $v == *"$version (commit ${commit:0:12}"*linux/arm64* ]]
}

check "go test -race" go_test native -race -count=1 ./...
# The allocation checks stop at 10,000 tensors under the race detector; this runs them to 100,000.
check "allocations per tensor, 1,000 to 100,000 tensors" go test -count=1 -run 'Scale$' ./...
check "go test -tags purego (pure-Go kernels on amd64)" go test -tags purego -count=1 ./internal/sgemm ./verify
check "build and vet: ${targets[*]}" cross_build
check "go test linux/arm64 (qemu-user)" arm64_tests
check "windows/amd64 under wine" bash scripts/wine-check.sh
check "make dist (snapshot)" dist_snapshot

# ---- Fuzz targets -----------------------------------------------------------------------------
# One "package FuzzName" per line; each runs for $PT2CONV_FUZZTIME. Add targets here as they land,
# for example:   "./pickle FuzzPickle"
fuzz_targets=(
	"./pickle FuzzReadZip"
	"./pickle FuzzPickle"
	"./pickle FuzzLegacy"
	"./safetensors FuzzHeader"
)
for target in "${fuzz_targets[@]}"; do
	read -r pkg name <<<"$target"
	check "fuzz $name" go test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" "$pkg"
done
# -----------------------------------------------------------------------------------------------

total=$((${#passed[@]} + ${#failed[@]}))
echo
echo "== summary"
for name in "${passed[@]}"; do echo "   ok      $name"; done
for name in "${failed[@]}"; do echo "   FAILED  $name"; done
if ((${#failed[@]} > 0)); then
	echo "test.sh: FAIL (${#failed[@]} of $total checks failed)"
	exit 1
fi
echo "test.sh: PASS (all $total checks)"
