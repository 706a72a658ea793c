#!/usr/bin/env bash
# Installs the built xgrad into a temporary prefix, builds examples/consumer (a project of its own)
# against it through pkg-config (meson) and through find_package (CMake), and runs it.
# Usage: consumer.sh BUILD_DIR SOURCE_DIR
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
# xgrad.pc puts <prefix>/include on the compile line, not <prefix>/include/xgrad.
grep -q '^Cflags:.*include/xgrad' "$pc/xgrad.pc" && { echo "xgrad.pc adds include/xgrad"; exit 1; }
PKG_CONFIG_PATH="$pc" meson setup "$stage/consumer-build" "$source/examples/consumer" >/dev/null
meson compile -C "$stage/consumer-build" >/dev/null || meson compile -C "$stage/consumer-build"
"$stage/consumer-build/consumer"
# The same project with CMake: find_package(xgrad) through the installed xgradConfig.cmake.
if command -v cmake >/dev/null; then
  prefix=$(cd "$pc/../../.." && pwd)  # <prefix>/lib/<arch>/pkgconfig
  [ -f "$(find "$stage" -name xgradConfig.cmake | head -n 1)" ] || { echo "no xgradConfig.cmake installed"; exit 1; }
  cmake -S "$source/examples/consumer" -B "$stage/consumer-cmake" -DCMAKE_PREFIX_PATH="$prefix" \
    -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$stage/consumer-cmake" >/dev/null || cmake --build "$stage/consumer-cmake"
  "$stage/consumer-cmake/consumer"
else
  echo "cmake is not installed: the CMake build of the consumer was not tried" >&2
fi
