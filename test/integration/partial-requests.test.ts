import assert from 'node:assert/strict';
import http2 from 'node:http2';
import { after, before, test } from 'node:test';
import { frameMessage, MessageDeframer } from '../../src/api/grpc/framing.js';
import { codecOf, streamIdentifier, uuidToMessage, type Message } from '../../src/api/grpc/protocol.js';
import { ServerProcess, stopAllServers } from './server-process.js';
import { uniqueStream } from './support.js';

/**
 * Requests that never finish must not act: an Append whose connection drops, or whose deadline
 * passes, before it half-closes commits nothing; a BatchAppend append that fails on its first
 * chunk is answered once, however many chunks follow.
 */
const APPEND = '/event_store.client.streams.Streams/Append';
const BATCH_APPEND = '/event_store.client.streams.Streams/BatchAppend';
const appendRequest = codecOf('event_store.client.streams.AppendReq');
const appendResponse = codecOf('event_store.client.streams.AppendResp');
const batchRequest = codecOf('event_store.client.streams.BatchAppendReq');
const batchResponse = codecOf('event_store.client.streams.BatchAppendResp');

let server: ServerProcess;
let session: http2.ClientHttp2Session;

before(async () => {
  server = await ServerProcess.start({ extraArgs: ['--max-append-size', '1000'] });
  session = http2.connect(`http://127.0.0.1:${server.port}`);
});

after(async () => {
  session.close();
  await stopAllServers();
});

const event = (type: string, bytes = 10): Message => ({
  id: uuidToMessage(crypto.randomUUID(), false),
  metadata: { type, 'content-type': 'application/octet-stream' },
  data: Buffer.alloc(bytes, 1),
});

function open(path: string, headers: Record<string, string> = {}): http2.ClientHttp2Stream {
  return session.request({ ':method': 'POST', ':path': path, 'content-type': 'application/grpc', te: 'trailers', ...headers });
}

/** A complete Append; resolves with its response message and grpc-status. */
async function append(stream: string, expected: Message): Promise<{ response: Message | undefined; status: string | undefined }> {
  const call = open(APPEND);
  const deframer = new MessageDeframer(1 << 20);
  let response: Message | undefined;
  call.on('data', (chunk: Buffer) => {
    for (const bytes of deframer.push(chunk)) response = appendResponse.decode(bytes);
  });
  call.write(frameMessage(appendRequest.encode({ options: { stream_identifier: streamIdentifier(stream), ...expected } })));
  call.end(frameMessage(appendRequest.encode({ proposed_message: event('Complete') })));
  const status = await new Promise<string | undefined>((resolve) => {
    call.on('response', (headers) => {
      if (headers['grpc-status'] !== undefined) resolve(headers['grpc-status'] as string);
    });
    call.on('trailers', (trailers) => resolve(trailers['grpc-status'] as string | undefined));
  });
  return { response, status };
}

test('an Append whose connection drops before it finished sending writes nothing', async () => {
  const stream = uniqueStream('dropped');
  const doomed = http2.connect(`http://127.0.0.1:${server.port}`);
  doomed.on('error', () => undefined);
  const call = doomed.request({ ':method': 'POST', ':path': APPEND, 'content-type': 'application/grpc', te: 'trailers' });
  call.on('error', () => undefined);
  call.write(frameMessage(appendRequest.encode({ options: { stream_identifier: streamIdentifier(stream), any: {} } })));
  call.write(frameMessage(appendRequest.encode({ proposed_message: event('Partial') })));
  await new Promise((resolve) => setTimeout(resolve, 200));
  doomed.destroy();
  await new Promise((resolve) => setTimeout(resolve, 200));
  const { response } = await append(stream, { no_stream: {} });
  assert.equal(response?.result, 'success', 'the stream must still be empty');
});

test('an Append whose deadline passes before it finished sending writes nothing', async () => {
  const stream = uniqueStream('deadline');
  const call = open(APPEND, { 'grpc-timeout': '200m' });
  call.on('error', () => undefined);
  // A call that fails before any response may get a trailers-only answer: the status is then in the headers.
  const status = new Promise<string | undefined>((resolve) => {
    call.on('response', (headers) => {
      if (headers['grpc-status'] !== undefined) resolve(headers['grpc-status'] as string);
    });
    call.on('trailers', (trailers) => resolve(trailers['grpc-status'] as string | undefined));
  });
  call.write(frameMessage(appendRequest.encode({ options: { stream_identifier: streamIdentifier(stream), any: {} } })));
  call.write(frameMessage(appendRequest.encode({ proposed_message: event('Partial') })));
  assert.equal(await status, '4');
  await new Promise((resolve) => setTimeout(resolve, 100));
  call.close();
  const { response } = await append(stream, { no_stream: {} });
  assert.equal(response?.result, 'success', 'the stream must still be empty');
});

test('a batch append that fails on its first chunk is answered once, naming its stream', async () => {
  const stream = uniqueStream('batch');
  const call = open(BATCH_APPEND);
  const deframer = new MessageDeframer(1 << 20);
  const answers: Message[] = [];
  call.on('data', (chunk: Buffer) => {
    for (const bytes of deframer.push(chunk)) answers.push(batchResponse.decode(bytes));
  });
  const correlation = uuidToMessage(crypto.randomUUID(), false);
  call.write(frameMessage(batchRequest.encode({ correlation_id: correlation, options: { stream_identifier: streamIdentifier(stream), any: {} }, proposed_messages: [event('Big', 2000)], is_final: false })));
  call.write(frameMessage(batchRequest.encode({ correlation_id: correlation, proposed_messages: [event('More', 10)], is_final: false })));
  call.write(frameMessage(batchRequest.encode({ correlation_id: correlation, proposed_messages: [event('Last', 10)], is_final: true })));
  const next = uuidToMessage(crypto.randomUUID(), false);
  call.write(frameMessage(batchRequest.encode({ correlation_id: next, options: { stream_identifier: streamIdentifier(stream), any: {} }, proposed_messages: [event('Fine', 10)], is_final: true })));
  const deadline = Date.now() + 5000;
  while (answers.length < 2 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
  await new Promise((resolve) => setTimeout(resolve, 200));
  call.close();
  assert.equal(answers.length, 2, JSON.stringify(answers.map((answer) => answer.result)));
  assert.equal(answers[0]!.result, 'error');
  assert.equal(Buffer.from(answers[0]!.stream_identifier.stream_name).toString(), stream);
  assert.equal(answers[1]!.result, 'success');
});
