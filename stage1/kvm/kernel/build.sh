#!/bin/bash
# Builds orbit's small guest kernel: Debian's linux-source package's
# `tinyconfig` with stage1/kvm/kernel/guest.config applied over it, checked
# option by option, built once and cached outside the source tree.
#
#   build.sh FRAGMENT CACHE_DIR OUTPUT
#
# CACHE_DIR/<source version>-<hash of the fragment and this script>/ holds a
# finished build (vmlinux, config); CACHE_DIR/current links to the latest.
# The source is unpacked once per source version in CACHE_DIR/src/ and built
# in CACHE_DIR/build/ (so a changed fragment rebuilds only what it changes),
# under a lock so concurrent builds wait for each other. OUTPUT receives a
# copy of vmlinux (and OUTPUT.config).
#
# Environment: KVM_KERNEL_SOURCE (default linux-source-6.1), JOBS (default
# the number of CPUs).
set -euo pipefail

fragment=$1 cache=$2 output=$3
pkg=${KVM_KERNEL_SOURCE:-linux-source-6.1}
jobs=${JOBS:-$(nproc)}
tarball=/usr/src/$pkg.tar.xz

version=$(dpkg-query -W -f='${Version}' "$pkg" 2>/dev/null) || {
	echo "kvm-kernel: $pkg is not installed (apt-get install $pkg)" >&2
	exit 1
}
[ -r "$tarball" ] || { echo "kvm-kernel: $tarball is missing (reinstall $pkg)" >&2; exit 1; }
hash=$(cat "$fragment" "$0" | sha256sum | cut -c1-16)
key=$version-$hash
done_dir=$cache/$key

publish() {
	mkdir -p "$(dirname "$output")"
	local f
	for f in vmlinux config; do
		local dst=$output
		[ "$f" = vmlinux ] || dst=$output.$f
		cmp -s "$done_dir/$f" "$dst" || { cp "$done_dir/$f" "$dst.tmp$$" && mv -f "$dst.tmp$$" "$dst"; }
	done
	ln -sfn "$key" "$cache/current.tmp$$" && mv -Tf "$cache/current.tmp$$" "$cache/current"
	echo "kvm-kernel: $output (cached in $done_dir)"
}

mkdir -p "$cache"
if [ -f "$done_dir/vmlinux" ]; then
	publish
	exit 0
fi

exec 9>"$cache/.lock"
flock 9
if [ -f "$done_dir/vmlinux" ]; then # built while we waited
	publish
	exit 0
fi

src=$cache/src/$version
tree=$src/$pkg
if [ ! -f "$tree/Makefile" ]; then
	echo "kvm-kernel: unpacking $tarball"
	rm -rf "$src.tmp" && mkdir -p "$src.tmp"
	tar -xJf "$tarball" -C "$src.tmp"
	rm -rf "$src" && mv "$src.tmp" "$src"
fi

out=$cache/build/$version
mkdir -p "$out"
make -s -C "$tree" O="$out" tinyconfig >/dev/null
"$tree/scripts/kconfig/merge_config.sh" -m -O "$out" "$out/.config" "$fragment" >/dev/null
make -s -C "$tree" O="$out" olddefconfig >/dev/null

# tinyconfig silently drops an option whose dependencies are missing, and
# another option may select one the fragment turns off: every option the
# fragment sets must be in the final configuration as asked.
missing=$(grep -E '^CONFIG_[A-Z0-9_]+=|^# CONFIG_[A-Z0-9_]+ is not set$' "$fragment" | while read -r want; do
	case $want in
	"# "*)
		opt=${want#\# }
		opt=${opt% is not set}
		! grep -qE "^$opt=" "$out/.config" || echo "$opt=n"
		;;
	*) grep -qxF "$want" "$out/.config" || echo "$want" ;;
	esac
done)
if [ -n "$missing" ]; then
	echo "kvm-kernel: $fragment asks for options the configuration did not keep:" $missing >&2
	exit 1
fi

echo "kvm-kernel: building $pkg $version with $(basename "$fragment") ($jobs jobs)"
make -s -C "$tree" O="$out" -j"$jobs" vmlinux
release=$(make -s -C "$tree" O="$out" kernelrelease)

rm -rf "$done_dir.tmp" && mkdir -p "$done_dir.tmp"
cp "$out/vmlinux" "$done_dir.tmp/vmlinux"
cp "$out/.config" "$done_dir.tmp/config"
echo "$release" >"$done_dir.tmp/release"
mv -T "$done_dir.tmp" "$done_dir"
publish
