#!/usr/bin/env python3
# append-links.py FILE NPROC NREC MAXLEN [LINK]: NPROC processes append checksummed records (odd ones
# through LINK, a hard link of FILE), then the file is parsed: every record must be whole. NPROC=0
# only checks FILE (e.g. the backing file after unmount).
import os, sys, random, struct, hashlib, multiprocessing as mp, time
# usage: append.py FILE NPROC NREC MAXLEN [linkname]
path=sys.argv[1]; NP=int(sys.argv[2]); NR=int(sys.argv[3]); MAXL=int(sys.argv[4])
link=sys.argv[5] if len(sys.argv)>5 else None
MAGIC=b'RECv'
def body(p,i,n):
    seed=hashlib.sha256(b'%d-%d'%(p,i)).digest()
    return (seed*(n//32+1))[:n]
def worker(p):
    r=random.Random(p)
    name = link if (link and p%2==1) else path
    fd=os.open(name, os.O_WRONLY|os.O_APPEND|os.O_CREAT, 0o644)
    for i in range(NR):
        n=r.randint(1,MAXL)
        rec=MAGIC+struct.pack('<III',p,i,n)+body(p,i,n)
        w=os.write(fd,rec)
        assert w==len(rec),(w,len(rec))
    os.close(fd)
if __name__=='__main__':
  if NP>0:
    ps=[mp.Process(target=worker,args=(p,)) for p in range(NP)]
    for x in ps: x.start()
    for x in ps: x.join(); assert x.exitcode==0
  if True:
    data=open(path,'rb').read()
    off=0; seen=set()
    while off<len(data):
        if data[off:off+4]!=MAGIC: print('BAD MAGIC at',off,'len',len(data)); sys.exit(1)
        p,i,n=struct.unpack('<III',data[off+4:off+16])
        if data[off+16:off+16+n]!=body(p,i,n): print('BAD BODY',p,i,n,'at',off); sys.exit(1)
        seen.add((p,i)); off+=16+n
    exp=NP*NR
    print('records',len(seen),'expected',exp,'size',len(data), 'OK' if len(seen)==exp else 'MISSING')
