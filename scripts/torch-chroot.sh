#!/usr/bin/env bash
# Creates a Debian trixie chroot with PyTorch 2.x (python3-torch) and NumPy, so tests can check
# pt2conv's output against a second, newer torch than the host's, and wine 10 (wine64), which
# runs the windows build of pt2conv (bookworm's wine 8 cannot start binaries of current Go).
# Idempotent: exits at once when every package below is installed and torch imports inside the
# chroot; adding a package to the list installs it on the next run.
#
#   PT2CONV_TORCH26_ROOT   where the chroot lives (default /opt/torch26)
#   PT2CONV_DEBIAN_MIRROR  Debian mirror (default http://deb.debian.org/debian)
#
# Needs root, debootstrap and network access to the mirror. Takes a few minutes the first time.
set -euo pipefail

root=${PT2CONV_TORCH26_ROOT:-/opt/torch26}
mirror=${PT2CONV_DEBIAN_MIRROR:-http://deb.debian.org/debian}
suite=trixie
# Everything the tests need inside the chroot; extend this list.
packages=(python3 python3-torch python3-numpy python3-safetensors wine64)

log() { printf 'torch-chroot: %s\n' "$*" >&2; }

torch_imports() {
	[[ -x "$root/usr/bin/python3" ]] &&
		chroot "$root" python3 -c 'import torch, numpy, safetensors' >/dev/null 2>&1
}

all_installed() {
	local status
	status=$(chroot "$root" dpkg-query -W -f='${Status}\n' "${packages[@]}" 2>/dev/null) || return 1
	[[ $(grep -c 'install ok installed' <<<"$status") -eq ${#packages[@]} ]]
}

if torch_imports && all_installed; then
	log "torch imports and ${packages[*]} are installed in $root"
	exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
	log "must run as root to create $root"
	exit 1
fi
case "$root" in
/ | "") log "refusing chroot root '$root'"; exit 1 ;;
esac
if ! command -v debootstrap >/dev/null; then
	log "debootstrap is missing: apt-get install debootstrap"
	exit 1
fi

# debootstrap leaves its own folder behind when interrupted; such a tree cannot be resumed.
if [[ -d "$root/debootstrap" ]]; then
	log "removing unfinished bootstrap in $root"
	rm -rf --one-file-system "$root"
fi

if [[ ! -x "$root/usr/bin/apt-get" ]]; then
	log "bootstrapping Debian $suite into $root"
	mkdir -p "$root"
	debootstrap --variant=minbase "$suite" "$root" "$mirror" >&2
fi

cp /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true
mkdir -p "$root/proc"
mounted=
if ! mountpoint -q "$root/proc"; then
	mount -t proc proc "$root/proc"
	mounted=1
fi
# Unmount even on failure: a stray mount would make a later rm -rf of the chroot reach /proc.
cleanup() { if [[ -n $mounted ]]; then umount "$root/proc" || umount -l "$root/proc"; fi; }
trap cleanup EXIT

log "installing ${packages[*]} in $root"
chroot "$root" env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
chroot "$root" env DEBIAN_FRONTEND=noninteractive \
	apt-get install -y -q --no-install-recommends "${packages[@]}" >&2
chroot "$root" apt-get clean >&2

if ! torch_imports; then
	log "torch still does not import in $root"
	exit 1
fi
log "ready: $(chroot "$root" python3 -c 'import torch; print(torch.__version__)' 2>/dev/null)"
