#!/bin/bash
# usage: mnt.sh BUDGET [BACK] [extra args]
B=$1; BACK=${2:-/tmp/tt-back}; shift; shift
mkdir -p $BACK /tmp/tt-mnt
node $(cd "$(dirname "$0")/../.." && pwd)/dist/fs/cli.js mount $BACK /tmp/tt-mnt --memory-budget $B --log-file /tmp/tt-daemon.log --log-level warn "$@" > /tmp/tt-daemon.out 2>&1 &
echo $! > /tmp/tt-daemon.pid
for i in $(seq 100); do [ -e /tmp/tt-mnt/.pagerfs/stats ] && break; sleep 0.1; done
[ -e /tmp/tt-mnt/.pagerfs/stats ] && echo mounted pid $(cat /tmp/tt-daemon.pid) || { echo MOUNT FAILED; cat /tmp/tt-daemon.out; }
