#!/bin/bash
# cmp.sh REFDIR BACKDIR
diff -rq "$1" "$2" 2>&1 | grep -v "Only in $1: done" | head -30; echo "cmp finished"
