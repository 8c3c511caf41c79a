/** `pagerfs demo` / `npm run demo`: placeholder until the demo is written. */
export async function runDemo(): Promise<void> {
  process.stdout.write('pagerfs demo: coming soon\n');
}
