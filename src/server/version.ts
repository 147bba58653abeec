/**
 * Chronicle's version as `--version` prints it and the start-up log records it. It matches
 * package.json; the CLI keeps its own copy until it imports this one.
 */
export const CHRONICLE_VERSION = '0.1.0';

/**
 * The KurrentDB protocol level Chronicle implements, reported to clients as the server version in
 * ServerFeatures: the official clients compare it (semver) to decide which calls and options a
 * server understands, so it names the protocol, not Chronicle's own release.
 */
export const PROTOCOL_COMPATIBILITY_VERSION = '24.10.0';
