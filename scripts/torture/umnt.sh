#!/bin/bash
PID=$(cat /tmp/tt-daemon.pid)
timeout 120 node $(cd "$(dirname "$0")/../.." && pwd)/dist/fs/cli.js unmount /tmp/tt-mnt; rc=$?
echo unmount rc=$rc
for i in $(seq 300); do kill -0 $PID 2>/dev/null || break; sleep 0.1; done
if kill -0 $PID 2>/dev/null; then
  echo "DAEMON STILL ALIVE 30s after unmount (pid $PID)"
  timeout 60 gdb -p $PID -batch -ex "thread apply all bt 8" -ex "x/2gx &_IO_stdfile_2_lock" 2>&1 | grep -E "^#|^Thread|lock" | head -30
  kill -9 $PID
fi
grep -q tt-mnt /proc/mounts && echo STILL MOUNTED
exit $rc
