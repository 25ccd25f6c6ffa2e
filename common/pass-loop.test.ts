import { describe, expect, test } from '@jest/globals';
import { PassLoop } from './pass-loop.js';

function gate() {
  let open!: () => void;
  const p = new Promise<void>((r) => (open = r));
  return { p, open };
}

describe('PassLoop', () => {
  test('one pass at a time; kicks during a pass coalesce into one more', async () => {
    let passes = 0;
    let g = gate();
    const loop = new PassLoop({
      pass: async () => {
        passes++;
        await g.p;
      },
      active: () => true,
    });
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
    expect(passes).toBe(2);
    expect(loop.busy).toBe(false);
  });

  test('no pass once inactive, and no further pass after it turns inactive', async () => {
    let active = true;
    let passes = 0;
    const g = gate();
    const loop = new PassLoop({
      pass: async () => {
        passes++;
        await g.p;
      },
      active: () => active,
    });
    const run = loop.kick();
    void loop.kick();
    active = false;
    g.open();
    await run;
    expect(passes).toBe(1);
    await loop.kick();
    expect(passes).toBe(1);
  });
});
