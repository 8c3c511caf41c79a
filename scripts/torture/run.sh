#!/bin/bash
# run.sh TAG BUDGET CMD...   fresh back, mount, run, unmount, compare
TAG=$1; B=$2; shift 2
HERE=$(cd "$(dirname "$0")" && pwd)
rm -rf /tmp/tt-back /tmp/tt-ref /tmp/tt-ref2; mkdir -p /tmp/tt-back; : > /tmp/tt-daemon.log
$HERE/mnt.sh $B
timeout 400 "$@" > /tmp/out_$TAG.txt 2>&1; echo "driver rc=$?" >> /tmp/out_$TAG.txt
$HERE/umnt.sh >> /tmp/out_$TAG.txt 2>&1
[ -d /tmp/tt-ref ] && $HERE/cmp.sh /tmp/tt-ref /tmp/tt-back >> /tmp/out_$TAG.txt
[ -f /tmp/tt-ref2/one.bin ] && { cmp /tmp/tt-back/one.bin /tmp/tt-ref2/one.bin && echo BACKING OK || echo BACKING DIFF; } >> /tmp/out_$TAG.txt 2>&1
cp /tmp/tt-daemon.log /tmp/log_$TAG.txt
echo "== $TAG"; grep -v " done \|budget.*rc=1" /tmp/out_$TAG.txt | head -25; grep -c "budget.*rc=1" /tmp/out_$TAG.txt
python3 -c "
import sys,json,collections
c=collections.Counter()
for l in open('/tmp/log_$TAG.txt'):
  try: d=json.loads(l); c[d['msg'][:80]]+=1
  except Exception: c['NONJSON '+l[:80]]+=1
print('log:',dict(c))"
