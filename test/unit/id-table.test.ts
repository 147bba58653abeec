import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { IdTable } from '../../src/store/id-table.js';
import { IdempotencyWindow, ID_BYTES, type WrittenBatch } from '../../src/store/idempotency-window.js';

/** Ids from a small pool, so that sets, replacements and removals meet the same ids often. */
function idOf(n: number): Uint8Array {
  const bytes = new Uint8Array(ID_BYTES);
  // Time-ordered ids share their first bytes: only the last word differs here.
  bytes[12] = n & 0xff;
  bytes[13] = n >> 8;
  return bytes;
}

const hex = (bytes: Uint8Array, offset = 0) => Buffer.from(bytes.subarray(offset, offset + ID_BYTES)).toString('hex');

function saltedId(n: number, salt: number): Uint8Array {
  const bytes = new Uint8Array(ID_BYTES);
  const view = new DataView(bytes.buffer);
  view.setInt32(0, salt);
  view.setInt32(12, Math.imul(n + 1, salt | 1));
  return bytes;
}

type TableOperation = { kind: 'set'; id: number; owner: number; extra: number } | { kind: 'remove'; id: number };

describe('IdTable (16-byte ids in typed arrays)', () => {
  // Up to 8 ids keep the table at 16 slots, half full, where probe runs often wrap past its end.
  for (const pool of [8, 300]) {
  it(`finds exactly what was set and not removed, through growth and removals that shift probe runs (${pool} ids)`, () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.oneof(
            fc.record({ kind: fc.constant('set' as const), id: fc.integer({ min: 0, max: pool - 1 }), owner: fc.integer({ min: 1, max: 1e9 }), extra: fc.integer({ min: 0, max: 1000 }) }),
            fc.record({ kind: fc.constant('remove' as const), id: fc.integer({ min: 0, max: pool - 1 }) }),
          ),
          { maxLength: 400 },
        ),
        fc.integer(),
        (ops: TableOperation[], salt: number) => {
          // Salted ids land in different slots on every run, so runs cross the table's end too.
          const idOf = (n: number) => saltedId(n, salt);
          const table = new IdTable(16);
          const model = new Map<number, { owner: number; extra: number }>();
          for (const op of ops) {
            const id = idOf(op.id);
            if (op.kind === 'set') {
              const previous = table.set(id, 0, op.owner, op.extra);
              assert.equal(previous, model.get(op.id)?.owner ?? 0);
              model.set(op.id, { owner: op.owner, extra: op.extra });
            } else {
              const slot = table.find(id, 0);
              assert.equal(slot >= 0, model.has(op.id));
              if (slot >= 0) table.removeAt(slot);
              model.delete(op.id);
            }
            assert.equal(table.size, model.size);
          }
          for (let n = 0; n <= 300; n++) {
            const slot = table.find(idOf(n), 0);
            const expected = model.get(n);
            assert.equal(slot >= 0, expected !== undefined, `id ${n}`);
            if (expected) assert.deepEqual({ owner: table.ownerAt(slot), extra: table.extraAt(slot) }, expected);
          }
        },
      ),
      { numRuns: 300 },
    );
  });
  }

  it('reads an id at an offset inside a larger buffer', () => {
    const table = new IdTable();
    const buffer = new Uint8Array(ID_BYTES * 3);
    buffer.set(idOf(7), ID_BYTES);
    table.set(buffer, ID_BYTES, 5, 2);
    assert.equal(table.ownerAt(table.find(idOf(7), 0)), 5);
    assert.equal(table.find(idOf(8), 0), -1);
  });

  it('refuses an owner that would read as an empty slot', () => {
    assert.throws(() => new IdTable().set(idOf(1), 0, 0, 0), RangeError);
  });
});

type WindowOperation =
  | { kind: 'add'; stream: number; ids: number[]; age: number; replay: boolean }
  | { kind: 'reorder'; back: number }
  | { kind: 'forget'; back: number }
  | { kind: 'match'; stream: number; ids: number[] }
  | { kind: 'expire'; age: number };

function batchOf(stream: number, ids: number[], createdMicros: number): WrittenBatch {
  const bytes = new Uint8Array(ids.length * ID_BYTES);
  ids.forEach((id, i) => bytes.set(idOf(id), i * ID_BYTES));
  return {
    stream: `s${stream}`,
    ids: bytes,
    firstRevision: 0,
    priorView: { lastRevision: -1, tombstoned: false, softDeleted: false },
    commitPosition: 0,
    lastPreparePosition: 0,
    createdMicros,
    committed: Promise.resolve(),
  };
}

/** What the window must answer: the rules it implements, written plainly over a Map keyed by hex ids. */
class WindowModel {
  readonly byId = new Map<string, WrittenBatch>();
  readonly batches: WrittenBatch[] = [];
  eventCount = 0;
  constructor(private readonly maxEvents: number) {}
  add(batch: WrittenBatch): void {
    this.batches.push(batch);
    const count = batch.ids.byteLength / ID_BYTES;
    for (let i = 0; i < count; i++) this.byId.set(hex(batch.ids, i * ID_BYTES), batch);
    this.eventCount += count;
    while (this.eventCount > this.maxEvents && this.batches.length > 0) this.drop();
  }
  forget(batch: WrittenBatch, forgotten: Set<WrittenBatch>): void {
    if (forgotten.has(batch)) return;
    forgotten.add(batch);
    this.removeIds(batch);
  }
  expire(oldestKeptMicros: number, forgotten: Set<WrittenBatch>): void {
    while (this.batches.length > 0 && this.batches[0]!.createdMicros < oldestKeptMicros) this.drop(forgotten);
  }
  private drop(forgotten?: Set<WrittenBatch>): void {
    const batch = this.batches.shift()!;
    if (!forgotten?.has(batch) && !batch.forgotten) this.removeIds(batch);
  }
  private removeIds(batch: WrittenBatch): void {
    const count = batch.ids.byteLength / ID_BYTES;
    this.eventCount -= count;
    for (let i = 0; i < count; i++) if (this.byId.get(hex(batch.ids, i * ID_BYTES)) === batch) this.byId.delete(hex(batch.ids, i * ID_BYTES));
  }
  match(stream: string, ids: Uint8Array[]): string {
    const owners = ids.map((id) => this.byId.get(hex(id)));
    const found = owners.filter((owner) => owner !== undefined);
    if (found.length === 0) return 'new';
    const batch = found[0]!;
    const aligned = owners.every((owner, i) => owner === batch && hex(batch.ids, i * ID_BYTES) === hex(ids[i]!));
    return aligned && batch.ids.byteLength === ids.length * ID_BYTES && batch.stream === stream ? 'retry' : 'conflict';
  }
}

describe('IdempotencyWindow', () => {
  it('classifies writes as a plain model does, through adds, forgets, eviction by count and by age', () => {
    const ids = fc.uniqueArray(fc.integer({ min: 0, max: 60 }), { minLength: 1, maxLength: 6 });
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 40 }),
        fc.array(
          fc.oneof(
            fc.record({ kind: fc.constant('add' as const), stream: fc.integer({ min: 0, max: 2 }), ids, age: fc.integer({ min: 0, max: 100 }), replay: fc.boolean() }),
            fc.record({ kind: fc.constant('reorder' as const), back: fc.integer({ min: 0, max: 10 }) }),
            fc.record({ kind: fc.constant('forget' as const), back: fc.integer({ min: 0, max: 10 }) }),
            fc.record({ kind: fc.constant('match' as const), stream: fc.integer({ min: 0, max: 2 }), ids }),
            fc.record({ kind: fc.constant('expire' as const), age: fc.integer({ min: 0, max: 100 }) }),
          ),
          { maxLength: 120 },
        ),
        (maxEvents, ops: WindowOperation[]) => {
          const window = new IdempotencyWindow({ maxEvents, maxAgeMs: 1 });
          const model = new WindowModel(maxEvents);
          const added: WrittenBatch[] = [];
          const forgotten = new Set<WrittenBatch>();
          for (const op of ops) {
            if (op.kind === 'add') {
              // The write path adds only what the window calls new; a replay of the log adds what the
              // log holds, where an id may come back after it left the window.
              if (!op.replay && model.match(`s${op.stream}`, op.ids.map(idOf)) !== 'new') continue;
              const batch = batchOf(op.stream, op.ids, op.age * 1000);
              window.add(batch);
              model.add(batch);
              added.push(batch);
            } else if (op.kind === 'forget') {
              const batch = added[added.length - 1 - op.back];
              if (!batch) continue;
              model.forget(batch, forgotten);
              window.forget(batch);
            } else if (op.kind === 'reorder') {
              // The ids of an earlier batch in another order: a conflict, never a retry.
              const batch = added[added.length - 1 - op.back];
              if (!batch) continue;
              const probe = Array.from({ length: batch.ids.byteLength / ID_BYTES }, (_, i) => batch.ids.slice(i * ID_BYTES, (i + 1) * ID_BYTES)).reverse();
              assert.equal(window.match(batch.stream, probe).kind, model.match(batch.stream, probe));
            } else if (op.kind === 'expire') {
              window.evictExpired(op.age + 1);
              model.expire(op.age * 1000, forgotten);
            } else {
              const probe = op.ids.map(idOf);
              assert.equal(window.match(`s${op.stream}`, probe).kind, model.match(`s${op.stream}`, probe));
            }
            assert.equal(window.size, model.eventCount);
          }
          for (let id = 0; id <= 60; id++) {
            for (const stream of ['s0', 's1']) assert.equal(window.match(stream, [idOf(id)]).kind, model.match(stream, [idOf(id)]), `id ${id} on ${stream}`);
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it('recognises a retry of a batch after thousands of later ones went through and left', () => {
    const window = new IdempotencyWindow({ maxEvents: 5000, maxAgeMs: 60_000 });
    for (let n = 0; n < 20_000; n++) {
      const id = new Uint8Array(ID_BYTES);
      new DataView(id.buffer).setUint32(0, n);
      window.add({ ...batchOf(0, [], n), ids: id });
    }
    const last = new Uint8Array(ID_BYTES);
    new DataView(last.buffer).setUint32(0, 19_999);
    assert.equal(window.match('s0', [last]).kind, 'retry');
    const evicted = new Uint8Array(ID_BYTES);
    new DataView(evicted.buffer).setUint32(0, 14_999);
    assert.equal(window.match('s0', [evicted]).kind, 'new');
    assert.equal(window.size, 5000);
  });
});
