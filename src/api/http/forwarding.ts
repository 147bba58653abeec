import type { IncomingMessage, ServerResponse } from 'node:http';
import { internalRequest, NotDeliveredError, readBody } from '../../cluster/internal-http.js';
import type { InternalTls } from '../../cluster/peer-transport.js';
import type { Replica } from '../../cluster/replica.js';
import { ChronicleError, ERROR_REGISTRY, type ErrorCode } from '../../errors.js';
import { executeCommand, isWrite, type Command, type Outcome } from './commands.js';

/**
 * Forwarding between nodes: a follower that receives a request only the leader may serve sends
 * the parsed command to the leader's internal HTTP interface (`POST /http-api/command`), and the
 * leader answers with the HTTP outcome it would have given the client itself, or with the error it
 * failed with, or with a refusal when it is not (or no longer) the leader and did nothing.
 */
export const FORWARD_PATH = '/http-api/command';

/** What came back from forwarding a command. */
export type ForwardResult =
  | { kind: 'answer'; outcome: Outcome }
  | { kind: 'error'; error: ChronicleError }
  /** The receiver is not the leader and ran nothing: safe to send again elsewhere. */
  | { kind: 'refused' }
  /** The request never left (connection refused): safe to send again. */
  | { kind: 'not-delivered'; reason: string }
  /** The request left and no answer came: it may or may not have run. */
  | { kind: 'no-answer'; reason: string };

type Answer = { outcome: Outcome } | { error: { code: string; message: string; details: Record<string, unknown> } } | { refused: string };

export interface ForwarderOptions {
  tls: InternalTls | undefined;
  timeoutMs: number;
  maxAnswerBytes: number;
}

export async function forwardCommand(leaderId: string, command: Command, options: ForwarderOptions): Promise<ForwardResult> {
  let text: string;
  try {
    const answer = await internalRequest({
      to: leaderId,
      method: 'POST',
      path: FORWARD_PATH,
      body: JSON.stringify({ command }),
      tls: options.tls,
      timeoutMs: options.timeoutMs,
      maxAnswerBytes: options.maxAnswerBytes,
    });
    if (answer.status !== 200) return { kind: 'no-answer', reason: `the leader answered the forwarded request with HTTP ${answer.status}` };
    text = answer.text;
  } catch (error) {
    if (error instanceof NotDeliveredError) return { kind: 'not-delivered', reason: error.message };
    return { kind: 'no-answer', reason: (error as Error).message };
  }
  let answer: Answer;
  try {
    answer = JSON.parse(text) as Answer;
  } catch {
    return { kind: 'no-answer', reason: 'the leader answered the forwarded request with something that is not JSON' };
  }
  if ('outcome' in answer) return { kind: 'answer', outcome: answer.outcome };
  if ('refused' in answer) return { kind: 'refused' };
  const code = (answer.error.code in ERROR_REGISTRY ? answer.error.code : 'INTERNAL_ERROR') as ErrorCode;
  return { kind: 'error', error: new ChronicleError(code, answer.error.message, answer.error.details) };
}

const COMMAND_KINDS = new Set(['append', 'delete', 'set-metadata', 'read-stream', 'read-all', 'get-metadata']);

/**
 * The leader's side, on the internal HTTP interface. Only a node that takes writes runs a
 * forwarded command (reads after a read-index barrier, as a leader read must be); any other node
 * refuses without acting, so the follower can look for the new leader and send it again.
 */
export function forwardedCommandHandler(replica: Replica, maxBodyBytes: number): (request: IncomingMessage, response: ServerResponse) => boolean {
  return (request, response) => {
    if (request.method !== 'POST' || request.url !== FORWARD_PATH) return false;
    void answerForwarded(replica, request, response, maxBodyBytes);
    return true;
  };
}

async function answerForwarded(replica: Replica, request: IncomingMessage, response: ServerResponse, maxBodyBytes: number): Promise<void> {
  const reply = (answer: Answer) => response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(answer));
  let command: Command;
  try {
    const body = await readBody(request, response, maxBodyBytes);
    if (body === undefined) return;
    command = (JSON.parse(body) as { command: Command }).command;
    if (typeof command !== 'object' || command === null || !COMMAND_KINDS.has(command.kind)) throw new Error('not a command');
  } catch {
    if (!response.headersSent) response.writeHead(400, { 'content-type': 'application/json' }).end(JSON.stringify({ error: 'the body is not a forwarded command' }));
    return;
  }
  if (!replica.writable) {
    reply({ refused: 'this node is not the leader' });
    return;
  }
  try {
    if (!isWrite(command)) await replica.linearizableReadBarrier();
    reply({ outcome: await executeCommand(replica.store, command) });
  } catch (error) {
    const failure = error instanceof ChronicleError ? error : new ChronicleError('INTERNAL_ERROR', 'the forwarded request failed inside the leader');
    reply({ error: { code: failure.code, message: failure.message, details: { ...failure.details } } });
  }
}
