#!/usr/bin/env bash
# XGRAD_CPU_CAPABILITY read by a program as a user sets it: bench/gemm_peak prints the path its
# vector math took (vector_math=), capped by the variable at the widest this processor has; a
# value that is not a path is refused with exit status 2 and the choices.
# Usage: cpu_capability.sh GEMM_PEAK
set -uo pipefail
program=$1
widest=sse2
grep -qw avx2 /proc/cpuinfo && grep -qw fma /proc/cpuinfo && widest=avx2
grep -qw avx512f /proc/cpuinfo && widest=avx512
rank() { case $1 in sse2) echo 0 ;; avx2) echo 1 ;; avx512) echo 2 ;; esac; }
failed=0
for cap in "" sse2 avx2 avx512; do
  want=$widest
  if [ -n "$cap" ] && [ "$(rank "$cap")" -lt "$(rank "$widest")" ]; then want=$cap; fi
  got=$(XGRAD_CPU_CAPABILITY=$cap "$program" --size 64 | sed -n 's/^vector_math=//p')
  if [ "$got" = "$want" ]; then
    echo "XGRAD_CPU_CAPABILITY=$cap: $got"
  else
    echo "XGRAD_CPU_CAPABILITY=$cap: took $got, expected $want (widest here: $widest)"
    failed=1
  fi
done
err=$(XGRAD_CPU_CAPABILITY=avx1024 "$program" --size 64 2>&1 >/dev/null)
status=$?
if [ $status -eq 2 ] && [[ $err == *"XGRAD_CPU_CAPABILITY=avx1024: expected sse2, avx2 or avx512"* ]]; then
  echo "XGRAD_CPU_CAPABILITY=avx1024: refused (status 2)"
else
  echo "XGRAD_CPU_CAPABILITY=avx1024: status $status, said: $err"
  failed=1
fi
exit $failed
