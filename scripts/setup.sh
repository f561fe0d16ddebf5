#!/usr/bin/env bash
# Install the Debian 12 packages crdtfs needs to build, test and benchmark.
# Safe to re-run: installs only what is missing.
set -euo pipefail

packages=(
	gcc meson ninja-build pkg-config
	libfuse3-dev fuse3 libjansson-dev libgit2-dev uthash-dev liburing-dev
	python3 python3-pytest python3-hypothesis
	git jq time less vim procps
)

missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	sudo=""
	[ "$(id -u)" -eq 0 ] || sudo="sudo"
	export DEBIAN_FRONTEND=noninteractive
	$sudo apt-get update -qq
	$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
[ -e /dev/fuse ] || echo "setup: note: /dev/fuse is missing; mount tests will be skipped" >&2
echo "setup: all packages present"
