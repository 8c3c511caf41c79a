/**
 * A terminal for tests of terminal behaviour (`pagerfs top`, progress lines): a detached tmux session
 * on its own server socket, running a plain bash (no rc files) in the repository root.
 * `close()` kills the server; tests call it in a finally.
 */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { ROOT, run, sleep } from './harness.js';

let counter = 0;

export class Tmux {
  private constructor(readonly socket: string, readonly session: string) {}

  static async start(width = 80, height = 24): Promise<Tmux> {
    const t = new Tmux(`pagerfs-test-${process.pid}-${++counter}`, 'main');
    const res = await run('tmux', ['-L', t.socket, '-f', '/dev/null', 'new-session', '-d', '-s', t.session, '-x', String(width), '-y', String(height),
      '-c', ROOT, '-e', 'TERM=xterm-256color', 'bash --norc --noprofile']);
    if (res.code !== 0) throw new Error(`tmux new-session failed: ${res.stderr}`);
    // The prompt ("bash-5.2# "; capture-pane drops its trailing space).
    await t.waitFor(/[$#]$/m);
    return t;
  }

  private tmux(args: string[]): ReturnType<typeof run> {
    return run('tmux', ['-L', this.socket, ...args]);
  }

  /** Types a line and presses Enter. */
  async type(line: string): Promise<void> {
    await this.tmux(['send-keys', '-t', this.session, '-l', line]);
    await this.tmux(['send-keys', '-t', this.session, 'Enter']);
  }

  /** Sends keys by tmux name (q, C-c, Enter, ...). */
  async keys(...keys: string[]): Promise<void> {
    await this.tmux(['send-keys', '-t', this.session, ...keys]);
  }

  /** The visible screen, one string per row (trailing spaces kept as tmux gives them). */
  async screen(): Promise<string[]> {
    const res = await this.tmux(['capture-pane', '-p', '-t', this.session]);
    return res.stdout.replace(/\n$/, '').split('\n');
  }

  /** A tmux format variable of the pane, e.g. cursor_flag (1: cursor visible), alternate_on (1: alternate screen). */
  async flag(name: string): Promise<string> {
    const res = await this.tmux(['display-message', '-p', '-t', this.session, `#{${name}}`]);
    return res.stdout.trim();
  }

  /** Waits until the screen matches; returns the screen (the last one seen if it never matched). */
  async waitFor(re: RegExp, timeoutMs = 15_000): Promise<string[]> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const rows = await this.screen();
      if (re.test(rows.join('\n'))) return rows;
      if (Date.now() > deadline) return rows;
      await sleep(50);
    }
  }

  async close(): Promise<void> {
    await this.tmux(['kill-server']).catch(() => undefined);
    // kill-server leaves the socket file behind.
    const dir = path.join(process.env.TMUX_TMPDIR ?? '/tmp', `tmux-${process.getuid?.() ?? 0}`);
    await fsp.rm(path.join(dir, this.socket), { force: true }).catch(() => undefined);
  }
}
