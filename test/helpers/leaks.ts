import { execFileSync } from 'node:child_process';

/** PIDs of this test process's live child processes (the `ps` that lists them excluded). */
export function childPids(exclude: number[] = []): number[] {
  let out = '';
  try {
    out = execFileSync('ps', ['-o', 'pid=,stat=,comm=', '--ppid', String(process.pid)], { encoding: 'utf8' });
  } catch {
    return []; // ps exits 1 when there are none
  }
  return out
    .split('\n')
    .map((line) => line.trim().split(/\s+/))
    .filter((cols) => cols.length >= 3 && cols[2] !== 'ps' && !cols[1].startsWith('Z'))
    .map((cols) => Number(cols[0]))
    .filter((pid) => !exclude.includes(pid));
}

/** Waits until no child process is left (stdio upstreams exit asynchronously after close()). */
export async function waitForNoChildren(exclude: number[] = [], timeoutMs = 5000): Promise<number[]> {
  const deadline = Date.now() + timeoutMs;
  let left = childPids(exclude);
  while (left.length > 0 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
    left = childPids(exclude);
  }
  return left;
}
