import type { IncomingHttpHeaders, ServerResponse } from 'node:http';
import {
  ErrorCode,
  type JsonRpcId,
  type JsonRpcNotification,
  type JsonRpcRequest,
} from '../../../libs/protocol/src';
import type { RequestMultiplexer } from '../../pool/request-multiplexer';
import { checkParamHeaders, headerParamsOf, type HeaderParams } from './param-headers';
import { internalRequest, type BridgeEntry } from './sessionless-bridge';
import { refuse, type StreamableHttpDeps } from './streamable-http-deps';

/** How long a tool's cached `x-mcp-header` annotations are trusted without a fresh tools/list. */
const TOOL_SCHEMA_TTL_MS = 60_000;
/** Pages of tools/list the bridge reads on its own before giving up on finding a tool. */
const MAX_TOOL_PAGES = 20;

/** What the check needs of the bridge that runs it (SessionlessHandler implements it). */
export interface ToolCheckHost {
  readonly deps: Pick<StreamableHttpDeps, 'metrics'>;
  /** Runs the gateway's own tools/list on a hidden session. */
  readonly requests: RequestMultiplexer<unknown>;
  /** Where a notification that came down with the gateway's own tools/list goes (sessionless-listen.ts). */
  readonly subscriptions: { upstreamNotification(entry: BridgeEntry, message: JsonRpcNotification): void };
  /** The bridge's error boundary. */
  internalError(res: ServerResponse, err: unknown): void;
}

/**
 * tools/call on the 2026-07-28 bridge is checked against the tool's `x-mcp-header` annotations
 * (Mcp-Param-* headers, see param-headers.ts), read from the upstream's tools/list and cached
 * per hidden session.
 */
export class ToolHeaderCheck {
  constructor(private readonly handler: ToolCheckHost) {}

  get deps() {
    return this.handler.deps;
  }

  /**
   * Checks a tools/call's Mcp-Param-* headers against the tool's `x-mcp-header` annotations,
   * from the upstream's tools/list (cached per hidden session, refreshed when stale, when the
   * upstream says the list changed, and before refusing on a cached schema). Continues with
   * `then` when they agree or the tool is unknown (the upstream answers that); refuses 400 / −32020 otherwise.
   */
  check(
    entry: BridgeEntry,
    request: JsonRpcRequest,
    headers: IncomingHttpHeaders,
    res: ServerResponse,
    then: () => void,
  ): void {
    const params = request.params as { name?: unknown; arguments?: unknown };
    const name = params.name;
    if (typeof name !== 'string') {
      then();
      return;
    }
    const verdict = (): string | undefined => {
      const spec = entry.tools.get(name);
      return spec?.valid ? checkParamHeaders(spec.params, params.arguments, headers) : undefined;
    };
    const age = Date.now() - entry.toolsLoadedAt;
    if (entry.toolsLoadedAt > 0 && age < TOOL_SCHEMA_TTL_MS) {
      const problem = verdict();
      // A refusal on a schema more than a second old is re-checked against a fresh list first.
      if (problem === undefined || age < 1000) {
        if (problem === undefined) then();
        else this.headerMismatch(res, request.id, problem);
        return;
      }
      entry.toolsLoadedAt = 0;
    }
    const checked = this.loadTools(entry).then(
      () => {
        if (res.destroyed || res.writableEnded) return;
        const problem = verdict();
        if (problem === undefined) then();
        else this.headerMismatch(res, request.id, problem);
      },
      () => {
        // Without the schema there is nothing to hold the headers against: the upstream decides.
        if (!res.destroyed && !res.writableEnded) then();
      },
    );
    checked.catch((err: unknown) => this.handler.internalError(res, err));
  }

  private headerMismatch(res: ServerResponse, id: JsonRpcId, problem: string): void {
    refuse(this.deps, res, 400, ErrorCode.HeaderMismatch, 'header_mismatch', `Header mismatch: ${problem}`, {
      id,
    });
  }

  /** Reads the upstream's whole tools/list on the hidden session (once at a time). */
  private loadTools(entry: BridgeEntry): Promise<void> {
    if (entry.toolsLoading) return entry.toolsLoading;
    const session = entry.session!;
    const load = async () => {
      const tools = new Map<string, HeaderParams>();
      let cursor: unknown = undefined;
      for (let page = 0; page < MAX_TOOL_PAGES; page++) {
        const result = await internalRequest(
          this.handler.requests,
          session,
          'tools/list',
          typeof cursor === 'string' ? { cursor } : undefined,
          (m) => this.handler.subscriptions.upstreamNotification(entry, m),
        );
        collectTools(tools, result);
        cursor = result.nextCursor;
        if (typeof cursor !== 'string' || cursor === '') break;
      }
      entry.tools = tools;
      entry.toolsLoadedAt = Date.now();
    };
    const loading = load().finally(() => {
      if (entry.toolsLoading === loading) entry.toolsLoading = undefined;
    });
    entry.toolsLoading = loading;
    return loading;
  }

  /** A tools/list page a client asked for: its schemas are as good as our own reading. */
  note(entry: BridgeEntry, result: object): void {
    collectTools(entry.tools, result as Record<string, unknown>);
  }
}

/** Adds the `x-mcp-header` annotations of a tools/list page's tools to `into`. */
function collectTools(into: Map<string, HeaderParams>, result: Record<string, unknown>): void {
  const tools = result.tools;
  if (!Array.isArray(tools)) return;
  for (const tool of tools as Array<{ name?: unknown; inputSchema?: unknown }>) {
    if (tool !== null && typeof tool === 'object' && typeof tool.name === 'string') {
      into.set(tool.name, headerParamsOf(tool.inputSchema));
    }
  }
}
