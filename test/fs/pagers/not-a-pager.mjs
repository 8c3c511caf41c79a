// Wrong shape: the default export is not a pager module.
export default { description: 'no create here' };
