import type { JsonRpcMessage } from '../../libs/protocol/src/jsonrpc';

/**
 * What a session asks before it relays an answer: whether the client may see all of it. The
 * session layer declares it; the policy layer provides it (MessagePolicy filters list answers for
 * clients with tool/resource/prompt rules) through `SessionService.useAnswerFilter`, so sessions
 * never import policy.
 */
export interface AnswerFilter {
  /** Whether the answer to a `method` request of `clientId` must be filtered. */
  filtersAnswer(clientId: string, method: string): boolean;
  /** The filtered answer's text, or undefined to send the upstream's bytes unchanged. */
  filterAnswer(clientId: string, method: string, response: JsonRpcMessage): string | undefined;
}
