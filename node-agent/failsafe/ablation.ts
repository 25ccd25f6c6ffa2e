// The rules of node-agent/failsafe/rules.ts that the model test switches off one at a time (rules.model.test.ts):
// each one, removed, lets the model find a dual holder.

/**
 * A rule switched off, for the model test only: it shows that each rule is needed (a counterexample is found
 * without it). Production code never passes one.
 */
export type Ablation =
  /** Rule 1: the holder asks the nodes it knows of itself; the controller lists every node registered before. */
  | 'rule1-assigned-set'
  /** Rule 2: a peer grants although it reaches etcd or holds the group. */
  | 'rule2-refuse'
  /** Rule 3: a peer forgets its promises once it reaches etcd again. */
  | 'rule3-binding'
  /** Rule 3: a bound peer acknowledges letting go of the group at once (the binding covers adds only). */
  | 'rule3-ack'
  /** Rule 4: the bound counts from the answer's arrival (however late) instead of the request's send time. */
  | 'rule4-send-time'
  /** Rule 4: no margins (drift, lease margin, kernel slack) between the promises' end and the lifetime's end. */
  | 'rule4-margins'
  /** Rule 5: any node may take over after the ordinary wait; the keep is not bounded by maxKeep. */
  | 'rule5-bounded'
  /** Rule 6: a refused or missing promise does not end the keep: the holder goes on with the promises it has. */
  | 'rule6-all';

export interface RulesOptions {
  without?: ReadonlySet<Ablation>;
}
