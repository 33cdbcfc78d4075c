import { checkShape, type JsonRpcMessage } from '../../libs/protocol/src/jsonrpc';

/** Parses one message or a batch without the result wrapper parseJsonRpc allocates. */
export function parseUpstreamText(text: string): JsonRpcMessage | JsonRpcMessage[] | string {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    return `invalid JSON: ${(err as Error).message}`;
  }
  if (Array.isArray(value)) {
    for (const item of value) {
      const reason = checkShape(item);
      if (reason) return reason;
    }
    return value as JsonRpcMessage[];
  }
  return checkShape(value) ?? (value as JsonRpcMessage);
}
