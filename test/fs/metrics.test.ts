/** --metrics-listen: the stats counters in Prometheus text format over loopback HTTP; --pressure-thresholds. */
import { promises as fsp } from 'node:fs';
import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { randomData, runCli, startMount, tempDir, useMountHooks } from './harness.js';

useMountHooks();

/** A free loopback port (bound and released). */
async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

function metric(text: string, name: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  if (line === undefined) throw new Error(`metric ${name} missing from:\n${text}`);
  return Number(line.split(' ')[1]);
}

describe('--metrics-listen', () => {
  it('serves the stats counters in Prometheus text format, and they follow reads and evictions', async () => {
    const port = await freePort();
    const data = randomData(3 * 1024 * 1024);
    const m = await startMount({ budget: '1MiB', files: { 'f.bin': data }, args: ['--metrics-listen', `127.0.0.1:${port}`] });
    const url = `http://127.0.0.1:${port}/metrics`;
    const before = await (await fetch(url)).text();
    expect(before).toContain('# TYPE pagerfs_resident_bytes gauge');
    expect(before).toContain('# HELP pagerfs_budget_bytes');
    expect(before).toContain('# TYPE pagerfs_fast_reads_total gauge');
    expect(metric(before, 'pagerfs_budget_bytes')).toBe(1024 * 1024);
    expect(metric(before, 'pagerfs_page_requests_total')).toBe(0);
    expect((await fsp.readFile(m.p('f.bin'))).equals(data)).toBe(true);
    const after = await (await fetch(url)).text();
    const stats = await m.stats();
    expect(metric(after, 'pagerfs_page_requests_total')).toBeGreaterThan(0);
    expect(metric(after, 'pagerfs_evicted_pages_total')).toBeGreaterThan(0);
    expect(metric(after, 'pagerfs_supplied_pages_total')).toBeLessThanOrEqual(stats.suppliedPages);
    expect(metric(after, 'pagerfs_resident_bytes')).toBeLessThanOrEqual(1024 * 1024);
    expect(metric(after, 'pagerfs_pressure_level')).toBeGreaterThanOrEqual(0);
    expect((await fetch(`http://127.0.0.1:${port}/other`)).status).toBe(404);
    expect((await m.unmount()).code).toBe(0);
    // The port is released with the daemon.
    await expect(fetch(url)).rejects.toThrow();
  });

  it('listens on an IPv6 address given as [ADDRESS]:PORT (it took the brackets for the host name)', async () => {
    const port = await freePort();
    const m = await startMount({ budget: '1MiB', args: ['--metrics-listen', `[::1]:${port}`] });
    const text = await (await fetch(`http://[::1]:${port}/metrics`)).text();
    expect(metric(text, 'pagerfs_budget_bytes')).toBe(1024 * 1024);
    expect((await m.unmount()).code).toBe(0);
  });

  it('a port already in use is a clear error, and nothing stays mounted', async () => {
    const port = await freePort();
    const blocker = net.createServer();
    await new Promise<void>((r) => blocker.listen(port, '127.0.0.1', () => r()));
    try {
      const backing = await tempDir();
      const mnt = await tempDir();
      const res = await runCli(['mount', backing, mnt, '--metrics-listen', `127.0.0.1:${port}`]);
      expect(res.code).not.toBe(0);
      expect(res.stderr).toMatch(/^pagerfs: Cannot serve metrics on "127\.0\.0\.1:\d+": .*EADDRINUSE/m);
      expect(await fsp.readdir(mnt)).toEqual([]);
    } finally {
      blocker.close();
    }
  });
});

describe('--pressure-thresholds', () => {
  it('accepts shares as percentages or fractions and refuses ones out of order', async () => {
    const m = await startMount({ args: ['--pressure-thresholds', '0.5,20%,0.05'] });
    expect((await m.stats()).pressureLevel).toBe('NORMAL');
    for (const bad of ['1,2,3', '10%,20%,30%', 'a,b,c', '50%,10%']) {
      const res = await runCli(['mount', await tempDir(), await tempDir(), '--pressure-thresholds', bad]);
      expect(res.code, bad).toBe(2);
      expect(res.stderr.trim().split('\n')).toHaveLength(1);
      expect(res.stderr).toMatch(/^pagerfs: Invalid --pressure-thresholds/);
    }
  });
});
