import { fileURLToPath } from 'node:url';
import { configDefaults, defineConfig } from 'vitest/config';

// Test layout:
//   test/src/**, test/pager/**  - pure unit tests (no FUSE, no mounts): run in parallel
//                                 (as does any other test/**/*.test.ts outside fs/ and e2e/).
//   test/fs/**,  test/e2e/**    - tests that mount a FUSE filesystem: run one file at a time.
//
// FUSE serialization uses two vitest projects:
//   - "unit" is in sequence.groupOrder 0 and runs on up to maxWorkers (2) forks at once.
//   - "fuse" is in sequence.groupOrder 1, so it starts only after the whole unit group has
//     finished, and sets poolOptions.forks.singleFork: its files run one after another in a
//     single child process (source modules are re-evaluated per file; node_modules such as
//     fuse-native are loaded once). In vitest 3 the worker pool is shared by all projects and
//     sized from the ROOT maxWorkers; `fileParallelism` is not a per-project option there
//     (with extends: true it did not serialize the project, checked with 3.2.7), but the
//     per-project singleFork is honoured. (On a move to vitest 4, where poolOptions is gone,
//     use `maxWorkers: 1` / `fileParallelism: false` on the fuse project instead.)
// maxWorkers is explicit because vitest's default is (cpus - 1), i.e. a single worker on the
// 2-core machines this project runs on, which would serialize the unit tests too.
//
// FUSE tests must not use synchronous fs calls (readFileSync, statSync, ...) on a mount that
// is served from the same process: the call blocks the event loop that serves the request
// and the process deadlocks in uninterruptible sleep.
export default defineConfig({
  // `import … from 'pagerfs'` (the package's own name, as examples and user pagers write it) means
  // the sources under test, not dist/: the same mapping package.json's exports give after a build.
  resolve: {
    alias: [
      { find: /^pagerfs\/core$/, replacement: fileURLToPath(new URL('./src/index.ts', import.meta.url)) },
      { find: /^pagerfs$/, replacement: fileURLToPath(new URL('./pager/api.ts', import.meta.url)) },
    ],
  },
  test: {
    pool: 'forks',
    maxWorkers: 2,
    testTimeout: 30_000,
    hookTimeout: 30_000,
    reporters: ['default'],
    projects: [
      {
        extends: true,
        test: {
          name: 'unit',
          include: ['test/**/*.test.ts'],
          exclude: [...configDefaults.exclude, 'test/fs/**', 'test/e2e/**'],
          sequence: { groupOrder: 0 },
        },
      },
      {
        extends: true,
        test: {
          name: 'fuse',
          include: ['test/fs/**/*.test.ts', 'test/e2e/**/*.test.ts'],
          poolOptions: { forks: { singleFork: true } },
          sequence: { groupOrder: 1 },
        },
      },
    ],
  },
});
