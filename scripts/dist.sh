#!/usr/bin/env bash
# Builds the release archives (`make dist`): one static binary per platform, packed with
# README.md and BENCHMARKS.md as dist/pt2conv_<version>_<os>_<arch>.tar.gz (.zip for
# windows), and dist/pt2conv_<version>_checksums.txt (SHA-256, `sha256sum -c` format).
#
#   PT2CONV_VERSION  version to stamp (default: `git describe --tags`, or
#                    0.0.0-snapshot-<commit> when no tag describes the commit)
#   SOURCE_DATE_EPOCH build date to stamp (default: the commit's time)
#   PT2CONV_DIST_DIR where to write (default dist; earlier archives there are removed)
#
# This does the job GoReleaser's `release --snapshot` does for this project: six
# `CGO_ENABLED=0 go build -trimpath` with version ldflags, archives named like GoReleaser's,
# and a checksum file. GoReleaser itself cannot be installed with `go install` here: its
# releases that build with Go 1.26 depend on modules the Go module proxy does not serve
# (go.digitalxero.dev/go-msix: 403), and newer ones need Go 1.27. The script also makes
# archives reproducible, which GoReleaser does not by default: the build date is the
# commit's time and archive entries carry that time, fixed owners and a fixed order, so two
# runs on one commit give byte-identical archives and checksums.
set -euo pipefail
cd "$(dirname "$0")/.."

targets=(linux/amd64 linux/arm64 darwin/amd64 darwin/arm64 windows/amd64 windows/arm64)
docs=(README.md BENCHMARKS.md)
out=${PT2CONV_DIST_DIR:-dist}

GO=${GO:-go}
commit=$(git rev-parse HEAD)
short=$(git rev-parse --short=12 HEAD)
if [[ -n $(git status --porcelain --untracked-files=no) ]]; then
	short+=-dirty
fi
version=${PT2CONV_VERSION:-$(git describe --tags --exact-match 2>/dev/null || echo "0.0.0-snapshot-$short")}
epoch=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct)}
date=$(date -u -d "@$epoch" +%Y-%m-%dT%H:%M:%SZ)
ldflags="-s -w -X main.version=$version -X main.commit=$commit -X main.date=$date"

mkdir -p "$out"
rm -f "$out"/pt2conv_*
abs_out=$(cd "$out" && pwd)
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT

for target in "${targets[@]}"; do
	goos=${target%/*} goarch=${target#*/}
	name=pt2conv_${version}_${goos}_${goarch}
	exe=pt2conv
	[[ $goos == windows ]] && exe=pt2conv.exe
	mkdir -p "$stage/$name"
	CGO_ENABLED=0 GOOS=$goos GOARCH=$goarch "$GO" build -trimpath -buildvcs=false \
		-ldflags "$ldflags" -o "$stage/$name/$exe" ./cmd/pt2conv
	cp "${docs[@]}" "$stage/$name/"
	find "$stage/$name" -exec touch -h -d "@$epoch" {} +
	if [[ $goos == windows ]]; then
		(cd "$stage" && find "$name" -print | LC_ALL=C sort | zip -q -X -D "$abs_out/$name.zip" -@)
	else
		tar -C "$stage" --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$epoch" \
			-cf - "$name" | gzip -n -9 >"$out/$name.tar.gz"
	fi
	printf 'dist: %s\n' "$out/$name.$([[ $goos == windows ]] && echo zip || echo tar.gz)"
done

(cd "$out" && sha256sum -- *.tar.gz *.zip >"pt2conv_${version}_checksums.txt")
printf 'dist: %s\n' "$out/pt2conv_${version}_checksums.txt"
