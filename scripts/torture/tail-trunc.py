#!/usr/bin/env python3
# tail-trunc.py MNT SECONDS [notrunc]: 3 O_APPEND writers of lines, one process truncating the log to 0
# every 30 ms (copytruncate) and evicting it, two tail-style readers that report any NUL byte read
# (the file never holds one). Found: NULs read while a growing write waited (fixed, 30ab048); still
# seen with --kernel-cache (not without truncation; also before that fix; bindfs with the page cache
# shows them too: the kernel's FUSE page cache racing the truncates).
import os, sys, time, re, multiprocessing as mp, random
m=sys.argv[1]; T=float(sys.argv[2]); p=m+'/log'; MODE=sys.argv[3] if len(sys.argv)>3 else ''
open(p,'wb').close()
LINE=re.compile(rb'^W\d+:\d+:x*$')
def appender(w):
    fd=os.open(p,os.O_WRONLY|os.O_APPEND); r=random.Random(w); i=0; end=time.time()+T
    while time.time()<end:
        i+=1; os.write(fd,b'W%d:%d:%s\n'%(w,i,b'x'*r.randint(0,9000)))
    os.close(fd)
def truncator():
    end=time.time()+T; n=0
    while time.time()<end:
        time.sleep(0.03); n+=1
        if MODE!="notrunc": os.truncate(p,0)
        if n%5==0:
            try: os.setxattr(p,'user.pagerfs.hint',b'evict')
            except OSError: pass
def reader(k):
    fd=os.open(p,os.O_RDONLY); off=0; end=time.time()+T; bad=0; nread=0; buf=b''
    while time.time()<end:
        d=os.pread(fd,1<<20,off)
        if not d:
            if os.fstat(fd).st_size<off: off=0; buf=b''
            continue
        nread+=len(d)
        if b'\0' in d:
            bad+=1
            if bad<4: print('reader',k,'NUL at',off+d.index(b'\0'),'chunk off',off,flush=True)
        off+=len(d)
    print('reader',k,'read',nread,'bad',bad,flush=True)
ps=[mp.Process(target=appender,args=(w,)) for w in range(3)]+[mp.Process(target=truncator)]+[mp.Process(target=reader,args=(k,)) for k in range(2)]
for x in ps: x.start()
for x in ps: x.join()
d=open(p,'rb').read(); print('final size',len(d),'NULs',d.count(b'\0'))
bad=[l for l in d.split(b'\n')[1:-1] if not LINE.match(l)]
print('bad lines (excluding first)',len(bad), bad[:2] and [b[:40] for b in bad[:2]])
