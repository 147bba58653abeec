#!/usr/bin/env node
// `npm run cluster`: the seed's three-node cluster on one machine, with our binary in place of
// EventStore.ClusterNode.exe (and --insecure: a node without TLS says so). Logs go to
// ./logs/log1..3 and to this terminal; Ctrl-C stops the three nodes.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const binary = fileURLToPath(new URL('../bin/chronicle', import.meta.url));
const lines = [
  '--mem-db --log ./logs/log1 --int-ip 127.0.0.1 --ext-ip 127.0.0.1 --int-tcp-port=1111 --ext-tcp-port=1112 --int-http-port=1113 --ext-http-port=1114 --cluster-size=3 --discover-via-dns=false --gossip-seed=127.0.0.1:2113,127.0.0.1:3113',
  '--mem-db --log ./logs/log2 --int-ip 127.0.0.1 --ext-ip 127.0.0.1 --int-tcp-port=2111 --ext-tcp-port=2112 --int-http-port=2113 --ext-http-port=2114 --cluster-size=3 --discover-via-dns=false --gossip-seed=127.0.0.1:1113,127.0.0.1:3113',
  '--mem-db --log ./logs/log3 --int-ip 127.0.0.1 --ext-ip 127.0.0.1 --int-tcp-port=3111 --ext-tcp-port=3112 --int-http-port=3113 --ext-http-port=3114 --cluster-size=3 --discover-via-dns=false --gossip-seed=127.0.0.1:1113,127.0.0.1:2113',
];
const extra = process.argv.slice(2);
const children = lines.map((line, i) => {
  const child = spawn(process.execPath, [binary, '--insecure', ...line.split(' '), ...extra], { stdio: ['ignore', 'inherit', 'inherit'] });
  child.on('exit', (code, signal) => console.error(`node ${i + 1} (pid ${child.pid}) exited: ${signal ?? code}`));
  return child;
});
console.error('three nodes started; clients: kurrentdb://127.0.0.1:1114,127.0.0.1:2114,127.0.0.1:3114?tls=false');
let stopping = false;
const stop = () => {
  if (stopping) return;
  stopping = true;
  for (const child of children) if (child.exitCode === null) child.kill('SIGTERM');
};
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
await Promise.all(children.map((child) => new Promise((resolve) => (child.exitCode !== null ? resolve() : child.once('exit', resolve)))));
