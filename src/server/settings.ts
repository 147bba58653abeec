import { DEFAULT_APPEND_BATCH_DELAY_MS, DEFAULT_WRITE_TIMEOUT_MS } from '../cluster/replica.js';
import { DEFAULT_MAX_APPEND_SIZE_BYTES } from '../store/event-preparation.js';
import type { ServerConfiguration } from './configuration.js';
import {
  parseBoolean,
  parseByteCount,
  parseClusterSize,
  parseDirectory,
  parseFilePath,
  parseGossipSeeds,
  parseHostName,
  parseIpAddress,
  parseLogLevel,
  parseMilliseconds,
  parsePort,
  parseSingleEndpoint,
  type Parsed,
} from './setting-values.js';

/**
 * The one table of the server's settings. Every other name of a setting is derived from its flag
 * here, so the command line, the environment, the config file, --help and the docs cannot drift:
 * `ext-http-port` is `--ext-http-port`, `CHRONICLE_EXT_HTTP_PORT`, and `ext-http-port:` or
 * `ExtHttpPort:` in the YAML file.
 */
export type SettingKey = Exclude<keyof ServerConfiguration, 'configFile'>;

/** A feature a setting waits for: it is accepted and checked now, and acts once the feature lands. */
export type PendingFeature = 'legacy TCP protocol';

export interface SettingDefinition<K extends SettingKey = SettingKey> {
  key: K;
  /** The flag without its dashes, in kebab-case. */
  flag: string;
  /**
   * `boolean`: the flag alone means true, or it takes true/false/1/0. `list`: the flag may repeat
   * and the config file may give a YAML sequence; the entries are joined with commas.
   */
  kind: 'value' | 'boolean' | 'list';
  /** The placeholder in --help, such as `<port>`. */
  valueName: string;
  description: string;
  defaultValue: ServerConfiguration[K];
  /** How --help and the docs show the default. */
  defaultText: string;
  pendingFeature?: PendingFeature;
  parse(text: string): Parsed<ServerConfiguration[K]>;
}

export const ENVIRONMENT_PREFIX = 'CHRONICLE_';
export const CONFIG_FLAG = 'config';
export const CONFIG_ENVIRONMENT_VARIABLE = `${ENVIRONMENT_PREFIX}CONFIG`;

/**
 * Raising the append limit above the store's default would let the store write frames that
 * `chronicle verify`, which checks against the default frame limit, reports as damaged; the limit
 * can only be lowered until verify learns the node's setting.
 */
export const MAX_APPEND_SIZE_LIMIT_BYTES = DEFAULT_MAX_APPEND_SIZE_BYTES;

const BOOLEAN_VALUE = '[true|false]';

export const SETTINGS: { readonly [K in SettingKey]: SettingDefinition<K> } = {
  memDb: {
    key: 'memDb',
    flag: 'mem-db',
    kind: 'boolean',
    valueName: BOOLEAN_VALUE,
    description: 'keep the log and the index in memory; nothing survives the process',
    defaultValue: false,
    defaultText: 'false',
    parse: parseBoolean,
  },
  db: {
    key: 'db',
    flag: 'db',
    kind: 'value',
    valueName: '<directory>',
    description: 'directory of the log and the index',
    defaultValue: './data',
    defaultText: './data',
    parse: parseDirectory,
  },
  logDirectory: {
    key: 'logDirectory',
    flag: 'log',
    kind: 'value',
    valueName: '<directory>',
    description: 'also write the logs to <directory>/chronicle.log (they always go to stdout)',
    defaultValue: null,
    defaultText: 'stdout only',
    parse: parseDirectory,
  },
  logLevel: {
    key: 'logLevel',
    flag: 'log-level',
    kind: 'value',
    valueName: '<level>',
    description: 'least severe level logged: fatal, error, warn, info, debug or trace',
    defaultValue: 'info',
    defaultText: 'info',
    parse: parseLogLevel,
  },
  intIp: {
    key: 'intIp',
    flag: 'int-ip',
    kind: 'value',
    valueName: '<address>',
    description: 'IP address of the internal interface (replication and gossip between nodes)',
    defaultValue: '127.0.0.1',
    defaultText: '127.0.0.1',
    parse: parseIpAddress,
  },
  extIp: {
    key: 'extIp',
    flag: 'ext-ip',
    kind: 'value',
    valueName: '<address>',
    description: 'IP address of the external interface, the one clients connect to',
    defaultValue: '127.0.0.1',
    defaultText: '127.0.0.1',
    parse: parseIpAddress,
  },
  intTcpPort: {
    key: 'intTcpPort',
    flag: 'int-tcp-port',
    kind: 'value',
    valueName: '<port>',
    description: 'internal TCP port: replication between nodes',
    defaultValue: 1112,
    defaultText: '1112',
    parse: parsePort,
  },
  extTcpPort: {
    key: 'extTcpPort',
    flag: 'ext-tcp-port',
    kind: 'value',
    valueName: '<port>',
    description: 'external TCP port: the legacy TCP client protocol',
    defaultValue: 1113,
    defaultText: '1113',
    pendingFeature: 'legacy TCP protocol',
    parse: parsePort,
  },
  intHttpPort: {
    key: 'intHttpPort',
    flag: 'int-http-port',
    kind: 'value',
    valueName: '<port>',
    description: 'internal HTTP port: gossip between nodes',
    defaultValue: 2112,
    defaultText: '2112',
    parse: parsePort,
  },
  extHttpPort: {
    key: 'extHttpPort',
    flag: 'ext-http-port',
    kind: 'value',
    valueName: '<port>',
    description: 'external HTTP port: gRPC (the KurrentDB clients) and the HTTP API',
    defaultValue: 2113,
    defaultText: '2113',
    parse: parsePort,
  },
  intTcpPortAdvertiseAs: {
    key: 'intTcpPortAdvertiseAs',
    flag: 'int-tcp-port-advertise-as',
    kind: 'value',
    valueName: '<port>',
    description: 'the replication port the other nodes should dial (a port forwarded to --int-tcp-port by NAT or a proxy)',
    defaultValue: null,
    defaultText: 'the --int-tcp-port',
    parse: parsePort,
  },
  clusterSize: {
    key: 'clusterSize',
    flag: 'cluster-size',
    kind: 'value',
    valueName: '<nodes>',
    description: 'number of voting nodes in the cluster, odd (1, 3, 5...)',
    defaultValue: 1,
    defaultText: '1',
    parse: parseClusterSize,
  },
  readOnlyReplica: {
    key: 'readOnlyReplica',
    flag: 'read-only-replica',
    kind: 'boolean',
    valueName: BOOLEAN_VALUE,
    description: 'join the cluster as a non-voting read-only replica: it receives the log and serves reads; the gossip seeds (or DNS) name the --cluster-size voters',
    defaultValue: false,
    defaultText: 'false',
    parse: parseBoolean,
  },
  discoverViaDns: {
    key: 'discoverViaDns',
    flag: 'discover-via-dns',
    kind: 'boolean',
    valueName: BOOLEAN_VALUE,
    description: 'find the other nodes through --cluster-dns; false: through --gossip-seed',
    defaultValue: true,
    defaultText: 'true',
    parse: parseBoolean,
  },
  gossipSeeds: {
    key: 'gossipSeeds',
    flag: 'gossip-seed',
    kind: 'list',
    valueName: '<host:port,...>',
    description: "other nodes' internal HTTP endpoints, comma-separated (the flag may repeat)",
    defaultValue: [],
    defaultText: 'none',
    parse: parseGossipSeeds,
  },
  clusterDns: {
    key: 'clusterDns',
    flag: 'cluster-dns',
    kind: 'value',
    valueName: '<name>',
    description: 'DNS name that resolves to the addresses of all the nodes',
    defaultValue: null,
    defaultText: 'none',
    parse: parseHostName,
  },
  clusterGossipPort: {
    key: 'clusterGossipPort',
    flag: 'cluster-gossip-port',
    kind: 'value',
    valueName: '<port>',
    description: "the other nodes' internal HTTP port, used with --cluster-dns",
    // Resolved to this node's own internal HTTP port: the nodes of a cluster usually share ports.
    defaultValue: 2112,
    defaultText: 'the --int-http-port',
    parse: parsePort,
  },
  clusterDnsServer: {
    key: 'clusterDnsServer',
    flag: 'cluster-dns-server',
    kind: 'value',
    valueName: '<host:port>',
    description: 'DNS server that resolves --cluster-dns (a private or test server); default: the system resolver',
    defaultValue: null,
    defaultText: 'the system resolver',
    parse: parseSingleEndpoint,
  },
  clusterFormTimeoutMs: {
    key: 'clusterFormTimeoutMs',
    flag: 'cluster-form-timeout',
    kind: 'value',
    valueName: '<ms>',
    description: 'how long to wait at start-up for the cluster to elect a leader before warning (or, with --cluster-form-mandatory, exiting)',
    defaultValue: 30_000,
    defaultText: '30000',
    parse: parseMilliseconds,
  },
  clusterFormMandatory: {
    key: 'clusterFormMandatory',
    flag: 'cluster-form-mandatory',
    kind: 'boolean',
    valueName: BOOLEAN_VALUE,
    description: 'exit with an error if the cluster does not form within --cluster-form-timeout',
    defaultValue: false,
    defaultText: 'false',
    parse: parseBoolean,
  },
  writeTimeoutMs: {
    key: 'writeTimeoutMs',
    flag: 'write-timeout-ms',
    kind: 'value',
    valueName: '<ms>',
    description: 'in a cluster, a write not committed on a quorum within this long fails with "no quorum" (its outcome unknown)',
    defaultValue: DEFAULT_WRITE_TIMEOUT_MS,
    defaultText: String(DEFAULT_WRITE_TIMEOUT_MS),
    parse: parseMilliseconds,
  },
  appendBatchDelayMs: {
    key: 'appendBatchDelayMs',
    flag: 'append-batch-delay-ms',
    kind: 'value',
    valueName: '<ms>',
    description: 'in a cluster, how long a leader holds a few writes back from its followers when the batch before was larger, waiting for the rest of that wave of writers (0: send each write at once)',
    defaultValue: DEFAULT_APPEND_BATCH_DELAY_MS,
    defaultText: String(DEFAULT_APPEND_BATCH_DELAY_MS),
    parse: parseMilliseconds,
  },
  insecure: {
    key: 'insecure',
    flag: 'insecure',
    kind: 'boolean',
    valueName: BOOLEAN_VALUE,
    description: 'serve without TLS (clients connect with tls=false); without it a node needs --certificate-file and --certificate-private-key-file',
    defaultValue: false,
    defaultText: 'false',
    parse: parseBoolean,
  },
  certificateFile: {
    key: 'certificateFile',
    flag: 'certificate-file',
    kind: 'value',
    valueName: '<file>',
    description: "the node's TLS certificate (PEM; a chain may follow it), served on the external interface",
    defaultValue: null,
    defaultText: 'none',
    parse: parseFilePath,
  },
  certificatePrivateKeyFile: {
    key: 'certificatePrivateKeyFile',
    flag: 'certificate-private-key-file',
    kind: 'value',
    valueName: '<file>',
    description: "the private key of --certificate-file (PEM)",
    defaultValue: null,
    defaultText: 'none',
    parse: parseFilePath,
  },
  trustedRootCertificateFile: {
    key: 'trustedRootCertificateFile',
    flag: 'trusted-root-certificate-file',
    kind: 'value',
    valueName: '<file>',
    description: "in a cluster without --insecure: the CA certificate (PEM) that signed the nodes' certificates; replication and gossip use mutual TLS checked against it",
    defaultValue: null,
    defaultText: 'none',
    parse: parseFilePath,
  },
  maxAppendSizeBytes: {
    key: 'maxAppendSizeBytes',
    flag: 'max-append-size',
    kind: 'value',
    valueName: '<bytes>',
    description: `largest append the node accepts, in bytes (at most ${MAX_APPEND_SIZE_LIMIT_BYTES})`,
    defaultValue: MAX_APPEND_SIZE_LIMIT_BYTES,
    defaultText: `${MAX_APPEND_SIZE_LIMIT_BYTES} = ${MAX_APPEND_SIZE_LIMIT_BYTES / (1024 * 1024)} MiB`,
    parse: (text) => parseByteCount(text, MAX_APPEND_SIZE_LIMIT_BYTES),
  },
};

/** The settings in the order --help and the docs list them. */
export const SETTING_LIST: readonly SettingDefinition[] = Object.values(SETTINGS) as SettingDefinition[];

export function environmentVariableOf(setting: SettingDefinition): string {
  return ENVIRONMENT_PREFIX + setting.flag.toUpperCase().replaceAll('-', '_');
}

/** The canonical YAML key: the flag itself. */
export function yamlKeyOf(setting: SettingDefinition): string {
  return setting.flag;
}

/** The KurrentDB-style YAML key (`ExtHttpPort`), accepted so existing config files carry over. */
export function pascalCaseYamlKeyOf(setting: SettingDefinition): string {
  return setting.flag
    .split('-')
    .map((word) => word.charAt(0).toUpperCase() + word.slice(1))
    .join('');
}

/** The closest of `candidates` to a mistyped name, if one is near enough to be a likely typo. */
export function closestName(name: string, candidates: readonly string[]): string | undefined {
  let best: { candidate: string; distance: number } | undefined;
  for (const candidate of candidates) {
    const distance = editDistance(name.toLowerCase(), candidate.toLowerCase());
    if (best === undefined || distance < best.distance) best = { candidate, distance };
  }
  return best !== undefined && best.distance <= Math.max(2, Math.floor(name.length / 4)) ? best.candidate : undefined;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const substitution = (previous[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1);
      current.push(Math.min((previous[j] ?? 0) + 1, (current[j - 1] ?? 0) + 1, substitution));
    }
    previous = current;
  }
  return previous[b.length] ?? 0;
}
