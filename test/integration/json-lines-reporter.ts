import type { TestEvent } from 'node:test/reporters';

/**
 * A node:test reporter that writes one JSON line per finished test. The client matrix
 * (client-matrix.ts) runs each client's tests in a child process with this reporter and
 * replays the results as subtests of the parent's test.
 */
export interface ReportedTest {
  kind: 'pass' | 'fail';
  name: string;
  nesting: number;
  durationMs: number;
  skipped: boolean;
  error?: string;
  /** What the test said with `t.diagnostic` (replayed by the parent). */
  diagnostics: string[];
}

function describeError(error: unknown): string {
  const failure = error as { cause?: unknown; stack?: string; message?: string } | undefined;
  const cause = (failure?.cause ?? failure) as { stack?: string; message?: string } | undefined;
  return String(cause?.stack ?? cause?.message ?? cause);
}

export default async function* jsonLinesReporter(source: AsyncIterable<TestEvent>): AsyncGenerator<string, void> {
  // A test's `t.diagnostic` lines are reported right after its result, at its nesting and location.
  let pending: { result: ReportedTest; line: unknown; column: unknown } | undefined;
  for await (const event of source) {
    if (event.type === 'test:diagnostic') {
      const data = event.data as { message: string; nesting: number; line?: unknown; column?: unknown };
      if (pending && data.line !== undefined && data.nesting === pending.result.nesting && data.line === pending.line && data.column === pending.column) {
        pending.result.diagnostics.push(data.message);
      }
      continue;
    }
    if (event.type !== 'test:pass' && event.type !== 'test:fail') continue;
    if (pending) yield `${JSON.stringify(pending.result)}\n`;
    const data = event.data as { name: string; nesting: number; skip?: unknown; line?: unknown; column?: unknown; details: { duration_ms: number; error?: unknown } };
    pending = {
      line: data.line,
      column: data.column,
      result: {
        kind: event.type === 'test:pass' ? 'pass' : 'fail',
        name: data.name,
        nesting: data.nesting,
        durationMs: data.details.duration_ms,
        skipped: data.skip !== undefined && data.skip !== false,
        ...(event.type === 'test:fail' ? { error: describeError(data.details.error) } : {}),
        diagnostics: [],
      },
    };
  }
  if (pending) yield `${JSON.stringify(pending.result)}\n`;
}
