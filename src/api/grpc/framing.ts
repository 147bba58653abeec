/**
 * gRPC's message framing over HTTP/2: each message is a 1-byte compressed flag, a 4-byte
 * big-endian length, then the message bytes. Messages may arrive split across DATA frames or
 * several in one; the deframer reassembles them.
 */
export const MESSAGE_PREFIX_BYTES = 5;

export class FramingError extends Error {
  constructor(
    message: string,
    /** The gRPC status the call should end with. */
    readonly grpcStatus: number,
  ) {
    super(message);
    this.name = 'FramingError';
  }
}

export function frameMessage(message: Uint8Array): Buffer {
  const framed = Buffer.allocUnsafe(MESSAGE_PREFIX_BYTES + message.byteLength);
  framed[0] = 0;
  framed.writeUInt32BE(message.byteLength, 1);
  framed.set(message, MESSAGE_PREFIX_BYTES);
  return framed;
}

/** Reassembles length-prefixed messages from the chunks of a request body. */
export class MessageDeframer {
  private pending: Buffer[] = [];
  private pendingBytes = 0;

  constructor(private readonly maxMessageBytes: number) {}

  /** Takes a chunk; returns every message it completes. Throws FramingError on a bad prefix. */
  push(chunk: Buffer): Buffer[] {
    this.pending.push(chunk);
    this.pendingBytes += chunk.byteLength;
    const messages: Buffer[] = [];
    while (this.pendingBytes >= MESSAGE_PREFIX_BYTES) {
      const head = this.peek(MESSAGE_PREFIX_BYTES);
      const compressed = head[0]!;
      const length = head.readUInt32BE(1);
      if (compressed !== 0) {
        // We advertise no grpc-accept-encoding, so a compressed message is a client error.
        throw new FramingError('compressed messages are not supported; send identity encoding', 12);
      }
      if (length > this.maxMessageBytes) {
        throw new FramingError(`message of ${length} bytes exceeds the limit of ${this.maxMessageBytes} bytes`, 8);
      }
      if (this.pendingBytes < MESSAGE_PREFIX_BYTES + length) break;
      const whole = this.take(MESSAGE_PREFIX_BYTES + length);
      messages.push(whole.subarray(MESSAGE_PREFIX_BYTES));
    }
    return messages;
  }

  /** True when a partial message is still waiting for bytes (a truncated request if the body ends). */
  get hasPartialMessage(): boolean {
    return this.pendingBytes > 0;
  }

  private peek(bytes: number): Buffer {
    if (this.pending[0]!.byteLength >= bytes) return this.pending[0]!;
    const joined = Buffer.concat(this.pending);
    this.pending = [joined];
    return joined;
  }

  private take(bytes: number): Buffer {
    const joined = this.pending.length === 1 ? this.pending[0]! : Buffer.concat(this.pending);
    const taken = joined.subarray(0, bytes);
    const rest = joined.subarray(bytes);
    this.pending = rest.byteLength > 0 ? [rest] : [];
    this.pendingBytes = rest.byteLength;
    return taken;
  }
}

/** Parses a `grpc-timeout` header ("100m", "5S", ...) into milliseconds; undefined when absent or invalid. */
export function parseGrpcTimeoutMs(value: string | undefined): number | undefined {
  if (!value) return undefined;
  const match = /^(\d{1,8})([HMSmun])$/.exec(value);
  if (!match) return undefined;
  const amount = Number(match[1]);
  const unitMs: Record<string, number> = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 0.001, n: 0.000001 };
  return amount * unitMs[match[2]!]!;
}

/**
 * gRPC status messages travel percent-encoded in the grpc-message trailer: only bytes outside
 * printable ASCII, and '%' itself, as the gRPC HTTP/2 spec says. Clients decode with decodeURI
 * (grpc-js), which would leave encoded ':', ';', ',', '/' and the like as they are.
 */
export function encodeGrpcMessage(message: string): string {
  let encoded = '';
  for (const byte of Buffer.from(message, 'utf8')) {
    encoded += byte >= 0x20 && byte <= 0x7e && byte !== 0x25 ? String.fromCharCode(byte) : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return encoded;
}
