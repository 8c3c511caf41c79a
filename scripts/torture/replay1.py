import random,sys
seed,i,k=map(int,sys.argv[1:4])
rng=random.Random(seed*1000+i)
for kk in range(k+1):
    ref=0; ops=[]
    for op in range(rng.randint(1,20)):
        sz=rng.choice([1,100,4096,5000,65536,131072,300000,1<<20]); sz=rng.randint(1,sz); rng.randbytes(sz)
        if rng.random()<0.5 or not ref: off=ref
        else: off=rng.randint(0,ref)
        fs=rng.random()<0.1
        ops.append((off,sz,off+sz,fs)); ref=max(ref,off+sz)
    if kk==k:
        for o in ops: print("pwrite off=%d len=%d end=%d fsync=%s"%o)
