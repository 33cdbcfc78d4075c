import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { ExecutionContext } from '@nestjs/common';
import type { GatewayConfig } from '../../config/gateway-config';
import { cookieValue, DashboardAccessGuard } from './dashboard-access.guard';

function guard(host: string, token: string | undefined, open = false): DashboardAccessGuard {
  return new DashboardAccessGuard({ host, admin: { token }, dashboard: { open } } as GatewayConfig);
}

function context(headers: Record<string, string> = {}, query: Record<string, string> = {}): ExecutionContext {
  const reply = { header: () => reply };
  return {
    switchToHttp: () => ({ getRequest: () => ({ headers, query }), getResponse: () => reply }),
  } as unknown as ExecutionContext;
}

const status = (fn: () => unknown): number | true => {
  try {
    fn();
    return true;
  } catch (err) {
    return (err as { getStatus(): number }).getStatus();
  }
};

describe('DashboardAccessGuard', () => {
  test('without a token: open on loopback, absent (404) on another bind unless DASHBOARD_OPEN', () => {
    assert.equal(
      status(() => guard('127.0.0.1', undefined).canActivate(context())),
      true,
    );
    assert.equal(
      status(() => guard('::1', undefined).canActivate(context())),
      true,
    );
    assert.equal(
      status(() => guard('0.0.0.0', undefined).canActivate(context())),
      404,
    );
    assert.equal(
      status(() => guard('0.0.0.0', undefined, true).canActivate(context())),
      true,
    );
  });

  test('with a token: Bearer, cookie or ?token=; anything else 401', () => {
    const token = 'a-dashboard-token-123';
    const g = guard('0.0.0.0', token);
    assert.equal(
      status(() => g.canActivate(context())),
      401,
    );
    assert.equal(
      status(() => g.canActivate(context({ authorization: `Bearer ${token}` }))),
      true,
    );
    assert.equal(
      status(() => g.canActivate(context({ authorization: 'Bearer nope' }))),
      401,
    );
    assert.equal(
      status(() => g.canActivate(context({ cookie: `x=1; mcp_gateway_dashboard=${token}` }))),
      true,
    );
    assert.equal(
      status(() => g.canActivate(context({}, { token }))),
      true,
    );
    assert.equal(
      status(() => guard('127.0.0.1', token).canActivate(context())),
      401,
      'loopback needs it too',
    );
  });

  test('cookie parsing survives odd input', () => {
    assert.equal(cookieValue('a=1; b=%E0%A4%A', 'b'), undefined);
    assert.equal(cookieValue(' b = two ', 'b'), 'two');
    assert.equal(cookieValue(undefined, 'b'), undefined);
  });
});
