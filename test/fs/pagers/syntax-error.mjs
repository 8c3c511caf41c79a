// A module with a syntax error on line 5 (a missing comma): the load error must name that line.
export default {
  description: 'does not parse',
  create() {
    return { files: [], read(req) { req.supply(0 Buffer.alloc(1)); } };
  },
};
