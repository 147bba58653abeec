import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { VoteRequest } from '../../src/consensus/types.js';
import {
  all,
  appendRefusals,
  appendsWithEntries,
  Cluster,
  from,
  ofKind,
  to,
  type ClusterOptions,
  type SimEnvelope,
} from '../helpers/raft-harness.js';

const ELECTION_TICKS = 10;
const HEARTBEAT_TICKS = 2;
const VOTERS = ['a', 'b', 'c'];

function threeNodes(options: Partial<ClusterOptions> = {}): Cluster {
  return new Cluster({ voters: VOTERS, electionTicks: ELECTION_TICKS, heartbeatTicks: HEARTBEAT_TICKS, ...options });
}

/** The voters other than `id`, in membership order. */
function othersThan(cluster: Cluster, id: string): string[] {
  return cluster.membership.voters.filter((voter) => voter !== id);
}

function assertSafe(cluster: Cluster): void {
  assert.deepEqual(cluster.violations, [], 'no two nodes applied different entries at one index');
}

describe('Raft: elections', () => {
  for (const seed of [1, 2, 3, 4, 5]) {
    it(`a three-node cluster elects exactly one leader, whom the others follow (seed ${seed})`, () => {
      const cluster = threeNodes({ seed });
      const leader = cluster.tickUntilLeader();
      assert.deepEqual(cluster.leaders(), [leader]);
      const { term } = cluster.status(leader);
      for (const id of othersThan(cluster, leader)) {
        assert.equal(cluster.status(id).role, 'follower');
        assert.equal(cluster.status(id).term, term);
        assert.equal(cluster.status(id).leader, leader);
      }

      cluster.tickAll(ELECTION_TICKS * 10);
      assert.deepEqual(cluster.leaders(), [leader], 'a leader that is heard from keeps leading');
      assert.equal(cluster.status(leader).term, term);
    });
  }

  it('the leader opens its term with a noop and records the bootstrap membership when the log has none', () => {
    const cluster = threeNodes();
    const leader = cluster.tickUntilLeader();
    const term = cluster.status(leader).term;
    const [first, second, ...rest] = cluster.node(leader).log;
    assert.deepEqual(
      { index: first?.index, term: first?.term, kind: first?.kind },
      { index: 1, term, kind: 'noop' },
    );
    assert.deepEqual(
      { index: second?.index, term: second?.term, kind: second?.kind, membership: second?.membership },
      { index: 2, term, kind: 'config', membership: { voters: VOTERS, learners: [] } },
    );
    assert.deepEqual(rest, []);
    for (const id of cluster.ids) assert.deepEqual(cluster.node(id).log, cluster.node(leader).log, `${id} holds the leader's log`);
  });

  it('a later leader opens its term with a noop only: the membership is already in the log', () => {
    const cluster = threeNodes();
    const first = cluster.tickUntilLeader();
    const next = othersThan(cluster, first)[0]!;
    cluster.transferLeadership(first, next);
    assert.equal(cluster.leader(), next);

    const log = cluster.node(next).log;
    assert.equal(log.length, 3);
    assert.equal(log[2]!.kind, 'noop');
    assert.equal(log[2]!.term, cluster.status(next).term);
    assert.equal(log.filter((entry) => entry.kind === 'config').length, 1);
  });

  it('a new leader takes writes only once its noop commits, and refuses data until then', () => {
    const cluster = threeNodes();
    cluster.holdPersistence('b', 'c'); // the followers' disks are slow
    cluster.campaign('a');
    assert.equal(cluster.status('a').role, 'leader');
    assert.equal(cluster.status('a').leaderReady, false);
    assert.equal(cluster.status('a').commitIndex, 0);

    const early = cluster.propose('a', 'too early');
    assert.equal(early.ok, false);
    assert.equal(!early.ok && early.leader, 'a', 'the refusal names the leader, which is this node');

    cluster.releasePersistence('b');
    cluster.stabilize();
    assert.equal(cluster.status('a').leaderReady, true);
    assert.ok(cluster.status('a').commitIndex >= 1, 'the noop at index 1 is committed');
    const readiness = cluster.node('a').statuses.filter((status) => status.role === 'leader').map((status) => status.leaderReady);
    assert.deepEqual(readiness, [false, true], 'the status effect told the caller when the leader became ready');

    const accepted = cluster.propose('a', 'on time');
    assert.equal(accepted.ok, true);
  });

  it('followers refuse proposals and name the leader they know', () => {
    const cluster = threeNodes();
    const beforeAnyElection = cluster.propose('a', 'x');
    assert.equal(beforeAnyElection.ok, false);
    assert.equal(!beforeAnyElection.ok && beforeAnyElection.leader, undefined, 'no leader known yet');

    const leader = cluster.tickUntilLeader();
    for (const follower of othersThan(cluster, leader)) {
      const refused = cluster.propose(follower, 'x');
      assert.equal(refused.ok, false);
      assert.equal(!refused.ok && refused.leader, leader);
    }
  });
});

describe('Raft: commitment', () => {
  it('an entry commits only once a majority holds it durably', () => {
    const cluster = threeNodes();
    const leader = cluster.tickUntilLeader();
    const [first, second] = othersThan(cluster, leader) as [string, string];
    cluster.holdPersistence(first, second);

    const proposal = cluster.propose(leader, 'x');
    assert.ok(proposal.ok);
    cluster.stabilize();
    for (const follower of [first, second]) assert.equal(cluster.node(follower).log.at(-1)?.payload, 'x', `${follower} wrote x`);
    assert.ok(cluster.status(leader).commitIndex < proposal.index, 'written is not durable: not committed');
    for (const id of cluster.ids) {
      assert.ok(
        cluster.node(id).commitIndexes.every((index) => index < proposal.index),
        `${id} was not told to apply x`,
      );
    }

    cluster.persist(first);
    cluster.stabilize();
    assert.equal(cluster.status(leader).commitIndex, proposal.index, 'the leader and one follower are a majority');
    assert.deepEqual(cluster.node(leader).appliedData, ['x']);
    assert.deepEqual(cluster.node(first).appliedData, ['x']);
    assert.deepEqual(cluster.node(second).appliedData, [], 'the slow follower applies only what it holds durably');

    cluster.releasePersistence(second);
    cluster.stabilize();
    assert.deepEqual(cluster.node(second).appliedData, ['x']);
    assertSafe(cluster);
  });

  it('an entry of an earlier term is not committed by counting replicas, only with one of the current term (figure 8)', () => {
    // Elections are driven by hand: no ticks, no pre-vote, no leases.
    const cluster = threeNodes({ preVote: false, checkQuorum: false });
    cluster.campaign('a'); // a leads term 1; indexes 1-2 are committed everywhere
    assert.equal(cluster.status('a').commitIndex, 2);

    cluster.partition(['a'], ['b', 'c']);
    assert.ok(cluster.propose('a', 'x').ok); // x at index 3, term 1: only a holds it
    cluster.stabilize();

    const bAppendsLost = cluster.dropIf(all(from('b'), ofKind('append')));
    cluster.campaign('b'); // b leads term 2 with c's vote; its noop at index 3 reaches nobody
    assert.equal(cluster.status('b').role, 'leader');
    assert.equal(cluster.node('b').log[2]?.term, 2);
    bAppendsLost();

    cluster.partition(['a', 'c'], ['b']);
    cluster.crash('a');
    cluster.restart('a'); // a comes back as a follower of term 1, x durable in its log
    cluster.holdPersistence('c');
    cluster.campaign('a'); // term 2: c already voted for b
    cluster.campaign('a'); // term 3: c votes for a, whose log is longer
    assert.equal(cluster.status('a').role, 'leader');
    assert.equal(cluster.status('a').term, 3);
    assert.deepEqual(cluster.node('c').logSummary, ['1:noop', '1:config', '1:x', '3:noop']);

    cluster.persist('c', 3); // c holds x durably, not yet a's noop
    cluster.stabilize();
    assert.equal(cluster.status('a').commitIndex, 2, 'x is on a majority, but it is of term 1: not committed by counting');
    for (const id of cluster.ids) assert.deepEqual(cluster.node(id).appliedData, [], `${id} applied nothing`);

    cluster.releasePersistence('c'); // now a's noop of term 3 is on a majority
    cluster.stabilize();
    assert.equal(cluster.status('a').commitIndex, 4);
    assert.deepEqual(cluster.node('a').appliedData, ['x'], 'x commits with the entry of the current term');
    assert.deepEqual(cluster.node('c').appliedData, ['x']);
    assertSafe(cluster);
  });
});

describe('Raft: pre-vote and check-quorum', () => {
  it('with pre-vote, a partitioned follower does not raise its term, and on rejoining does not disrupt the leader', () => {
    const cluster = threeNodes();
    const leader = cluster.tickUntilLeader();
    const { term } = cluster.status(leader);
    const [away] = othersThan(cluster, leader) as [string];

    cluster.isolate(away);
    cluster.write('while away');
    cluster.tickAll(ELECTION_TICKS * 10);
    assert.equal(cluster.status(away).term, term, 'its pre-votes went unanswered: its term stays');
    assert.notEqual(cluster.status(away).role, 'candidate');
    assert.ok(cluster.dropped.some(all(from(away), ofKind('pre-vote'))), 'it did campaign');

    cluster.heal();
    cluster.tickAll(ELECTION_TICKS * 3);
    assert.deepEqual(cluster.leaders(), [leader]);
    assert.equal(cluster.status(leader).term, term);
    assert.equal(cluster.status(away).leader, leader);
    assert.deepEqual(cluster.node(away).appliedData, ['while away']);
    assertSafe(cluster);
  });

  it('without pre-vote, the same follower raises its term and deposes the leader on rejoining', () => {
    const cluster = threeNodes({ preVote: false });
    const leader = cluster.tickUntilLeader();
    const { term } = cluster.status(leader);
    const [away] = othersThan(cluster, leader) as [string];

    cluster.isolate(away);
    cluster.write('while away');
    cluster.tickAll(ELECTION_TICKS * 10);
    assert.ok(cluster.status(away).term > term);

    cluster.heal();
    cluster.tickAll(ELECTION_TICKS * 3);
    assert.ok(cluster.status(cluster.leader()).term > term, 'the cluster moved to a new term');
    assertSafe(cluster);
  });

  // Regression (simulator seed 8383): a refused vote request restarted the voter's election timer.
  it('without pre-vote, a candidate whose log is behind cannot keep the up-to-date node from campaigning and winning', () => {
    const cluster = threeNodes({ preVote: false });
    const leader = cluster.tickUntilLeader();
    const [stale, upToDate] = othersThan(cluster, leader) as [string, string];
    cluster.isolate(stale);
    cluster.write('the stale node misses this');
    cluster.crash(leader);
    cluster.heal();

    // The stale node times out far more often than anyone else could: every 3 ticks, while an
    // election timeout is 10 to 19. Each of its candidacies raises the term and is refused.
    let rounds = 0;
    while (cluster.status(upToDate).role !== 'leader' && rounds < 30) {
      cluster.campaign(stale);
      for (let tick = 0; tick < 3; tick++) {
        cluster.tick(upToDate);
        if (cluster.status(upToDate).role === 'leader') break;
      }
      rounds++;
    }
    assert.equal(cluster.status(upToDate).role, 'leader', `after ${rounds} refused candidacies of the stale node: ${cluster.describe()}`);
    cluster.tickUntil(() => cluster.status(stale).leader === upToDate);
    assert.deepEqual(cluster.node(stale).appliedData, ['the stale node misses this']);
    assertSafe(cluster);
  });

  // Regression: refusals used to carry the term asked about, which the pre-candidate then adopted.
  it(
    'with pre-vote and no check-quorum, a rejoining follower refused for its stale log does not adopt the term it asked about',
    () => {
      const cluster = threeNodes({ checkQuorum: false });
      const leader = cluster.tickUntilLeader();
      const { term } = cluster.status(leader);
      const [away] = othersThan(cluster, leader) as [string];

      cluster.isolate(away);
      cluster.write('while away'); // the others' logs are now ahead of away's
      cluster.tickAll(ELECTION_TICKS * 10);
      assert.equal(cluster.status(away).term, term);

      cluster.heal();
      cluster.campaign(away); // its election timer fires before a heartbeat reaches it
      const answers = cluster.deliveredWhere(all(to(away), ofKind('vote-response')));
      assert.equal(answers.length, 2);
      assert.ok(
        answers.every(({ message }) => message.kind === 'vote-response' && message.preVote && !message.granted),
        'the others refuse: away lacks "while away"',
      );
      assert.equal(cluster.status(away).term, term, 'a refused pre-vote leaves the term alone');
      cluster.tickAll(ELECTION_TICKS * 3);
      assert.deepEqual(cluster.leaders(), [leader]);
      assert.equal(cluster.status(leader).term, term, 'the leader was not disrupted');
    },
  );

  it('check-quorum: a leader cut off from the majority steps down within two election timeouts and fails its pending reads', () => {
    const cluster = threeNodes();
    const leader = cluster.tickUntilLeader();

    cluster.isolate(leader);
    cluster.readIndex(leader, 42); // can no longer be confirmed
    let ticks = 0;
    while (cluster.status(leader).role === 'leader' && ticks < ELECTION_TICKS * 4) {
      cluster.tick(leader);
      ticks++;
    }
    assert.equal(cluster.status(leader).role, 'follower');
    assert.equal(cluster.status(leader).leader, undefined);
    assert.ok(ticks <= ELECTION_TICKS * 2, `stepped down after ${ticks} ticks`);
    assert.deepEqual(cluster.node(leader).readsFailed, [42]);
    assert.deepEqual(cluster.node(leader).readsReady, []);

    const successor = cluster.tickUntilLeader(othersThan(cluster, leader));
    assert.notEqual(successor, leader);
  });
});

/**
 * a leads term 1 and writes 'lost 1-3' while cut off; b and c go on for 20 entries and hand
 * leadership over once, so the leader that meets a again starts probing far past a's log.
 */
function followerWithDivergentSuffix(options: Partial<ClusterOptions> = {}) {
  const cluster = threeNodes(options);
  cluster.campaign('a');
  cluster.write('shared');
  cluster.isolate('a');
  for (const payload of ['lost 1', 'lost 2', 'lost 3']) assert.ok(cluster.propose('a', payload).ok);
  cluster.stabilize();
  const first = cluster.tickUntilLeader(['b', 'c']);
  cluster.write(...Array.from({ length: 20 }, (_, n) => `new ${n + 1}`));
  const leader = first === 'b' ? 'c' : 'b';
  assert.ok(cluster.transferLeadership(first, leader));
  assert.equal(cluster.leader(), leader);
  assert.deepEqual(cluster.node('a').logSummary, ['1:noop', '1:config', '1:shared', '1:lost 1', '1:lost 2', '1:lost 3']);
  return { cluster, leader };
}

describe('Raft: log repair', () => {
  it('a follower with a divergent uncommitted suffix is truncated and converges in few round trips', () => {
    const { cluster, leader } = followerWithDivergentSuffix();
    const deliveredBefore = cluster.delivered.length;

    cluster.heal();
    cluster.tickUntil(() => cluster.node('a').appliedIndex === cluster.node(leader).appliedIndex);
    assert.deepEqual(cluster.node('a').log, cluster.node(leader).log);
    assert.deepEqual(cluster.node('a').truncations, [3], 'the lost entries after index 3 were dropped');
    assert.equal(cluster.node('a').appliedData.filter((payload) => payload.startsWith('lost')).length, 0);
    const refusals = cluster.delivered.slice(deliveredBefore).filter(all(from('a'), appendRefusals));
    assert.ok(refusals.length <= 2, `${refusals.length} refusals; backing off one index at a time would take about 20`);
    assertSafe(cluster);
  });

  const bounds: { maxAutoTruncateEntries: number; truncated: boolean }[] = [
    { maxAutoTruncateEntries: 2, truncated: false },
    { maxAutoTruncateEntries: 3, truncated: true },
  ];
  for (const { maxAutoTruncateEntries, truncated } of bounds) {
    it(`a divergent suffix of 3 entries with maxAutoTruncateEntries = ${maxAutoTruncateEntries} is ${truncated ? 'truncated' : 'reported as a fault and kept'}`, () => {
      const { cluster, leader } = followerWithDivergentSuffix({ maxAutoTruncateEntries });
      const before = cluster.node('a').logSummary;

      cluster.heal();
      cluster.tickAll(ELECTION_TICKS * 3);
      const a = cluster.node('a');
      if (truncated) {
        assert.deepEqual(a.faults, []);
        assert.deepEqual(a.log, cluster.node(leader).log);
      } else {
        assert.ok(a.faults.length > 0);
        assert.ok(a.faults.every((fault) => fault.kind === 'truncation-over-bound'), JSON.stringify(a.faults));
        assert.match(a.faults[0]!.detail, /truncate 3 local entries from index 4/);
        assert.deepEqual(a.truncations, []);
        assert.deepEqual(a.logSummary, before, 'the divergent entries are kept for a person to look at');
        assert.deepEqual(cluster.leaders(), [leader], 'the rest of the cluster carries on');
      }
      assertSafe(cluster);
    });
  }

  it('a restarted follower catches up from its durable log', () => {
    const cluster = threeNodes();
    const leader = cluster.tickUntilLeader();
    const [follower] = othersThan(cluster, leader) as [string];
    cluster.write('before');

    cluster.holdPersistence(follower);
    cluster.write('unsynced'); // committed by the others; the follower wrote it but never synced
    cluster.crash(follower);
    cluster.write('while down 1', 'while down 2');

    cluster.restart(follower);
    assert.ok(!cluster.node(follower).log.some((entry) => entry.payload === 'unsynced'), 'the crash lost the unsynced write');
    assert.equal(cluster.status(follower).role, 'follower');
    cluster.tickUntil(() => cluster.node(follower).appliedIndex === cluster.node(leader).appliedIndex);
    assert.deepEqual(cluster.node(follower).log, cluster.node(leader).log);
    assert.deepEqual(cluster.node(follower).appliedData, ['before', 'unsynced', 'while down 1', 'while down 2']);
    assertSafe(cluster);
  });

  it('a follower restarted in step with the leader counts toward the quorum again', () => {
    const cluster = threeNodes();
    const leader = cluster.tickUntilLeader();
    const [restarted, other] = othersThan(cluster, leader) as [string, string];
    cluster.write('before');
    cluster.crash(restarted);
    cluster.restart(restarted);
    cluster.isolate(other);

    cluster.write('needs the restarted follower');
    cluster.tickAll(HEARTBEAT_TICKS);
    assert.deepEqual(cluster.node(leader).appliedData, ['before', 'needs the restarted follower']);
    assert.deepEqual(cluster.node(restarted).appliedData, ['before', 'needs the restarted follower']);
    assertSafe(cluster);
  });

  it(
    'an append lost to a brief partition is sent again once the followers answer a heartbeat',
    () => {
      const cluster = threeNodes();
      const leader = cluster.tickUntilLeader();
      cluster.isolate(leader); // shorter than an election timeout: nobody ticks
      const write = cluster.propose(leader, 'x');
      assert.ok(write.ok);
      cluster.stabilize(); // both appends are lost
      cluster.heal();

      const deliveredBefore = cluster.delivered.length;
      cluster.tickAll(HEARTBEAT_TICKS);
      const answers = cluster.delivered.slice(deliveredBefore).filter(all(to(leader), ofKind('heartbeat-response')));
      assert.deepEqual(
        answers.map(({ message }) => message.kind === 'heartbeat-response' && message.matchIndex),
        [write.index - 1, write.index - 1],
        'both followers tell the leader they lack x',
      );

      cluster.tickAll(ELECTION_TICKS * 5);
      assert.deepEqual(cluster.leaders(), [leader]);
      assert.equal(cluster.status(leader).commitIndex, write.index, 'x commits without waiting for another write');
    },
  );

  it(
    'a follower that missed two elections acknowledges the re-elected leader at once',
    () => {
      const cluster = new Cluster({ voters: ['a', 'b', 'c', 'd', 'e'], preVote: false, checkQuorum: false, heartbeatTicks: HEARTBEAT_TICKS });
      cluster.campaign('a'); // a leads term 1
      cluster.write('committed');

      cluster.partition(['a', 'c'], ['b', 'd', 'e']);
      for (let n = 1; n <= 6; n++) assert.ok(cluster.propose('a', `stale ${n}`).ok);
      cluster.stabilize(); // c holds and acknowledges indexes 4-9; two of five do not commit them

      cluster.partition(['a', 'b', 'd', 'e'], ['c']); // c hears nothing for a while (less than its election timeout)
      cluster.campaign('b'); // b leads term 2 with d and e; a drops the stale entries
      cluster.campaign('a'); // a leads again, in term 3
      assert.equal(cluster.leader(), 'a');
      assert.deepEqual(cluster.node('a').logSummary, ['1:noop', '1:config', '1:committed', '2:noop', '3:noop']);

      cluster.partition(['a', 'b', 'c'], ['d', 'e']); // c is back; without d and e, a needs c for a quorum
      cluster.tick('a', HEARTBEAT_TICKS);
      assert.deepEqual(cluster.node('c').log, cluster.node('a').log, 'one heartbeat round repairs c');

      const write = cluster.propose('a', 'needs c');
      assert.ok(write.ok);
      cluster.stabilize();
      assert.equal(cluster.status('a').commitIndex, write.index, 'c acknowledges the write as a healthy follower would');
    },
  );
});

describe('Raft: read index', () => {
  it('a read is ready at the commit index only once a quorum answered a heartbeat round', () => {
    const cluster = threeNodes();
    const leader = cluster.tickUntilLeader();
    cluster.write('x');
    const commit = cluster.status(leader).commitIndex;
    const [follower] = othersThan(cluster, leader) as [string];

    cluster.readIndex(leader, 1);
    cluster.collect();
    assert.deepEqual(cluster.node(leader).readsReady, [], 'the leader alone cannot vouch for itself');
    const round = cluster.queue.filter(all(from(leader), ofKind('heartbeat')));
    assert.equal(round.length, 2, 'a heartbeat round went out');

    cluster.deliver(ofKind('heartbeat'));
    cluster.collect();
    assert.deepEqual(cluster.node(leader).readsReady, [], 'the answers are still on their way');

    cluster.deliver(all(from(follower), to(leader)));
    cluster.collect();
    assert.deepEqual(cluster.node(leader).readsReady, [{ id: 1, index: commit }], 'leader plus one follower are a quorum');
    cluster.stabilize();
    assert.deepEqual(cluster.node(leader).readsReady, [{ id: 1, index: commit }], 'each read is answered once');
  });

  it('a read asked of a follower fails at once', () => {
    const cluster = threeNodes();
    const leader = cluster.tickUntilLeader();
    const [follower] = othersThan(cluster, leader) as [string];
    cluster.readIndex(follower, 7);
    cluster.stabilize();
    assert.deepEqual(cluster.node(follower).readsFailed, [7]);
    assert.deepEqual(cluster.node(follower).readsReady, []);
  });

  it('a read asked of a new leader waits until its noop commits', () => {
    const cluster = threeNodes();
    cluster.holdPersistence('b', 'c');
    cluster.campaign('a');
    cluster.readIndex('a', 9);
    cluster.stabilize();
    assert.deepEqual(cluster.node('a').readsReady, []);

    cluster.releasePersistence('b');
    cluster.stabilize();
    assert.equal(cluster.status('a').leaderReady, true);
    assert.deepEqual(cluster.node('a').readsReady, [{ id: 9, index: cluster.status('a').commitIndex }]);
  });
});

describe('Raft: learners', () => {
  const learners = () => new Cluster({ voters: VOTERS, learners: ['l1', 'l2'], electionTicks: ELECTION_TICKS, heartbeatTicks: HEARTBEAT_TICKS });

  it('learners receive and apply entries but never campaign or vote', () => {
    const cluster = learners();
    const leader = cluster.tickUntilLeader();
    assert.ok(VOTERS.includes(leader));
    cluster.write('x');
    for (const learner of ['l1', 'l2']) {
      assert.equal(cluster.status(learner).role, 'learner');
      assert.deepEqual(cluster.node(learner).appliedData, ['x']);
    }

    const { term } = cluster.status(leader);
    cluster.isolate('l1');
    cluster.tick('l1', ELECTION_TICKS * 10);
    assert.equal(cluster.status('l1').role, 'learner');
    assert.equal(cluster.status('l1').term, term);
    cluster.heal();

    // A vote request sent straight to a learner goes unanswered.
    const request: VoteRequest = { kind: 'vote', term, lastIndex: 100, lastTerm: term, transfer: false };
    cluster.inject({ from: othersThan(cluster, leader)[0]!, to: 'l2', message: request });
    cluster.stabilize();
    const sentByLearners = [...cluster.delivered, ...cluster.dropped].filter((envelope) => envelope.from.startsWith('l'));
    assert.deepEqual(sentByLearners.filter(ofKind('pre-vote', 'vote', 'vote-response')), []);
    const electionsToLearners = cluster.delivered.filter((envelope) => envelope.to.startsWith('l') && envelope.message !== request);
    assert.deepEqual(electionsToLearners.filter(ofKind('pre-vote', 'vote')), [], 'candidates do not ask learners');
  });

  it('learners do not count toward the quorum', () => {
    const cluster = learners();
    const leader = cluster.tickUntilLeader();
    const [voter, otherVoter] = othersThan(cluster, leader) as [string, string];
    cluster.holdPersistence(voter, otherVoter); // the other voters' disks are slow; the learners' are not

    const write = cluster.propose(leader, 'needs a voter');
    assert.ok(write.ok);
    cluster.stabilize();
    for (const learner of ['l1', 'l2']) assert.equal(cluster.node(learner).durableIndex, write.index, `${learner} holds it durably`);
    assert.ok(cluster.status(leader).commitIndex < write.index, 'three of five members, but one of three voters');
    assert.deepEqual(cluster.node(leader).appliedData, []);

    cluster.releasePersistence(voter);
    cluster.stabilize();
    assert.equal(cluster.status(leader).commitIndex, write.index, 'two of three voters');
    cluster.releasePersistence(otherVoter);
    cluster.stabilize();
    for (const id of cluster.ids) assert.deepEqual(cluster.node(id).appliedData, ['needs a voter'], id);
  });
});

describe('Raft: leadership transfer', () => {
  it('transferLeadership makes the target leader in the next term', () => {
    const cluster = threeNodes();
    const leader = cluster.tickUntilLeader();
    const { term } = cluster.status(leader);
    const target = othersThan(cluster, leader)[1]!;
    cluster.write('before');

    assert.equal(cluster.transferLeadership(leader, target), true);
    assert.deepEqual(cluster.leaders(), [target]);
    assert.equal(cluster.status(target).term, term + 1);
    assert.equal(cluster.status(target).leaderReady, true);
    assert.equal(cluster.status(leader).leader, target);
    cluster.write('after');
    for (const id of cluster.ids) assert.deepEqual(cluster.node(id).appliedData, ['before', 'after']);
  });

  it('resign hands leadership to the most up-to-date voter', () => {
    const cluster = threeNodes();
    const leader = cluster.tickUntilLeader();
    const [behind, upToDate] = othersThan(cluster, leader) as [string, string];
    cluster.holdPersistence(behind); // the first in line on a tie falls behind
    cluster.write('x');

    assert.equal(cluster.resign(leader), true);
    assert.deepEqual(cluster.leaders(), [upToDate]);
    assert.equal(cluster.resign(behind), false, 'only a leader resigns');
  });

  it('resign passes over a voter that stopped answering, however far along it was', () => {
    const cluster = threeNodes();
    const leader = cluster.tickUntilLeader();
    const [silent, answering] = othersThan(cluster, leader) as [string, string];
    cluster.write('x'); // both hold everything: on a tie the first in line would be chosen
    cluster.isolate(silent);
    // Longer than a check-quorum period: the leader knows who answered in the latest one.
    for (let tick = 0; tick < ELECTION_TICKS + 2; tick++) {
      cluster.tick(leader);
      cluster.stabilize();
    }
    assert.equal(cluster.status(leader).role, 'leader', 'one follower answering keeps the quorum');
    assert.equal(cluster.resign(leader), true);
    assert.deepEqual(cluster.leaders(), [answering]);
  });

  it('while leadership is handed over, proposals are refused; a transfer that cannot finish gives up after an election timeout', () => {
    const cluster = threeNodes();
    const leader = cluster.tickUntilLeader();
    const [target] = othersThan(cluster, leader) as [string];
    cluster.holdPersistence(target); // the target never catches up
    cluster.write('x');

    assert.equal(cluster.transferLeadership(leader, target), true);
    assert.equal(cluster.propose(leader, 'during').ok, false);
    cluster.tick(leader, ELECTION_TICKS);
    assert.deepEqual(cluster.leaders(), [leader]);
    assert.equal(cluster.propose(leader, 'after').ok, true);
  });

  it('transferLeadership refuses a non-leader, itself and a non-voter as target', () => {
    const cluster = new Cluster({ voters: VOTERS, learners: ['l1'] });
    const leader = cluster.tickUntilLeader();
    const [follower] = othersThan(cluster, leader) as [string];
    assert.equal(cluster.transferLeadership(follower, leader), false);
    assert.equal(cluster.transferLeadership(leader, leader), false);
    assert.equal(cluster.transferLeadership(leader, 'l1'), false);
    assert.deepEqual(cluster.leaders(), [leader]);
  });
});

/**
 * Counts the appends with entries from `leader` to `follower` that are sent and not yet
 * acknowledged, round by round; `most` is the highest count seen.
 */
function outstandingAppends(leader: string, follower: string, acknowledgedAtStart: number) {
  let acknowledged = acknowledgedAtStart;
  let unacknowledged: { prevIndex: number; last: number }[] = [];
  const seen = new Set<SimEnvelope>();
  const tally = {
    most: 0,
    observe: (queued: readonly SimEnvelope[]): void => {
      for (const envelope of queued) {
        if (seen.has(envelope)) continue;
        seen.add(envelope);
        const { message } = envelope;
        if (envelope.from === leader && envelope.to === follower && message.kind === 'append' && message.count > 0) {
          unacknowledged.push({ prevIndex: message.prevIndex, last: message.prevIndex + message.count });
        }
      }
      tally.most = Math.max(tally.most, unacknowledged.length);
      // This round's answers reach the leader now.
      for (const envelope of queued) {
        const { message } = envelope;
        if (envelope.from === follower && envelope.to === leader && message.kind === 'append-response' && message.success) {
          acknowledged = Math.max(acknowledged, message.matchIndex);
        }
        // A refused append (the gap a lost one left) is answered, not outstanding.
        if (envelope.from === follower && envelope.to === leader && message.kind === 'append-response' && message.rejectHint) {
          const refused = message.rejectHint.rejectedIndex;
          unacknowledged = unacknowledged.filter((append) => append.prevIndex !== refused);
        }
      }
      unacknowledged = unacknowledged.filter((append) => append.last > acknowledged);
    },
  };
  return tally;
}

describe('Raft: flow control', () => {
  it('with maxInflightAppends = 2, at most two appends are outstanding to a follower at once', () => {
    const cluster = threeNodes({ maxInflightAppends: 2, maxEntriesPerAppend: 1 });
    const leader = cluster.tickUntilLeader();
    const [follower] = othersThan(cluster, leader) as [string];
    const tally = outstandingAppends(leader, follower, cluster.status(leader).commitIndex);

    for (let n = 1; n <= 10; n++) {
      assert.ok(cluster.propose(leader, `e${n}`).ok);
      cluster.collect(); // each proposal is sent as soon as the window allows
    }
    assert.equal(cluster.queue.filter(all(to(follower), appendsWithEntries)).length, 2, 'ten proposals, two appends on the wire');

    cluster.stabilize(tally.observe);
    assert.equal(tally.most, 2);
    assert.deepEqual(cluster.node(follower).appliedData, Array.from({ length: 10 }, (_, n) => `e${n + 1}`));
  });

  it(
    'a follower far behind is sent a full window of appends per round trip',
    () => {
      const cluster = threeNodes({ maxInflightAppends: 4, maxEntriesPerAppend: 5 });
      const leader = cluster.tickUntilLeader();
      const [behind] = othersThan(cluster, leader) as [string];
      cluster.isolate(behind);
      cluster.write(...Array.from({ length: 100 }, (_, n) => `e${n + 1}`));
      cluster.heal();

      const tally = outstandingAppends(leader, behind, 0);
      cluster.tick(leader, HEARTBEAT_TICKS, tally.observe); // the heartbeat finds it; it catches up
      assert.equal(cluster.node(behind).appliedIndex, cluster.node(leader).appliedIndex);
      assert.equal(tally.most, 4, 'the leader keeps four appends of five entries on the wire');
    },
  );
});

describe('Raft: unsafe variants do what they say', () => {
  for (const unsafe of [false, true]) {
    it(`commitWithoutQuorum ${unsafe ? 'on: a cut-off leader commits alone, and the majority later commits something else' : 'off: a cut-off leader commits nothing'}`, () => {
      const cluster = threeNodes({ unsafe: { commitWithoutQuorum: unsafe } });
      const leader = cluster.tickUntilLeader();
      cluster.isolate(leader);
      assert.ok(cluster.propose(leader, 'alone').ok);
      cluster.stabilize();
      assert.deepEqual(cluster.node(leader).appliedData, unsafe ? ['alone'] : []);

      cluster.tickUntilLeader(othersThan(cluster, leader));
      cluster.write('majority');
      assert.equal(cluster.violations.length > 0, unsafe, cluster.violations.join('\n'));
    });

    it(`applyUncommitted ${unsafe ? 'on: a follower applies an entry that never commits' : 'off: a follower applies only committed entries'}`, () => {
      const cluster = threeNodes({ unsafe: { applyUncommitted: unsafe } });
      const leader = cluster.tickUntilLeader();
      const [follower, other] = othersThan(cluster, leader) as [string, string];
      cluster.isolate(other);
      cluster.dropIf(all(from(follower), to(leader)));

      const write = cluster.propose(leader, 'maybe');
      assert.ok(write.ok);
      cluster.stabilize();
      assert.ok(cluster.status(leader).commitIndex < write.index);
      assert.deepEqual(cluster.node(follower).appliedData, unsafe ? ['maybe'] : []);
    });

    it(`truncateCommitted ${unsafe ? 'on: a late duplicate append cuts off applied entries' : 'off: a late duplicate append changes nothing'}`, () => {
      const cluster = threeNodes({ unsafe: { truncateCommitted: unsafe } });
      const leader = cluster.tickUntilLeader();
      const [follower] = othersThan(cluster, leader) as [string];
      cluster.write('p1');
      const late = cluster.deliveredWhere(all(to(follower), appendsWithEntries)).at(-1)!;
      cluster.write('p2', 'p3');

      cluster.inject(late);
      cluster.stabilize();
      assert.equal(cluster.node(follower).truncations.length > 0, unsafe);
      assert.equal(cluster.violations.length > 0, unsafe, cluster.violations.join('\n'));
      if (!unsafe) assert.deepEqual(cluster.node(follower).log, cluster.node(leader).log);
    });

    it(`ignoreVoteTerms ${unsafe ? 'on: a candidate wins with a vote from an earlier term' : 'off: a vote from an earlier term is not counted'}`, () => {
      const cluster = threeNodes({ preVote: false, checkQuorum: false, unsafe: { ignoreVoteTerms: unsafe } });
      cluster.node('b').raft.campaignNow(); // b asks for votes in term 1
      cluster.collect();
      cluster.dropQueued(to('c'));
      cluster.deliver(to('a'));
      cluster.collect();
      const [grant] = cluster.dropQueued(all(from('a'), ofKind('vote-response'))); // a's yes is delayed
      assert.ok(grant && grant.message.kind === 'vote-response' && grant.message.granted && grant.message.term === 1);

      cluster.node('b').raft.campaignNow(); // b times out and asks again, in term 2; nobody hears it
      cluster.collect();
      cluster.dropQueued();
      assert.equal(cluster.status('b').term, 2);

      cluster.inject(grant); // the term-1 yes arrives
      cluster.stabilize();
      assert.equal(cluster.status('b').role, unsafe ? 'leader' : 'candidate');
    });
  }
});
