import { Command, CommanderError, Option } from 'commander';
import { parseDocument } from 'yaml';
import {
  CONFIG_ENVIRONMENT_VARIABLE,
  CONFIG_FLAG,
  ENVIRONMENT_PREFIX,
  SETTING_LIST,
  SETTINGS,
  closestName,
  environmentVariableOf,
  pascalCaseYamlKeyOf,
  yamlKeyOf,
  type PendingFeature,
  type SettingDefinition,
  type SettingKey,
} from './settings.js';
import type { GossipSeed, LogLevel } from './setting-values.js';
import { CHRONICLE_VERSION } from './version.js';

export type { GossipSeed, LogLevel } from './setting-values.js';
export type { SettingKey } from './settings.js';

/**
 * Everything a node needs to know to start, resolved from the command line, the environment, the
 * config file and the defaults (in that order of precedence; see `resolveConfiguration`).
 * Paths are as given: resolving them against the working directory is the caller's job.
 */
export interface ServerConfiguration {
  /** Keep the log and the index in memory (`--mem-db`). */
  readonly memDb: boolean;
  /** Directory of the log and the index; unused with `memDb`. */
  readonly db: string;
  /** Directory that receives `chronicle.log` besides stdout, or null for stdout only. */
  readonly logDirectory: string | null;
  readonly logLevel: LogLevel;
  readonly intIp: string;
  readonly extIp: string;
  readonly intTcpPort: number;
  readonly extTcpPort: number;
  readonly intHttpPort: number;
  readonly extHttpPort: number;
  readonly intTcpPortAdvertiseAs: number | null;
  readonly clusterSize: number;
  readonly readOnlyReplica: boolean;
  readonly discoverViaDns: boolean;
  readonly gossipSeeds: readonly GossipSeed[];
  readonly clusterDns: string | null;
  readonly clusterGossipPort: number;
  readonly clusterDnsServer: GossipSeed | null;
  readonly clusterFormTimeoutMs: number;
  readonly clusterFormMandatory: boolean;
  readonly writeTimeoutMs: number;
  readonly appendBatchDelayMs: number;
  readonly insecure: boolean;
  /** PEM certificate (and chain) of the external interface; TLS is on when it is set and `insecure` is not. */
  readonly certificateFile: string | null;
  readonly certificatePrivateKeyFile: string | null;
  readonly trustedRootCertificateFile: string | null;
  readonly maxAppendSizeBytes: number;
  /** The YAML file the settings were read from, or null if none was named. */
  readonly configFile: string | null;
}

/** Where a setting's value came from; `name` is the option as the user wrote it there. */
export type SettingSource =
  | { readonly kind: 'command line'; readonly name: string }
  | { readonly kind: 'environment'; readonly name: string }
  | { readonly kind: 'config file'; readonly name: string; readonly file: string }
  | { readonly kind: 'default' };

export type ConfigurationSources = { readonly [K in SettingKey]: SettingSource };

export const CONFIGURATION_EXIT_CODE = 2;

export type ConfigurationResolution =
  | { configuration: ServerConfiguration; sources: ConfigurationSources }
  /** One line, no trailing newline, naming the option at fault. Print it and exit with `exitCode`. */
  | { error: string; exitCode: typeof CONFIGURATION_EXIT_CODE }
  /** The text of --help, to print on stdout before exiting with 0. */
  | { help: string }
  | { version: string };

export interface ConfigurationInputs {
  /** The arguments after the program name: `process.argv.slice(2)`. */
  argv: readonly string[];
  /** `process.env`; only the CHRONICLE_* variables are read. */
  env: Readonly<Record<string, string | undefined>>;
  /** Reads the --config file as UTF-8 text, and throws if it cannot. */
  readFile: (path: string) => string;
}

export const DEFAULT_CONFIGURATION: ServerConfiguration = Object.freeze({
  ...(Object.fromEntries(SETTING_LIST.map((setting) => [setting.key, setting.defaultValue])) as Omit<ServerConfiguration, 'configFile'>),
  gossipSeeds: Object.freeze([]),
  configFile: null,
});

/** A value as a source gave it, before parsing: scalars are text, lists are already joined. */
interface GivenSetting {
  setting: SettingDefinition;
  text: string;
  source: Exclude<SettingSource, { kind: 'default' }>;
}

class ConfigurationError extends Error {}

/**
 * Resolves the server's configuration. Pure: it reads only its inputs, and the file named by
 * --config (or CHRONICLE_CONFIG) through `readFile`.
 *
 * Precedence, setting by setting: command line > environment > config file > defaults. A higher
 * source replaces a lower one's value whole (a list of gossip seeds is not merged). Every value
 * given anywhere is checked, also one a higher source overrides, so a mistake never waits for
 * the day the override is removed.
 */
export function resolveConfiguration(inputs: ConfigurationInputs): ConfigurationResolution {
  try {
    const commandLine = readCommandLine(inputs.argv);
    if ('help' in commandLine || 'version' in commandLine) return commandLine;
    const environment = readEnvironment(inputs.env);
    const configPath = commandLine.configPath ?? environment.configPath;
    const file = configPath === undefined ? [] : readConfigFile(configPath, inputs.readFile);
    return combine([...file, ...environment.given, ...commandLine.given], configPath?.path ?? null);
  } catch (error) {
    if (error instanceof ConfigurationError) return { error: oneLine(error.message), exitCode: CONFIGURATION_EXIT_CODE };
    throw error;
  }
}

/** How a setting is named in error messages: as the user wrote it. */
function nameIn(source: GivenSetting['source']): string {
  return source.kind === 'config file' ? `${source.name} in ${source.file}` : source.name;
}

function oneLine(text: string): string {
  return text.trim().replace(/\s*\n\s*/g, ' ');
}

interface ConfigPath {
  path: string;
  /** The flag or variable that named the file, for error messages. */
  name: string;
}

// ---------------------------------------------------------------------------------------------
// The command line

function pendingNote(feature: PendingFeature | undefined): string {
  if (feature !== undefined) return ` [takes effect when the ${feature} lands]`;
  return '';
}

const HELP_FOOTER = `
Every option can also be set as an environment variable, ${ENVIRONMENT_PREFIX}<OPTION>
(${environmentVariableOf(SETTINGS.extHttpPort)}=2113), or as a key of the YAML file named by
--config or ${CONFIG_ENVIRONMENT_VARIABLE} (ext-http-port: 2113; the KurrentDB style
ExtHttpPort: 2113 is accepted too).
Precedence, option by option: command line > environment > config file > defaults.
Booleans take true, false, 1 or 0; a boolean flag alone means true.

With --cluster-size above 1 the node runs as a member of a cluster (docs/operations.md).`;

const HELP_WIDTH_COLUMNS = 100;

function buildCommand(output: { text: string }): Command {
  const command = new Command('chronicle')
    .description('Run a Chronicle node: a clustered event store compatible with the KurrentDB clients.')
    .version(CHRONICLE_VERSION, '-V, --version', 'print the version and exit')
    .helpOption('-h, --help', 'print this help and exit')
    .exitOverride()
    // Stray words are reported by name below, which commander's count of arguments does not do.
    .allowExcessArguments(true)
    // Help is returned, not printed, and laid out the same whatever terminal the process has, so
    // resolving stays a function of its inputs.
    .configureOutput({
      writeOut: (text) => {
        output.text += text;
      },
      writeErr: () => {},
      outputError: () => {},
      getOutHelpWidth: () => HELP_WIDTH_COLUMNS,
      getOutHasColors: () => false,
    })
    .addHelpText('after', HELP_FOOTER);
  for (const setting of SETTING_LIST) {
    const description = `${setting.description} (default: ${setting.defaultText})${pendingNote(setting.pendingFeature)}`;
    const option = new Option(`--${setting.flag} ${setting.valueName}`, description);
    if (setting.kind === 'list') {
      option.argParser((value: string, previous: string | undefined) => (previous === undefined ? value : `${previous},${value}`));
    }
    command.addOption(option);
  }
  command.option(`--${CONFIG_FLAG} <file>`, 'read options from this YAML file');
  return command;
}

type CommandLine = { given: GivenSetting[]; configPath: ConfigPath | undefined } | { help: string } | { version: string };

function readCommandLine(argv: readonly string[]): CommandLine {
  const output = { text: '' };
  const command = buildCommand(output);
  try {
    command.parse([...argv], { from: 'user' });
  } catch (error) {
    if (!(error instanceof CommanderError)) throw error;
    if (error.code === 'commander.helpDisplayed') return { help: output.text };
    if (error.code === 'commander.version') return { version: CHRONICLE_VERSION };
    throw new ConfigurationError(error.message.replace(/^error: /, ''));
  }
  const stray = command.args[0];
  if (stray !== undefined) throw new ConfigurationError(`unexpected argument '${stray}' (options start with --; see --help)`);
  const values = command.opts<Record<string, string | true | undefined>>();
  const given: GivenSetting[] = [];
  for (const setting of SETTING_LIST) {
    const value = values[attributeNameOf(setting.flag)];
    if (value === undefined) continue;
    given.push({ setting, text: value === true ? 'true' : value, source: { kind: 'command line', name: `--${setting.flag}` } });
  }
  const configPath = values[attributeNameOf(CONFIG_FLAG)];
  return {
    given,
    configPath: typeof configPath === 'string' ? { path: configPath, name: `--${CONFIG_FLAG}` } : undefined,
  };
}

/** The key under which commander stores a flag's value: `ext-http-port` → `extHttpPort`. */
function attributeNameOf(flag: string): string {
  return flag.replace(/-([a-z])/g, (_, letter: string) => letter.toUpperCase());
}

// ---------------------------------------------------------------------------------------------
// The environment

const SETTINGS_BY_ENVIRONMENT_VARIABLE = new Map(SETTING_LIST.map((setting) => [environmentVariableOf(setting), setting]));

function readEnvironment(env: ConfigurationInputs['env']): { given: GivenSetting[]; configPath: ConfigPath | undefined } {
  const given: GivenSetting[] = [];
  let configPath: ConfigPath | undefined;
  // Sorted, so that of several mistakes the same one is reported whatever the order of the environment.
  for (const name of Object.keys(env).sort()) {
    const text = env[name];
    if (!name.startsWith(ENVIRONMENT_PREFIX) || text === undefined) continue;
    if (name === CONFIG_ENVIRONMENT_VARIABLE) {
      configPath = { path: text, name };
      continue;
    }
    const setting = SETTINGS_BY_ENVIRONMENT_VARIABLE.get(name);
    if (setting === undefined) {
      const suggestion = closestName(name, [...SETTINGS_BY_ENVIRONMENT_VARIABLE.keys(), CONFIG_ENVIRONMENT_VARIABLE]);
      throw new ConfigurationError(`unknown environment variable ${name}${suggestion ? ` (did you mean ${suggestion}?)` : ''}`);
    }
    given.push({ setting, text, source: { kind: 'environment', name } });
  }
  return { given, configPath };
}

// ---------------------------------------------------------------------------------------------
// The config file

const SETTINGS_BY_YAML_KEY = new Map(
  SETTING_LIST.flatMap((setting) => [
    [yamlKeyOf(setting), setting],
    [pascalCaseYamlKeyOf(setting), setting],
  ]),
);

function readConfigFile(configPath: ConfigPath, readFile: ConfigurationInputs['readFile']): GivenSetting[] {
  const { path, name } = configPath;
  if (path === '') throw new ConfigurationError(`${name}: the path of the config file must not be empty`);
  let text: string;
  try {
    text = readFile(path);
  } catch (error) {
    throw new ConfigurationError(`${name}: cannot read '${path}': ${error instanceof Error ? error.message : String(error)}`);
  }
  const document = parseDocument(text);
  const syntaxError = document.errors[0];
  if (syntaxError !== undefined) {
    const firstLine = syntaxError.message.split('\n')[0] ?? '';
    throw new ConfigurationError(`${name}: '${path}' is not valid YAML: ${firstLine.replace(/:$/, '')}`);
  }
  let contents: unknown;
  try {
    contents = document.toJS();
  } catch (error) {
    // The yaml package refuses documents whose aliases would expand without bound.
    throw new ConfigurationError(`${name}: '${path}' cannot be read as YAML: ${error instanceof Error ? error.message : String(error)}`);
  }
  if (contents === null || contents === undefined) return [];
  if (typeof contents !== 'object' || Array.isArray(contents)) {
    throw new ConfigurationError(`${name}: '${path}' must be a YAML mapping of options (ext-http-port: 2113)`);
  }
  const given: GivenSetting[] = [];
  const keyOfSetting = new Map<SettingDefinition, string>();
  for (const [key, value] of Object.entries(contents)) {
    const setting = SETTINGS_BY_YAML_KEY.get(key);
    if (setting === undefined) {
      const suggestion = closestName(key, [...SETTINGS_BY_YAML_KEY.keys()]);
      throw new ConfigurationError(`unknown key '${key}' in ${path}${suggestion ? ` (did you mean ${suggestion}?)` : ''}`);
    }
    const earlierKey = keyOfSetting.get(setting);
    if (earlierKey !== undefined) throw new ConfigurationError(`${key} in ${path}: the file already sets it as ${earlierKey}`);
    keyOfSetting.set(setting, key);
    const source = { kind: 'config file', name: key, file: path } as const;
    given.push({ setting, text: yamlValueText(setting, value, nameIn(source)), source });
  }
  return given;
}

/** The text of a YAML value: scalars as written, a sequence (for a list setting) joined by commas. */
function yamlValueText(setting: SettingDefinition, value: unknown, name: string): string {
  if (value === null || value === undefined) throw new ConfigurationError(`${name}: has no value`);
  if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (Array.isArray(value) && setting.kind === 'list') {
    return value
      .map((item: unknown) => {
        if (typeof item !== 'string') throw new ConfigurationError(`${name}: every entry must be a host:port string`);
        return item;
      })
      .join(',');
  }
  throw new ConfigurationError(`${name}: must be a single value${setting.kind === 'list' ? ' or a list of host:port strings' : ''}`);
}

// ---------------------------------------------------------------------------------------------
// Combining the sources

type Resolved = { -readonly [K in keyof ServerConfiguration]: ServerConfiguration[K] };

/** `given` runs from the lowest source to the highest, so a later value replaces an earlier one. */
function combine(given: readonly GivenSetting[], configFile: string | null): ConfigurationResolution {
  const configuration: Resolved = { ...DEFAULT_CONFIGURATION, gossipSeeds: [], configFile };
  const sources = Object.fromEntries(SETTING_LIST.map((setting) => [setting.key, { kind: 'default' }])) as Record<SettingKey, SettingSource>;
  for (const { setting, text, source } of given) {
    const parsed = setting.parse(text);
    if (!parsed.ok) throw new ConfigurationError(`${nameIn(source)}: ${parsed.reason}`);
    (configuration as Record<SettingKey, unknown>)[setting.key] = parsed.value;
    sources[setting.key] = source;
  }
  if (sources.clusterGossipPort.kind === 'default') configuration.clusterGossipPort = configuration.intHttpPort;
  checkCombinations(configuration, sources);
  return { configuration, sources };
}

/** The name under which a setting was given, or its flag if it was not. */
function nameOf(key: SettingKey, sources: ConfigurationSources): string {
  const source = sources[key];
  return source.kind === 'default' ? `--${SETTINGS[key].flag}` : nameIn(source);
}

/** Settings that are each valid but contradict one another. */
function checkCombinations(configuration: ServerConfiguration, sources: ConfigurationSources): void {
  if (configuration.memDb && sources.db.kind !== 'default') {
    throw new ConfigurationError(`${nameOf('memDb', sources)} cannot be combined with ${nameOf('db', sources)}: an in-memory node has no data directory`);
  }
  if (configuration.clusterSize === 1) return;
  const clusterSize = `${nameOf('clusterSize', sources)} is ${configuration.clusterSize}`;
  if (configuration.discoverViaDns && configuration.clusterDns === null) {
    if (configuration.gossipSeeds.length > 0) {
      throw new ConfigurationError(
        `${nameOf('gossipSeeds', sources)} is used only with --discover-via-dns=false (DNS discovery is on by default): pass --discover-via-dns=false, or --cluster-dns instead of seeds`,
      );
    }
    throw new ConfigurationError(`--cluster-dns is required when ${clusterSize} and --discover-via-dns is true (or pass --discover-via-dns=false with --gossip-seed)`);
  }
  if (!configuration.discoverViaDns && configuration.gossipSeeds.length === 0) {
    throw new ConfigurationError(`--gossip-seed is required when ${clusterSize} and ${nameOf('discoverViaDns', sources)} is false`);
  }
}
