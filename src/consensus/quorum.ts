/**
 * Small pure decisions about majorities, kept apart so they can be tested from tables.
 */

/** How many of `voterCount` voters make a majority. */
export function quorumSize(voterCount: number): number {
  return Math.floor(voterCount / 2) + 1;
}

/**
 * The highest index a majority of voters holds, given each voter's durable match index. An index
 * is committed (in the leader's term) once this reaches it.
 */
export function majorityMatchIndex(matchIndexes: readonly number[]): number {
  if (matchIndexes.length === 0) return 0;
  const sorted = [...matchIndexes].sort((a, b) => b - a);
  return sorted[quorumSize(matchIndexes.length) - 1]!;
}

export type VoteOutcome = 'won' | 'lost' | 'pending';

/** Whether an election is decided, given the voters and the answers received so far. */
export function voteOutcome(voters: readonly string[], answers: ReadonlyMap<string, boolean>): VoteOutcome {
  const needed = quorumSize(voters.length);
  let granted = 0;
  let rejected = 0;
  for (const voter of voters) {
    const answer = answers.get(voter);
    if (answer === true) granted++;
    else if (answer === false) rejected++;
  }
  if (granted >= needed) return 'won';
  if (rejected > voters.length - needed) return 'lost';
  return 'pending';
}
