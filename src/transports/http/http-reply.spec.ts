import assert from 'node:assert/strict';
import type { ServerResponse } from 'node:http';
import { describe, test } from 'node:test';
import { overloaded } from '../../core/refusal';
import { sendRefusal } from './http-reply';

/** What a raw Node response was asked to write. */
function recorder(): {
  res: ServerResponse;
  status?: number;
  headers?: Record<string, string>;
  body?: string;
} {
  const out: { res: ServerResponse; status?: number; headers?: Record<string, string>; body?: string } = {
    res: undefined as never,
  };
  out.res = {
    headersSent: false,
    writeHead(status: number, headers: Record<string, string>) {
      out.status = status;
      out.headers = headers;
    },
    end(text?: string) {
      out.body = text;
    },
  } as unknown as ServerResponse;
  return out;
}

describe('sendRefusal', () => {
  test('status, headers and a JSON-RPC error body with the refusal data', () => {
    const out = recorder();
    sendRefusal(out.res, overloaded('flood_connections', 'Service unavailable', 3000));
    assert.equal(out.status, 503);
    assert.equal(out.headers?.['retry-after'], '3');
    assert.deepEqual(JSON.parse(out.body ?? ''), {
      jsonrpc: '2.0',
      id: null,
      error: { code: -31003, message: 'Service unavailable', data: { retryAfterMs: 3000 } },
    });
  });

  test("the refused request's id when one is named", () => {
    const out = recorder();
    sendRefusal(
      out.res,
      { refused: true, status: 429, code: -31004, reason: 'rate_limited', message: 'slow down' },
      7,
    );
    assert.equal(out.status, 429);
    assert.equal(JSON.parse(out.body ?? '').id, 7);
  });
});
