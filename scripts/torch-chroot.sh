#!/usr/bin/env bash
# Creates a Debian trixie chroot with PyTorch 2.x (python3-torch) and NumPy, so tests can check
# pt2conv's output against a second, newer torch than the host's. Idempotent: exits at once when
# torch already imports inside the chroot.
#
#   PT2CONV_TORCH26_ROOT   where the chroot lives (default /opt/torch26)
#   PT2CONV_DEBIAN_MIRROR  Debian mirror (default http://deb.debian.org/debian)
#
# Needs root, debootstrap and network access to the mirror. Takes a few minutes the first time.
set -euo pipefail

root=${PT2CONV_TORCH26_ROOT:-/opt/torch26}
mirror=${PT2CONV_DEBIAN_MIRROR:-http://deb.debian.org/debian}
suite=trixie
packages=(python3 python3-torch python3-numpy python3-safetensors)

log() { printf 'torch-chroot: %s\n' "$*" >&2; }

torch_imports() {
	[[ -x "$root/usr/bin/python3" ]] &&
		chroot "$root" python3 -c 'import torch, numpy, safetensors' >/dev/null 2>&1
}

if torch_imports; then
	log "torch already imports in $root"
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
