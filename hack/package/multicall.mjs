// Entry point of the single executable (hack/package/sea.sh): one binary, three commands, chosen by the name it
// was started under (busybox-style): vipwarden-agent and vipwarden-controller are symlinks to vipwarden.
// Only the chosen command's modules are evaluated: esbuild turns these dynamic imports into lazy requires.
import { basename } from 'node:path';

const name = basename(process.argv0 || process.argv[0] || 'vipwarden').replace(/\.(exe|bin)$/, '');
const command = name.endsWith('-agent')
  ? import('../../bin/vipwarden-agent.js')
  : name.endsWith('-controller')
    ? import('../../bin/vipwarden-controller.js')
    : import('../../bin/vipwarden.js');
command.catch((err) => {
  console.error(`${name}: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
