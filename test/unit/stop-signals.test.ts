import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { test } from 'node:test';
import { stopOnSignals } from '../../src/cli/stop-signals.js';

test('the first SIGTERM or SIGINT stops the node; repeats are reported, not acted on, and keep a handler in place', () => {
  for (const [first, second] of [['SIGINT', 'SIGINT'], ['SIGTERM', 'SIGINT'], ['SIGINT', 'SIGTERM']] as const) {
    const signals = new EventEmitter();
    let stops = 0;
    const reports: string[] = [];
    const remove = stopOnSignals(signals, () => stops++, (signal, repeated) => reports.push(`${signal}${repeated ? ' again' : ''}`));
    signals.emit(first, first);
    // Node kills the process on a signal nobody listens to: while the node stops, someone must.
    assert.equal(signals.listenerCount('SIGINT'), 1, `after ${first}`);
    assert.equal(signals.listenerCount('SIGTERM'), 1, `after ${first}`);
    signals.emit(second, second);
    assert.equal(stops, 1);
    assert.deepEqual(reports, [first, `${second} again`]);
    remove();
    assert.equal(signals.listenerCount('SIGINT') + signals.listenerCount('SIGTERM'), 0);
  }
});
