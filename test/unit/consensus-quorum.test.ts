import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { majorityMatchIndex, quorumSize, voteOutcome, type VoteOutcome } from '../../src/consensus/quorum.js';
import { TermIndex } from '../../src/consensus/term-index.js';
import type { TermRun } from '../../src/consensus/types.js';

describe('quorumSize', () => {
  const table: [voters: number, quorum: number][] = [
    [1, 1],
    [2, 2],
    [3, 2],
    [4, 3],
    [5, 3],
    [6, 4],
    [7, 4],
  ];
  for (const [voters, quorum] of table) {
    it(`${voters} voters need ${quorum}`, () => assert.equal(quorumSize(voters), quorum));
  }
});

describe('majorityMatchIndex', () => {
  const table: { matches: number[]; committed: number; why: string }[] = [
    { matches: [], committed: 0, why: 'no voters commit nothing' },
    { matches: [7], committed: 7, why: 'a single voter is its own majority' },
    { matches: [7, 3], committed: 3, why: 'two voters both need the entry' },
    { matches: [7, 3, 1], committed: 3, why: 'the middle of three' },
    { matches: [1, 7, 3], committed: 3, why: 'the order of the voters does not matter' },
    { matches: [7, 7, 1], committed: 7, why: 'two of three is enough' },
    { matches: [0, 0, 10], committed: 0, why: 'a leader alone commits nothing' },
    { matches: [9, 9, 3, 3], committed: 3, why: 'four voters need three' },
    { matches: [9, 8, 7, 6, 5], committed: 7, why: 'five voters need three' },
    { matches: [10, 10, 0, 0, 0], committed: 0, why: 'two of five is a minority' },
  ];
  for (const { matches, committed, why } of table) {
    it(`${JSON.stringify(matches)} -> ${committed}: ${why}`, () => assert.equal(majorityMatchIndex(matches), committed));
  }

  it('does not reorder the array it is given', () => {
    const matches = [1, 7, 3];
    majorityMatchIndex(matches);
    assert.deepEqual(matches, [1, 7, 3]);
  });
});

describe('voteOutcome', () => {
  const three = ['a', 'b', 'c'];
  const four = ['a', 'b', 'c', 'd'];
  const table: { voters: string[]; answers: Record<string, boolean>; outcome: VoteOutcome; why: string }[] = [
    { voters: three, answers: {}, outcome: 'pending', why: 'nobody answered' },
    { voters: three, answers: { a: true }, outcome: 'pending', why: 'one of three granted' },
    { voters: three, answers: { a: true, b: true }, outcome: 'won', why: 'a majority granted' },
    { voters: three, answers: { a: true, b: false }, outcome: 'pending', why: 'the last voter decides' },
    { voters: three, answers: { a: true, b: false, c: true }, outcome: 'won', why: 'two grants beat one refusal' },
    { voters: three, answers: { a: false, b: false }, outcome: 'lost', why: 'a majority refused' },
    { voters: three, answers: { a: true, b: false, c: false }, outcome: 'lost', why: 'two refusals of three' },
    { voters: three, answers: { a: true, x: true, y: true }, outcome: 'pending', why: 'answers from non-voters do not count' },
    { voters: four, answers: { a: true, b: true }, outcome: 'pending', why: 'half of four is not a majority' },
    { voters: four, answers: { a: true, b: true, c: false }, outcome: 'pending', why: 'three grants are still possible' },
    { voters: four, answers: { a: true, b: true, c: false, d: false }, outcome: 'lost', why: 'a tie loses' },
    { voters: four, answers: { a: false, b: false }, outcome: 'lost', why: 'two refusals of four leave no majority' },
    { voters: four, answers: { a: true, b: true, c: true }, outcome: 'won', why: 'three of four' },
    { voters: ['a'], answers: { a: true }, outcome: 'won', why: 'a cluster of one votes for itself' },
    { voters: ['a'], answers: {}, outcome: 'pending', why: 'a cluster of one before it votes' },
    { voters: ['a'], answers: { a: false }, outcome: 'lost', why: 'a cluster of one that refuses' },
  ];
  for (const { voters, answers, outcome, why } of table) {
    it(`${voters.length} voters, ${JSON.stringify(answers)} -> ${outcome}: ${why}`, () => {
      assert.equal(voteOutcome(voters, new Map(Object.entries(answers))), outcome);
    });
  }
});

describe('TermIndex', () => {
  // Indexes 1-3 in term 1, 4-5 in term 2, 6-8 in term 5.
  const runs: TermRun[] = [
    { startIndex: 1, term: 1 },
    { startIndex: 4, term: 2 },
    { startIndex: 6, term: 5 },
  ];
  const sample = () => new TermIndex(runs, 8);

  describe('termAt', () => {
    const table: [index: number, term: number | undefined][] = [
      [0, 0],
      [1, 1],
      [3, 1],
      [4, 2],
      [5, 2],
      [6, 5],
      [8, 5],
      [9, undefined],
      [-1, undefined],
    ];
    for (const [index, term] of table) {
      it(`index ${index} -> ${term}`, () => assert.equal(sample().termAt(index), term));
    }

    it('knows only index 0 in an empty log', () => {
      const empty = new TermIndex([], 0);
      assert.equal(empty.termAt(0), 0);
      assert.equal(empty.termAt(1), undefined);
      assert.equal(empty.lastIndex, 0);
      assert.equal(empty.lastTerm, 0);
    });

    it('reports the last index and the term there', () => {
      assert.equal(sample().lastIndex, 8);
      assert.equal(sample().lastTerm, 5);
    });
  });

  describe('runStartOf', () => {
    const table: [index: number, start: number][] = [
      [1, 1],
      [3, 1],
      [4, 4],
      [5, 4],
      [6, 6],
      [8, 6],
    ];
    for (const [index, start] of table) {
      it(`index ${index} is in the run that starts at ${start}`, () => assert.equal(sample().runStartOf(index), start));
    }
  });

  describe('lastIndexUpToTerm', () => {
    const table: { term: number; atMost: number; index: number; why: string }[] = [
      { term: 1, atMost: 8, index: 3, why: 'the end of the term-1 run' },
      { term: 2, atMost: 8, index: 5, why: 'the end of the term-2 run' },
      { term: 3, atMost: 8, index: 5, why: 'a term the log lacks: the last index of an earlier term' },
      { term: 5, atMost: 8, index: 8, why: 'the last run reaches the last index' },
      { term: 9, atMost: 8, index: 8, why: 'a later term than any: the last index' },
      { term: 5, atMost: 7, index: 7, why: 'capped by atMost inside the run' },
      { term: 2, atMost: 4, index: 4, why: 'capped by atMost inside an earlier run' },
      { term: 5, atMost: 4, index: 4, why: 'a later run past atMost is skipped' },
      { term: 1, atMost: 2, index: 2, why: 'capped inside the first run' },
      { term: 0, atMost: 8, index: 0, why: 'nothing holds term 0 or earlier' },
    ];
    for (const { term, atMost, index, why } of table) {
      it(`term ${term}, at most ${atMost} -> ${index}: ${why}`, () => assert.equal(sample().lastIndexUpToTerm(term, atMost), index));
    }
  });

  describe('append and truncateAfter', () => {
    it('extends the last run while the term stays and opens a run when it rises', () => {
      const terms = new TermIndex([], 0);
      terms.append(1, 1);
      terms.append(2, 1);
      terms.append(3, 4);
      assert.deepEqual(terms.snapshot(), [
        { startIndex: 1, term: 1 },
        { startIndex: 3, term: 4 },
      ]);
      assert.equal(terms.lastIndex, 3);
      assert.equal(terms.lastTerm, 4);
    });

    it('refuses a gap, an overwrite and a falling term', () => {
      const terms = sample();
      assert.throws(() => terms.append(10, 5), /contiguous/);
      assert.throws(() => terms.append(8, 5), /contiguous/);
      assert.throws(() => terms.append(9, 4), /older/);
      assert.equal(terms.lastIndex, 8, 'a refused append changes nothing');
    });

    const truncations: { after: number; runs: TermRun[]; lastTerm: number }[] = [
      { after: 8, runs, lastTerm: 5 },
      { after: 20, runs, lastTerm: 5 },
      { after: 7, runs, lastTerm: 5 },
      { after: 5, runs: runs.slice(0, 2), lastTerm: 2 },
      { after: 4, runs: runs.slice(0, 2), lastTerm: 2 },
      { after: 3, runs: runs.slice(0, 1), lastTerm: 1 },
      { after: 0, runs: [], lastTerm: 0 },
    ];
    for (const { after, runs: expected, lastTerm } of truncations) {
      it(`truncateAfter(${after}) keeps ${JSON.stringify(expected.map((run) => run.startIndex))}`, () => {
        const terms = sample();
        terms.truncateAfter(after);
        assert.deepEqual(terms.snapshot(), expected);
        assert.equal(terms.lastIndex, Math.min(after, 8));
        assert.equal(terms.lastTerm, lastTerm);
        assert.equal(terms.termAt(Math.min(after, 8) + 1), undefined);
      });
    }

    it('takes a new term where a truncated suffix was', () => {
      const terms = sample();
      terms.truncateAfter(4);
      terms.append(5, 6);
      assert.equal(terms.termAt(4), 2);
      assert.equal(terms.termAt(5), 6);
      assert.equal(terms.lastIndexUpToTerm(5, 5), 4, 'term 5 is gone from the log');
    });
  });

  describe('constructor validation', () => {
    const invalid: { runs: TermRun[]; lastIndex: number; error: RegExp; why: string }[] = [
      { runs: [{ startIndex: 1, term: 1 }, { startIndex: 1, term: 2 }], lastIndex: 3, error: /rise/, why: 'two runs start at one index' },
      { runs: [{ startIndex: 3, term: 1 }, { startIndex: 1, term: 2 }], lastIndex: 3, error: /rise/, why: 'indexes fall' },
      { runs: [{ startIndex: 1, term: 2 }, { startIndex: 3, term: 1 }], lastIndex: 3, error: /rise/, why: 'terms fall' },
      { runs: [{ startIndex: 1, term: 1 }, { startIndex: 3, term: 1 }], lastIndex: 3, error: /rise/, why: 'two runs of one term' },
      { runs: [], lastIndex: 2, error: /cover/, why: 'entries without runs' },
      { runs: [{ startIndex: 2, term: 1 }], lastIndex: 2, error: /cover/, why: 'index 1 is not covered' },
      { runs: [{ startIndex: 1, term: 1 }, { startIndex: 5, term: 2 }], lastIndex: 4, error: /cover/, why: 'a run starts past the last index' },
    ];
    for (const { runs: given, lastIndex, error, why } of invalid) {
      it(`refuses ${why}`, () => assert.throws(() => new TermIndex(given, lastIndex), error));
    }

    const valid: { runs: TermRun[]; lastIndex: number; why: string }[] = [
      { runs: [], lastIndex: 0, why: 'an empty log' },
      { runs: [{ startIndex: 1, term: 3 }], lastIndex: 1, why: 'one entry' },
      { runs, lastIndex: 6, why: 'a last run of one entry' },
    ];
    for (const { runs: given, lastIndex, why } of valid) {
      it(`accepts ${why}`, () => assert.equal(new TermIndex(given, lastIndex).lastIndex, lastIndex));
    }

    it('keeps its own copy of the runs', () => {
      const given = runs.map((run) => ({ ...run }));
      const terms = new TermIndex(given, 8);
      given[0]!.term = 99;
      given.pop();
      assert.equal(terms.termAt(1), 1);
      assert.equal(terms.termAt(8), 5);
    });
  });
});
