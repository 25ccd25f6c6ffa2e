import { describe, expect, test } from '@jest/globals';
import { PassLoop } from './pass-loop.js';

function gate() {
  let open!: () => void;
  const p = new Promise<void>((r) => (open = r));
  return { p, open };
}

/** A loop whose passes count themselves and wait for the gate `current()` returns. */
function counting(active: () => boolean, current: () => { p: Promise<void> }) {
  const counter = { passes: 0 };
  const loop = new PassLoop({
    pass: async () => {
      counter.passes++;
      await current().p;
    },
    active,
  });
  return { loop, counter };
}

describe('PassLoop', () => {
  test('one pass at a time; kicks during a pass coalesce into one more', async () => {
    let g = gate();
    const { loop, counter } = counting(
      () => true,
      () => g,
    );
    const first = loop.kick();
    expect(loop.busy).toBe(true);
    void loop.kick();
    void loop.kick();
    const last = loop.kick();
    expect(last).toBe(first);
    const g1 = g;
    g = gate();
    g1.open();
    await Promise.resolve();
    await Promise.resolve();
    g.open();
    await first;
    expect(counter.passes).toBe(2);
    expect(loop.busy).toBe(false);
  });

  test('no pass once inactive, and no further pass after it turns inactive', async () => {
    let active = true;
    const g = gate();
    const { loop, counter } = counting(
      () => active,
      () => g,
    );
    const run = loop.kick();
    void loop.kick();
    active = false;
    g.open();
    await run;
    expect(counter.passes).toBe(1);
    await loop.kick();
    expect(counter.passes).toBe(1);
  });
});
