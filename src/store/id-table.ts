/**
 * A hash table from 16-byte ids (event ids) to a pair of integers, kept in typed arrays: the ids
 * are copied in as four 32-bit words, so the table holds no strings and no per-id objects. The
 * idempotency window keeps about 100,000 recent ids and looks each new one up; as a `Map` keyed by
 * strings this cost a string per id, a string hash per lookup, and a large table of old-generation
 * entries for the garbage collector to trace.
 *
 * Open addressing with linear probing, at most half full; removal shifts later entries of the
 * probe run back, so no tombstones accumulate.
 */
export class IdTable {
  /** Four words per slot, the id's bytes in little-endian words. */
  private words: Int32Array;
  /** The first value of each slot; 0 marks an empty slot (callers store positive values). */
  private owners: Float64Array;
  /** The second value of each slot. */
  private extras: Int32Array;
  private mask: number;
  private count = 0;

  constructor(initialSlots = 1024) {
    const slots = powerOfTwoAtLeast(Math.max(16, initialSlots));
    this.words = new Int32Array(slots * 4);
    this.owners = new Float64Array(slots);
    this.extras = new Int32Array(slots);
    this.mask = slots - 1;
  }

  get size(): number {
    return this.count;
  }

  /** The slot holding the id at `bytes[offset..offset+16)`, or -1. */
  find(bytes: Uint8Array, offset: number): number {
    const w0 = wordAt(bytes, offset);
    const w1 = wordAt(bytes, offset + 4);
    const w2 = wordAt(bytes, offset + 8);
    const w3 = wordAt(bytes, offset + 12);
    const words = this.words;
    for (let slot = hashWords(w0, w1, w2, w3) & this.mask; ; slot = (slot + 1) & this.mask) {
      if (this.owners[slot] === 0) return -1;
      const at = slot * 4;
      if (words[at] === w0 && words[at + 1] === w1 && words[at + 2] === w2 && words[at + 3] === w3) return slot;
    }
  }

  ownerAt(slot: number): number {
    return this.owners[slot]!;
  }

  extraAt(slot: number): number {
    return this.extras[slot]!;
  }

  /**
   * Sets the id's values (`owner` must be positive), replacing those it had; returns the owner it
   * had, or 0 if it was not in the table.
   */
  set(bytes: Uint8Array, offset: number, owner: number, extra: number): number {
    if (!(owner > 0)) throw new RangeError(`an owner must be positive, not ${owner}`);
    if ((this.count + 1) * 2 > this.owners.length) this.grow();
    const w0 = wordAt(bytes, offset);
    const w1 = wordAt(bytes, offset + 4);
    const w2 = wordAt(bytes, offset + 8);
    const w3 = wordAt(bytes, offset + 12);
    const words = this.words;
    let slot = hashWords(w0, w1, w2, w3) & this.mask;
    for (; this.owners[slot] !== 0; slot = (slot + 1) & this.mask) {
      const at = slot * 4;
      if (words[at] === w0 && words[at + 1] === w1 && words[at + 2] === w2 && words[at + 3] === w3) {
        const previous = this.owners[slot]!;
        this.owners[slot] = owner;
        this.extras[slot] = extra;
        return previous;
      }
    }
    const at = slot * 4;
    words[at] = w0;
    words[at + 1] = w1;
    words[at + 2] = w2;
    words[at + 3] = w3;
    this.owners[slot] = owner;
    this.extras[slot] = extra;
    this.count++;
    return 0;
  }

  /** Empties a slot found by `find`, moving later entries of its probe run back into the gap. */
  removeAt(slot: number): void {
    const words = this.words;
    const owners = this.owners;
    const mask = this.mask;
    let gap = slot;
    for (let next = (gap + 1) & mask; owners[next] !== 0; next = (next + 1) & mask) {
      const at = next * 4;
      const home = hashWords(words[at]!, words[at + 1]!, words[at + 2]!, words[at + 3]!) & mask;
      // The entry at `next` may fill the gap only if its home is not cyclically in (gap, next].
      const staysAfterGap = gap <= next ? home > gap && home <= next : home > gap || home <= next;
      if (staysAfterGap) continue;
      const to = gap * 4;
      words[to] = words[at]!;
      words[to + 1] = words[at + 1]!;
      words[to + 2] = words[at + 2]!;
      words[to + 3] = words[at + 3]!;
      owners[gap] = owners[next]!;
      this.extras[gap] = this.extras[next]!;
      gap = next;
    }
    owners[gap] = 0;
    this.count--;
  }

  private grow(): void {
    const oldWords = this.words;
    const oldOwners = this.owners;
    const oldExtras = this.extras;
    const slots = oldOwners.length * 2;
    this.words = new Int32Array(slots * 4);
    this.owners = new Float64Array(slots);
    this.extras = new Int32Array(slots);
    this.mask = slots - 1;
    for (let old = 0; old < oldOwners.length; old++) {
      if (oldOwners[old] === 0) continue;
      const at = old * 4;
      let slot = hashWords(oldWords[at]!, oldWords[at + 1]!, oldWords[at + 2]!, oldWords[at + 3]!) & this.mask;
      while (this.owners[slot] !== 0) slot = (slot + 1) & this.mask;
      this.words.set(oldWords.subarray(at, at + 4), slot * 4);
      this.owners[slot] = oldOwners[old]!;
      this.extras[slot] = oldExtras[old]!;
    }
  }
}

function wordAt(bytes: Uint8Array, offset: number): number {
  return bytes[offset]! | (bytes[offset + 1]! << 8) | (bytes[offset + 2]! << 16) | (bytes[offset + 3]! << 24);
}

/** Mixes all four words: client-chosen ids need not be random (time-ordered UUIDs share prefixes). */
function hashWords(w0: number, w1: number, w2: number, w3: number): number {
  let h = w0 ^ Math.imul(w1, 0x85ebca6b) ^ Math.imul(w2, 0xc2b2ae35) ^ Math.imul(w3, 0x27d4eb2f);
  h = Math.imul(h ^ (h >>> 16), 0x7feb352d);
  h = Math.imul(h ^ (h >>> 15), 0x846ca68b);
  return h ^ (h >>> 16);
}

function powerOfTwoAtLeast(n: number): number {
  let value = 1;
  while (value < n) value *= 2;
  return value;
}
