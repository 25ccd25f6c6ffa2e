import { arpDuals, parseArpWatchLine, type ArpAnswers } from './arpwatch.js';

const A = 'aa:00:00:00:00:01';
const B = 'aa:00:00:00:00:02';

describe('vwarpwatch output', () => {
  it('parses answer lines, heartbeats and markers', () => {
    expect(parseArpWatchLine(`1000.250 198.18.16.100 7 ${B.toUpperCase()},${A}`)).toEqual({
      kind: 'answers',
      answers: { t: 1000.25, vip: '198.18.16.100', round: 7, macs: [A, B] },
    });
    expect(parseArpWatchLine('1000.000 198.18.16.100 8 -')).toMatchObject({ answers: { macs: [] } });
    expect(parseArpWatchLine('5.0 - hb 200 1 3 812')).toEqual({
      kind: 'hb',
      t: 5,
      rounds: 200,
      late: 1,
      lateReplies: 3,
      maxReplyUs: 812,
    });
    expect(parseArpWatchLine('5.0 - ready 11')).toEqual({ kind: 'ready', t: 5, rounds: 11 });
    expect(parseArpWatchLine('garbage')).toBeUndefined();
    expect(parseArpWatchLine('1.0 198.18.16.100 x -')).toBeUndefined();
    expect(parseArpWatchLine('1.0 198.18.16.100 3 not-a-mac')).toBeUndefined();
  });
});

describe('arpDuals', () => {
  const vip = '198.18.16.100';
  const at = (t: number, ...macs: string[]): ArpAnswers => ({ t, vip, round: t / 5, macs });

  it('counts from the first round two MACs answered to the next round with fewer', () => {
    const ans = [at(0, A), at(100, A, B), at(130, B), at(200), at(300, B)];
    expect(arpDuals(ans, vip, 1000)).toEqual([{ from: 100, to: 130, ongoing: false, macs: [A, B] }]);
  });

  it('a handover with a silent round in between is no dual', () => {
    expect(arpDuals([at(0, A), at(50), at(55, B)], vip, 1000)).toEqual([]);
  });

  it('an overlap still going on ends now, and since clips', () => {
    const ans = [at(0, A), at(100, A, B)];
    expect(arpDuals(ans, vip, 400)).toEqual([{ from: 100, to: 400, ongoing: true, macs: [A, B] }]);
    expect(arpDuals(ans, vip, 400, 250)).toEqual([{ from: 250, to: 400, ongoing: true, macs: [A, B] }]);
    expect(arpDuals([at(0, A, B), at(10, A)], vip, 400, 250)).toEqual([]);
  });

  it('other VIPs do not count', () => {
    expect(arpDuals([{ t: 0, vip: '198.18.16.101', round: 0, macs: [A, B] }], vip, 10)).toEqual([]);
  });
});
