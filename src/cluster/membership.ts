import { createHash } from 'node:crypto';
import { Resolver } from 'node:dns/promises';
import { isIP } from 'node:net';
import type { Endpoint } from './gossip.js';

/** Who the voters are and who this node is among them. */
export interface ClusterLayout {
  /** This node's id: its internal gossip endpoint, as the others name it. */
  selfId: string;
  /** Every voter's id (self included unless this node is a read-only replica), sorted. */
  voters: string[];
  /** This node, when it is a read-only replica; the voters learn of replicas through gossip. */
  learners: string[];
  /** Derived from the voters: a node configured for another cluster has another id and is refused. */
  clusterId: string;
}

export interface MembershipSettings {
  intIp: string;
  intHttpPort: number;
  clusterSize: number;
  gossipSeeds: readonly Endpoint[];
  discoverViaDns: boolean;
  clusterDns: string | null;
  clusterGossipPort: number;
  clusterDnsServer: Endpoint | null;
  readOnlyReplica: boolean;
}

export function endpointId(endpoint: Endpoint): string {
  return isIP(endpoint.host) === 6 ? `[${endpoint.host}]:${endpoint.port}` : `${endpoint.host}:${endpoint.port}`;
}

export function parseEndpointId(id: string): Endpoint {
  const bracketed = /^\[([^\]]+)\]:(\d+)$/.exec(id);
  if (bracketed) return { host: bracketed[1]!, port: Number(bracketed[2]) };
  const colon = id.lastIndexOf(':');
  return { host: id.slice(0, colon), port: Number(id.slice(colon + 1)) };
}

export function clusterIdOf(voters: readonly string[]): string {
  return createHash('sha256').update([...voters].sort().join('\n')).digest('hex').slice(0, 16);
}

/**
 * The voters, from the gossip seeds (the other nodes' internal HTTP endpoints) or from the A/AAAA
 * records of the cluster's DNS name with the gossip port. A static quorum: the configuration
 * names all `--cluster-size` voters, and the first leader records them in the log.
 */
export async function resolveClusterLayout(settings: MembershipSettings): Promise<ClusterLayout> {
  const selfId = endpointId({ host: settings.intIp, port: settings.intHttpPort });
  let others: string[];
  if (settings.gossipSeeds.length > 0) {
    others = settings.gossipSeeds.map(endpointId);
  } else if (settings.discoverViaDns && settings.clusterDns) {
    const addresses = await resolveAll(settings.clusterDns, settings.clusterDnsServer);
    const ids = addresses.map((host) => endpointId({ host, port: settings.clusterGossipPort }));
    if (!ids.includes(selfId)) {
      throw new Error(
        `${settings.clusterDns} resolves to ${addresses.join(', ') || 'nothing'}, which does not include this node (${selfId}); check --int-ip, --int-http-port and --cluster-gossip-port`,
      );
    }
    others = ids.filter((id) => id !== selfId);
  } else {
    throw new Error(`--cluster-size ${settings.clusterSize} needs the other nodes: give --gossip-seed host:port,... or --discover-via-dns with --cluster-dns <name>`);
  }
  if (others.includes(selfId)) throw new Error(`the gossip seeds include this node itself (${selfId}); list only the other nodes`);
  // A read-only replica is not a voter: the seeds (or DNS addresses) are exactly the voters.
  const voters = [...new Set(settings.readOnlyReplica ? others : [selfId, ...others])].sort();
  if (voters.length !== settings.clusterSize) {
    const who = settings.readOnlyReplica ? 'the voters (a read-only replica lists all of them, not itself)' : 'this node plus the others';
    throw new Error(`--cluster-size is ${settings.clusterSize}, but the configuration names ${voters.length} voter(s): ${voters.join(', ')}; every voter must be listed (${who})`);
  }
  return { selfId, voters, learners: settings.readOnlyReplica ? [selfId] : [], clusterId: clusterIdOf(voters) };
}

async function resolveAll(name: string, server: Endpoint | null): Promise<string[]> {
  const resolver = new Resolver({ timeout: 2000, tries: 2 });
  if (server) resolver.setServers([endpointId(server)]);
  const where = `${name}${server ? ` at ${endpointId(server)}` : ''}`;
  const [v4, v6] = await Promise.allSettled([resolver.resolve4(name), resolver.resolve6(name)]);
  const addresses = [...(v4.status === 'fulfilled' ? v4.value : []), ...(v6.status === 'fulfilled' ? v6.value : [])];
  // A name with only A records may get NODATA, or a refusal from a small server, for AAAA: that
  // is fine as long as one family answered.
  if (addresses.length > 0) return addresses.sort();
  const failure = [v4, v6].find((result): result is PromiseRejectedResult => result.status === 'rejected' && !['ENODATA', 'ENOTFOUND'].includes((result.reason as { code?: string }).code ?? ''));
  if (failure) throw new Error(`cannot resolve ${where}: ${(failure.reason as Error).message}`);
  return [];
}
