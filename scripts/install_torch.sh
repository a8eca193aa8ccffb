#!/usr/bin/env bash
# Install torch + torchvision into the venv, the right build for this machine.
# usage: scripts/install_torch.sh PYTHON [CPU_INDEX]
#
# * torch already importable in the venv: kept as it is (a GPU build stays a GPU build;
#   a machine whose pip serves its own torch keeps it).
# * CPU_INDEX given (the Makefile gives PyTorch's CPU-only wheel index when no NVIDIA
#   GPU is found): the CPU-only wheels, a few hundred MB instead of several GB of CUDA
#   libraries. If that index cannot be reached, torch comes from PyPI instead (it works,
#   it is only bigger), and this says so.
# * otherwise: torch from PyPI, with CUDA on Linux.
set -uo pipefail
PY=$1
CPU_INDEX=${2:-}
SPEC=("torch>=2.4" "torchvision>=0.19")   # the floors in pyproject.toml
quiet() { "$@" 2>&1 | grep -v "^WARNING: Location" ; return "${PIPESTATUS[0]}"; }

if "$PY" -c "import torch, torchvision" >/dev/null 2>&1; then
  echo "torch $("$PY" -c 'import torch; print(torch.__version__)') is already installed: kept"
  exit 0
fi
# An index whose host does not even resolve (an offline or registry-only network) is skipped
# at once rather than retried package by package.
if [ -n "$CPU_INDEX" ] && ! "$PY" -c "import socket, sys, urllib.parse; socket.getaddrinfo(urllib.parse.urlparse(sys.argv[1]).hostname, 443)" "$CPU_INDEX" >/dev/null 2>&1; then
  echo "note: $CPU_INDEX cannot be reached from here; installing torch from PyPI instead (larger: it brings CUDA libraries)"
  CPU_INDEX=""
fi
if [ -n "$CPU_INDEX" ]; then
  echo "No NVIDIA GPU found: installing the CPU-only torch wheels from $CPU_INDEX"
  if quiet "$PY" -m pip install -q --timeout 15 --retries 1 --index-url "$CPU_INDEX" "${SPEC[@]}"; then
    exit 0
  fi
  echo "note: $CPU_INDEX could not be used; installing torch from PyPI instead (larger: it brings CUDA libraries)"
fi
quiet "$PY" -m pip install -q "${SPEC[@]}"
status=$?
# A torch and a torchvision that do not belong together fail only at import time
# ("operator torchvision::nms does not exist"): say so now, not in the first notebook.
if [ $status -eq 0 ] && ! "$PY" -c "import torch, torchvision" >/dev/null 2>&1; then
  echo "error: the installed torch and torchvision do not work together; reinstall a matching pair, e.g." \
       "'$PY -m pip install --force-reinstall torch torchvision'" >&2
  exit 1
fi
exit $status
