import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import {
  DEFAULT_CONFIGURATION,
  resolveConfiguration,
  type ConfigurationResolution,
  type ServerConfiguration,
  type SettingKey,
} from '../../src/server/configuration.js';
import { createServerLogger, LOG_FILE_NAME, logStartup, startupSummary } from '../../src/server/logger.js';
import { SETTING_LIST } from '../../src/server/settings.js';
import { CHRONICLE_VERSION } from '../../src/server/version.js';
import { makeTempDirectory } from '../helpers/temp-directory.js';

interface Inputs {
  argv?: string[];
  env?: Record<string, string | undefined>;
  /** Files `readFile` can read; any other path fails as a missing file does. */
  files?: Record<string, string>;
}

function resolve({ argv = [], env = {}, files = {} }: Inputs): ConfigurationResolution {
  return resolveConfiguration({
    argv,
    env,
    readFile: (path) => {
      const text = files[path];
      if (text === undefined) throw new Error(`ENOENT: no such file or directory, open '${path}'`);
      return text;
    },
  });
}

function resolved(inputs: Inputs) {
  const result = resolve(inputs);
  if (!('configuration' in result)) assert.fail(`expected a configuration, got ${JSON.stringify(result)}`);
  return result;
}

function configurationOf(inputs: Inputs): ServerConfiguration {
  return resolved(inputs).configuration;
}

/** The error line; asserts it is one line and comes with exit code 2. */
function errorOf(inputs: Inputs): string {
  const result = resolve(inputs);
  if (!('error' in result)) assert.fail(`expected an error, got ${JSON.stringify(result)}`);
  assert.equal(result.exitCode, 2);
  assert.doesNotMatch(result.error, /\n/);
  return result.error;
}

const yamlFile = (text: string): Inputs => ({ argv: ['--config', 'chronicle.yaml'], files: { 'chronicle.yaml': text } });

/** One non-default value per setting, and what it resolves to. `with` adds what the value needs to be valid. */
const EXAMPLES: { flag: string; text: string; key: SettingKey; value: unknown; with?: string[] }[] = [
  { flag: 'mem-db', text: 'true', key: 'memDb', value: true },
  { flag: 'db', text: '/var/lib/chronicle', key: 'db', value: '/var/lib/chronicle' },
  { flag: 'log', text: '.\\logs\\log1', key: 'logDirectory', value: '.\\logs\\log1' },
  { flag: 'log-level', text: 'debug', key: 'logLevel', value: 'debug' },
  { flag: 'int-ip', text: '192.168.0.1', key: 'intIp', value: '192.168.0.1' },
  { flag: 'ext-ip', text: '::1', key: 'extIp', value: '::1' },
  { flag: 'int-tcp-port', text: '1111', key: 'intTcpPort', value: 1111 },
  { flag: 'ext-tcp-port', text: '1114', key: 'extTcpPort', value: 1114 },
  { flag: 'int-http-port', text: '3112', key: 'intHttpPort', value: 3112 },
  { flag: 'ext-http-port', text: '1114', key: 'extHttpPort', value: 1114 },
  { flag: 'cluster-size', text: '3', key: 'clusterSize', value: 3, with: ['--cluster-dns', 'cluster.example.com'] },
  { flag: 'discover-via-dns', text: 'false', key: 'discoverViaDns', value: false },
  {
    flag: 'gossip-seed',
    text: '127.0.0.1:2113,node-2.internal:3113,[::1]:4113',
    key: 'gossipSeeds',
    value: [
      { host: '127.0.0.1', port: 2113 },
      { host: 'node-2.internal', port: 3113 },
      { host: '::1', port: 4113 },
    ],
  },
  { flag: 'cluster-dns', text: 'mydomain.com', key: 'clusterDns', value: 'mydomain.com' },
  { flag: 'cluster-gossip-port', text: '2114', key: 'clusterGossipPort', value: 2114 },
  { flag: 'int-tcp-port-advertise-as', text: '4111', key: 'intTcpPortAdvertiseAs', value: 4111 },
  { flag: 'read-only-replica', text: 'true', key: 'readOnlyReplica', value: true },
  { flag: 'cluster-dns-server', text: '127.0.0.1:5353', key: 'clusterDnsServer', value: { host: '127.0.0.1', port: 5353 } },
  { flag: 'cluster-form-timeout', text: '10000', key: 'clusterFormTimeoutMs', value: 10000 },
  { flag: 'cluster-form-mandatory', text: 'true', key: 'clusterFormMandatory', value: true },
  { flag: 'write-timeout-ms', text: '2000', key: 'writeTimeoutMs', value: 2000 },
  { flag: 'append-batch-delay-ms', text: '0', key: 'appendBatchDelayMs', value: 0 },
  { flag: 'insecure', text: 'true', key: 'insecure', value: true },
  { flag: 'certificate-file', text: 'certs/node.crt', key: 'certificateFile', value: 'certs/node.crt' },
  { flag: 'certificate-private-key-file', text: 'certs/node.key', key: 'certificatePrivateKeyFile', value: 'certs/node.key' },
  { flag: 'trusted-root-certificate-file', text: 'certs/ca.crt', key: 'trustedRootCertificateFile', value: 'certs/ca.crt' },
  { flag: 'max-append-size', text: '1048576', key: 'maxAppendSizeBytes', value: 1048576 },
];

const environmentVariable = (flag: string) => `CHRONICLE_${flag.toUpperCase().replaceAll('-', '_')}`;
const pascalCase = (flag: string) => flag.replace(/(^|-)([a-z])/g, (_, _dash: string, letter: string) => letter.toUpperCase());

describe('server configuration: defaults', () => {
  it('match the seed and KurrentDB when nothing is given', () => {
    const { configuration, sources } = resolved({});
    assert.deepEqual(configuration, {
      memDb: false,
      db: './data',
      logDirectory: null,
      logLevel: 'info',
      intIp: '127.0.0.1',
      extIp: '127.0.0.1',
      intTcpPort: 1112,
      extTcpPort: 1113,
      intHttpPort: 2112,
      extHttpPort: 2113,
      intTcpPortAdvertiseAs: null,
      clusterSize: 1,
      readOnlyReplica: false,
      discoverViaDns: true,
      gossipSeeds: [],
      clusterDns: null,
      clusterGossipPort: 2112,
      clusterDnsServer: null,
      clusterFormTimeoutMs: 30_000,
      clusterFormMandatory: false,
      writeTimeoutMs: 5000,
      appendBatchDelayMs: 1,
      insecure: false,
      certificateFile: null,
      certificatePrivateKeyFile: null,
      trustedRootCertificateFile: null,
      maxAppendSizeBytes: 32 * 1024 * 1024,
      configFile: null,
    });
    assert.deepEqual(configuration, DEFAULT_CONFIGURATION);
    assert.ok(Object.values(sources).every((source) => source.kind === 'default'));
  });

  it('every setting has an example here, so none goes untested', () => {
    assert.deepEqual(EXAMPLES.map((example) => example.key).sort(), SETTING_LIST.map((setting) => setting.key).sort());
  });

  it('ignores variables without the CHRONICLE_ prefix and unset ones', () => {
    assert.deepEqual(configurationOf({ env: { PATH: '/usr/bin', HOME: '/root', CHRONICLE_DB: undefined } }), DEFAULT_CONFIGURATION);
  });

  it('takes the cluster gossip port from the node\'s own internal HTTP port unless it is set', () => {
    assert.equal(configurationOf({ argv: ['--int-http-port', '3112'] }).clusterGossipPort, 3112);
    assert.equal(configurationOf({ argv: ['--int-http-port', '3112', '--cluster-gossip-port', '4112'] }).clusterGossipPort, 4112);
  });
});

describe('server configuration: the command line', () => {
  for (const example of EXAMPLES) {
    for (const form of ['--flag=value', '--flag value'] as const) {
      it(`--${example.flag} as ${form}`, () => {
        const flag = `--${example.flag}`;
        const argv = form === '--flag=value' ? [`${flag}=${example.text}`] : [flag, example.text];
        const { configuration, sources } = resolved({ argv: [...argv, ...(example.with ?? [])] });
        assert.deepEqual(configuration[example.key], example.value);
        assert.deepEqual(sources[example.key], { kind: 'command line', name: flag });
      });
    }
  }

  for (const flag of ['mem-db', 'discover-via-dns', 'insecure']) {
    it(`--${flag} alone means true, and takes true/false/1/0 in both forms`, () => {
      const key = SETTING_LIST.find((setting) => setting.flag === flag)!.key;
      const cases: [string[], boolean][] = [
        [[`--${flag}`], true],
        [[`--${flag}=true`], true],
        [[`--${flag}`, 'false'], false],
        [[`--${flag}=0`], false],
        [[`--${flag}`, '1'], true],
        [[`--${flag}=FALSE`], false],
      ];
      for (const [argv, expected] of cases) assert.equal(configurationOf({ argv })[key], expected, argv.join(' '));
    });
  }

  it('a boolean flag alone does not swallow the next option', () => {
    const configuration = configurationOf({ argv: ['--mem-db', '--ext-http-port', '3113'] });
    assert.equal(configuration.memDb, true);
    assert.equal(configuration.extHttpPort, 3113);
  });

  it('reads the command lines of the seed (nodes on one machine, on three, and found through DNS)', () => {
    const sameMachine = configurationOf({
      argv: '--mem-db --log .\\logs\\log1 --int-ip 127.0.0.1 --ext-ip 127.0.0.1 --int-tcp-port=1111 --ext-tcp-port=1112 --int-http-port=1113 --ext-http-port=1114 --cluster-size=3 --discover-via-dns=false --gossip-seed=127.0.0.1:2113,127.0.0.1:3113'.split(' '),
    });
    assert.deepEqual(
      { ...sameMachine, gossipSeeds: sameMachine.gossipSeeds.map((seed) => `${seed.host}:${seed.port}`) },
      {
        ...DEFAULT_CONFIGURATION,
        memDb: true,
        logDirectory: '.\\logs\\log1',
        intIp: '127.0.0.1',
        extIp: '127.0.0.1',
        intTcpPort: 1111,
        extTcpPort: 1112,
        intHttpPort: 1113,
        extHttpPort: 1114,
        clusterSize: 3,
        discoverViaDns: false,
        gossipSeeds: ['127.0.0.1:2113', '127.0.0.1:3113'],
        clusterGossipPort: 1113,
      },
    );
    const separateMachines = configurationOf({
      argv: '--log c:\\dbs\\cluster\\log1 --int-ip 192.168.0.1 --ext-ip 192.168.0.1 --int-tcp-port=1111 --ext-tcp-port=1112 --int-http-port=2113 --ext-http-port=2114 --cluster-size=3 --discover-via-dns=false --gossip-seed=192.168.0.2:2113,192.168.0.3:2113'.split(' '),
    });
    assert.equal(separateMachines.memDb, false);
    assert.equal(separateMachines.logDirectory, 'c:\\dbs\\cluster\\log1');
    assert.deepEqual(separateMachines.gossipSeeds, [
      { host: '192.168.0.2', port: 2113 },
      { host: '192.168.0.3', port: 2113 },
    ]);
    const viaDns = configurationOf({
      argv: '--mem-db --log c:\\dbs\\cluster\\log2 --int-ip 192.168.0.2 --ext-ip 192.168.0.2 --int-tcp-port=1111 --ext-tcp-port=1112 --int-http-port=2113 --ext-http-port=2114 --cluster-size=3 --cluster-dns mydomain.com --cluster-gossip-port=2113'.split(' '),
    });
    assert.equal(viaDns.discoverViaDns, true);
    assert.equal(viaDns.clusterDns, 'mydomain.com');
    assert.equal(viaDns.clusterGossipPort, 2113);
  });

  it('--gossip-seed may repeat and its entries add up; other flags repeated keep the last value', () => {
    const configuration = configurationOf({ argv: ['--gossip-seed', 'a.example:2112', '--gossip-seed=b.example:2112,c.example:2112', '--ext-http-port=3000', '--ext-http-port', '3001'] });
    assert.deepEqual(configuration.gossipSeeds.map((seed) => seed.host), ['a.example', 'b.example', 'c.example']);
    assert.equal(configuration.extHttpPort, 3001);
  });
});

describe('server configuration: environment variables', () => {
  for (const example of EXAMPLES) {
    const name = environmentVariable(example.flag);
    it(`${name} sets ${example.key}`, () => {
      const { configuration, sources } = resolved({ env: { [name]: example.text }, argv: example.with ?? [] });
      assert.deepEqual(configuration[example.key], example.value);
      assert.deepEqual(sources[example.key], { kind: 'environment', name });
    });
  }

  it('booleans take true, false, 1 and 0', () => {
    for (const [text, expected] of [['true', true], ['false', false], ['1', true], ['0', false], ['True', true]] as const) {
      assert.equal(configurationOf({ env: { CHRONICLE_INSECURE: text } }).insecure, expected, text);
    }
  });

  it('an empty CHRONICLE_GOSSIP_SEED is the empty list, so it can clear seeds a config file sets', () => {
    const configuration = configurationOf({ ...yamlFile('gossip-seed: a.example:2112'), env: { CHRONICLE_GOSSIP_SEED: '' } });
    assert.deepEqual(configuration.gossipSeeds, []);
  });
});

describe('server configuration: the YAML file', () => {
  for (const example of EXAMPLES) {
    for (const key of [example.flag, pascalCase(example.flag)]) {
      it(`${key}: sets ${example.key}`, () => {
        const inputs = yamlFile(`# a comment\n${key}: ${JSON.stringify(example.text)}\n`);
        const { configuration, sources } = resolved({ ...inputs, argv: [...inputs.argv!, ...(example.with ?? [])] });
        assert.deepEqual(configuration[example.key], example.value);
        assert.deepEqual(sources[example.key], { kind: 'config file', name: key, file: 'chronicle.yaml' });
        assert.equal(configuration.configFile, 'chronicle.yaml');
      });
    }
  }

  it('takes YAML numbers, booleans (true/false/1/0) and a sequence of gossip seeds', () => {
    const configuration = configurationOf(
      yamlFile(
        [
          'ExtHttpPort: 3113',
          'mem-db: true',
          'insecure: 1',
          'discover-via-dns: 0',
          'cluster-size: 3',
          'gossip-seed:',
          '  - 10.0.0.2:2112',
          '  - "[fd00::3]:2112"',
        ].join('\n'),
      ),
    );
    assert.equal(configuration.extHttpPort, 3113);
    assert.equal(configuration.memDb, true);
    assert.equal(configuration.insecure, true);
    assert.equal(configuration.discoverViaDns, false);
    assert.deepEqual(configuration.gossipSeeds, [
      { host: '10.0.0.2', port: 2112 },
      { host: 'fd00::3', port: 2112 },
    ]);
  });

  it('the example file of docs/configuration.md resolves', async () => {
    const docs = await readFile(new URL('docs/configuration.md', await projectDirectory()), 'utf8');
    const example = /```yaml\n([\s\S]*?)```/.exec(docs)?.[1];
    assert.ok(example, 'no yaml example in docs/configuration.md');
    const configuration = configurationOf(yamlFile(example));
    assert.equal(configuration.clusterSize, 3);
    assert.deepEqual(configuration.gossipSeeds, [
      { host: '10.0.0.2', port: 2112 },
      { host: '10.0.0.3', port: 2112 },
    ]);
  });

  it('an empty file or one of comments sets nothing', () => {
    const { configuration, sources } = resolved(yamlFile('# nothing here\n'));
    assert.deepEqual(configuration, { ...DEFAULT_CONFIGURATION, configFile: 'chronicle.yaml' });
    assert.ok(Object.values(sources).every((source) => source.kind === 'default'));
    assert.deepEqual(configurationOf(yamlFile('')).extHttpPort, 2113);
  });

  it('CHRONICLE_CONFIG names the file, and --config wins over it', () => {
    const files = { 'env.yaml': 'ext-http-port: 3000', 'flag.yaml': 'ext-http-port: 4000' };
    assert.equal(configurationOf({ env: { CHRONICLE_CONFIG: 'env.yaml' }, files }).extHttpPort, 3000);
    const configuration = configurationOf({ env: { CHRONICLE_CONFIG: 'env.yaml' }, argv: ['--config=flag.yaml'], files });
    assert.equal(configuration.extHttpPort, 4000);
    assert.equal(configuration.configFile, 'flag.yaml');
  });
});

describe('server configuration: precedence is command line > environment > config file > defaults', () => {
  const file = yamlFile('ext-http-port: 3000\ngossip-seed: [a.example:2112, b.example:2112]\nlog-level: warn\n');

  it('the config file beats the defaults', () => {
    const { configuration, sources } = resolved(file);
    assert.equal(configuration.extHttpPort, 3000);
    assert.equal(configuration.logLevel, 'warn');
    assert.equal(sources.extHttpPort.kind, 'config file');
    assert.equal(configuration.extTcpPort, 1113);
    assert.equal(sources.extTcpPort.kind, 'default');
  });

  it('the environment beats the config file', () => {
    const { configuration, sources } = resolved({ ...file, env: { CHRONICLE_EXT_HTTP_PORT: '4000' } });
    assert.equal(configuration.extHttpPort, 4000);
    assert.deepEqual(sources.extHttpPort, { kind: 'environment', name: 'CHRONICLE_EXT_HTTP_PORT' });
    assert.equal(configuration.logLevel, 'warn');
  });

  it('the command line beats the environment', () => {
    const { configuration, sources } = resolved({ ...file, argv: [...file.argv!, '--ext-http-port', '5000'], env: { CHRONICLE_EXT_HTTP_PORT: '4000' } });
    assert.equal(configuration.extHttpPort, 5000);
    assert.deepEqual(sources.extHttpPort, { kind: 'command line', name: '--ext-http-port' });
  });

  it('a higher source replaces a list whole rather than merging it', () => {
    const configuration = configurationOf({ ...file, env: { CHRONICLE_GOSSIP_SEED: 'c.example:2112' } });
    assert.deepEqual(configuration.gossipSeeds, [{ host: 'c.example', port: 2112 }]);
  });

  it('a value that a higher source overrides is still checked', () => {
    assert.match(errorOf({ argv: ['--ext-http-port', '2113'], env: { CHRONICLE_EXT_HTTP_PORT: 'http' } }), /^CHRONICLE_EXT_HTTP_PORT: 'http' is not a port/);
    assert.match(errorOf({ ...yamlFile('ext-http-port: 0'), env: { CHRONICLE_EXT_HTTP_PORT: '3000' } }), /^ext-http-port in chronicle\.yaml: '0' is not a port/);
  });
});

describe('server configuration: invalid options are one line naming the option, exit code 2', () => {
  const cases: { what: string; inputs: Inputs; error: RegExp }[] = [
    { what: 'an unknown flag, with a suggestion', inputs: { argv: ['--ext-htp-port', '2113'] }, error: /^unknown option '--ext-htp-port' \(Did you mean --ext-http-port\?\)$/ },
    { what: 'an unknown flag in the = form', inputs: { argv: ['--frobnicate=1'] }, error: /unknown option '--frobnicate=1'/ },
    { what: 'a flag without its value', inputs: { argv: ['--db'] }, error: /option '--db <directory>' argument missing/ },
    { what: 'a stray argument', inputs: { argv: ['--mem-db=true', 'serve'] }, error: /^unexpected argument 'serve'/ },
    { what: 'port 0', inputs: { argv: ['--ext-http-port=0'] }, error: /^--ext-http-port: '0' is not a port \(an integer from 1 to 65535\)$/ },
    { what: 'port 65536', inputs: { argv: ['--int-http-port', '65536'] }, error: /^--int-http-port: '65536' is not a port/ },
    { what: 'a port with a fraction', inputs: { argv: ['--int-tcp-port', '1112.5'] }, error: /^--int-tcp-port: '1112.5' is not a port/ },
    { what: 'a negative port', inputs: { argv: ['--ext-tcp-port', '-1'] }, error: /^--ext-tcp-port: '-1' is not a port/ },
    { what: 'a port that is a word', inputs: { argv: ['--cluster-gossip-port=http'] }, error: /^--cluster-gossip-port: 'http' is not a port/ },
    { what: 'an IPv4 address with three parts', inputs: { argv: ['--ext-ip', '127.0.1'] }, error: /^--ext-ip: '127.0.1' is not an IPv4 or IPv6 address$/ },
    { what: 'a host name for an IP', inputs: { argv: ['--int-ip=localhost'] }, error: /^--int-ip: 'localhost' is not an IPv4 or IPv6 address$/ },
    { what: 'an even cluster size', inputs: { argv: ['--cluster-size=2'] }, error: /^--cluster-size: '2' is not an odd number of nodes/ },
    { what: 'cluster size 0', inputs: { argv: ['--cluster-size', '0'] }, error: /^--cluster-size: '0' is not an odd number/ },
    { what: 'a cluster size in words', inputs: { env: { CHRONICLE_CLUSTER_SIZE: 'three' } }, error: /^CHRONICLE_CLUSTER_SIZE: 'three' is not an odd number/ },
    { what: 'a gossip seed without a port', inputs: { argv: ['--gossip-seed', 'node1'] }, error: /^--gossip-seed: 'node1' is not host:port$/ },
    { what: 'a gossip seed with port 0', inputs: { argv: ['--gossip-seed', 'a.example:2112,b.example:0'] }, error: /^--gossip-seed: 'b.example:0': '0' is not a port/ },
    { what: 'an unbracketed IPv6 gossip seed', inputs: { argv: ['--gossip-seed=::1:2112'] }, error: /^--gossip-seed: '::1:2112': write an IPv6 address in brackets/ },
    { what: 'an empty gossip seed entry', inputs: { argv: ['--gossip-seed=a.example:2112,'] }, error: /^--gossip-seed: '' is not host:port$/ },
    { what: 'a gossip seed host that is no name', inputs: { argv: ['--gossip-seed=bad_host!:2112'] }, error: /^--gossip-seed: 'bad_host!:2112': 'bad_host!' is neither/ },
    { what: 'a cluster DNS name that is no name', inputs: { argv: ['--cluster-dns', 'my domain'] }, error: /^--cluster-dns: 'my domain' is not a DNS name$/ },
    { what: 'a boolean that is a word', inputs: { argv: ['--discover-via-dns=no'] }, error: /^--discover-via-dns: 'no' is not a boolean \(true, false, 1 or 0\)$/ },
    { what: 'a boolean flag followed by a word', inputs: { argv: ['--mem-db', 'yes'] }, error: /^--mem-db: 'yes' is not a boolean/ },
    { what: 'an environment boolean that is a word', inputs: { env: { CHRONICLE_MEM_DB: 'yes' } }, error: /^CHRONICLE_MEM_DB: 'yes' is not a boolean/ },
    { what: 'an empty --db', inputs: { argv: ['--db='] }, error: /^--db: a directory path must not be empty$/ },
    { what: 'an empty --log from the environment', inputs: { env: { CHRONICLE_LOG: '' } }, error: /^CHRONICLE_LOG: a directory path must not be empty$/ },
    { what: 'an unknown log level', inputs: { argv: ['--log-level', 'verbose'] }, error: /^--log-level: 'verbose' is not a log level \(fatal, error, warn, info, debug, trace\)$/ },
    { what: 'an append limit of 0', inputs: { argv: ['--max-append-size=0'] }, error: /^--max-append-size: '0' is not a number of bytes from 1 to 33554432$/ },
    { what: 'an append limit above the store\'s', inputs: { argv: ['--max-append-size', '33554433'] }, error: /^--max-append-size: '33554433' is not a number of bytes/ },
    { what: '--mem-db with --db', inputs: { argv: ['--mem-db', '--db', './data'] }, error: /^--mem-db cannot be combined with --db/ },
    { what: '--mem-db with a --db from the environment', inputs: { argv: ['--mem-db'], env: { CHRONICLE_DB: '/srv/db' } }, error: /^--mem-db cannot be combined with CHRONICLE_DB/ },
    { what: '--mem-db from the config file with --db', inputs: { ...yamlFile('MemDb: true'), argv: ['--config', 'chronicle.yaml', '--db', 'x'] }, error: /^MemDb in chronicle\.yaml cannot be combined with --db/ },
    { what: 'an unknown CHRONICLE_ variable, with a suggestion', inputs: { env: { CHRONICLE_EXT_HTTP_PROT: '2113' } }, error: /^unknown environment variable CHRONICLE_EXT_HTTP_PROT \(did you mean CHRONICLE_EXT_HTTP_PORT\?\)$/ },
    { what: 'an unknown CHRONICLE_ variable without a near name', inputs: { env: { CHRONICLE_THEME: 'dark' } }, error: /^unknown environment variable CHRONICLE_THEME$/ },
    { what: 'an unknown YAML key, with a suggestion', inputs: yamlFile('ExtHttpProt: 2113'), error: /^unknown key 'ExtHttpProt' in chronicle\.yaml \(did you mean ExtHttpPort\?\)$/ },
    { what: 'config as a YAML key', inputs: yamlFile('config: other.yaml'), error: /^unknown key 'config' in chronicle\.yaml/ },
    { what: 'an invalid YAML value', inputs: yamlFile('cluster-size: 4'), error: /^cluster-size in chronicle\.yaml: '4' is not an odd number/ },
    { what: 'a YAML boolean that is a word', inputs: yamlFile('insecure: yes'), error: /^insecure in chronicle\.yaml: 'yes' is not a boolean/ },
    { what: 'a YAML key without a value', inputs: yamlFile('ext-http-port:'), error: /^ext-http-port in chronicle\.yaml: has no value$/ },
    { what: 'a YAML mapping as a value', inputs: yamlFile('ext-http-port:\n  value: 1'), error: /^ext-http-port in chronicle\.yaml: must be a single value$/ },
    { what: 'a YAML list for a single value', inputs: yamlFile('ext-ip: [127.0.0.1]'), error: /^ext-ip in chronicle\.yaml: must be a single value$/ },
    { what: 'a YAML list of non-strings as seeds', inputs: yamlFile('gossip-seed: [2112]'), error: /^gossip-seed in chronicle\.yaml: every entry must be a host:port string$/ },
    { what: 'the same setting in both YAML styles', inputs: yamlFile('ext-http-port: 1\nExtHttpPort: 2'), error: /^ExtHttpPort in chronicle\.yaml: the file already sets it as ext-http-port$/ },
    { what: 'a YAML key given twice', inputs: yamlFile('db: a\ndb: b'), error: /^--config: 'chronicle\.yaml' is not valid YAML: Map keys must be unique/ },
    { what: 'YAML that does not parse', inputs: yamlFile('ext-http-port: [2113'), error: /^--config: 'chronicle\.yaml' is not valid YAML: / },
    { what: 'a YAML file that is a list', inputs: yamlFile('- ext-http-port: 2113'), error: /^--config: 'chronicle\.yaml' must be a YAML mapping of options/ },
    { what: 'a config file that cannot be read', inputs: { argv: ['--config', 'missing.yaml'] }, error: /^--config: cannot read 'missing\.yaml': ENOENT/ },
    { what: 'a CHRONICLE_CONFIG that cannot be read', inputs: { env: { CHRONICLE_CONFIG: 'missing.yaml' } }, error: /^CHRONICLE_CONFIG: cannot read 'missing\.yaml'/ },
    { what: 'an empty --config', inputs: { argv: ['--config='] }, error: /^--config: the path of the config file must not be empty$/ },
    { what: 'a cluster without a way to find its peers', inputs: { argv: ['--cluster-size', '3'] }, error: /^--cluster-dns is required when --cluster-size is 3 and --discover-via-dns is true/ },
    { what: 'gossip seeds while DNS discovery is on', inputs: { argv: ['--cluster-size=3', '--gossip-seed=a.example:2112'] }, error: /^--gossip-seed is used only with --discover-via-dns=false/ },
    { what: 'DNS discovery off without seeds', inputs: { env: { CHRONICLE_CLUSTER_SIZE: '5', CHRONICLE_DISCOVER_VIA_DNS: 'false' } }, error: /^--gossip-seed is required when CHRONICLE_CLUSTER_SIZE is 5 and CHRONICLE_DISCOVER_VIA_DNS is false$/ },
  ];
  for (const { what, inputs, error } of cases) {
    it(what, () => assert.match(errorOf(inputs), error));
  }

  it('cluster settings are not cross-checked for a node that runs alone', () => {
    assert.deepEqual(configurationOf({ argv: ['--gossip-seed=a.example:2112'] }).gossipSeeds, [{ host: 'a.example', port: 2112 }]);
    assert.equal(configurationOf({ argv: ['--discover-via-dns=false'] }).discoverViaDns, false);
  });

  it('--mem-db=false with --db is no conflict', () => {
    const configuration = configurationOf({ argv: ['--mem-db=false', '--db', '/srv/db'] });
    assert.equal(configuration.memDb, false);
    assert.equal(configuration.db, '/srv/db');
  });
});

describe('server configuration: --help and --version', () => {
  const helpOf = (argv: string[]): string => {
    const result = resolve({ argv });
    if (!('help' in result)) assert.fail(`expected help, got ${JSON.stringify(result)}`);
    return result.help;
  };

  it('--help lists every option with its default and states the precedence', () => {
    const help = helpOf(['--help']);
    for (const setting of SETTING_LIST) assert.match(help, new RegExp(`--${setting.flag} `), setting.flag);
    assert.match(help, /--config <file>/);
    assert.match(help, /default: 2113/);
    assert.match(help, /CHRONICLE_EXT_HTTP_PORT=2113/);
    assert.match(help, /ExtHttpPort: 2113/);
    assert.match(help, /command line > environment > config file > defaults/);
  });

  it('--help points cluster users to the operations guide and marks only what still waits (the legacy TCP port)', () => {
    const help = helpOf(['--help']);
    assert.match(help, /--cluster-size above 1 the node runs as a member of a cluster/);
    const pending = SETTING_LIST.filter((setting) => setting.pendingFeature !== undefined).map((setting) => setting.flag);
    assert.deepEqual(pending, ['ext-tcp-port']);
    assert.doesNotMatch(help, /\[cluster\]/);
  });

  it('-h is --help, and help wins over other options', () => {
    assert.equal(helpOf(['-h']), helpOf(['--help']));
    assert.equal(helpOf(['--ext-http-port', '3000', '--help']), helpOf(['--help']));
  });

  it('--version and -V give the version', () => {
    assert.deepEqual(resolve({ argv: ['--version'] }), { version: CHRONICLE_VERSION });
    assert.deepEqual(resolve({ argv: ['-V'] }), { version: CHRONICLE_VERSION });
  });

  it('the version is the one in package.json', async () => {
    assert.equal(CHRONICLE_VERSION, (await readPackageJson()).version);
  });
});

describe('server logger and start-up summary', () => {
  const cleanups: (() => Promise<void>)[] = [];
  after(async () => {
    for (const cleanup of cleanups) await cleanup();
  });

  it('the summary holds every setting, where the set ones came from, and which still wait for a feature (none of these)', () => {
    const { configuration, sources } = resolved({
      argv: ['--cluster-size', '3', '--gossip-seed', '[::1]:2112', '--discover-via-dns=false'],
      env: { CHRONICLE_EXT_HTTP_PORT: '4000' },
    });
    const summary = startupSummary(configuration, sources);
    assert.equal(summary.version, CHRONICLE_VERSION);
    assert.equal(summary.configuration.extHttpPort, 4000);
    assert.deepEqual(summary.configuration.gossipSeeds, ['[::1]:2112']);
    assert.deepEqual(summary.setBy, {
      extHttpPort: 'CHRONICLE_EXT_HTTP_PORT',
      clusterSize: '--cluster-size',
      discoverViaDns: '--discover-via-dns',
      gossipSeeds: '--gossip-seed',
    });
    assert.deepEqual(summary.notYetInEffect, {});
    assert.doesNotMatch(JSON.stringify(summary), /\n/);
  });

  it('writes JSON lines to stdout only when there is no log directory', () => {
    const lines: string[] = [];
    const { logger, logFile, close } = createServerLogger({ level: 'info', logDirectory: null, stdout: { write: (line: string) => void lines.push(line) } });
    logger.debug('hidden at info');
    logger.info({ answer: 42 }, 'hello');
    close();
    assert.equal(logFile, null);
    assert.equal(lines.length, 1);
    assert.deepEqual(pick(JSON.parse(lines[0]!) as Record<string, unknown>, ['level', 'msg', 'answer']), { level: 30, msg: 'hello', answer: 42 });
  });

  it('with a log directory writes the same lines to stdout and to chronicle.log there, creating the directory', async () => {
    const temp = await makeTempDirectory();
    cleanups.push(temp.remove);
    const logDirectory = join(temp.path, 'logs', 'node1');
    const lines: string[] = [];
    const { configuration, sources } = resolved({ argv: ['--log', logDirectory, '--log-level', 'debug'] });
    const { logger, logFile, close } = createServerLogger({ level: configuration.logLevel, logDirectory: configuration.logDirectory, stdout: { write: (line: string) => void lines.push(line) } });
    logStartup(logger, configuration, sources);
    logger.debug('shown at debug');
    close();
    assert.equal(logFile, join(logDirectory, LOG_FILE_NAME));
    const fileLines = (await readFile(logFile, 'utf8')).trimEnd().split('\n');
    assert.deepEqual(fileLines, lines.map((line) => line.trimEnd()));
    const startup = JSON.parse(fileLines[0]!) as { msg: string; configuration: ServerConfiguration; setBy: Record<string, string> };
    assert.equal(startup.msg, `starting Chronicle ${CHRONICLE_VERSION}`);
    assert.equal(startup.configuration.logDirectory, logDirectory);
    assert.equal(startup.setBy.logLevel, '--log-level');
    assert.equal((JSON.parse(fileLines[1]!) as { msg: string }).msg, 'shown at debug');
  });
});

/** The project's root, found upwards from this file whether it runs from the sources or a build. */
async function projectDirectory(): Promise<URL> {
  for (let directory = new URL('.', import.meta.url); directory.pathname !== '/'; directory = new URL('..', directory)) {
    try {
      const packageJson = JSON.parse(await readFile(new URL('package.json', directory), 'utf8')) as { name: string };
      if (packageJson.name === 'chronicle') return directory;
    } catch {
      // Not here; look one directory up.
    }
  }
  throw new Error('the directory of chronicle\'s package.json was not found');
}

async function readPackageJson(): Promise<{ version: string }> {
  return JSON.parse(await readFile(new URL('package.json', await projectDirectory()), 'utf8')) as { version: string };
}

function pick(object: Record<string, unknown>, keys: string[]): Record<string, unknown> {
  return Object.fromEntries(keys.map((key) => [key, object[key]]));
}
