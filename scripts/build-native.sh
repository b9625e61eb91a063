#!/usr/bin/env bash
# Builds the SO_PEERCRED N-API addon (native/peercred) into
# native/peercred/build/Release/peercred.node for `writ agent`.
#
# No node-gyp dependency: npm bundles node-gyp and exports its path to
# scripts as $npm_config_node_gyp; outside npm we find it next to npm itself.
# Headers come from the local Node installation (--nodedir) when it ships
# them (distro and official tarballs both install include/node/), so the
# build works offline; otherwise node-gyp falls back to its header cache.
#
# On non-Linux hosts there is no SO_PEERCRED; the build is skipped, and the
# agent reports it cannot load the addon.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
addon="$root/native/peercred"

if [ "$(uname -s)" != "Linux" ]; then
  echo "build-native: skipping peercred (SO_PEERCRED is Linux-only)" >&2
  exit 0
fi

gyp="${npm_config_node_gyp:-}"
if [ -z "$gyp" ] || [ ! -f "$gyp" ]; then
  npm_bin="$(command -v npm || true)"
  if [ -n "$npm_bin" ]; then
    gyp="$(dirname "$(dirname "$(readlink -f "$npm_bin")")")/node_modules/node-gyp/bin/node-gyp.js"
  fi
fi
if [ -z "$gyp" ] || [ ! -f "$gyp" ]; then
  echo "build-native: cannot find node-gyp (normally bundled with npm at <npm>/node_modules/node-gyp)" >&2
  exit 1
fi

# Up to date: nothing to do (npm run build runs this every time).
out="$addon/build/Release/peercred.node"
if [ -f "$out" ] && [ "$out" -nt "$addon/peercred.c" ] && [ "$out" -nt "$addon/binding.gyp" ]; then
  exit 0
fi

node_prefix="$(dirname "$(dirname "$(readlink -f "$(command -v node)")")")"
nodedir_arg=()
if [ -f "$node_prefix/include/node/node_api.h" ] && [ -f "$node_prefix/include/node/common.gypi" ]; then
  nodedir_arg=(--nodedir="$node_prefix")
fi

node "$gyp" rebuild -C "$addon" "${nodedir_arg[@]}" --loglevel=warn
test -f "$addon/build/Release/peercred.node"
