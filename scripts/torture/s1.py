#!/usr/bin/env python3
# Scenario 1: N writers, M readers, budget changer. usage: s1.py SEED N M DURATION [nobudget]
import os, sys, random, time, errno, subprocess, signal, hashlib
MNT='/tmp/tt-mnt'; REF='/tmp/tt-ref'
seed=int(sys.argv[1]); N=int(sys.argv[2]); M=int(sys.argv[3]); DUR=float(sys.argv[4])
nobudget = len(sys.argv)>5
print(f"s1 seed={seed} N={N} M={M} dur={DUR}", flush=True)
os.makedirs(REF, exist_ok=True); os.makedirs(MNT+'/s1', exist_ok=True); os.makedirs(REF+'/s1', exist_ok=True)
DONE=REF+'/done'
open(DONE,'w').close()
def log(*a): print(f"[{os.getpid()} {time.strftime('%H:%M:%S')}]",*a, flush=True)

def writer(i):
    rng=random.Random(seed*1000+i); k=0; t0=time.time(); errs=0
    while time.time()-t0<DUR:
        name=f"s1/w{i}_{k}"; k+=1
        mp=MNT+'/'+name; rp=REF+'/'+name
        try:
            fd=os.open(mp, os.O_RDWR|os.O_CREAT|os.O_TRUNC, 0o644)
        except OSError as e:
            log(f"writer {i} open {name} ERR {errno.errorcode[e.errno]}"); errs+=1; time.sleep(0.2); continue
        ref=bytearray()
        ok=True
        for op in range(rng.randint(1,20)):
            sz=rng.choice([1,100,4096,5000,65536,131072,300000,1<<20])
            sz=rng.randint(1,sz)
            data=rng.randbytes(sz)
            if rng.random()<0.5 or not ref:
                off=len(ref)
            else:
                off=rng.randint(0,len(ref))
            try:
                t=time.time()
                n=os.pwrite(fd,data,off)
                if time.time()-t>20: log(f"writer {i} SLOW pwrite {time.time()-t:.1f}s")
            except OSError as e:
                log(f"writer {i} pwrite {name} off={off} sz={sz} ERR {errno.errorcode[e.errno]}"); ok=False; errs+=1; break
            if n!=sz: log(f"writer {i} short write {n}/{sz}")
            data=data[:n]
            if off>len(ref): ref+=b'\0'*(off-len(ref))
            ref[off:off+n]=data
            if rng.random()<0.1:
                try: os.fsync(fd)
                except OSError as e: log(f"writer {i} fsync ERR {errno.errorcode[e.errno]}"); ok=False; errs+=1; break
        try: os.close(fd)
        except OSError as e: log(f"writer {i} close {name} ERR {errno.errorcode[e.errno]}"); ok=False; errs+=1
        with open(rp,'wb') as f: f.write(ref)
        # self check
        try:
            with open(mp,'rb') as f: got=f.read()
            if got!=ref and ok:
                d=next((j for j in range(min(len(got),len(ref))) if got[j]!=ref[j]), None)
                log(f"writer {i} MISMATCH {name} len got={len(got)} ref={len(ref)} firstdiff={d}")
        except OSError as e: log(f"writer {i} readback ERR {errno.errorcode[e.errno]}"); errs+=1
        if ok:
            with open(DONE,'a') as f: f.write(name+'\n')
    log(f"writer {i} done files={k} errs={errs}")
    os._exit(1 if errs else 0)

def reader(j):
    rng=random.Random(seed*7777+j); t0=time.time(); n=0; errs=0
    while time.time()-t0<DUR:
        names=[l.strip() for l in open(DONE) if l.strip()]
        if not names: time.sleep(0.1); continue
        name=rng.choice(names)
        ref=open(REF+'/'+name,'rb').read()
        try:
            t=time.time()
            with open(MNT+'/'+name,'rb', buffering=0) as f:
                if rng.random()<0.5:
                    got=f.read()
                else:
                    got=b''
                    while True:
                        b=f.read(rng.choice([1,4096,10000,131072]))
                        if not b: break
                        got+=b
            if time.time()-t>20: log(f"reader {j} SLOW read {name} {time.time()-t:.1f}s")
            n+=1
            if got!=ref:
                d=next((x for x in range(min(len(got),len(ref))) if got[x]!=ref[x]), None)
                log(f"reader {j} MISMATCH {name} got={len(got)} ref={len(ref)} firstdiff={d}"); errs+=1
        except OSError as e:
            log(f"reader {j} read {name} ERR {errno.errorcode[e.errno]}"); errs+=1
    log(f"reader {j} done reads={n} errs={errs}")
    os._exit(1 if errs else 0)

def budgeter():
    rng=random.Random(seed*31); t0=time.time(); n=0; errs=0
    while time.time()-t0<DUR:
        b=rng.choice(['128KiB','256KiB','512KiB','1MiB','2MiB','4MiB','8MiB'])
        r=subprocess.run(['node','/tmp/tt/dist/fs/cli.js','budget',MNT,b],capture_output=True,text=True)
        n+=1
        if r.returncode!=0: log(f"budget {b} rc={r.returncode} {r.stderr.strip()[:200]}"); errs+=1
        time.sleep(rng.uniform(0.1,0.3))
    log(f"budgeter done changes={n} refused={errs}"); os._exit(0)

pids=[]
for i in range(N):
    p=os.fork()
    if p==0: writer(i)
    pids.append(p)
for j in range(M):
    p=os.fork()
    if p==0: reader(j)
    pids.append(p)
if not nobudget:
    p=os.fork()
    if p==0: budgeter()
    pids.append(p)
bad=0
for p in pids:
    _,st=os.waitpid(p,0)
    if st: bad+=1
log(f"ALL DONE bad={bad}")
