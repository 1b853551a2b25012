#!/bin/bash
# Builds (once) the Debian 12 root filesystem the systemd tests boot with
# systemd-nspawn -b, and prints its path. It is cached outside the source
# tree, under ORBIT_TEST_CACHE (/var/cache/orbit-tests), keyed by what it is
# made of: the suite, the variant, the packages and the mirror, which is the
# Debian mirror apt already uses on this machine.
set -euo pipefail

suite=bookworm
variant=minbase
packages=systemd,systemd-container,dbus
cache=${ORBIT_TEST_CACHE:-/var/cache/orbit-tests}

mirror=$(
	{
		grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}' || true
		grep -hs '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list | awk '{print ($2 ~ /^\[/) ? $3 : $2}' || true
	} | grep -v -- '-security' | head -n1
)
mirror=${mirror:-http://deb.debian.org/debian}

key=$(printf '%s\n' "$suite" "$variant" "$packages" "$mirror" | sha256sum | cut -c1-16)
dir=$cache/debian-$suite-$key
if [ -e "$dir/.complete" ]; then
	echo "$dir"
	exit 0
fi

command -v debootstrap >/dev/null || { echo "debootstrap is not installed; on Debian install the package debootstrap" >&2; exit 1; }
mkdir -p "$cache"
exec 9>"$cache/.lock-$key"
flock 9
if [ ! -e "$dir/.complete" ]; then
	echo "building the Debian $suite root for the systemd tests in $dir from $mirror (about a minute, once)" >&2
	rm -rf "$dir.tmp"
	debootstrap --variant="$variant" --include="$packages" "$suite" "$dir.tmp" "$mirror" >"$cache/debootstrap-$key.log" 2>&1 ||
		{ echo "debootstrap failed; see $cache/debootstrap-$key.log" >&2; exit 1; }
	# No login prompts on the console: the tests drive the system through
	# its namespaces.
	rm -f "$dir.tmp/etc/systemd/system/getty.target.wants/"*
	touch "$dir.tmp/.complete"
	rm -rf "$dir"
	mv "$dir.tmp" "$dir"
fi
echo "$dir"
