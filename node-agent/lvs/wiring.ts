// The LVS director as one optional part of the agent: what the agent's start-up code needs, in one call.
//   const lvs = await startLvs({ config, exec, clock, log, registry });
//   resources: [..., lvs.resource]   // the holder directs (acquire / release)
//   agent deps: { lvs: lvs.director } // the agent hands it every group that names this node (standbys check too)
//   on shutdown, after the agent has stopped: await lvs.close()
import type { Registry } from 'prom-client';
import type { Clock } from '../../common/clock.js';
import type { Exec } from '../../common/exec.js';
import type { Logger } from '../../common/log.js';
import type { AgentConfig } from '../config.js';
import type { GroupResource } from '../resources.js';
import { LvsDirector } from './director.js';
import { registerLvsMetrics } from './metrics.js';

export interface LvsPart {
  director: LvsDirector;
  resource: GroupResource;
  close(): Promise<void>;
}

export async function startLvs(deps: {
  config: AgentConfig;
  exec: Exec;
  clock: Clock;
  log: Logger;
  registry?: Registry;
}): Promise<LvsPart> {
  const director = new LvsDirector({
    config: deps.config,
    exec: deps.exec,
    clock: deps.clock,
    log: deps.log.child({ part: 'lvs' }),
  });
  const ac = new AbortController();
  await director.start(ac.signal);
  if (deps.registry) registerLvsMetrics(deps.registry, director);
  return {
    director,
    resource: director.resource(),
    close: async () => {
      await director.stop();
      ac.abort();
    },
  };
}
