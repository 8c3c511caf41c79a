import { describe, expect, it } from 'vitest';
import { VmSystem, VmoOptions, PagerOp, ZxStatus, PAGE_SIZE, isZxError } from '../../src/index.js';

describe('smoke', () => {
  it('faults, supplies and reads', async () => {
    const sys = new VmSystem({ budgetBytes: 1 << 20, validate: true });
    const pager = sys.createPager();
    const port = sys.createPort();
    const vmo = pager.createVmo(VmoOptions.TRAP_DIRTY, port, 7, 4 * PAGE_SIZE);
    const buf = new Uint8Array(2 * PAGE_SIZE);
    const reading = vmo.read(buf, 0);
    const pkt = port.tryRead();
    expect(pkt).toMatchObject({ key: 7, command: 'READ', offset: 0, length: 2 * PAGE_SIZE });
    const aux = sys.createVmo(2 * PAGE_SIZE);
    await aux.write(new Uint8Array(2 * PAGE_SIZE).fill(9), 0);
    pager.supplyPages(vmo, 0, 2 * PAGE_SIZE, aux, 0);
    await reading;
    expect(buf.every((b) => b === 9)).toBe(true);
    // write traps DIRTY
    const w = vmo.write(new Uint8Array([1, 2, 3]), 10);
    const d = port.tryRead();
    expect(d).toMatchObject({ command: 'DIRTY', offset: 0, length: PAGE_SIZE });
    pager.opRange(PagerOp.DIRTY, vmo, 0, PAGE_SIZE);
    await w;
    expect(pager.queryDirtyRanges(vmo, 0, vmo.sizeBytes).ranges).toEqual([{ offset: 0, length: PAGE_SIZE, isZero: false }]);
    // fail
    const r2 = vmo.read(new Uint8Array(10), 3 * PAGE_SIZE);
    const p3 = port.tryRead();
    expect(p3).toMatchObject({ command: 'READ', offset: 3 * PAGE_SIZE, length: PAGE_SIZE });
    pager.opRange(PagerOp.FAIL, vmo, 3 * PAGE_SIZE, PAGE_SIZE, ZxStatus.ERR_IO);
    await expect(r2).rejects.toSatisfy((e: unknown) => isZxError(e, ZxStatus.ERR_IO));
    pager.detachVmo(vmo);
    expect(port.tryRead()).toMatchObject({ command: 'COMPLETE' });
    sys.debugValidate();
  });
});
