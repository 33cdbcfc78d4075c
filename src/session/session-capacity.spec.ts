import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { DescriptorBudget, SessionCapacityError } from './session-capacity';

describe('DescriptorBudget', () => {
  test('refuses once open descriptors plus the headroom reach the limit', () => {
    let open = 80;
    let counts = 0;
    const budget = new DescriptorBudget({
      limit: 100,
      headroomPercent: 10,
      countOpen: () => (counts++, open),
    });
    assert.equal(budget.reserve, 10);
    budget.check(0); // 80 + 10 < 100
    open = 90;
    budget.check(100); // within the sample interval: still counted as 80
    assert.equal(counts, 1, 'one count per 250 ms at most');
    assert.throws(
      () => budget.check(300),
      (err: unknown) =>
        err instanceof SessionCapacityError && err.limit === 100 && err.open === 90 && err.retryAfterMs > 0,
    );
    assert.equal(counts, 2);
  });

  test('sessions admitted between two counts are charged, so a burst cannot overshoot', () => {
    const budget = new DescriptorBudget({ limit: 100, headroomPercent: 0, countOpen: () => 80 });
    let admitted = 0;
    for (let i = 0; i < 100; i++) {
      try {
        budget.check(0);
      } catch {
        break;
      }
      budget.taken();
      admitted++;
    }
    assert.equal(admitted, 5, '80 open + 5 × 4 charged reaches 100');
  });

  test('without a known limit or a way to count, everything is admitted', () => {
    // /proc/self/fd unreadable: the guard cannot tell, so it does not refuse.
    assert.doesNotThrow(() => new DescriptorBudget({ limit: 10, countOpen: () => -1 }).check(0));
  });
});
