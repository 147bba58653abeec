/**
 * Seeds on which the simulator once found a bug, kept so the bug stays fixed. A seed replays the
 * same run only with the simulator of its time; when the simulator changes, the scenario of each
 * is also covered by a unit test (named here).
 */
export const REGRESSION_SEEDS: readonly { seed: number; bug: string }[] = [
  {
    seed: 128,
    bug: 'a refused pre-vote echoed the term asked about, so every refused pre-candidate adopted it and two nodes raised terms forever without electing anyone (unit test: "Raft: pre-vote and check-quorum")',
  },
  {
    seed: 30,
    bug: 'a leader deposed by an append of a newer term truncated its log while the edge still believed it led (the status change is now carried out first)',
  },
  {
    seed: 5,
    bug: 'a persistent subscription group stopped on lost leadership landed its last ack state after the re-elected node had loaded the older one, so acknowledged messages came back (the host now waits for stopped groups\u2019 writes)',
  },
  {
    seed: 711,
    bug: 'a group created with an unknown outcome (no quorum in time) committed later, but the host never learned of it: consumers got "no such group" and every retry "wrong expected version" (the host now follows the committed definitions; unit test: "persistent subscription host (in process)")',
  },
  {
    seed: 8383,
    bug: 'without pre-vote, a refused vote request restarted the voter’s election timer, so a candidate whose log was behind kept the node that could win from ever timing out: no leader for 30 s after the faults healed (unit test: "Raft: pre-vote and check-quorum")',
  },
  {
    seed: 101764,
    bug: 'a bug of the checker, not of the cluster: with check-quorum off, a deposed leader that had not yet heard of the new term still thought it led when the run ended, the checker took its log as the final one and reported the new leader’s acknowledged write missing (the checker now takes the leader of the newest term)',
  },
  {
    seed: 211030,
    bug: 'two gaps of the simulation, not of the cluster, reported as "no write for 30 s after the faults healed" while a leader stood ready: the read-only replica was added by a configuration entry a later leader dropped and never again (a server re-adds it from gossip every second; the simulation now retries every 500 ms throughout), so probes sent to it waited for a leader it never heard of; and each liveness probe started from a random node without following the "not leader" answer of the one before (it now does, as clients do)',
  },
  {
    seed: 400084,
    bug: 'a leader whose handover gave up (its target could not catch up within an election timeout, here behind a partition) went on leading but never hosted its persistent subscription groups again: their consumers got nothing more (found when the simulator began handing leadership over, as ResignNode and a graceful stop of the leader do; unit test: "persistent subscriptions follow leadership")',
  },
  {
    seed: 405134,
    bug: 'after a handover gave up, the old leader (deposed meanwhile without having heard of it, messages being slow) hosted its persistent subscription groups again from its own log and delivered messages the new leader had already committed as acknowledged; a host now confirms leadership with a read barrier before it loads (unit test: "a host in a cluster loads nothing before this node is confirmed as leader")',
  },
];
