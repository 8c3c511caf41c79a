// A module whose file list cannot be made: files() throws at the first lookup (at mount).
export default {
  description: 'files() throws',
  create() {
    return { files: () => { throw new Error('cannot list on purpose'); }, read() {} };
  },
};
