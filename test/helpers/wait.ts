// The suites' waiting helper is the one unit specs use (src/testing/wait.ts), so there is one copy.
export { waitUntil } from '../../src/testing/wait';
