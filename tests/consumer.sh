#!/usr/bin/env bash
# Installs the built xgrad into a temporary prefix, builds examples/consumer (a project of its own)
# against it through pkg-config, and runs it. Usage: consumer.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build=$1 source=$2
# A sanitized libxgrad.a cannot be linked by a plain consumer build: skip (77 tells meson).
[ -z "${XGRAD_SANITIZED:-}" ] || exit 77
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
meson install -C "$build" --no-rebuild --destdir "$stage" --quiet
pc=$(dirname "$(find "$stage" -name xgrad.pc | head -n 1)")
[ -f "$pc/xgrad.pc" ] || { echo "no xgrad.pc installed"; exit 1; }
test -f "$(find "$stage" -path '*include/xgrad/autograd/tensor.hpp' | head -n 1)"
test -z "$(find "$stage" -path '*include/xgrad/autograd/detail*')"
PKG_CONFIG_PATH="$pc" meson setup "$stage/consumer-build" "$source/examples/consumer" >/dev/null
meson compile -C "$stage/consumer-build" >/dev/null || meson compile -C "$stage/consumer-build"
"$stage/consumer-build/consumer"
