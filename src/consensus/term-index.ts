import type { TermRun } from './types.js';

/**
 * The term of every index of the local log, as runs of one term (terms change rarely, so this is
 * tiny however long the log is). It is all the core needs of the log to vote and to check that
 * two logs match; the entries themselves stay with the caller.
 */
export class TermIndex {
  private runs: TermRun[];
  private last: number;

  constructor(runs: readonly TermRun[], lastIndex: number) {
    for (let i = 1; i < runs.length; i++) {
      if (runs[i]!.startIndex <= runs[i - 1]!.startIndex || runs[i]!.term <= runs[i - 1]!.term) {
        throw new Error(`term runs must rise in index and term: ${JSON.stringify(runs)}`);
      }
    }
    if (lastIndex > 0 && (runs.length === 0 || runs[0]!.startIndex > 1 || runs.at(-1)!.startIndex > lastIndex)) {
      throw new Error(`term runs ${JSON.stringify(runs)} do not cover indexes 1..${lastIndex}`);
    }
    this.runs = runs.map((run) => ({ ...run }));
    this.last = lastIndex;
  }

  get lastIndex(): number {
    return this.last;
  }

  get lastTerm(): number {
    return this.last === 0 ? 0 : this.runs.at(-1)!.term;
  }

  /** The term at `index`: 0 for index 0, undefined past the end. */
  termAt(index: number): number | undefined {
    if (index === 0) return 0;
    if (index < 0 || index > this.last) return undefined;
    for (let i = this.runs.length - 1; i >= 0; i--) if (this.runs[i]!.startIndex <= index) return this.runs[i]!.term;
    return undefined;
  }

  /** The first index of the run that holds `index`. */
  runStartOf(index: number): number {
    for (let i = this.runs.length - 1; i >= 0; i--) if (this.runs[i]!.startIndex <= index) return this.runs[i]!.startIndex;
    return 1;
  }

  /** The last index holding `term` or an earlier term, at or before `atMost`; 0 if none. */
  lastIndexUpToTerm(term: number, atMost: number): number {
    for (let i = this.runs.length - 1; i >= 0; i--) {
      const run = this.runs[i]!;
      if (run.startIndex > atMost) continue;
      if (run.term <= term) {
        const runEnd = i + 1 < this.runs.length ? this.runs[i + 1]!.startIndex - 1 : this.last;
        return Math.min(runEnd, atMost);
      }
    }
    return 0;
  }

  append(index: number, term: number): void {
    if (index !== this.last + 1) throw new Error(`append at ${index} after ${this.last}: the log must stay contiguous`);
    const lastRun = this.runs.at(-1);
    if (!lastRun || lastRun.term !== term) {
      if (lastRun && term < lastRun.term) throw new Error(`term ${term} at ${index} is older than ${lastRun.term} before it`);
      this.runs.push({ startIndex: index, term });
    }
    this.last = index;
  }

  /** Forgets every index after `index`. */
  truncateAfter(index: number): void {
    if (index >= this.last) return;
    while (this.runs.length > 0 && this.runs.at(-1)!.startIndex > index) this.runs.pop();
    this.last = index;
  }

  snapshot(): TermRun[] {
    return this.runs.map((run) => ({ ...run }));
  }
}
