// One FailoverGroup builder for the controller's unit tests: a parsed group (defaults applied) from a name and a
// spec; a spec the schema rejects throws. The tests say only what differs from the one VIP 198.18.0.100/24.
import { parseFailoverGroup, type FailoverGroup, type FailoverGroupSpecInput } from '../../crds/failovergroup.js';

export function testGroup(
  name: string,
  spec: Partial<FailoverGroupSpecInput> & Pick<FailoverGroupSpecInput, 'nodes'>,
): FailoverGroup {
  const r = parseFailoverGroup({
    apiVersion: 'vipwarden.io/v1alpha1',
    kind: 'FailoverGroup',
    metadata: { name },
    spec: { vips: [{ address: '198.18.0.100/24' }], ...spec },
  });
  if (!r.ok) throw r.error;
  return r.group;
}
