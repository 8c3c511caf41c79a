// A module whose create() returns a promise that nothing will ever settle (no timer, no I/O).
export default {
  description: 'create() never settles',
  create() {
    return new Promise(() => {});
  },
};
