import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { checkFrame, decodeFrame, encodeFrame, FRAME_OVERHEAD_BYTES } from '../../src/storage/record-frame.js';

describe('record frame', () => {
  it('round-trips type, term, index and payload', () => {
    const payload = Buffer.from('hello, log');
    const frame = encodeFrame(1, 7, 2 ** 40 + 3, payload);
    const check = checkFrame(frame, 0, 1 << 20);
    assert.deepEqual(check, { ok: true, length: frame.byteLength });
    const record = decodeFrame(frame, 0, frame.byteLength, 1000);
    assert.equal(record.type, 1);
    assert.equal(record.term, 7);
    assert.equal(record.index, 2 ** 40 + 3);
    assert.equal(record.position, 1000);
    assert.equal(record.end, 1000 + payload.byteLength + FRAME_OVERHEAD_BYTES);
    assert.deepEqual(Buffer.from(record.payload), payload);
  });

  it('detects a flipped bit anywhere in the frame', () => {
    const frame = encodeFrame(1, 1, 1, Buffer.from('some payload bytes'));
    for (let offset = 0; offset < frame.byteLength; offset++) {
      const damaged = Buffer.from(frame);
      damaged[offset]! ^= 0x10;
      assert.equal(checkFrame(damaged, 0, 1 << 20).ok, false, `flip at byte ${offset} went unnoticed`);
    }
  });

  it('calls a frame cut short incomplete, not corrupt', () => {
    const frame = encodeFrame(1, 1, 1, Buffer.alloc(100, 7));
    for (const cut of [1, 10, 27, 28, 60, frame.byteLength - 1]) {
      const check = checkFrame(frame.subarray(0, cut), 0, 1 << 20);
      assert.equal(check.ok, false);
      assert.equal(!check.ok && check.reason, 'incomplete', `cut at ${cut}`);
    }
  });

  it('rejects lengths no writer could produce', () => {
    const frame = encodeFrame(1, 1, 1, Buffer.alloc(10));
    const check = checkFrame(frame, 0, 16);
    assert.equal(!check.ok && check.reason, 'bad-length');
  });
});
