/**
 * A connection attempt's outcome, decided once: the first `settle(err?)` (or the deadline,
 * with `timeoutMessage`) clears the timer and calls `onSettle`; later calls do nothing.
 * `isSettled()` tells event handlers whether the attempt is over (the connection is open or failed).
 */
export function settleOnce(
  timeoutMs: number,
  timeoutMessage: string,
  onSettle: (err?: Error) => void,
): { settle(err?: Error): void; isSettled(): boolean } {
  let settled = false;
  const settle = (err?: Error) => {
    if (settled) return;
    settled = true;
    clearTimeout(timer);
    onSettle(err);
  };
  const timer = setTimeout(() => settle(new Error(timeoutMessage)), timeoutMs);
  return { settle, isSettled: () => settled };
}
