// Preloaded by scripts/run-tests.mjs into the test runner's processes.
//
// With --test-force-exit each test file's child ends with process.exit() as soon as its last test
// settles, and on Linux its stdout (the pipe its results go to the runner over) is non-blocking: what
// is still buffered is dropped, so the runner reports fewer tests than ran and still exits 0, on Node
// 20, 22 and 24 (nodejs/node#64833, open). A blocking stdout in the child leaves nothing buffered.
// Only in the runner's own children (NODE_TEST_CONTEXT), never in processes the tests spawn: a stdio
// upstream's stdout is its MCP channel and must stay as it is.
'use strict';
if (process.env.NODE_TEST_CONTEXT === 'child-v8' && process.stdout._handle?.setBlocking) {
  process.stdout._handle.setBlocking(true);
}
