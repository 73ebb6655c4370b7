#!/usr/bin/env bash
# The project's test command (`make test`). On a Debian machine with Go it installs what the
# tests need and is missing (run as root): PyTorch 1.x from Debian, a C compiler for the race
# detector, XFS and btrfs tools for the copy-on-write tests, and a Debian trixie chroot with
# PyTorch 2.x (scripts/torch-chroot.sh). Then it runs
# every check, prints a summary and exits non-zero if any check failed.
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

apt_packages=(python3-torch python3-numpy debootstrap time gcc libc6-dev xfsprogs btrfs-progs)

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
check "go test -race" go test -race -count=1 ./...

# ---- Fuzz targets -----------------------------------------------------------------------------
# One "package FuzzName" per line; each runs for $PT2CONV_FUZZTIME. Add targets here as they land,
# for example:   "./pickle FuzzPickle"
fuzz_targets=(
	"./pickle FuzzReadZip"
	"./pickle FuzzPickle"
	"./pickle FuzzLegacy"
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
