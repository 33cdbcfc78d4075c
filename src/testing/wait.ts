/**
 * Waiting for an event in tests. Plain Node, no imports from the gateway, so unit specs and server
 * suites alike can use it.
 */

/**
 * Resolves once `check` holds, polling it every `intervalMs` (0: every turn of the event loop, for
 * in-memory fakes); rejects after `timeoutMs` naming what it waited for. `check` may be async (a
 * probe over HTTP, say); `what` may be a function, to put the last value seen in the message.
 */
export async function waitUntil(
  check: () => boolean | Promise<boolean>,
  timeoutMs = 5000,
  what: string | (() => string) = 'condition',
  intervalMs = 10,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) {
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${typeof what === 'string' ? what : what()}`,
      );
    }
    await new Promise((resolve) =>
      intervalMs > 0 ? setTimeout(resolve, intervalMs) : setImmediate(resolve),
    );
  }
}
