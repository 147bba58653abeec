/**
 * Chronicle's version as `--version` prints it and the start-up log records it. It matches
 * package.json; the CLI keeps its own copy until it imports this one.
 */
export const CHRONICLE_VERSION = '0.1.0';
