import { Writable } from 'node:stream';

const NAMES: Record<number, string> = {
  10: 'TRACE',
  20: 'DEBUG',
  30: 'INFO ',
  40: 'WARN ',
  50: 'ERROR',
  60: 'FATAL',
};
const COLOURS: Record<number, string> = { 10: '90', 20: '36', 30: '32', 40: '33', 50: '31', 60: '35' };
/** Fields shown in the line's head or left out of the key=value tail. */
const SKIP = new Set(['level', 'time', 'pid', 'hostname', 'msg', 'context', 'err']);

/**
 * One readable line per pino record, for a terminal (pino-pretty is not a dependency):
 * `12:00:00.123 INFO  [Session] message key=value …`, the error's stack below it.
 * Only used when stdout is a TTY (or LOG_FORMAT=pretty): parsing each line costs.
 */
export class PrettyLogStream extends Writable {
  private partial = '';

  constructor(
    private readonly out: NodeJS.WritableStream,
    private readonly colour: boolean,
  ) {
    super();
  }

  override _write(chunk: Buffer | string, _enc: BufferEncoding, done: (err?: Error | null) => void): void {
    const text = this.partial + chunk.toString();
    const lines = text.split('\n');
    this.partial = lines.pop() ?? '';
    for (const line of lines) if (line !== '') this.out.write(`${this.format(line)}\n`);
    done();
  }

  format(line: string): string {
    let rec: Record<string, unknown>;
    try {
      rec = JSON.parse(line) as Record<string, unknown>;
    } catch {
      return line;
    }
    const level = typeof rec.level === 'number' ? rec.level : 30;
    const time = new Date(typeof rec.time === 'number' ? rec.time : Date.now()).toISOString().slice(11, 23);
    const name = NAMES[level] ?? String(level);
    const head = this.colour ? `\x1b[${COLOURS[level] ?? '0'}m${name}\x1b[0m` : name;
    const context = typeof rec.context === 'string' ? ` [${rec.context}]` : '';
    let tail = '';
    for (const [k, v] of Object.entries(rec)) {
      if (SKIP.has(k) || v === undefined) continue;
      tail += ` ${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`;
    }
    const err = rec.err as { stack?: string; message?: string } | undefined;
    const stack = err ? `\n${err.stack ?? err.message ?? ''}` : '';
    return `${time} ${head}${context} ${String(rec.msg ?? '')}${tail}${stack}`;
  }
}
