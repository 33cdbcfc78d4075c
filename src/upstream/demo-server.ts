import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { CreateMessageResultSchema, type CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { z } from 'zod';

export const DEMO_SERVER_NAME = 'mcp-gateway-demo';

const README = `# mcp-gateway demo server

This server runs inside the gateway process so that \`npm start\` works with no configuration.

Tools:
- \`echo\` — returns its \`text\` argument.
- \`current_time\` — the current time (ISO 8601), optionally in an IANA time zone.
- \`long_task\` — runs for \`duration\` seconds in \`steps\` steps, reporting progress when the request
  carries a progress token and logging each step; cancellable.
- \`ask_llm\` — asks the client's model (sampling/createMessage) and returns its answer.

Prompt: \`summarize\` (argument \`text\`). Resource: \`demo://readme\` (this text).
`;

/** Sleeps, or rejects as soon as the request is cancelled. */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    if (signal.aborted) {
      reject(new Error('cancelled'));
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      reject(new Error('cancelled'));
    };
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

function text(value: string, isError = false): CallToolResult {
  return isError
    ? { content: [{ type: 'text', text: value }], isError }
    : { content: [{ type: 'text', text: value }] };
}

/**
 * The embedded demo upstream: a small but complete MCP server (tools with progress, logging,
 * cancellation and sampling; a resource; a prompt). A fresh instance serves each connection.
 */
export function createDemoServer(): McpServer {
  const server = new McpServer(
    { name: DEMO_SERVER_NAME, version: '1.0.0' },
    {
      capabilities: { logging: {} },
      instructions: 'A demo server built into the gateway. Read demo://readme for what it offers.',
    },
  );

  server.registerTool(
    'echo',
    {
      title: 'Echo',
      description: 'Returns the text it is given.',
      inputSchema: { text: z.string().describe('Text to echo back') },
      annotations: { readOnlyHint: true, idempotentHint: true, openWorldHint: false },
    },
    ({ text: value }) => text(value),
  );

  server.registerTool(
    'current_time',
    {
      title: 'Current time',
      description: 'The current time as ISO 8601 (UTC), plus the local time in an optional IANA time zone.',
      inputSchema: { timezone: z.string().optional().describe('IANA time zone, e.g. Europe/Paris') },
      annotations: { readOnlyHint: true, openWorldHint: false },
    },
    ({ timezone }) => {
      const now = new Date();
      const iso = now.toISOString();
      if (!timezone) return text(iso);
      try {
        const local = new Intl.DateTimeFormat('en-CA', {
          timeZone: timezone,
          dateStyle: 'short',
          timeStyle: 'long',
          hourCycle: 'h23',
        }).format(now);
        return text(`${iso} (${timezone}: ${local})`);
      } catch {
        return text(`Unknown time zone: ${timezone}`, true);
      }
    },
  );

  server.registerTool(
    'long_task',
    {
      title: 'Long task',
      description:
        'Works for `duration` seconds in `steps` steps; sends progress notifications when asked for them, ' +
        'logs each step, and stops when cancelled.',
      inputSchema: {
        duration: z.number().min(0).max(600).default(5).describe('Total duration in seconds'),
        steps: z.number().int().min(1).max(1000).default(5).describe('Number of steps'),
      },
      annotations: { readOnlyHint: true, openWorldHint: false },
    },
    async ({ duration, steps }, extra) => {
      const progressToken = extra._meta?.progressToken;
      const stepMs = (duration * 1000) / steps;
      for (let i = 1; i <= steps; i++) {
        try {
          await sleep(stepMs, extra.signal);
        } catch {
          return text(`Cancelled after ${i - 1} of ${steps} steps`, true);
        }
        if (progressToken !== undefined) {
          await extra.sendNotification({
            method: 'notifications/progress',
            params: { progressToken, progress: i, total: steps, message: `step ${i} of ${steps}` },
          });
        }
        // Honours the client's logging/setLevel (sendLoggingMessage filters by level).
        await server.sendLoggingMessage(
          { level: 'info', logger: 'long_task', data: `step ${i} of ${steps} done` },
          extra.sessionId,
        );
      }
      return text(`Long task finished: ${steps} steps in ${duration} s`);
    },
  );

  server.registerTool(
    'ask_llm',
    {
      title: 'Ask the client LLM',
      description: "Asks the client's model a question (MCP sampling) and returns its answer.",
      inputSchema: {
        question: z.string().describe('What to ask'),
        maxTokens: z.number().int().min(1).max(100_000).default(500),
      },
      annotations: { readOnlyHint: true, openWorldHint: true },
    },
    async ({ question, maxTokens }, extra) => {
      if (!server.server.getClientCapabilities()?.sampling) {
        return text('The client does not support sampling (no "sampling" capability)', true);
      }
      const result = await extra.sendRequest(
        {
          method: 'sampling/createMessage',
          params: {
            messages: [{ role: 'user', content: { type: 'text', text: question } }],
            maxTokens,
          },
        },
        CreateMessageResultSchema,
      );
      const blocks = Array.isArray(result.content) ? result.content : [result.content];
      const answer = blocks
        .map((b) => (b && typeof b === 'object' && 'text' in b ? String(b.text) : `[${String(b?.type)}]`))
        .join('\n');
      return text(`${result.model}: ${answer}`);
    },
  );

  server.registerResource(
    'readme',
    'demo://readme',
    { title: 'Demo server README', description: 'What this demo server offers', mimeType: 'text/markdown' },
    (uri) => ({ contents: [{ uri: uri.href, mimeType: 'text/markdown', text: README }] }),
  );

  server.registerPrompt(
    'summarize',
    {
      title: 'Summarize',
      description: 'Asks for a short summary of a text.',
      argsSchema: { text: z.string().describe('The text to summarize') },
    },
    ({ text: value }) => ({
      messages: [
        { role: 'user', content: { type: 'text', text: `Summarize in three sentences:\n\n${value}` } },
      ],
    }),
  );

  return server;
}
