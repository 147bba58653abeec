import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RaftNode } from '../../src/consensus/raft.js';

function follower(penaltyTicks: number): RaftNode<string> {
  const node = new RaftNode<string>(
    { id: 'a', electionTicks: 10, heartbeatTicks: 1, maxEntriesPerAppend: 64, maxInflightAppends: 4, maxAutoTruncateEntries: 1000, preVote: true, checkQuorum: true, random: () => 0.5 },
    { hardState: { term: 1, votedFor: undefined }, termRuns: [], lastIndex: 0, configurations: [], bootstrap: { voters: ['a', 'b', 'c'], learners: [] }, committedIndex: 0 },
  );
  node.setElectionPenalty(penaltyTicks);
  return node;
}

/** Ticks until the node starts an election; the number of ticks it took. */
function ticksToCampaign(node: RaftNode<string>): number {
  for (let tick = 1; tick <= 1000; tick++) {
    node.tick();
    if (node.status.role !== 'follower') return tick;
  }
  throw new Error('never campaigned');
}

describe('Raft: node priority as an election penalty', () => {
  it('a node with a penalty campaigns exactly that many ticks later than without', () => {
    const plain = ticksToCampaign(follower(0));
    assert.equal(plain, 15, 'electionTicks + half of it (random 0.5)');
    assert.equal(ticksToCampaign(follower(20)), plain + 20);
  });

  it('refuses a penalty that is not a whole number of ticks', () => {
    assert.throws(() => follower(0).setElectionPenalty(-1), RangeError);
    assert.throws(() => follower(0).setElectionPenalty(1.5), RangeError);
  });
});

describe('Raft: a node that may have lost its votes stays out of elections', () => {
  it('neither campaigns nor grants (pre-)votes until allowed again', () => {
    const node = follower(0);
    node.setVotingAllowed(false);
    for (let tick = 0; tick < 100; tick++) node.tick();
    assert.equal(node.status.role, 'follower', 'it never campaigned');
    node.takeEffects();
    node.receive('b', { kind: 'pre-vote', term: 2, lastIndex: 0, lastTerm: 0 });
    node.receive('b', { kind: 'vote', term: 2, lastIndex: 0, lastTerm: 0, transfer: false });
    const refused = node.takeEffects().messages.map((envelope) => envelope.message);
    assert.deepEqual(refused.map((message) => (message.kind === 'vote-response' ? message.granted : undefined)), [false, false]);

    node.setVotingAllowed(true);
    node.receive('c', { kind: 'vote', term: 3, lastIndex: 0, lastTerm: 0, transfer: false });
    const granted = node.takeEffects().messages.map((envelope) => envelope.message);
    assert.deepEqual(granted.map((message) => (message.kind === 'vote-response' ? message.granted : undefined)), [true]);
  });
});
