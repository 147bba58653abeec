// The one source of randomness of a simulation run. Every decision the simulator makes (delays,
// drops, crashes, workload) is drawn from a SimRandom seeded from one 32-bit integer, so a failing
// run replays exactly from its seed. The generator is sfc32 (Chris Doty-Humphrey's Small Fast
// Counting generator, 128-bit state, passes PractRand), seeded through splitmix32 so that nearby
// seeds (1, 2, 3...) still start from unrelated states.
//
// The algorithm is part of the replay contract: changing it makes every recorded seed replay a
// different run. A known-answer test pins it.

const UINT32_RANGE = 0x1_0000_0000;

/** One step of splitmix32: advances `state` by the golden-ratio increment and scrambles it. */
function splitmix32(state: number): { state: number; output: number } {
  const next = (state + 0x9e3779b9) | 0;
  return { state: next, output: mix32(next) };
}

/** A bijective 32-bit scrambler (the "lowbias32" finaliser from Hash Prospector). */
function mix32(value: number): number {
  let z = value | 0;
  z = Math.imul(z ^ (z >>> 16), 0x21f0aaad);
  z = Math.imul(z ^ (z >>> 15), 0x735a2d97);
  return (z ^ (z >>> 15)) >>> 0;
}

function assertSeed(seed: number): void {
  if (!Number.isInteger(seed) || seed < 0 || seed >= UINT32_RANGE) {
    throw new RangeError(`a seed is an integer in [0, 2^32), got ${seed}`);
  }
}

export class SimRandom {
  /** The seed this stream started from; print it with any failure so the run can be replayed. */
  readonly seed: number;
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(seed: number) {
    assertSeed(seed);
    this.seed = seed;
    let step = splitmix32(seed);
    this.a = step.output;
    step = splitmix32(step.state);
    this.b = step.output;
    step = splitmix32(step.state);
    this.c = step.output;
    step = splitmix32(step.state);
    this.d = step.output;
    // sfc32's authors discard the first outputs so the counter has mixed into the whole state.
    for (let round = 0; round < 12; round++) this.uint32();
  }

  /** A uniformly distributed integer in [0, 2^32). */
  uint32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }

  /** A number in [0, 1) with 32 random bits. */
  next(): number {
    return this.uint32() / UINT32_RANGE;
  }

  /** An integer in [0, maxExclusive), without modulo bias; `maxExclusive` is at most 2^32. */
  int(maxExclusive: number): number {
    if (!Number.isInteger(maxExclusive) || maxExclusive < 1 || maxExclusive > UINT32_RANGE) {
      throw new RangeError(`int() needs an integer bound in [1, 2^32], got ${maxExclusive}`);
    }
    // Rejecting the top partial block makes every residue equally likely. The loop runs more than
    // once with probability below 1/2 even in the worst case, and the draws it makes depend only
    // on the stream, so replay stays exact.
    const acceptedBelow = UINT32_RANGE - (UINT32_RANGE % maxExclusive);
    while (true) {
      const value = this.uint32();
      if (value < acceptedBelow) return value % maxExclusive;
    }
  }

  /** An integer in [min, maxInclusive]. */
  between(min: number, maxInclusive: number): number {
    if (!Number.isInteger(min) || !Number.isInteger(maxInclusive) || maxInclusive < min) {
      throw new RangeError(`between() needs integers min <= maxInclusive, got ${min}, ${maxInclusive}`);
    }
    return min + this.int(maxInclusive - min + 1);
  }

  /**
   * True with the given probability. Always consumes exactly one draw, also for 0 and 1, so the
   * rest of the stream does not depend on the probability's value.
   */
  chance(probability: number): boolean {
    if (!(probability >= 0 && probability <= 1)) {
      throw new RangeError(`a probability is in [0, 1], got ${probability}`);
    }
    return this.next() < probability;
  }

  /** One element, uniformly chosen. */
  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new RangeError('pick() from an empty list');
    return items[this.int(items.length)] as T;
  }

  /** Shuffles `items` in place (Fisher-Yates) and returns it. */
  shuffle<T>(items: T[]): T[] {
    for (let last = items.length - 1; last > 0; last--) {
      const chosen = this.int(last + 1);
      const kept = items[last] as T;
      items[last] = items[chosen] as T;
      items[chosen] = kept;
    }
    return items;
  }

  /**
   * An independent stream for one component, derived from this stream's *seed* and the label only.
   * Forking draws nothing from this stream and ignores how far it has advanced, so adding,
   * removing or reordering forks never shifts any other stream: a new component in the simulator
   * does not change what the existing ones do for a recorded seed. The flip side: forking the same
   * label twice (from streams with the same seed) yields two identical streams, so give each
   * component its own label (`node-1`, `node-1/disk`, `network`). Forks nest like paths.
   */
  fork(label: string): SimRandom {
    let derived = mix32(this.seed ^ 0x5bd1e995);
    for (let index = 0; index < label.length; index++) {
      derived = mix32(derived ^ label.charCodeAt(index));
    }
    return new SimRandom(derived);
  }
}
