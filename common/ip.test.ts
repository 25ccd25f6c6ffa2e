// Table tests for address and name validation: everything that reaches a command line goes through these.
import { describe, expect, test } from '@jest/globals';
import {
  canonicalIPv6,
  formatCidr,
  ipv6Groups,
  isInterfaceName,
  isResourceName,
  mustParseCidr,
  parseCidr,
  sameAddress,
} from './ip.js';

describe('parseCidr', () => {
  test.each([
    ['198.18.0.100/24', { address: '198.18.0.100', prefix: 24, family: 4 }],
    ['10.0.0.1/32', { address: '10.0.0.1', prefix: 32, family: 4 }],
    ['10.0.0.1/1', { address: '10.0.0.1', prefix: 1, family: 4 }],
    ['2001:2::100/64', { address: '2001:2::100', prefix: 64, family: 6 }],
    ['2001:2:0::1/33', { address: '2001:2::1', prefix: 33, family: 6 }],
    ['2001:0DB8:0000:0000:0000:0000:0000:0001/128', { address: '2001:db8::1', prefix: 128, family: 6 }],
    ['::1/128', { address: '::1', prefix: 128, family: 6 }],
    ['fe80::1/64', { address: 'fe80::1', prefix: 64, family: 6 }],
  ])('accepts %s', (text, want) => {
    expect(parseCidr(text)).toEqual(want);
    expect(formatCidr(mustParseCidr(text))).toBe(`${want.address}/${want.prefix}`);
  });

  test.each([
    ['198.18.0.1', /with a prefix length/],
    ['198.18.0.1/', /is not a number/],
    ['198.18.0.1/x', /is not a number/],
    ['198.18.0.1/-1', /is not a number/],
    ['198.18.0.1/ 24', /is not a number/],
    ['198.18.0.1/1000', /is not a number/],
    ['198.18.0.1/0', /IPv4 prefix length must be 1\.\.32, got 0/],
    ['198.18.0.1/33', /IPv4 prefix length must be 1\.\.32, got 33/],
    ['2001:2::1/0', /IPv6 prefix length must be 1\.\.128, got 0/],
    ['2001:2::1/129', /IPv6 prefix length must be 1\.\.128, got 129/],
    ['198.18.0.256/24', /not an IPv4 or IPv6 address/],
    ['198.18.0.01/24', /not an IPv4 or IPv6 address/],
    ['198.18.0/24', /not an IPv4 or IPv6 address/],
    ['2001:2:::1/64', /not an IPv4 or IPv6 address/],
    ['example.com/24', /not an IPv4 or IPv6 address/],
    ['10.0.0.1;reboot/24', /not an IPv4 or IPv6 address/],
    ['/24', /not an IPv4 or IPv6 address/],
    ['10.0.0.1/24/24', /is not a number/],
    // Node's isIPv6 accepts a zone index; canonicalIPv6 would silently drop it ("fe80::1"). Rejected instead.
    ['fe80::1%eth0/64', /zone index/],
    ['fe80::1%25eth0/64', /zone index/],
  ])('rejects %s', (text, message) => {
    const r = parseCidr(text);
    expect(typeof r).toBe('string');
    expect(r).toMatch(message);
    expect(() => mustParseCidr(text)).toThrow(/invalid CIDR/);
  });
});

describe('canonicalIPv6', () => {
  test.each([
    ['2001:2::1', '2001:2::1'],
    ['2001:2:0::1', '2001:2::1'],
    ['2001:0002:0000:0000:0000:0000:0000:0001', '2001:2::1'],
    ['2001:DB8::A', '2001:db8::a'],
    ['::', '::'],
    ['::1', '::1'],
    ['0:0:0:0:0:0:0:1', '::1'],
    ['1::', '1::'],
    ['fe80:0:0:0:0:0:0:0', 'fe80::'],
    ['1:0:2:3:4:5:6:7', '1:0:2:3:4:5:6:7'], // a single zero group is not compressed (RFC 5952 4.2.2)
    ['1:0:0:2:0:0:0:3', '1:0:0:2::3'], // the longest run
    ['1:0:0:2:0:0:3:4', '1::2:0:0:3:4'], // equal runs: the first
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
    ['0:0:1::', '0:0:1::'], // '1::' expands to 0:0:1:0:0:0:0:0, whose longest run is the tail
    ['::ffff:198.18.0.1', '::ffff:198.18.0.1'], // embedded IPv4 keeps its text form
    ['::FFFF:198.18.0.1', '::ffff:198.18.0.1'],
  ])('%s -> %s', (input, want) => {
    expect(canonicalIPv6(input)).toBe(want);
    // Idempotent.
    expect(canonicalIPv6(want)).toBe(want);
  });

  test('sameAddress compares IPv6 canonically and IPv4 as text', () => {
    expect(sameAddress('2001:2::1', '2001:2:0:0::1')).toBe(true);
    expect(sameAddress('2001:2::1', '2001:2::2')).toBe(false);
    expect(sameAddress('10.0.0.1', '10.0.0.1')).toBe(true);
    expect(sameAddress('10.0.0.1', '10.0.0.2')).toBe(false);
  });
});

describe('isInterfaceName', () => {
  test.each(['eth0', 'ens3', 'br-vip', 'vlan.100', 'eth0:1', 'veth_a', 'a', 'abcdefghijklmno', 'wg0'])(
    'accepts %s',
    (name) => {
      expect(isInterfaceName(name)).toBe(true);
    },
  );

  test.each([
    ['empty', ''],
    ['16 characters', 'abcdefghijklmnop'],
    ['slash', 'eth/0'],
    ['space', 'eth 0'],
    ['newline', 'eth0\n'],
    ['semicolon', 'eth0;reboot'],
    ['leading dash (an option to ip)', '-eth0'],
    ['dot', '.'],
    ['dot dot', '..'],
    ['leading dot', '.eth0'],
    ['non-ASCII', 'ethé'],
  ])('rejects %s', (_name, name) => {
    expect(isInterfaceName(name)).toBe(false);
  });
});

describe('isResourceName', () => {
  test.each(['web', 'web-vip', 'a', 'node-1.example.com', '0a'])('accepts %s', (name) => {
    expect(isResourceName(name)).toBe(true);
  });
  test.each(['', 'Web', 'web_vip', '-web', 'web-', 'web/vip', 'a'.repeat(254)])('rejects %j', (name) => {
    expect(isResourceName(name)).toBe(false);
  });
});

describe('ipv6Groups', () => {
  test.each([
    ['2001:2::1', [0x2001, 2, 0, 0, 0, 0, 0, 1]],
    ['::', [0, 0, 0, 0, 0, 0, 0, 0]],
    ['1::', [1, 0, 0, 0, 0, 0, 0, 0]],
    ['fe80:0:0:0:1:2:3:4', [0xfe80, 0, 0, 0, 1, 2, 3, 4]],
  ])('%s', (a, want) => {
    expect(ipv6Groups(a)).toEqual(want);
  });
});
