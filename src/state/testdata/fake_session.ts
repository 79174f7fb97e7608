/** A stand-in `kf forward` process for tests: SessionRecorder + control socket with fake forwards. */
// Usage: fake_session.ts DIR NAME[,NAME...] [--ignore-term]
// Prints "ready <id>" once the session file exists. Exits 0 after SIGTERM or a control "stop".

import type { ForwardStatus } from "../../forward/status.ts";
import { SessionRecorder } from "../session_recorder.ts";

const [dir, names, flag] = Deno.args;
const forwards: ForwardStatus[] = names.split(",").map((name, i) => ({
  name,
  target: `svc/${name}`,
  context: "kind-kf",
  namespace: "default",
  listeners: [{ address: "127.0.0.1", port: 40000 + i, remote: 80 }],
  state: "ready",
  pod: `${name}-7d9f-abcde`,
  openConnections: 1,
  totalConnections: 3,
  bytesIn: 2048,
  bytesOut: 100,
}));

let recorder: SessionRecorder | undefined = undefined;
let stopping = false;
async function stop() {
  if (stopping) return;
  stopping = true;
  await recorder?.close();
  Deno.exit(0);
}

if (flag === "--ignore-term") Deno.addSignalListener("SIGTERM", () => {});
else Deno.addSignalListener("SIGTERM", () => void stop());

recorder = await SessionRecorder.start({
  dir,
  configFiles: [`${dir}/kf.yaml`],
  snapshot: () => forwards.map((f) => ({ ...f })),
  control: {
    stop,
    status: () => forwards,
    stopForward: (name) => {
      const forward = forwards.find((f) => f.name === name);
      if (!forward) return Promise.resolve({ ok: false, error: `no forward named '${name}'` });
      forward.state = "stopped";
      forward.openConnections = 0;
      recorder?.changed();
      return Promise.resolve({ ok: true });
    },
  },
});
console.log(`ready ${recorder.id}`);
