/** Writing a run's results: bench/results/<prefix><date>.json and <prefix>latest.json. */
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { BENCH_DIR } from './children';

/** The source tree's bench/results (the bench runs from dist/bench). */
const RESULTS_DIR = resolve(BENCH_DIR, '../../bench/results');

/** A date as it goes into file names: 2026-12-01T21-18-21-269Z. */
export const fileStamp = (date: Date) => date.toISOString().replace(/[:.]/g, '-');

/** Writes `report` as `<prefix><stamp>.json` and `<prefix>latest.json`; returns the first's path. */
export function writeResults(prefix: string, started: Date, report: object): string {
  mkdirSync(RESULTS_DIR, { recursive: true });
  const file = join(RESULTS_DIR, `${prefix}${fileStamp(started)}.json`);
  const text = `${JSON.stringify(report, null, 2)}\n`;
  writeFileSync(file, text);
  writeFileSync(join(RESULTS_DIR, `${prefix}latest.json`), text);
  return file;
}

/** The commit measured, and whether the working tree differed from it. */
export function gitInfo(): { commit: string | null; dirty: boolean | null } {
  try {
    const commit = execFileSync('git', ['rev-parse', 'HEAD'], { encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain'], { encoding: 'utf8' }).trim().length > 0;
    return { commit, dirty };
  } catch {
    return { commit: null, dirty: null };
  }
}
