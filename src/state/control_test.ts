import assert from "node:assert/strict";
import type { ForwardStatus } from "../forward/status.ts";
import { type ControlHandlers, sendControl, serveControl } from "./control.ts";
import { ControlError } from "./errors.ts";
import { forward, tempStateDir, waitFor } from "./testdata/helpers.ts";

function fakeHandlers(forwards: ForwardStatus[], stops: string[]): ControlHandlers {
  return {
    stop: () => {
      stops.push("session");
      return Promise.resolve();
    },
    stopForward: (name) => {
      const f = forwards.find((f) => f.name === name);
      if (!f) return Promise.resolve({ ok: false, error: `no forward named '${name}'` });
      f.state = "stopped";
      stops.push(name);
      return Promise.resolve({ ok: true });
    },
    status: () => forwards,
  };
}

Deno.test("serveControl() answers status, stop-forward and stop over a 0600 unix socket", async () => {
  const dir = await tempStateDir();
  const forwards = [forward("api"), forward("web")];
  const stops: string[] = [];
  const path = `${dir}/kabcde.sock`;
  const server = await serveControl({ path, handlers: fakeHandlers(forwards, stops) });
  try {
    assert.equal((await Deno.lstat(path)).mode! & 0o777, 0o600);

    const status = await sendControl(path, { op: "status" });
    assert.equal(status.ok, true);
    assert.equal(status.pid, Deno.pid);
    assert.deepEqual(status.forwards?.map((f) => f.name), ["api", "web"]);

    assert.deepEqual(await sendControl(path, { op: "stop-forward", name: "api" }), {
      ok: true,
      pid: Deno.pid,
    });
    assert.equal(forwards[0].state, "stopped");
    assert.equal(forwards[1].state, "ready", "the other forward is untouched");

    const missing = await sendControl(path, { op: "stop-forward", name: "nope" });
    assert.deepEqual(missing, { ok: false, error: "no forward named 'nope'", pid: Deno.pid });

    // deno-lint-ignore no-explicit-any
    const unknown = await sendControl(path, { op: "explode" } as any);
    assert.equal(unknown.ok, false);
    assert.match(unknown.error!, /unknown op "explode"/);

    assert.deepEqual(await sendControl(path, { op: "stop" }), { ok: true, pid: Deno.pid });
    await waitFor(() => stops.length === 2);
    assert.deepEqual(stops, ["api", "session"]);
  } finally {
    await server.close();
    await Deno.remove(dir, { recursive: true });
  }
  await assert.rejects(Deno.lstat(path), Deno.errors.NotFound, "close() removes the socket");
});

Deno.test("serveControl() answers a malformed line with an error and keeps serving", async () => {
  const dir = await tempStateDir();
  const path = `${dir}/kabcde.sock`;
  const server = await serveControl({ path, handlers: fakeHandlers([], []) });
  try {
    const conn = await Deno.connect({ transport: "unix", path });
    await conn.write(new TextEncoder().encode('not json\n{"op":"status"}\n'));
    const chunks: string[] = [];
    const buf = new Uint8Array(4096);
    while (chunks.join("").split("\n").length < 3) {
      const n = await conn.read(buf);
      if (n === null) break;
      chunks.push(new TextDecoder().decode(buf.subarray(0, n)));
    }
    conn.close();
    const [bad, good] = chunks.join("").trim().split("\n").map((l) => JSON.parse(l));
    assert.equal(bad.ok, false);
    assert.match(bad.error, /bad request/);
    assert.deepEqual(good, { ok: true, forwards: [], pid: Deno.pid });
  } finally {
    await server.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("serveControl() replaces a stale socket left by a killed process, and refuses a live one", async () => {
  const dir = await tempStateDir();
  const path = `${dir}/kabcde.sock`;
  // Deno.exit() skips closing the listener, so the socket file stays with nobody listening.
  const code = `Deno.listen({ transport: "unix", path: ${JSON.stringify(path)} }); Deno.exit(0);`;
  const out = await new Deno.Command(Deno.execPath(), { args: ["eval", code], stdout: "null" }).output();
  assert.equal(out.code, 0);
  assert.equal((await Deno.lstat(path)).isSocket, true);
  const server = await serveControl({ path, handlers: fakeHandlers([], []) });
  try {
    assert.equal((await sendControl(path, { op: "status" })).ok, true);
    await assert.rejects(
      serveControl({ path, handlers: fakeHandlers([], []) }),
      (e: unknown) => e instanceof ControlError && /another running kf session/.test(e.message),
    );
  } finally {
    await server.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("serveControl() stops on abort and refuses a too-long socket path", async () => {
  const dir = await tempStateDir();
  const controller = new AbortController();
  const path = `${dir}/kabcde.sock`;
  await serveControl({ path, signal: controller.signal, handlers: fakeHandlers([], []) });
  controller.abort();
  try {
    await new Promise((resolve) => setTimeout(resolve, 0));
    await assert.rejects(sendControl(path, { op: "status" }), ControlError);
    await assert.rejects(
      serveControl({ path: `${dir}/${"x".repeat(120)}.sock`, handlers: fakeHandlers([], []) }),
      /unix socket limit/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("sendControl() fails with ControlError when no one listens or no answer comes in time", async () => {
  const dir = await tempStateDir();
  const path = `${dir}/silent.sock`;
  try {
    await assert.rejects(
      sendControl(path, { op: "status" }),
      (e: unknown) => e instanceof ControlError && /does not exist/.test(e.message) && e.hint !== undefined,
    );
    const listener = Deno.listen({ transport: "unix", path });
    const accepted: Deno.Conn[] = [];
    const accepting = (async () => {
      for await (const conn of listener) accepted.push(conn); // accepts, never answers
    })();
    try {
      const started = performance.now();
      await assert.rejects(
        sendControl(path, { op: "status" }, { timeoutMs: 100 }),
        /no answer within 100 ms/,
      );
      assert.ok(performance.now() - started < 1000);
    } finally {
      listener.close();
      accepted.forEach((c) => c.close());
      await accepting;
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
