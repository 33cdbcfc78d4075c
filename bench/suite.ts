/**
 * What a suite is to the entry point (`run.ts`): a name, a line announcing it, a run that
 * fills its part of the results JSON, and a summary printed once every suite has run.
 */
import type { Options, SuiteName } from './options';
import type { Failures } from './servers';

export interface SuiteContext {
  opts: Options;
  /** What went wrong, for the report's `failures`; a suite records its failure and returns what it has. */
  failures: Failures;
  /** With --profile, where the gateway CPU profile named `name` goes; otherwise undefined. */
  profileFile(name: string): string | undefined;
}

export interface Suite<Section extends object = object> {
  name: SuiteName;
  /** Its keys in the results JSON, as they are when it does not run. */
  empty: () => Section;
  /** Printed before it runs. */
  heading(opts: Options): string;
  run(ctx: SuiteContext): Promise<Section>;
  /** Printed after every suite has run, from what it returned. */
  summary?(section: Section): void;
  /** Holds thousands of connections: the children's open-files limit is raised first. */
  needsFds?: boolean;
}

/** A suite, its section type checked against its own run and summary. */
export const defineSuite = <Section extends object>(suite: Suite<Section>): Suite<Section> => suite;
