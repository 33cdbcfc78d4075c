// The upstream specs' kit (real upstream processes, a recording sink), shared with the suites.
export * from '../../src/upstream/testing/upstream-kit';
