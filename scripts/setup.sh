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
#   b2. fuse-native patched and rebuilt from source (native/fuse-native-<version>.patch, see
#      native/README.md): applied in place to node_modules/fuse-native (pristine files kept in
#      its .pagerfs-orig/), built with npm's node-gyp against Debian's libfuse-dev and the local
#      Node headers (apt-installs libfuse-dev and build tools when missing), load-tested. Only
#      when the patch, the fuse-native version or the Node version changed, or the built binary
#      is missing (stamp: node_modules/fuse-native/.pagerfs-native.stamp).
#   c. `tsc` build into dist/ when any source (path, mtime or size), tsconfig.json,
#      package.json or package-lock.json changed since the last successful build
#      (stamp: dist/.build-stamp). Added and deleted files count as changes.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

say() { echo "[setup] $*"; }
die() { echo "[setup] ERROR: $*" >&2; exit 1; }
trap 'echo "[setup] ERROR: unexpected failure at scripts/setup.sh line $LINENO: $BASH_COMMAND" >&2' ERR

APT_PACKAGES=(libfuse2 fuse3 tmux attr rsync)

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
command -v rsync >/dev/null 2>&1 || missing+=("rsync") # tests: rsync -aX into and out of mounts

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

# ---------------------------------------------------------------- b2. patched fuse-native
fn_dir="node_modules/fuse-native"
[[ -f "$fn_dir/package.json" ]] || die "$fn_dir missing after npm ci"
fn_version="$(sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' "$fn_dir/package.json" | head -n 1)"
fn_patch="native/fuse-native-${fn_version}.patch"
[[ -f "$fn_patch" ]] ||
  die "no patch for the installed fuse-native $fn_version ($fn_patch): pagerfs needs its fixes (native/README.md); port the patch to this version or pin fuse-native back"
fn_patch_sha="$(sha256sum "$fn_patch")"
fn_want="patch=${fn_patch_sha%% *} fuse-native=$fn_version node=$node_version"
fn_stamp="$fn_dir/.pagerfs-native.stamp"
fn_current() { [[ -f "$fn_stamp" && "$(<"$fn_stamp")" == "$fn_want" && -f "$fn_dir/build/Release/fuse.node" ]]; }
if ! fn_current; then
  # One builder at a time (setup runs before every `npm test`); re-check under the lock.
  exec 9>"node_modules/.pagerfs-native.lock"
  flock 9
fi
if ! fn_current; then
  native_log="/tmp/pagerfs-setup-native.log"
  : >"$native_log"
  say "building patched fuse-native $fn_version from source ($fn_patch; log: $native_log)"

  # Build tools and libfuse-dev (headers + pkg-config file of the libfuse2 the binary loads).
  build_pkgs=()
  command -v cc >/dev/null 2>&1 && command -v make >/dev/null 2>&1 && command -v c++ >/dev/null 2>&1 ||
    build_pkgs+=(build-essential)
  command -v python3 >/dev/null 2>&1 || build_pkgs+=(python3)
  command -v patch >/dev/null 2>&1 || build_pkgs+=(patch)
  command -v pkg-config >/dev/null 2>&1 || build_pkgs+=(pkg-config)
  { command -v pkg-config >/dev/null 2>&1 && pkg-config --exists fuse; } || build_pkgs+=(libfuse-dev)
  if ((${#build_pkgs[@]} > 0)); then
    [[ "$(id -u)" -eq 0 ]] || die "building fuse-native needs ${build_pkgs[*]}; not root, so install them yourself, then re-run:
    sudo sh -c 'apt-get update && apt-get install -y --no-install-recommends ${build_pkgs[*]}'"
    say "apt-get install ${build_pkgs[*]} (log: $native_log)"
    if ! { apt-get update &&
           DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${build_pkgs[@]}"; } \
           >>"$native_log" 2>&1 </dev/null; then
      cat "$native_log" >&2
      die "apt-get install ${build_pkgs[*]} failed (log above, also in $native_log)"
    fi
    pkg-config --exists fuse || die "pkg-config still finds no 'fuse' after installing libfuse-dev"
  fi

  # Node headers (no download: node-gyp gets --nodedir) and npm's own node-gyp.
  node_dir="$(node -p 'require("path").resolve(process.execPath, "../..")')"
  [[ -f "$node_dir/include/node/node_api.h" && -f "$node_dir/include/node/common.gypi" ]] ||
    die "Node headers not found under $node_dir/include/node (needed to build fuse-native; this Node install lacks them and they cannot be downloaded here)"
  npm_cli="$(readlink -f "$(command -v npm)")"
  node_gyp="$(dirname "$npm_cli")/../node_modules/node-gyp/bin/node-gyp.js"
  if [[ -f "$node_gyp" ]]; then
    node_gyp_cmd=(node "$node_gyp")
  elif command -v node-gyp >/dev/null 2>&1; then
    node_gyp_cmd=(node-gyp)
  else
    die "node-gyp not found (looked for npm's bundled $node_gyp and node-gyp on PATH)"
  fi

  # Back to the pristine files (kept from the first patching), then patch.
  fn_files=()
  while read -r f; do fn_files+=("$f"); done < <(sed -n 's|^+++ b/\([^[:space:]]*\).*|\1|p' "$fn_patch")
  ((${#fn_files[@]} > 0)) || die "$fn_patch names no files"
  fn_orig="$fn_dir/.pagerfs-orig"
  if [[ -d "$fn_orig" ]]; then
    for f in "${fn_files[@]}"; do cp -p "$fn_orig/$f" "$fn_dir/$f"; done
  fi
  if ! patch -p1 --dry-run --forward -s -d "$fn_dir" <"$fn_patch" >>"$native_log" 2>&1; then
    cat "$native_log" >&2
    die "$fn_patch does not apply to $fn_dir (modified by hand?); reinstall it: rm -rf node_modules && bash scripts/setup.sh"
  fi
  if [[ ! -d "$fn_orig" ]]; then
    mkdir -p "$fn_orig"
    for f in "${fn_files[@]}"; do cp -p "$fn_dir/$f" "$fn_orig/$f"; done
  fi
  rm -f "$fn_stamp"
  patch -p1 --forward --no-backup-if-mismatch -s -d "$fn_dir" <"$fn_patch" >>"$native_log" 2>&1 ||
    { cat "$native_log" >&2; die "patching $fn_dir failed (log above)"; }

  build_start=$SECONDS
  if ! (cd "$fn_dir" && "${node_gyp_cmd[@]}" rebuild --nodedir="$node_dir") >>"$native_log" 2>&1 </dev/null; then
    cat "$native_log" >&2
    die "building the patched fuse-native failed (log above, also in $native_log)"
  fi
  # Load test: the patched index.js loads build/Release/fuse.node and checks its patch level.
  if ! node -e '
      const Fuse = require("./node_modules/fuse-native");
      if (typeof Fuse.getContext !== "function" || typeof Fuse.mknod !== "function" || Fuse.UTIME_OMIT !== "omit") throw new Error("not the patched fuse-native");
      console.log("loaded patched fuse-native, patch level " + Fuse.PAGERFS_PATCH_LEVEL);
    ' >>"$native_log" 2>&1; then
    cat "$native_log" >&2
    die "the rebuilt fuse-native does not load (log above, also in $native_log)"
  fi
  echo "$fn_want" >"$fn_stamp"
  say "patched fuse-native built and loaded ($((SECONDS - build_start)) s)"
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
