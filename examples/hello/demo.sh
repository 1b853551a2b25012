#!/usr/bin/env bash
# Builds a small example image from busybox-static and runs it in a pod.
# Usage: demo.sh path/to/orbit
set -euo pipefail
orbit=$(realpath "$1")
here=$(cd "$(dirname "$0")" && pwd)
out="$here/out"
rm -rf "$out"
mkdir -p "$out/rootfs/bin" "$out/rootfs/etc" "$out/rootfs/srv" "$out/rootfs/tmp"

cp /bin/busybox "$out/rootfs/bin/busybox"
# What the tour in README.md and the command pages use: a shell, sleep for
# a long-running pod, ps and friends for `orbit enter`.
for applet in sh echo id pwd hostname cat ls env sleep ps kill true false top free; do
	ln -s busybox "$out/rootfs/bin/$applet"
done
echo 'root:x:0:0:root:/root:/bin/sh' >"$out/rootfs/etc/passwd"
echo 'root:x:0:' >"$out/rootfs/etc/group"

echo "+ orbit image build $out/rootfs manifest.json hello.aci"
"$orbit" image build --overwrite "$out/rootfs" "$here/manifest.json" "$out/hello.aci"

echo "+ orbit fetch --insecure-options=image hello.aci"
"$orbit" fetch --insecure-options=image "$out/hello.aci"

echo "+ orbit run --insecure-options=image example.com/hello:1.0"
"$orbit" run --insecure-options=image example.com/hello:1.0

echo "+ orbit list"
"$orbit" list
