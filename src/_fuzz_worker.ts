/** The Worker that runs one fuzz target for runFuzz (src/_fuzz.ts); a hang here cannot block the tests. */

import { type FuzzTarget, runIterations, type WorkerMessage, type WorkerRequest } from "./_fuzz.ts";

declare const self: {
  onmessage: ((event: MessageEvent<WorkerRequest>) => void) | null;
  postMessage(message: WorkerMessage): void;
};

self.onmessage = async (event) => {
  const request = event.data;
  const module = await import(request.module) as {
    targets: Record<string, FuzzTarget>;
    /** Optional async setup, e.g. seeds that take zlib to build. */
    prepare?: () => Promise<unknown>;
  };
  await module.prepare?.();
  const target = module.targets[request.target];
  if (!target) throw new Error(`no fuzz target "${request.target}" in ${request.module}`);
  // the hang deadline starts now, not while the module was type-checked and imported
  self.postMessage({ type: "ready" });
  await runIterations(target, request, (message) => self.postMessage(message));
};
