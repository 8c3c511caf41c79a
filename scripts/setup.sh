#!/usr/bin/env bash
# pagerfs set-up: system packages, node_modules, TypeScript build.
#
# Idempotent and cheap when nothing changed (it runs before every `npm test`,
# `npm run demo` and `npm run bench`). Prints one line per action it takes.
#
#   a. Debian packages: libfuse2 (libfuse.so.2, loaded by fuse-native's prebuilt
#      binary), fuse3 (fusermount), tmux, attr (getfattr). Must come before
#      `npm ci`: fuse-native's install step loads its binary, which needs
#      libfuse.so.2. Also checks that /dev/fuse exists.
#   b. `npm ci` when package-lock.json differs from the last successful install
#      (stamp: node_modules/.pagerfs-lock.sha256).
#   c. `tsc` build into dist/ when any source (path, mtime or size), tsconfig.json,
#      package.json or package-lock.json changed since the last successful build
#      (stamp: dist/.build-stamp). Added and deleted files count as changes.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

say() { echo "[setup] $*"; }
die() { echo "[setup] ERROR: $*" >&2; exit 1; }
trap 'echo "[setup] ERROR: unexpected failure at scripts/setup.sh line $LINENO: $BASH_COMMAND" >&2' ERR

APT_PACKAGES=(libfuse2 fuse3 tmux attr)

# ---------------------------------------------------------------- node / npm
command -v node >/dev/null 2>&1 || die "node not found on PATH (need Node >= 20)"
command -v npm >/dev/null 2>&1 || die "npm not found on PATH"
node_version="$(node --version)"
node_major="${node_version#v}"
node_major="${node_major%%.*}"
[[ "$node_major" =~ ^[0-9]+$ && "$node_major" -ge 20 ]] ||
  die "Node >= 20 required, found $node_version"

# ---------------------------------------------------------------- a. system packages
ldconfig_bin="$(command -v ldconfig || echo /sbin/ldconfig)"
missing=()
# Capture first: `ldconfig -p | grep -q` can die of SIGPIPE under pipefail.
ld_cache="$("$ldconfig_bin" -p 2>/dev/null || true)"
[[ "$ld_cache" == *"libfuse.so.2 "* ]] || missing+=("libfuse.so.2")
command -v fusermount >/dev/null 2>&1 || missing+=("fusermount")
command -v tmux >/dev/null 2>&1 || missing+=("tmux")
command -v getfattr >/dev/null 2>&1 || missing+=("getfattr")

if ((${#missing[@]} > 0)); then
  apt_cmd="apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${APT_PACKAGES[*]}"
  if [[ "$(id -u)" -ne 0 ]]; then
    die "missing ${missing[*]}; not root, so install them yourself, then re-run:
    sudo sh -c '$apt_cmd'"
  fi
  apt_log="/tmp/pagerfs-setup-apt.log"
  say "missing ${missing[*]}: apt-get install ${APT_PACKAGES[*]} (log: $apt_log)"
  if ! { apt-get update &&
         DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${APT_PACKAGES[@]}"; } \
         >"$apt_log" 2>&1 </dev/null; then
    cat "$apt_log" >&2
    die "apt-get install ${APT_PACKAGES[*]} failed (log above, also in $apt_log)"
  fi
  ld_cache="$("$ldconfig_bin" -p 2>/dev/null || true)"
  [[ "$ld_cache" == *"libfuse.so.2 "* ]] || die "libfuse.so.2 still not found after installing libfuse2"
  command -v fusermount >/dev/null 2>&1 || die "fusermount still not found after installing fuse3"
fi

if [[ ! -c /dev/fuse ]]; then
  die "/dev/fuse does not exist (or is not a character device): the FUSE kernel module is not
    available here. On a host run 'modprobe fuse'; in a container start it with
    '--device /dev/fuse --cap-add SYS_ADMIN'. pagerfs cannot mount without it."
fi

# ---------------------------------------------------------------- b. node_modules
[[ -f package-lock.json ]] || die "package-lock.json missing (run 'npm install' once and commit it)"
lock_stamp="node_modules/.pagerfs-lock.sha256"
lock_sha="$(sha256sum package-lock.json)"
lock_sha="${lock_sha%% *}"
if [[ ! -f "$lock_stamp" || "$(<"$lock_stamp")" != "$lock_sha" ||
      ! -x node_modules/.bin/tsc || ! -x node_modules/.bin/vitest ]]; then
  npm_log="/tmp/pagerfs-setup-npm.log"
  say "npm ci (package-lock.json changed or node_modules incomplete; log: $npm_log)"
  if ! npm ci --no-audit --no-fund >"$npm_log" 2>&1 </dev/null; then
    cat "$npm_log" >&2
    die "npm ci failed (log above, also in $npm_log)"
  fi
  # fuse-native's prebuilt binary must load (needs libfuse.so.2).
  node -e "require('fuse-native')" >>"$npm_log" 2>&1 ||
    { cat "$npm_log" >&2; die "fuse-native installed but does not load (see above)"; }
  echo "$lock_sha" >"$lock_stamp"
fi

# ---------------------------------------------------------------- c. TypeScript build
build_stamp="dist/.build-stamp"
[[ -f tsconfig.json ]] || die "tsconfig.json missing"
src_dirs=()
for d in src pager fs scripts; do [[ -d "$d" ]] && src_dirs+=("$d"); done
# Fingerprint: path, mtime and size of every TypeScript source, plus the config
# files. A deleted or added file changes the listing, hence the hash.
fingerprint="$(
  {
    if ((${#src_dirs[@]} > 0)); then
      find "${src_dirs[@]}" -type f \( -name '*.ts' -o -name '*.mts' -o -name '*.cts' -o -name '*.tsx' \) \
        -printf '%p %T@ %s\n'
    fi
    find tsconfig.json package.json package-lock.json -maxdepth 0 -printf '%p %T@ %s\n'
  } | LC_ALL=C sort | sha256sum
)"
fingerprint="${fingerprint%% *}"
if [[ ! -f "$build_stamp" || "$(<"$build_stamp")" != "$fingerprint" ]]; then
  say "tsc build -> dist/ (sources changed since last build)"
  rm -rf dist
  if ! node_modules/.bin/tsc -p tsconfig.json; then
    die "TypeScript build failed (errors above); fix them and re-run"
  fi
  echo "$fingerprint" >"$build_stamp"
fi
