import type { AppendRequest, AppendResponse, Entry, EntryKind, Membership, Message, NodeId } from '../consensus/types.js';
import { RecordType } from '../storage/record-frame.js';
import type { RecordBody } from './raft-log.js';

/**
 * The wire format between Chronicle nodes on the replication interface. Every frame is a u32
 * length (big-endian) followed by that many bytes, the first of which says what the frame is:
 * a Raft message, or one of the few control frames of a connection's life (hello, welcome,
 * refusal, keepalive). Integers are big-endian; terms, indexes and counters travel as u64 but
 * must be safe integers; strings are a u16 byte length and UTF-8.
 *
 * Everything read from a peer is checked before it reaches the replication core, including what
 * the core would otherwise assert (an append's entries are contiguous after `prevIndex`, their
 * terms never fall): a bad frame costs the sender its connection, never the receiver its life.
 * The same checks run when encoding, so a bug is reported by the node that has it.
 */

/** Bumped when the layout of any frame changes. The hello and refusal frames must never change. */
export const PEER_PROTOCOL_VERSION = 1;
/** The largest frame body either side accepts. A bigger announced length is a protocol error. */
export const PEER_FRAME_MAX_BYTES = 256 * 1024 * 1024;
export const PEER_FRAME_HEADER_BYTES = 4;

/** A frame that is not what the protocol allows. */
export class PeerProtocolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PeerProtocolError';
  }
}

export type PeerControlFrame =
  | { type: 'hello'; clusterId: string; from: NodeId; to: NodeId }
  | { type: 'welcome' }
  | { type: 'refusal'; reason: string }
  | { type: 'keepalive' };

export type PeerFrame = PeerControlFrame | { type: 'message'; message: Message<RecordBody> };

const MessageCode = {
  'pre-vote': 1,
  vote: 2,
  'vote-response': 3,
  append: 4,
  'append-response': 5,
  heartbeat: 6,
  'heartbeat-response': 7,
  'timeout-now': 8,
} as const satisfies Record<Message<RecordBody>['kind'], number>;

const ControlCode = { hello: 0x40, welcome: 0x41, refusal: 0x42, keepalive: 0x43 } as const satisfies Record<PeerControlFrame['type'], number>;

const EntryKindCode = { noop: 0, config: 1, data: 2 } as const satisfies Record<EntryKind, number>;
const ENTRY_KINDS: readonly EntryKind[] = ['noop', 'config', 'data'];

const U16_MAX = 0xffff;
const U32_MAX = 0xffff_ffff;
const TWO_TO_32 = 0x1_0000_0000;
/** The high half of a u64 above this makes it bigger than Number.MAX_SAFE_INTEGER. */
const SAFE_HIGH_WORD_MAX = 0x1f_ffff;
const REFUSAL_REASON_MAX_CHARS = 2000;
/** index, term, kind, record type, payload length: what even an empty entry takes. */
const ENTRY_MIN_BYTES = 8 + 8 + 1 + 1 + 4;
const LONE_SURROGATE = /\p{Surrogate}/u;
const LONE_SURROGATES = /\p{Surrogate}/gu;

const VOTE_TRANSFER = 0b1;
const VOTE_RESPONSE_PRE_VOTE = 0b01;
const VOTE_RESPONSE_GRANTED = 0b10;
const APPEND_RESPONSE_SUCCESS = 0b01;
const APPEND_RESPONSE_HINT = 0b10;

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

// ------------------------------------------------------------------ encoding

/** A Raft message's frame body (kind byte first), without the length prefix. */
export function encodePeerMessage(message: Message<RecordBody>): Buffer {
  return encodePeerMessageFrame(message).subarray(PEER_FRAME_HEADER_BYTES);
}

/**
 * A Raft message as a whole frame, length prefix included, in one buffer: entry payloads are
 * copied once, into it, and the transport writes it as is.
 */
export function encodePeerMessageFrame(message: Message<RecordBody>): Buffer {
  switch (message.kind) {
    case 'pre-vote':
      return frame(1 + 8 * 3, (w) => w.u8(MessageCode['pre-vote']).u64(message.term, 'term').u64(message.lastIndex, 'lastIndex').u64(message.lastTerm, 'lastTerm'));
    case 'vote':
      return frame(1 + 1 + 8 * 3, (w) =>
        w
          .u8(MessageCode.vote)
          .u8(flag(message.transfer, VOTE_TRANSFER, 'transfer'))
          .u64(message.term, 'term')
          .u64(message.lastIndex, 'lastIndex')
          .u64(message.lastTerm, 'lastTerm'),
      );
    case 'vote-response':
      return frame(1 + 1 + 8, (w) =>
        w
          .u8(MessageCode['vote-response'])
          .u8(flag(message.preVote, VOTE_RESPONSE_PRE_VOTE, 'preVote') | flag(message.granted, VOTE_RESPONSE_GRANTED, 'granted'))
          .u64(message.term, 'term'),
      );
    case 'append':
      return encodeAppend(message);
    case 'append-response':
      return encodeAppendResponse(message);
    case 'heartbeat':
      return frame(1 + 8 * 3, (w) => w.u8(MessageCode.heartbeat).u64(message.term, 'term').u64(message.commit, 'commit').u64(message.readRound, 'readRound'));
    case 'heartbeat-response':
      return frame(1 + 8 * 3, (w) =>
        w.u8(MessageCode['heartbeat-response']).u64(message.term, 'term').u64(message.readRound, 'readRound').u64(message.matchIndex, 'matchIndex'),
      );
    case 'timeout-now':
      return frame(1 + 8, (w) => w.u8(MessageCode['timeout-now']).u64(message.term, 'term'));
    default:
      throw new PeerProtocolError(`cannot encode a message of kind ${String((message as { kind: unknown }).kind)}`);
  }
}

/** A control frame, length prefix included. */
export function encodePeerControlFrame(control: PeerControlFrame): Buffer {
  switch (control.type) {
    case 'hello': {
      const clusterId = stringBytes(control.clusterId, 'hello.clusterId');
      const from = stringBytes(control.from, 'hello.from');
      const to = stringBytes(control.to, 'hello.to');
      const size = 1 + 2 + 2 + clusterId.byteLength + 2 + from.byteLength + 2 + to.byteLength;
      return frame(size, (w) => w.u8(ControlCode.hello).u16(PEER_PROTOCOL_VERSION, 'version').string(clusterId).string(from).string(to));
    }
    case 'welcome':
      return frame(1, (w) => w.u8(ControlCode.welcome));
    case 'refusal': {
      // Cutting the reason short may split a surrogate pair; a reason may be lossy, an id may not.
      const reason = stringBytes(String(control.reason).slice(0, REFUSAL_REASON_MAX_CHARS).replace(LONE_SURROGATES, '\uFFFD'), 'refusal.reason', true);
      return frame(1 + 2 + reason.byteLength, (w) => w.u8(ControlCode.refusal).string(reason));
    }
    case 'keepalive':
      return frame(1, (w) => w.u8(ControlCode.keepalive));
    default:
      throw new PeerProtocolError(`cannot encode a control frame of type ${String((control as { type: unknown }).type)}`);
  }
}

function encodeAppend(message: AppendRequest<RecordBody>): Buffer {
  const entries = message.entries ?? [];
  checkAppend(message, entries);
  let size = 1 + 8 * 4 + 4;
  const memberships = new Map<number, Buffer[][]>();
  for (const [i, entry] of entries.entries()) {
    size += ENTRY_MIN_BYTES + entry.payload.payload.byteLength;
    if (entry.membership) {
      const lists = [entry.membership.voters, entry.membership.learners].map((ids, list) => {
        if (ids.length > U16_MAX) throw new PeerProtocolError(`entry ${entry.index} has ${ids.length} members in one list, more than ${U16_MAX}`);
        return ids.map((id) => stringBytes(id, `entry ${entry.index} ${list === 0 ? 'voter' : 'learner'}`));
      });
      memberships.set(i, lists);
      for (const list of lists) size += 2 + list.reduce((sum, id) => sum + 2 + id.byteLength, 0);
    }
  }
  return frame(size, (w) => {
    w.u8(MessageCode.append).u64(message.term, 'term').u64(message.prevIndex, 'prevIndex').u64(message.prevTerm, 'prevTerm').u64(message.commit, 'commit');
    w.u32(message.count, 'count');
    for (const [i, entry] of entries.entries()) {
      w.u64(entry.index, 'entry index').u64(entry.term, 'entry term').u8(EntryKindCode[entry.kind]);
      for (const list of memberships.get(i) ?? []) {
        w.u16(list.length, 'member count');
        for (const id of list) w.string(id);
      }
      w.u8(entry.payload.type).u32(entry.payload.payload.byteLength, 'payload length').bytes(entry.payload.payload);
    }
  });
}

function encodeAppendResponse(message: AppendResponse): Buffer {
  const hint = message.rejectHint;
  const flags = flag(message.success, APPEND_RESPONSE_SUCCESS, 'success') | (hint ? APPEND_RESPONSE_HINT : 0);
  return frame(1 + 1 + 8 * 2 + (hint ? 8 * 4 : 0), (w) => {
    w.u8(MessageCode['append-response']).u8(flags).u64(message.term, 'term').u64(message.matchIndex, 'matchIndex');
    if (hint) {
      w.u64(hint.rejectedIndex, 'rejectHint.rejectedIndex').u64(hint.lastIndex, 'rejectHint.lastIndex');
      w.u64(hint.conflictTerm, 'rejectHint.conflictTerm').u64(hint.conflictIndex, 'rejectHint.conflictIndex');
    }
  });
}

function frame(bodyBytes: number, write: (writer: ByteWriter) => void): Buffer {
  if (bodyBytes > PEER_FRAME_MAX_BYTES) throw new PeerProtocolError(`a frame of ${bodyBytes} bytes is over the limit of ${PEER_FRAME_MAX_BYTES}`);
  const writer = new ByteWriter(PEER_FRAME_HEADER_BYTES + bodyBytes);
  writer.u32(bodyBytes, 'frame length');
  write(writer);
  return writer.finish();
}

function flag(value: boolean, bit: number, field: string): number {
  if (typeof value !== 'boolean') throw new PeerProtocolError(`${field} must be a boolean, not ${String(value)}`);
  return value ? bit : 0;
}

function stringBytes(value: string, field: string, allowEmpty = false): Buffer {
  if (typeof value !== 'string' || (!allowEmpty && value.length === 0)) throw new PeerProtocolError(`${field} must be a non-empty string`);
  // A lone surrogate would arrive as U+FFFD: a different id than the one sent.
  if (LONE_SURROGATE.test(value)) throw new PeerProtocolError(`${field} is not well-formed Unicode`);
  const bytes = Buffer.from(value, 'utf8');
  if (bytes.byteLength > U16_MAX) throw new PeerProtocolError(`${field} is ${bytes.byteLength} bytes long, more than ${U16_MAX}`);
  return bytes;
}

/** Writes into a buffer of a size computed beforehand; `finish` checks every byte was written. */
class ByteWriter {
  private readonly buffer: Buffer;
  private offset = 0;

  constructor(size: number) {
    this.buffer = Buffer.allocUnsafe(size);
  }

  u8(value: number): this {
    this.buffer.writeUInt8(value, this.offset);
    this.offset += 1;
    return this;
  }

  u16(value: number, field: string): this {
    if (!Number.isInteger(value) || value < 0 || value > U16_MAX) throw new PeerProtocolError(`${field} must be an integer in [0, ${U16_MAX}], not ${value}`);
    this.buffer.writeUInt16BE(value, this.offset);
    this.offset += 2;
    return this;
  }

  u32(value: number, field: string): this {
    if (!Number.isInteger(value) || value < 0 || value > U32_MAX) throw new PeerProtocolError(`${field} must be an integer in [0, ${U32_MAX}], not ${value}`);
    this.buffer.writeUInt32BE(value, this.offset);
    this.offset += 4;
    return this;
  }

  u64(value: number, field: string): this {
    if (!Number.isSafeInteger(value) || value < 0) throw new PeerProtocolError(`${field} must be a non-negative safe integer, not ${value}`);
    this.buffer.writeUInt32BE(Math.floor(value / TWO_TO_32), this.offset);
    this.buffer.writeUInt32BE(value % TWO_TO_32, this.offset + 4);
    this.offset += 8;
    return this;
  }

  string(bytes: Buffer): this {
    this.u16(bytes.byteLength, 'string length');
    return this.bytes(bytes);
  }

  bytes(bytes: Uint8Array): this {
    this.buffer.set(bytes, this.offset);
    this.offset += bytes.byteLength;
    return this;
  }

  finish(): Buffer {
    if (this.offset !== this.buffer.byteLength) throw new Error(`encoded ${this.offset} bytes into a frame sized for ${this.buffer.byteLength}: the size computation is wrong`);
    return this.buffer;
  }
}

// ------------------------------------------------------------------ decoding

/** Decodes a frame body holding a Raft message. Throws `PeerProtocolError` on anything else. */
export function decodePeerMessage(bytes: Uint8Array): Message<RecordBody> {
  const decoded = decodePeerFrame(bytes);
  if (decoded.type !== 'message') throw new PeerProtocolError(`expected a Raft message, got a ${decoded.type} frame`);
  return decoded.message;
}

/**
 * Decodes one frame body (without its length prefix). Entry payloads are views into `bytes`, not
 * copies. Throws `PeerProtocolError`, and nothing else, on malformed input.
 */
export function decodePeerFrame(bytes: Uint8Array): PeerFrame {
  if (!(bytes instanceof Uint8Array)) throw new PeerProtocolError('a frame must be bytes');
  const reader = new ByteReader(bytes);
  const code = reader.u8('frame kind');
  const decoded = decodeBody(code, reader);
  reader.end();
  return decoded;
}

function decodeBody(code: number, r: ByteReader): PeerFrame {
  switch (code) {
    case MessageCode['pre-vote']:
      return message({ kind: 'pre-vote', term: r.u64('term'), lastIndex: r.u64('lastIndex'), lastTerm: r.u64('lastTerm') });
    case MessageCode.vote: {
      const flags = r.flags('vote flags', VOTE_TRANSFER);
      return message({ kind: 'vote', term: r.u64('term'), lastIndex: r.u64('lastIndex'), lastTerm: r.u64('lastTerm'), transfer: (flags & VOTE_TRANSFER) !== 0 });
    }
    case MessageCode['vote-response']: {
      const flags = r.flags('vote-response flags', VOTE_RESPONSE_PRE_VOTE | VOTE_RESPONSE_GRANTED);
      return message({ kind: 'vote-response', term: r.u64('term'), preVote: (flags & VOTE_RESPONSE_PRE_VOTE) !== 0, granted: (flags & VOTE_RESPONSE_GRANTED) !== 0 });
    }
    case MessageCode.append:
      return message(decodeAppend(r));
    case MessageCode['append-response']:
      return message(decodeAppendResponse(r));
    case MessageCode.heartbeat:
      return message({ kind: 'heartbeat', term: r.u64('term'), commit: r.u64('commit'), readRound: r.u64('readRound') });
    case MessageCode['heartbeat-response']:
      return message({ kind: 'heartbeat-response', term: r.u64('term'), readRound: r.u64('readRound'), matchIndex: r.u64('matchIndex') });
    case MessageCode['timeout-now']:
      return message({ kind: 'timeout-now', term: r.u64('term') });
    case ControlCode.hello: {
      const version = r.u16('hello.version');
      if (version !== PEER_PROTOCOL_VERSION) {
        throw new PeerProtocolError(`the peer speaks replication protocol version ${version}, this node speaks version ${PEER_PROTOCOL_VERSION}`);
      }
      return { type: 'hello', clusterId: r.string('hello.clusterId'), from: r.string('hello.from'), to: r.string('hello.to') };
    }
    case ControlCode.welcome:
      return { type: 'welcome' };
    case ControlCode.refusal:
      return { type: 'refusal', reason: r.string('refusal.reason', true) };
    case ControlCode.keepalive:
      return { type: 'keepalive' };
    default:
      throw new PeerProtocolError(`unknown frame kind ${code}`);
  }
}

function message(decoded: Message<RecordBody>): PeerFrame {
  return { type: 'message', message: decoded };
}

function decodeAppend(r: ByteReader): AppendRequest<RecordBody> {
  const append: AppendRequest<RecordBody> = { kind: 'append', term: r.u64('term'), prevIndex: r.u64('prevIndex'), prevTerm: r.u64('prevTerm'), commit: r.u64('commit'), count: r.u32('count') };
  // Checked before the loop so a forged count cannot make the decoder spin.
  if (append.count * ENTRY_MIN_BYTES > r.remainingBytes) throw new PeerProtocolError(`an append announces ${append.count} entries but has only ${r.remainingBytes} bytes left`);
  const entries: Entry<RecordBody>[] = [];
  for (let i = 0; i < append.count; i++) {
    const index = r.u64('entry index');
    const term = r.u64('entry term');
    const kindCode = r.u8('entry kind');
    const kind = ENTRY_KINDS[kindCode];
    if (kind === undefined) throw new PeerProtocolError(`entry ${index} has unknown kind ${kindCode}`);
    const membership = kind === 'config' ? { voters: r.strings('voters'), learners: r.strings('learners') } : undefined;
    const type = r.u8('record type');
    const payload = r.bytes(r.u32('payload length'), 'payload');
    const entry: Entry<RecordBody> = { index, term, kind, payload: { type, payload } };
    if (membership) entry.membership = membership;
    entries.push(entry);
  }
  // An append without entries travels without the field, as the core emits it.
  if (entries.length > 0) append.entries = entries;
  checkAppend(append, entries);
  return append;
}

function decodeAppendResponse(r: ByteReader): AppendResponse {
  const flags = r.flags('append-response flags', APPEND_RESPONSE_SUCCESS | APPEND_RESPONSE_HINT);
  const response: AppendResponse = { kind: 'append-response', term: r.u64('term'), success: (flags & APPEND_RESPONSE_SUCCESS) !== 0, matchIndex: r.u64('matchIndex') };
  if ((flags & APPEND_RESPONSE_HINT) !== 0) {
    response.rejectHint = {
      rejectedIndex: r.u64('rejectHint.rejectedIndex'),
      lastIndex: r.u64('rejectHint.lastIndex'),
      conflictTerm: r.u64('rejectHint.conflictTerm'),
      conflictIndex: r.u64('rejectHint.conflictIndex'),
    };
  }
  return response;
}

/**
 * What the replication core and the log assume of an append and would otherwise assert, fatally:
 * exactly `count` entries, contiguous after `prevIndex`, terms never falling (nor above the
 * leader's), and kinds that agree with the record types the log derives them from on restart.
 */
function checkAppend(append: AppendRequest<RecordBody>, entries: readonly Entry<RecordBody>[]): void {
  if (entries.length !== append.count) throw new PeerProtocolError(`an append announces ${append.count} entries and carries ${entries.length}`);
  if (append.prevTerm > append.term) throw new PeerProtocolError(`an append of term ${append.term} follows an entry of a later term ${append.prevTerm}`);
  let previousTerm = append.prevTerm;
  for (const [i, entry] of entries.entries()) {
    const expectedIndex = append.prevIndex + 1 + i;
    if (entry.index !== expectedIndex) throw new PeerProtocolError(`an append's entry ${i} has index ${entry.index}, expected ${expectedIndex}: entries must be contiguous`);
    if (!Number.isSafeInteger(entry.term) || entry.term < previousTerm || entry.term > append.term) {
      throw new PeerProtocolError(`entry ${entry.index} has term ${entry.term}, outside [${previousTerm}, ${append.term}]: terms must not fall nor pass the leader's`);
    }
    previousTerm = entry.term;
    if (!Object.hasOwn(EntryKindCode, entry.kind)) throw new PeerProtocolError(`entry ${entry.index} has unknown kind ${String(entry.kind)}`);
    const body = entry.payload as RecordBody | undefined;
    if (!body || !(body.payload instanceof Uint8Array)) throw new PeerProtocolError(`entry ${entry.index} has no payload bytes`);
    if (!Number.isInteger(body.type) || body.type < 0 || body.type > 0xff) throw new PeerProtocolError(`entry ${entry.index} has record type ${body.type}, not a byte`);
    const expectedKind = entryKindOfRecordType(body.type);
    if (entry.kind !== expectedKind) throw new PeerProtocolError(`entry ${entry.index} is a ${entry.kind} entry with record type ${body.type}, which makes a ${expectedKind} entry`);
    if ((entry.kind === 'config') !== (entry.membership !== undefined)) {
      throw new PeerProtocolError(`entry ${entry.index}: a ${entry.kind} entry ${entry.membership ? 'must not carry' : 'must carry'} a membership`);
    }
    if (entry.membership) checkMembership(entry.index, entry.membership);
  }
}

function checkMembership(index: number, membership: Membership): void {
  if (!Array.isArray(membership.voters) || !Array.isArray(membership.learners)) throw new PeerProtocolError(`entry ${index} has a malformed membership`);
}

/** The same mapping the log uses when it reads entries back (`RaftLog`'s `kindOf`). */
function entryKindOfRecordType(type: number): EntryKind {
  if (type === RecordType.NoOp) return 'noop';
  if (type === RecordType.Configuration) return 'config';
  return 'data';
}

/** Reads a frame body front to back; every read names its field, for the error message. */
class ByteReader {
  private readonly view: DataView;
  private offset = 0;

  constructor(private readonly input: Uint8Array) {
    this.view = new DataView(input.buffer, input.byteOffset, input.byteLength);
  }

  get remainingBytes(): number {
    return this.input.byteLength - this.offset;
  }

  u8(field: string): number {
    this.need(1, field);
    return this.view.getUint8(this.offset++);
  }

  /** A flags byte whose bits outside `known` must be clear. */
  flags(field: string, known: number): number {
    const flags = this.u8(field);
    if ((flags & ~known) !== 0) throw new PeerProtocolError(`${field} ${flags.toString(2)} has unknown bits set`);
    return flags;
  }

  u16(field: string): number {
    this.need(2, field);
    const value = this.view.getUint16(this.offset);
    this.offset += 2;
    return value;
  }

  u32(field: string): number {
    this.need(4, field);
    const value = this.view.getUint32(this.offset);
    this.offset += 4;
    return value;
  }

  u64(field: string): number {
    this.need(8, field);
    const high = this.view.getUint32(this.offset);
    const low = this.view.getUint32(this.offset + 4);
    if (high > SAFE_HIGH_WORD_MAX) throw new PeerProtocolError(`${field} at offset ${this.offset} is larger than the largest safe integer`);
    this.offset += 8;
    return high * TWO_TO_32 + low;
  }

  /** A view of the next `length` bytes, not a copy. Always a plain Uint8Array, whatever the input. */
  bytes(length: number, field: string): Uint8Array {
    this.need(length, field);
    const view = new Uint8Array(this.input.buffer, this.input.byteOffset + this.offset, length);
    this.offset += length;
    return view;
  }

  string(field: string, allowEmpty = false): string {
    const length = this.u16(`${field} length`);
    if (length === 0 && !allowEmpty) throw new PeerProtocolError(`${field} is empty`);
    const bytes = this.bytes(length, field);
    try {
      return utf8.decode(bytes);
    } catch {
      throw new PeerProtocolError(`${field} is not valid UTF-8`);
    }
  }

  strings(field: string): string[] {
    const count = this.u16(`${field} count`);
    const values: string[] = [];
    for (let i = 0; i < count; i++) values.push(this.string(field));
    return values;
  }

  end(): void {
    if (this.offset !== this.input.byteLength) throw new PeerProtocolError(`${this.input.byteLength - this.offset} unexpected bytes after the end of the frame`);
  }

  private need(length: number, field: string): void {
    if (this.input.byteLength - this.offset < length) {
      throw new PeerProtocolError(`the frame ends inside ${field}: ${length} bytes needed at offset ${this.offset}, ${this.input.byteLength - this.offset} left`);
    }
  }
}

// ------------------------------------------------------------------ framing

/**
 * Cuts a byte stream into frame bodies. Chunks are kept as they arrive and a frame is copied
 * only when it spans chunks, so every byte is copied at most once; the announced length is
 * checked before anything is buffered for it.
 */
export class PeerFrameReader {
  private chunks: Buffer[] = [];
  private bufferedBytes = 0;
  private expectedBytes: number | undefined;

  constructor(private readonly maxFrameBytes = PEER_FRAME_MAX_BYTES) {}

  /** Bytes received that are not yet part of a whole frame. */
  get partialBytes(): number {
    return this.bufferedBytes;
  }

  /** The whole frames `chunk` completes, in order. Throws `PeerProtocolError` on a length over the limit. */
  push(chunk: Buffer): Buffer[] {
    const frames: Buffer[] = [];
    if (chunk.byteLength > 0) {
      this.chunks.push(chunk);
      this.bufferedBytes += chunk.byteLength;
    }
    while (true) {
      if (this.expectedBytes === undefined) {
        if (this.bufferedBytes < PEER_FRAME_HEADER_BYTES) break;
        const length = this.take(PEER_FRAME_HEADER_BYTES).readUInt32BE(0);
        if (length > this.maxFrameBytes) throw new PeerProtocolError(`the peer announced a frame of ${length} bytes, over the limit of ${this.maxFrameBytes}`);
        this.expectedBytes = length;
      }
      if (this.bufferedBytes < this.expectedBytes) break;
      frames.push(this.take(this.expectedBytes));
      this.expectedBytes = undefined;
    }
    return frames;
  }

  private take(length: number): Buffer {
    this.bufferedBytes -= length;
    const first = this.chunks[0];
    if (first && first.byteLength >= length) {
      if (first.byteLength === length) this.chunks.shift();
      else this.chunks[0] = first.subarray(length);
      return first.subarray(0, length);
    }
    const taken = Buffer.allocUnsafe(length);
    let filled = 0;
    while (filled < length) {
      const chunk = this.chunks[0]!;
      const part = Math.min(chunk.byteLength, length - filled);
      chunk.copy(taken, filled, 0, part);
      filled += part;
      if (part === chunk.byteLength) this.chunks.shift();
      else this.chunks[0] = chunk.subarray(part);
    }
    return taken;
  }
}
