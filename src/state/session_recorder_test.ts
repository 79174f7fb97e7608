import assert from "node:assert/strict";
import type { ForwardStatus } from "../forward/status.ts";
import { sendControl } from "./control.ts";
import { processStartTime } from "./process_identity.ts";
import { readSessionRecords } from "./session_file.ts";
import { SessionRecorder } from "./session_recorder.ts";
import { listSessions } from "./sessions.ts";
import { forward, tempStateDir, waitFor } from "./testdata/helpers.ts";

async function readForwards(dir: string): Promise<ForwardStatus[]> {
  const { records } = await readSessionRecords(dir);
  return records[0]?.forwards ?? [];
}

Deno.test("SessionRecorder.start() writes the first record at once, with this process's identity", async () => {
  const dir = `${await tempStateDir()}/state`;
  const forwards = [forward("api")];
  const recorder = await SessionRecorder.start({
    dir,
    configFiles: ["/w/kf.yaml"],
    snapshot: () => forwards,
  });
  try {
    assert.equal((await Deno.stat(dir)).mode! & 0o777, 0o700, "created the state dir 0700");
    const { records } = await readSessionRecords(dir);
    assert.equal(records.length, 1);
    const record = records[0];
    assert.equal(record.id, recorder.id);
    assert.equal(record.pid, Deno.pid);
    assert.equal(record.startTime, processStartTime(Deno.pid));
    assert.ok(record.argv.length > 0);
    assert.deepEqual(record.configFiles, ["/w/kf.yaml"]);
    assert.equal(record.controlSocket, `${dir}/${recorder.id}.sock`);
    assert.deepEqual(record.forwards, forwards);
    assert.deepEqual((await listSessions(dir)).map((v) => v.liveness), ["live"]);
  } finally {
    await recorder.close();
  }
  assert.deepEqual(await Array.fromAsync(Deno.readDir(dir)), [], "close() removes the file");
  await Deno.remove(dir.replace(/\/state$/, ""), { recursive: true });
});

Deno.test("SessionRecorder.changed() is debounced: a burst of changes makes few writes, the last state wins", async () => {
  const dir = await tempStateDir();
  const f = forward("api");
  const recorder = await SessionRecorder.start({
    dir,
    configFiles: [],
    snapshot: () => [f],
    minIntervalMs: 100,
  });
  try {
    assert.equal(recorder.writes, 1);
    const started = performance.now();
    for (let i = 1; i <= 1000; i++) {
      f.bytesIn = i;
      recorder.changed();
    }
    assert.equal(recorder.writes, 1, "no write happens synchronously");
    await waitFor(async () => (await readForwards(dir))[0]?.bytesIn === 1000, 2000);
    assert.ok(recorder.writes <= 2, `1000 changes took ${recorder.writes - 1} writes`);
    assert.ok(performance.now() - started >= 90, "the second write waited for the min interval");
    // No temp files are left by the debounced writes.
    assert.deepEqual((await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name), [`${recorder.id}.json`]);
  } finally {
    await recorder.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("SessionRecorder refreshes counters on its own, and skips writes when nothing changed", async () => {
  const dir = await tempStateDir();
  const f = forward("api");
  const recorder = await SessionRecorder.start({
    dir,
    configFiles: [],
    snapshot: () => [f],
    minIntervalMs: 10,
    refreshMs: 30,
  });
  try {
    f.totalConnections = 7; // no changed() call, as for byte counters
    await waitFor(async () => (await readForwards(dir))[0]?.totalConnections === 7, 2000);
    // a write that was already under way when the file showed 7 may still finish: let it settle
    await recorder.flush();
    const writes = recorder.writes;
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(recorder.writes, writes, "idle refreshes do not rewrite an unchanged file");
    await recorder.flush();
    assert.equal(recorder.writes, writes);
  } finally {
    await recorder.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("SessionRecorder with control: stop-forward is flushed to the file before the answer", async () => {
  const dir = await tempStateDir();
  const forwards = [forward("api"), forward("web")];
  let stopped = false;
  const recorder = await SessionRecorder.start({
    dir,
    configFiles: [],
    snapshot: () => forwards.map((f) => ({ ...f })),
    minIntervalMs: 60_000, // only the flush can write within this test
    control: {
      stop: () => {
        stopped = true;
        return Promise.resolve();
      },
      status: () => forwards,
      stopForward: (name) => {
        forwards.find((f) => f.name === name)!.state = "stopped";
        return Promise.resolve({ ok: true });
      },
    },
  });
  try {
    assert.equal((await Deno.lstat(recorder.controlSocket)).mode! & 0o777, 0o600);
    assert.equal((await sendControl(recorder.controlSocket, { op: "stop-forward", name: "api" })).ok, true);
    assert.deepEqual((await readForwards(dir)).map((f) => [f.name, f.state]), [["api", "stopped"], [
      "web",
      "ready",
    ]]);
    assert.equal((await sendControl(recorder.controlSocket, { op: "stop" })).ok, true);
    await waitFor(() => stopped);
  } finally {
    await recorder.close();
  }
  assert.deepEqual(await Array.fromAsync(Deno.readDir(dir)), [], "close() removes the file and the socket");
  await recorder.close(); // idempotent
  await Deno.remove(dir, { recursive: true });
});
