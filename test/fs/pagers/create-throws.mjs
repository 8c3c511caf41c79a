// Loads fine, but its factory throws.
export default {
  description: 'a factory that fails',
  create() {
    throw new Error('no source of pages today');
  },
};
