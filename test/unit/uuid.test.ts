import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { bytesToUuid, uuidToBytes } from '../../src/store/uuid.js';

/** What a UUID is, said the plain way: the parser must agree with it on every string. */
const UUID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
function reference(text: string): Uint8Array | undefined {
  return UUID_PATTERN.test(text) ? Uint8Array.from(Buffer.from(text.replaceAll('-', ''), 'hex')) : undefined;
}

function parsed(text: string): Uint8Array | undefined {
  try {
    return Uint8Array.from(uuidToBytes(text));
  } catch (error) {
    assert.match((error as Error).message, /is not a UUID/);
    return undefined;
  }
}

/** A UUID in random case, then sometimes one character replaced, inserted or removed. */
const nearUuids = fc
  .tuple(
    fc.uuid(),
    fc.array(fc.boolean(), { minLength: 36, maxLength: 36 }),
    fc.option(fc.tuple(fc.nat(40), fc.constantFrom('replace', 'insert', 'remove'), fc.constantFrom('g', 'G', '-', ' ', 'é', 'á', '°', '0', 'F', '\u0660', 'x'))),
  )
  .map(([uuid, upper, change]) => {
    let text = [...uuid].map((char, i) => (upper[i] ? char.toUpperCase() : char)).join('');
    if (change) {
      const [at, kind, char] = change;
      const position = at % (text.length + 1);
      if (kind === 'replace') text = text.slice(0, position) + char + text.slice(position + 1);
      else if (kind === 'insert') text = text.slice(0, position) + char + text.slice(position);
      else text = text.slice(0, position) + text.slice(position + 1);
    }
    return text;
  });

describe('UUID text → bytes', () => {
  it('accepts exactly the 8-4-4-4-12 hex forms (either case), with the same bytes as a hex decode', () => {
    fc.assert(
      fc.property(fc.oneof(nearUuids, fc.string({ maxLength: 40 })), (text) => {
        assert.deepEqual(parsed(text), reference(text));
      }),
      { numRuns: 3000 },
    );
  });

  it('round-trips through bytesToUuid', () => {
    fc.assert(fc.property(fc.uuid(), (uuid) => assert.equal(bytesToUuid(uuidToBytes(uuid)), uuid)));
  });

  it('names the bad id in its error', () => {
    assert.throws(() => uuidToBytes('not-a-uuid'), /'not-a-uuid' is not a UUID \(expected 8-4-4-4-12 hex digits\)/);
    assert.throws(() => uuidToBytes('0123456789abcdef0123456789abcdef0123'), /is not a UUID/);
  });
});
