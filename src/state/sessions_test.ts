import assert from "node:assert/strict";
import { UsageError } from "../errors.ts";
import { sendControl } from "./control.ts";
import { AmbiguousTargetError, SessionNotFoundError } from "./errors.ts";
import { isAlive, processArgv } from "./process_identity.ts";
import { readSessionRecords, writeSessionRecord } from "./session_file.ts";
import { listSessions, stopSessions } from "./sessions.ts";
import {
  forward,
  killQuietly,
  recordFor,
  spawn,
  spawnFakeSession,
  tempStateDir,
  waitFor,
} from "./testdata/helpers.ts";

async function fileNames(dir: string): Promise<string[]> {
  return (await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name).sort();
}

/** A process that exited and was reaped: its pid is dead. */
async function deadPid(): Promise<number> {
  const child = spawn("sleep", ["0.01"]);
  await child.status;
  return child.pid;
}

/** `sleep 30` once it has exec'd, so its argv and start time are final. */
async function sleeper(args = "exec sleep 30"): Promise<Deno.ChildProcess> {
  const child = spawn("sh", ["-c", args]);
  await waitFor(() => processArgv(child.pid)?.[0] === "sleep");
  return child;
}

Deno.test("listSessions() shows a session with a dead pid once, then it is gone", async () => {
  const dir = await tempStateDir();
  try {
    const pid = await deadPid();
    await writeSessionRecord(
      dir,
      recordFor(dir, "kdeadd", pid, { startTime: "123", argv: ["kf", "forward"] }),
    );
    await Deno.writeTextFile(`${dir}/kdeadd.sock`, ""); // its socket is left behind too
    const first = await listSessions(dir);
    assert.deepEqual(first.map((v) => [v.record.id, v.liveness]), [["kdeadd", "dead"]]);
    assert.deepEqual(await fileNames(dir), [], "file and socket removed");
    assert.deepEqual(await listSessions(dir), []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("listSessions({prune: false}) reports without removing", async () => {
  const dir = await tempStateDir();
  try {
    await writeSessionRecord(dir, recordFor(dir, "kdeadd", await deadPid(), { startTime: "1" }));
    assert.equal((await listSessions(dir, { prune: false }))[0].liveness, "dead");
    assert.deepEqual(await fileNames(dir), ["kdeadd.json"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a record whose pid is now an unrelated process: stale, never signalled", async (t) => {
  const dir = await tempStateDir();
  const victim = await sleeper();
  try {
    await t.step("listSessions() marks a wrong start time stale and removes the file", async () => {
      await writeSessionRecord(dir, recordFor(dir, "kstale", victim.pid, { startTime: "42" }));
      assert.deepEqual((await listSessions(dir)).map((v) => v.liveness), ["stale"]);
      assert.deepEqual(await fileNames(dir), []);
    });
    await t.step("listSessions() marks a wrong argv stale", async () => {
      await writeSessionRecord(
        dir,
        recordFor(dir, "kstale", victim.pid, { argv: ["deno", "run", "main.ts"] }),
      );
      assert.deepEqual((await listSessions(dir)).map((v) => v.liveness), ["stale"]);
    });
    await t.step("stopSessions() refuses, says why, and the process still runs", async () => {
      await writeSessionRecord(dir, recordFor(dir, "kstale", victim.pid, { startTime: "42" }));
      const outcomes = await stopSessions(dir, ["kstale"], { timeoutMs: 100 });
      assert.equal(outcomes.length, 1);
      assert.equal(outcomes[0].action, "refused");
      assert.equal(outcomes[0].ok, false);
      assert.equal(
        outcomes[0].message,
        `refused pid ${victim.pid}: it is now another process (PID reuse); removed the stale state file of session kstale`,
      );
      assert.ok(isAlive(victim.pid), "the unrelated process was not signalled");
      assert.deepEqual(await fileNames(dir), []);
    });
    await t.step("stopSessions({all}) refuses it too", async () => {
      await writeSessionRecord(dir, recordFor(dir, "kstale", victim.pid, { argv: ["kf", "forward"] }));
      const outcomes = await stopSessions(dir, [], { all: true, timeoutMs: 100 });
      assert.deepEqual(outcomes.map((o) => o.action), ["refused"]);
      assert.ok(isAlive(victim.pid));
    });
  } finally {
    await killQuietly(victim);
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("stopSessions() SIGTERMs a matching process and reports it", async () => {
  const dir = await tempStateDir();
  const child = await sleeper();
  try {
    await writeSessionRecord(
      dir,
      recordFor(dir, "kterm1", child.pid, { forwards: [forward("a"), forward("b")] }),
    );
    const outcomes = await stopSessions(dir, ["kterm1"], { timeoutMs: 2000 });
    assert.deepEqual(outcomes.map((o) => [o.action, o.ok]), [["stopped", true]]);
    assert.equal(outcomes[0].message, `stopped session kterm1 (pid ${child.pid}, 2 forwards)`);
    assert.equal((await child.status).signal, "SIGTERM");
    assert.deepEqual(await fileNames(dir), [], "a killed process's file is removed for it");
  } finally {
    await killQuietly(child);
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("stopSessions() falls back to SIGKILL when the process ignores SIGTERM", async () => {
  const dir = await tempStateDir();
  // An ignored signal stays ignored across exec, so this sleep ignores SIGTERM.
  const child = await sleeper("trap '' TERM; exec sleep 30");
  try {
    await writeSessionRecord(dir, recordFor(dir, "kstubb", child.pid));
    const started = performance.now();
    const outcomes = await stopSessions(dir, [String(child.pid)], { timeoutMs: 200 });
    const elapsed = performance.now() - started;
    assert.deepEqual(outcomes.map((o) => [o.action, o.ok]), [["killed", true]]);
    assert.match(
      outcomes[0].message,
      /^killed session kstubb .*still running 0\.2s after SIGTERM, sent SIGKILL$/,
    );
    assert.equal((await child.status).signal, "SIGKILL");
    assert.ok(elapsed >= 200 && elapsed < 1500, `waited the timeout, then killed (${elapsed} ms)`);
    assert.deepEqual(await fileNames(dir), []);
  } finally {
    await killQuietly(child);
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("stopSessions() on a dead session removes its file and counts as done", async () => {
  const dir = await tempStateDir();
  try {
    await writeSessionRecord(dir, recordFor(dir, "kdeadd", await deadPid(), { startTime: "1" }));
    const outcomes = await stopSessions(dir, ["kdeadd"]);
    assert.deepEqual(outcomes.map((o) => [o.action, o.ok]), [["removed-dead", true]]);
    assert.match(
      outcomes[0].message,
      /^session kdeadd was not running \(pid \d+ had exited\); removed its state file$/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("stopSessions() resolves targets before acting: unknown, ambiguous, usage", async (t) => {
  const dir = await tempStateDir();
  const a = await sleeper();
  const b = await sleeper();
  try {
    await writeSessionRecord(
      dir,
      recordFor(dir, "kaaaaa", a.pid, { forwards: [forward("api"), forward("db")] }),
    );
    await writeSessionRecord(
      dir,
      recordFor(dir, "kbbbbb", b.pid, { forwards: [forward("api"), forward("web")] }),
    );
    await t.step("an unknown name lists what runs", async () => {
      const error = await stopSessions(dir, ["web", "nope"]).catch((e) => e);
      assert.ok(error instanceof SessionNotFoundError);
      assert.equal(error.message, "No kf session or forward named 'nope'");
      assert.equal(error.hint, "running: kaaaaa (api, db), kbbbbb (api, web) (see kf ps)");
      assert.equal(error.exitCode, 1);
    });
    await t.step("a forward name in two sessions lists the id/name choices", async () => {
      const error = await stopSessions(dir, ["api"]).catch((e) => e);
      assert.ok(error instanceof AmbiguousTargetError);
      assert.deepEqual(error.choices, ["kaaaaa/api", "kbbbbb/api"]);
      assert.match(error.hint!, /kaaaaa\/api, kbbbbb\/api/);
    });
    await t.step("ID/NAME of a forward the session lacks is unknown", async () => {
      await assert.rejects(stopSessions(dir, ["kaaaaa/web"]), SessionNotFoundError);
    });
    await t.step("no targets, or targets with --all, is a usage error (exit 2)", async () => {
      await assert.rejects(
        stopSessions(dir, []),
        (e: unknown) => e instanceof UsageError && e.exitCode === 2,
      );
      await assert.rejects(stopSessions(dir, ["kaaaaa"], { all: true }), UsageError);
    });
    assert.ok(isAlive(a.pid) && isAlive(b.pid), "nothing was signalled");
    await t.step("naming every forward of a session stops the session", async () => {
      const outcomes = await stopSessions(dir, ["kaaaaa/api", "db"], { timeoutMs: 2000 });
      assert.deepEqual(outcomes.map((o) => [o.action, o.session]), [["stopped", "kaaaaa"]]);
      assert.equal((await a.status).signal, "SIGTERM");
      assert.ok(isAlive(b.pid));
    });
  } finally {
    await killQuietly(a);
    await killQuietly(b);
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a real session process: stop one forward, the other keeps running; stop the session", async (t) => {
  const dir = await tempStateDir();
  const session = await spawnFakeSession(dir, ["api", "web"]);
  try {
    await t.step("listSessions() sees it live with its two forwards", async () => {
      const [view] = await listSessions(dir);
      assert.equal(view.liveness, "live");
      assert.equal(view.record.pid, session.child.pid);
      assert.deepEqual(view.record.forwards.map((f) => f.name), ["api", "web"]);
    });
    await t.step("stopping forward api uses the control socket and leaves web", async () => {
      const lines: string[] = [];
      const outcomes = await stopSessions(dir, ["api"], { onOutcome: (o) => lines.push(o.message) });
      assert.deepEqual(outcomes.map((o) => [o.action, o.ok]), [["stopped-forward", true]]);
      assert.deepEqual(lines, [`stopped forward api in session ${session.id}`]);
      const [view] = await listSessions(dir);
      assert.equal(view.liveness, "live");
      assert.deepEqual(view.record.forwards.map((f) => [f.name, f.state]), [["api", "stopped"], [
        "web",
        "ready",
      ]]);
    });
    await t.step(
      "stopping the last running forward stops the session, which removes its own files",
      async () => {
        const outcomes = await stopSessions(dir, [`${session.id}/web`], { timeoutMs: 5000 });
        assert.deepEqual(outcomes.map((o) => o.action), ["stopped"]);
        assert.equal((await session.child.status).code, 0, "a clean exit (SIGTERM handler), not a kill");
        assert.deepEqual(await fileNames(dir), []);
      },
    );
  } finally {
    await killQuietly(session.child);
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a real session process: the control stop op makes it exit and remove its file and socket", async () => {
  const dir = await tempStateDir();
  const session = await spawnFakeSession(dir, ["api"]);
  try {
    const [record] = (await readSessionRecords(dir)).records;
    assert.deepEqual(await sendControl(record.controlSocket, { op: "stop" }), {
      ok: true,
      pid: session.child.pid,
    });
    assert.equal((await session.child.status).code, 0);
    assert.deepEqual(await fileNames(dir), []);
  } finally {
    await killQuietly(session.child);
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a real session that ignores SIGTERM is killed after the timeout and its files removed", async () => {
  const dir = await tempStateDir();
  const session = await spawnFakeSession(dir, ["api"], "--ignore-term");
  try {
    const outcomes = await stopSessions(dir, [session.id], { timeoutMs: 300 });
    assert.deepEqual(outcomes.map((o) => o.action), ["killed"]);
    assert.equal((await session.child.status).signal, "SIGKILL");
    assert.deepEqual(await fileNames(dir), []);
  } finally {
    await killQuietly(session.child);
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("listSessions() of 20 sessions takes < 150 ms", async () => {
  const dir = await tempStateDir();
  try {
    const forwards = [forward("api", { bytesIn: 123456 }), forward("web"), forward("db")];
    for (let i = 0; i < 20; i++) {
      await writeSessionRecord(
        dir,
        recordFor(dir, `ktim${String.fromCharCode(97 + i)}a`, Deno.pid, { forwards }),
      );
    }
    await listSessions(dir); // warm up (module JIT), as a CLI run would be a single cold call: see ps_test
    const started = performance.now();
    const views = await listSessions(dir);
    const elapsed = performance.now() - started;
    assert.equal(views.length, 20);
    assert.ok(views.every((v) => v.liveness === "live"));
    assert.ok(elapsed < 150, `listSessions took ${elapsed.toFixed(1)} ms`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
