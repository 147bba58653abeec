export interface EntryPositionsOptions {
  /** Entries per chunk: memory holds one position per chunk for the whole log. */
  stride?: number;
  /** Complete chunks whose every position is held (the newest, and those read most recently). */
  cachedChunks?: number;
}

const DEFAULT_STRIDE = 1024;
const DEFAULT_CACHED_CHUNKS = 64;

/**
 * Where each Raft entry starts in the log, without a number per entry in memory: a node that
 * appends for days would otherwise grow by 8 bytes per record until it runs out of heap. Held are
 * the start of every `stride`-th entry, every position of the newest chunk, and a bounded cache of
 * complete chunks; any other chunk is rebuilt on demand by walking the record lengths from its
 * first entry — the log itself is the table.
 */
export class EntryPositions {
  private readonly stride: number;
  private readonly cachedChunks: number;
  /** chunkStarts[k] is where entry k * stride + 1 starts. */
  private readonly chunkStarts: number[] = [];
  /** Every position of the last chunk, which may be incomplete. */
  private tail: number[] = [];
  /** Complete chunks' positions, least recently used first. */
  private readonly chunks = new Map<number, Float64Array>();
  private lastUsedChunk = -1;
  private count = 0;

  constructor(
    /** The length of the record that starts at a position, read at once (from the file or memory). */
    private readonly recordLengthAt: (position: number) => number,
    options: EntryPositionsOptions = {},
  ) {
    this.stride = options.stride ?? DEFAULT_STRIDE;
    this.cachedChunks = options.cachedChunks ?? DEFAULT_CACHED_CHUNKS;
    if (!Number.isInteger(this.stride) || this.stride < 1 || !Number.isInteger(this.cachedChunks) || this.cachedChunks < 1) {
      throw new RangeError('stride and cachedChunks must be positive integers');
    }
  }

  get lastIndex(): number {
    return this.count;
  }

  /** How many positions are held in memory (what stays bounded as the log grows, but for the chunk starts). */
  get heldPositions(): number {
    let held = this.chunkStarts.length + this.tail.length;
    for (const table of this.chunks.values()) held += table.length;
    return held;
  }

  /** Records where the next entry (index `lastIndex + 1`) starts. */
  push(position: number): void {
    if (this.count % this.stride === 0) {
      if (this.count > 0) {
        this.cache(this.chunkOf(this.count), Float64Array.from(this.tail));
        this.tail = [];
      }
      this.chunkStarts.push(position);
    }
    this.tail.push(position);
    this.count++;
  }

  positionOf(index: number): number {
    if (!Number.isInteger(index) || index < 1 || index > this.count) throw new RangeError(`no entry ${index} (last ${this.count})`);
    const chunk = this.chunkOf(index);
    const offset = index - 1 - chunk * this.stride;
    if (chunk === this.chunkOf(this.count)) return this.tail[offset]!;
    return this.completeChunk(chunk)[offset]!;
  }

  /** Forgets every entry after `lastIndex`; call it while those up to `lastIndex` are readable. */
  truncate(lastIndex: number): void {
    if (!Number.isInteger(lastIndex) || lastIndex < 0) throw new RangeError(`cannot keep ${lastIndex} entries`);
    if (lastIndex >= this.count) return;
    if (lastIndex === 0) {
      this.chunkStarts.length = 0;
      this.chunks.clear();
      this.tail = [];
      this.count = 0;
      this.lastUsedChunk = -1;
      return;
    }
    const chunk = this.chunkOf(lastIndex);
    const keep = lastIndex - chunk * this.stride;
    let kept: number[];
    if (chunk === this.chunkOf(this.count)) kept = this.tail.slice(0, keep);
    else {
      const cached = this.chunks.get(chunk);
      kept = cached ? Array.from(cached.subarray(0, keep)) : Array.from(this.walk(this.chunkStarts[chunk]!, keep));
    }
    for (const cachedChunk of [...this.chunks.keys()]) if (cachedChunk >= chunk) this.chunks.delete(cachedChunk);
    this.lastUsedChunk = -1;
    this.chunkStarts.length = chunk + 1;
    this.tail = kept;
    this.count = lastIndex;
  }

  private chunkOf(index: number): number {
    return Math.floor((index - 1) / this.stride);
  }

  private completeChunk(chunk: number): Float64Array {
    const cached = this.chunks.get(chunk);
    if (cached) {
      if (chunk !== this.lastUsedChunk) {
        this.chunks.delete(chunk);
        this.chunks.set(chunk, cached);
        this.lastUsedChunk = chunk;
      }
      return cached;
    }
    const table = this.walk(this.chunkStarts[chunk]!, this.stride);
    const last = table[this.stride - 1]!;
    const next = this.chunkStarts[chunk + 1]!;
    if (last + this.recordLengthAt(last) !== next) {
      throw new Error(`the log's records from ${this.chunkStarts[chunk]} do not lead to entry ${(chunk + 1) * this.stride + 1} at ${next}`);
    }
    this.cache(chunk, table);
    return table;
  }

  private walk(from: number, count: number): Float64Array {
    const table = new Float64Array(count);
    let position = from;
    for (let i = 0; i < count; i++) {
      table[i] = position;
      if (i + 1 < count) position += this.recordLengthAt(position);
    }
    return table;
  }

  private cache(chunk: number, table: Float64Array): void {
    this.chunks.set(chunk, table);
    this.lastUsedChunk = chunk;
    while (this.chunks.size > this.cachedChunks) {
      const oldest = this.chunks.keys().next().value;
      if (oldest === undefined) break;
      this.chunks.delete(oldest);
    }
  }
}
