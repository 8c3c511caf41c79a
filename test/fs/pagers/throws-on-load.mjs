// Throws while its module body runs.
throw new Error('broken on purpose at load');
