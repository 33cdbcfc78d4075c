import { request } from 'node:http';

/** Helpers for the Streamable HTTP transport suites: raw HTTP, SSE parsing, session set-up. */

export const BOTH = 'application/json, text/event-stream';

export interface RawResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  json: any;
}

/** One HTTP request through node:http (so Host and any other header can be set freely). */
export function raw(
  base: string,
  options: { method?: string; path?: string; headers?: Record<string, string>; body?: string | Buffer },
): Promise<RawResponse> {
  const url = new URL(options.path ?? '/mcp', base);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: url.hostname,
        port: url.port,
        path: url.pathname,
        method: options.method ?? 'POST',
        headers: options.headers,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let json: unknown;
          try {
            json = text ? JSON.parse(text) : undefined;
          } catch {
            json = undefined;
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json });
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    if (options.body !== undefined) req.end(options.body);
    else req.end();
  });
}

export interface SseEvent {
  id: string | undefined;
  event: string | undefined;
  data: string;
}

/**
 * Reads SSE events from a fetch response until `stop(events)` says so (then cancels the body,
 * i.e. the client goes away) or the stream ends.
 */
export async function readSse(
  response: Response,
  stop?: (events: SseEvent[]) => boolean,
): Promise<{ events: SseEvent[]; ended: boolean; retry: number | undefined }> {
  const reader = response.body!.getReader();
  const decoder = new TextDecoder();
  const events: SseEvent[] = [];
  let buffer = '';
  let retry: number | undefined;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return { events, ended: true, retry };
    buffer += decoder.decode(value, { stream: true });
    let sep: number;
    while ((sep = buffer.indexOf('\n\n')) !== -1) {
      const block = buffer.slice(0, sep);
      buffer = buffer.slice(sep + 2);
      let id: string | undefined;
      let event: string | undefined;
      const data: string[] = [];
      let any = false;
      for (const line of block.split('\n')) {
        if (line.startsWith(':')) continue;
        const colon = line.indexOf(':');
        const field = colon === -1 ? line : line.slice(0, colon);
        const val = colon === -1 ? '' : line.slice(colon + 1).replace(/^ /, '');
        if (field === 'id') id = val;
        else if (field === 'event') event = val;
        else if (field === 'data') data.push(val);
        else if (field === 'retry') retry = Number(val);
        else continue;
        any = true;
      }
      if (!any || (id === undefined && data.length === 0)) continue;
      events.push({ id, event, data: data.join('\n') });
      if (stop?.(events)) {
        await reader.cancel();
        return { events, ended: false, retry };
      }
    }
  }
}

/** The JSON-RPC messages among SSE events (priming events have empty data). */
export function messagesOf(events: SseEvent[]): any[] {
  return events.filter((e) => e.data !== '').map((e) => JSON.parse(e.data));
}

/** initialize + notifications/initialized over raw HTTP; returns the session id. */
export async function openSession(base: string, version: string, path = '/mcp'): Promise<string> {
  const init = await raw(base, {
    path,
    headers: { 'content-type': 'application/json', accept: BOTH },
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 0,
      method: 'initialize',
      params: { protocolVersion: version, capabilities: {}, clientInfo: { name: 'test', version: '1.0.0' } },
    }),
  });
  if (init.status !== 200) throw new Error(`initialize failed: ${init.status} ${init.text}`);
  const sessionId = init.headers['mcp-session-id'] as string;
  const note = await raw(base, {
    path,
    headers: sessionHeaders(sessionId, version),
    body: JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }),
  });
  if (note.status !== 202) throw new Error(`initialized failed: ${note.status}`);
  return sessionId;
}

export function sessionHeaders(sessionId: string, version: string | undefined): Record<string, string> {
  const h: Record<string, string> = {
    'content-type': 'application/json',
    accept: BOTH,
    'mcp-session-id': sessionId,
  };
  if (version !== undefined) h['mcp-protocol-version'] = version;
  return h;
}

export function call(
  id: number | string,
  name: string,
  args: Record<string, unknown>,
  meta?: Record<string, unknown>,
) {
  return {
    jsonrpc: '2.0',
    id,
    method: 'tools/call',
    params: meta ? { name, arguments: args, _meta: meta } : { name, arguments: args },
  };
}

/** The headers of a 2026-07-28 (sessionless) request: Mcp-Method, Mcp-Name when given, a claimed client id. */
export function sessionlessHeaders(method: string, client: string, name?: string): Record<string, string> {
  const h: Record<string, string> = {
    'content-type': 'application/json',
    accept: BOTH,
    'mcp-protocol-version': '2026-07-28',
    'mcp-method': method,
    'x-mcp-client-id': client,
  };
  if (name !== undefined) h['mcp-name'] = name;
  return h;
}
