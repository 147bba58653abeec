import { connect as connectHttp2 } from 'node:http2';
import { join } from 'node:path';
import { TcpProxy } from '../helpers/tcp-proxy.js';
import { freePort, ServerProcess } from './server-process.js';

/** Starting clusters of real nodes on free loopback ports, and watching them through gossip. */

export interface GossipMember {
  id: string;
  state: string;
  isAlive: boolean;
  externalHttp: { host: string; port: number };
  appliedPosition: number;
}

/** A node's gossip endpoint: a port on 127.0.0.1, or host and port. */
export type GossipEndpoint = number | { host: string; port: number };

export async function gossipOf(endpoint: GossipEndpoint): Promise<GossipMember[] | undefined> {
  const { host, port } = typeof endpoint === 'number' ? { host: '127.0.0.1', port: endpoint } : endpoint;
  try {
    const response = await fetch(`http://${host}:${port}/gossip`, { signal: AbortSignal.timeout(1000) });
    return ((await response.json()) as { members: GossipMember[] }).members;
  } catch {
    return undefined;
  }
}

/** Polls (bounded) until `check` passes on some node's gossip view; returns that view. */
export async function waitForGossip(endpoints: readonly GossipEndpoint[], check: (members: GossipMember[]) => boolean, timeoutMs: number, what: string): Promise<GossipMember[]> {
  const deadline = Date.now() + timeoutMs;
  let last: GossipMember[] | undefined;
  while (Date.now() < deadline) {
    for (const endpoint of endpoints) {
      const members = await gossipOf(endpoint);
      if (members) last = members;
      if (members && check(members)) return members;
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(`${what} did not happen within ${timeoutMs} ms; last gossip: ${JSON.stringify(last?.map((m) => [m.id, m.state, m.isAlive]))}`);
}

export function leaderIn(members: GossipMember[]): GossipMember | undefined {
  const leaders = members.filter((member) => member.isAlive && member.state === 'Leader');
  return leaders.length === 1 ? leaders[0] : undefined;
}

/** Starts `size` nodes on free ports; replication of each goes through a proxy when asked. */
/**
 * Starts `size` nodes on free loopback ports, on --mem-db or, with `dataRoot`, each on its own
 * --db under it; `commandLines[i]` starts node i again (a restart on its data).
 */
export async function startCluster(
  size: number,
  withProxies: boolean,
  dataRoot?: string,
): Promise<{ nodes: ServerProcess[]; proxies: TcpProxy[]; gossipPorts: number[]; externalPorts: number[]; commandLines: string[][] }> {
  const ports = await Promise.all(Array.from({ length: size * 3 }, () => freePort()));
  const replication = ports.slice(0, size);
  const gossipPorts = ports.slice(size, size * 2);
  const externalPorts = ports.slice(size * 2);
  const proxies = withProxies ? await Promise.all(replication.map((port) => TcpProxy.start({ host: '127.0.0.1', port }))) : [];
  const commandLines = Array.from({ length: size }, (_, i) => {
    const seeds = gossipPorts.filter((_, j) => j !== i).map((port) => `127.0.0.1:${port}`).join(',');
    const storage = dataRoot === undefined ? ['--mem-db'] : ['--db', join(dataRoot, `node${i + 1}`)];
    const args = ['--insecure', ...storage, '--int-ip', '127.0.0.1', '--ext-ip', '127.0.0.1', `--int-tcp-port=${replication[i]}`, `--int-http-port=${gossipPorts[i]}`, `--ext-http-port=${externalPorts[i]}`, `--cluster-size=${size}`, '--discover-via-dns=false', `--gossip-seed=${seeds}`];
    if (withProxies) args.push(`--int-tcp-port-advertise-as=${proxies[i]!.port}`);
    return args;
  });
  const nodes = await Promise.all(commandLines.map((args, i) => ServerProcess.startCommandLine(args, '127.0.0.1', externalPorts[i]!)));
  return { nodes, proxies, gossipPorts, externalPorts, commandLines };
}

/** One unary gRPC call on a fresh HTTP/2 connection; resolves with the grpc-status. */
export async function unaryGrpc(port: number, path: string, message: Buffer): Promise<string> {
  const session = connectHttp2(`http://127.0.0.1:${port}`);
  try {
    const frame = Buffer.alloc(5 + message.byteLength);
    frame.writeUInt32BE(message.byteLength, 1);
    message.copy(frame, 5);
    const stream = session.request({ ':method': 'POST', ':path': path, 'content-type': 'application/grpc', te: 'trailers' });
    const status = new Promise<string>((resolve, reject) => {
      let seen: string | undefined;
      stream.on('response', (headers) => {
        if (headers['grpc-status'] !== undefined) seen = String(headers['grpc-status']);
      });
      stream.on('trailers', (trailers) => {
        seen = String(trailers['grpc-status']);
      });
      stream.on('close', () => (seen !== undefined ? resolve(seen) : reject(new Error('no grpc-status'))));
      stream.on('error', reject);
    });
    stream.resume();
    stream.end(frame);
    return await status;
  } finally {
    session.close();
  }
}

/**
 * Reads whole after a leader change, as an application would: the official client's reads (its
 * Rust side) answer "not leader" or "unavailable" while it rediscovers the cluster and reconnect
 * by themselves, but the call that saw the change fails. Retried, boundedly; anything else throws.
 */
export async function readAfterLeaderChange<T>(read: () => Promise<T>, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await read();
    } catch (error) {
      const retryable = /NotLeader|Unavailable/.test((error as Error).constructor.name + String((error as Error).message));
      if (!retryable || Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }
}
