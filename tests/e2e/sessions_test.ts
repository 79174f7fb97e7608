/**
 * Sessions as a user sees them: `kf forward` (foreground and --detach), `kf ps` and `kf stop` run as
 * subprocesses against the local test cluster, each test with its own private state directory.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import type { SessionRecord } from "../../src/state/mod.ts";
import {
  defaultLocal,
  freePort,
  httpGet,
  kf,
  Proc,
  readyPods,
  RequestLoop,
  sleep,
  startKf,
  tempStateDir,
  until,
} from "./_harness.ts";

type Liveness = "live" | "dead" | "stale";
type PsSession = SessionRecord & { liveness: Liveness };
interface PsDocument {
  stateDir: string;
  sessions: PsSession[];
  problems: { file: string; error: string }[];
}

/** Every wait in these tests ends; nothing here should take longer than this. */
const WAIT_MS = 20_000;

// ---------------------------------------------------------------------------------------------------
// helpers (local to this file)

/** `kf ps -o json` with this state dir; fails the test on a non-zero exit or unreadable session files. */
async function psJson(stateDir: string): Promise<PsDocument> {
  const out = await kf(["ps", "-o", "json"], { env: { KF_STATE_DIR: stateDir } });
  assert.equal(out.code, 0, `kf ps -o json failed: ${out.stderr}`);
  const doc = JSON.parse(out.stdout) as PsDocument;
  assert.deepEqual(doc.problems, [], "no unreadable session files");
  return doc;
}

/** Polls `kf ps -o json` until every session it lists satisfies `ok` and there are `count` of them. */
async function waitForSessions(
  stateDir: string,
  count: number,
  ok: (s: PsSession) => boolean,
  what: string,
): Promise<PsSession[]> {
  let last: PsSession[] = [];
  try {
    return await until(
      async () => {
        last = (await psJson(stateDir)).sessions;
        return last.length === count && last.every(ok) ? last : undefined;
      },
      WAIT_MS,
      what,
    ) as PsSession[];
  } catch (error) {
    throw new Error(`${(error as Error).message}; last kf ps: ${JSON.stringify(last, null, 1)}`);
  }
}

const allReady = (s: PsSession) =>
  s.liveness === "live" && s.forwards.length > 0 && s.forwards.every((f) => f.state === "ready");

function forwardNamed(session: PsSession, name: string) {
  const forward = session.forwards.find((f) => f.name === name);
  assert.ok(forward, `session ${session.id} has a forward ${name}: ${JSON.stringify(session.forwards)}`);
  return forward;
}

/** The local port of the listener for `remote`. */
function portOf(session: PsSession, name: string, remote: number | string = 80): number {
  const listener = forwardNamed(session, name).listeners.find((l) => l.remote === remote);
  assert.ok(listener, `forward ${name} listens for remote ${remote}`);
  assert.ok(listener.port > 0, "a real port, not 0");
  return listener.port;
}

/** True when nothing listens on 127.0.0.1:port: we can bind it ourselves. */
function canBind(port: number): boolean {
  try {
    Deno.listen({ hostname: "127.0.0.1", port }).close();
    return true;
  } catch {
    return false;
  }
}

/** True when a TCP connect to 127.0.0.1:port is refused (nobody listens). */
async function refused(port: number): Promise<boolean> {
  try {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    conn.close();
    return false;
  } catch (error) {
    return error instanceof Deno.errors.ConnectionRefused;
  }
}

/** A process runs at pid (a zombie or nothing at all counts as not running). */
function running(pid: number): boolean {
  try {
    Deno.kill(pid, 0);
  } catch (error) {
    return error instanceof Deno.errors.PermissionDenied;
  }
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[0] !== "Z";
  } catch {
    return false;
  }
}

/** Pids of processes whose command line contains `text` (to find what a test started in the background). */
function pidsMentioning(text: string): number[] {
  const pids: number[] = [];
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name) || Number(entry.name) === Deno.pid) continue;
    try {
      const cmdline = Deno.readTextFileSync(`/proc/${entry.name}/cmdline`);
      if (cmdline.includes(text) && running(Number(entry.name))) pids.push(Number(entry.name));
    } catch {
      // exited meanwhile
    }
  }
  return pids;
}

function killQuietly(pid: number): void {
  try {
    Deno.kill(pid, "SIGKILL");
  } catch {
    // already gone
  }
}

function fileNames(dir: string): string[] {
  try {
    return [...Deno.readDirSync(dir)].map((e) => e.name).sort();
  } catch {
    return [];
  }
}

/** The session files (`<id>.json`, `<id>.sock`) in the state dir, without logs and dot files. */
function sessionFiles(dir: string): string[] {
  return fileNames(dir).filter((name) => /\.(json|sock)$/.test(name) && !name.startsWith("."));
}

/** Resolves with the exit status, or rejects after timeoutMs (the caller's finally kills the process). */
async function exitWithin(proc: Proc, timeoutMs: number): Promise<Deno.CommandStatus> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      proc.exited,
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`kf did not exit within ${timeoutMs} ms; output:\n${proc.output}`)),
          timeoutMs,
        );
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** A raw TCP connection to the echo port (9000): what is written comes back. */
class EchoConn {
  readonly #conn: Deno.TcpConn;
  constructor(conn: Deno.TcpConn) {
    this.#conn = conn;
  }

  static async open(port: number): Promise<EchoConn> {
    return new EchoConn(await Deno.connect({ hostname: "127.0.0.1", port }));
  }

  /** Writes text and reads until it came back; rejects after timeoutMs or when the connection ends. */
  async roundTrip(text: string, timeoutMs = 5_000): Promise<string> {
    const timer = setTimeout(() => this.close(), timeoutMs);
    try {
      await this.#conn.write(new TextEncoder().encode(text));
      let got = "";
      const buffer = new Uint8Array(4096);
      while (got.length < text.length) {
        const n = await this.#conn.read(buffer);
        if (n === null) throw new Error(`connection ended after ${JSON.stringify(got)}`);
        got += new TextDecoder().decode(buffer.subarray(0, n));
      }
      return got;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Resolves with how the connection ended (EOF or an error), or "open" if still open after timeoutMs. */
  async ended(timeoutMs: number): Promise<"eof" | "error" | "open"> {
    const buffer = new Uint8Array(4096);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<"open">((resolve) => {
      timer = setTimeout(() => resolve("open"), timeoutMs);
    });
    const read = (async () => {
      try {
        while ((await this.#conn.read(buffer)) !== null) { /* drain */ }
        return "eof" as const;
      } catch {
        return "error" as const;
      }
    })();
    try {
      return await Promise.race([read, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  close(): void {
    try {
      this.#conn.close();
    } catch {
      // closed already
    }
  }
}

/** A config file with one `svc/echo` forward per name, on the given local ports. */
function writeConfig(dir: string, forwards: { name: string; port: number; remote?: number }[]): string {
  const file = join(dir, "kf.yaml");
  const lines = ["namespace: default", "forwards:"];
  for (const f of forwards) {
    lines.push(`  - name: ${f.name}`, "    target: svc/echo", `    ports: ["${f.port}:${f.remote ?? 80}"]`);
  }
  Deno.writeTextFileSync(file, lines.join("\n") + "\n");
  return file;
}

async function ensureEchoReady(): Promise<void> {
  await until(async () => (await readyPods()).length >= 1, 60_000, "a ready echo pod");
}

// ---------------------------------------------------------------------------------------------------
// 1. kill -9

Deno.test("kill -9 of a kf forward: next kf ps shows it dead once, then it is gone; its ports are free", async () => {
  await ensureEchoReady();
  const stateDir = tempStateDir();
  const proc = startKf(["forward", "svc/echo", "0:80", "0:9000", "--name", "web"], {
    KF_STATE_DIR: stateDir,
  });
  try {
    const [session] = await waitForSessions(stateDir, 1, allReady, "a ready session");
    const ports = [portOf(session, "web", 80), portOf(session, "web", 9000)];
    assert.equal((await httpGet(ports[0])).ok, true, "serves before the kill");
    assert.equal(session.pid, proc.pid, "the session file names the kf process");

    proc.child.kill("SIGKILL");
    const status = await exitWithin(proc, WAIT_MS);
    assert.equal(status.signal, "SIGKILL");
    assert.deepEqual(sessionFiles(stateDir), [`${session.id}.json`, `${session.id}.sock`], "left behind");

    const first = await psJson(stateDir);
    assert.deepEqual(first.sessions.map((s) => [s.id, s.liveness]), [[session.id, "dead"]]);
    const table = await kf(["ps"], { env: { KF_STATE_DIR: stateDir } });
    assert.equal(table.code, 0);
    assert.match(table.stdout, /No kf sessions running/, "the table run is the second listing: gone already");

    const second = await psJson(stateDir);
    assert.deepEqual(second.sessions, [], "gone on the second kf ps");
    assert.deepEqual(sessionFiles(stateDir), [], "state file and socket removed");
    for (const port of ports) assert.ok(canBind(port), `port ${port} is free again`);
  } finally {
    await proc.stop();
    await Deno.remove(stateDir, { recursive: true }).catch(() => {});
  }
});

Deno.test("kill -9: the table form of kf ps shows the dead session once too", async () => {
  await ensureEchoReady();
  const stateDir = tempStateDir();
  const proc = startKf(["forward", "svc/echo", "0:80", "--name", "web"], { KF_STATE_DIR: stateDir });
  try {
    const [session] = await waitForSessions(stateDir, 1, allReady, "a ready session");
    proc.child.kill("SIGKILL");
    await exitWithin(proc, WAIT_MS);
    const first = await kf(["ps"], { env: { KF_STATE_DIR: stateDir } });
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stdout, new RegExp(`^${session.id} +${session.pid} .* web .* dead `, "m"));
    assert.match(first.stdout, /1 dead or stale session shown once; state removed/);
    const second = await kf(["ps"], { env: { KF_STATE_DIR: stateDir } });
    assert.equal(second.stdout, "No kf sessions running.\n");
  } finally {
    await proc.stop();
    await Deno.remove(stateDir, { recursive: true }).catch(() => {});
  }
});

// ---------------------------------------------------------------------------------------------------
// 2. PID reuse

Deno.test("a state file naming an unrelated live process: kf stop refuses, kf ps marks it stale", async () => {
  await ensureEchoReady();
  const stateDir = tempStateDir();
  const proc = startKf(["forward", "svc/echo", "0:80", "--name", "web"], { KF_STATE_DIR: stateDir });
  const victim = new Deno.Command("sleep", { args: ["60"], stdin: "null", stdout: "null", stderr: "null" })
    .spawn();
  const victimAlive = async () =>
    (await Promise.race([victim.status.then(() => false), sleep(50).then(() => true)])) &&
    running(victim.pid);
  try {
    const [session] = await waitForSessions(stateDir, 1, allReady, "a ready session");
    await until(
      () => Deno.readTextFileSync(`/proc/${victim.pid}/cmdline`).includes("sleep"),
      5_000,
      "exec",
    );
    // A real session's file, copied under another id with the pid of the sleep: what PID reuse looks like
    // after a reboot or a killed kf, with the identity (start time, argv) of the kf that wrote it.
    const real = JSON.parse(Deno.readTextFileSync(join(stateDir, `${session.id}.json`))) as SessionRecord;
    const forge = (id: string, overrides: Partial<SessionRecord> = {}) => {
      const record = {
        ...real,
        id,
        pid: victim.pid,
        controlSocket: join(stateDir, `${id}.sock`),
        ...overrides,
      };
      Deno.writeTextFileSync(join(stateDir, `${id}.json`), JSON.stringify(record), { mode: 0o600 });
    };

    // same start time (possible after a reboot), other command line: the argv check must catch it
    const variants: [string, Partial<SessionRecord>][] = [
      ["pidreu", {}],
      ["sametm", {
        startTime: Deno.readTextFileSync(`/proc/${victim.pid}/stat`).split(") ")[1].split(" ")[19],
      }],
      // no identity at all: nothing to check it against, so it must not be trusted either
      ["noidnt", { startTime: undefined, argv: [] }],
    ];
    for (const [id, overrides] of variants) {
      forge(id, overrides);
      const stop = await kf(["stop", id], { env: { KF_STATE_DIR: stateDir } });
      const said = stop.stdout + stop.stderr;
      assert.notEqual(stop.code, 0, `kf stop must fail: ${said}`);
      assert.match(said, new RegExp(`refused pid ${victim.pid}: it is now another process \\(PID reuse\\)`));
      assert.ok(await victimAlive(), `the unrelated process was not signalled (${id})`);

      forge(id, overrides);
      const ps = await psJson(stateDir);
      const stale = ps.sessions.find((s) => s.id === id);
      assert.equal(stale?.liveness, "stale", `kf ps marks ${id} stale: ${JSON.stringify(ps.sessions)}`);
      const table = await kf(["ps"], { env: { KF_STATE_DIR: stateDir } });
      assert.doesNotMatch(table.stdout, new RegExp(id), "shown once, then removed");
      assert.ok(await victimAlive(), "kf ps did not signal it either");
    }

    // the real session was never touched by any of this
    const after = await psJson(stateDir);
    assert.deepEqual(after.sessions.map((s) => [s.id, s.liveness]), [[session.id, "live"]]);
    assert.equal((await httpGet(portOf(session, "web"))).ok, true);
  } finally {
    killQuietly(victim.pid);
    await victim.status;
    await proc.stop();
    await Deno.remove(stateDir, { recursive: true }).catch(() => {});
  }
});

// ---------------------------------------------------------------------------------------------------
// 3. concurrent sessions

Deno.test("two sessions started at the same moment both show in kf ps; stopping one leaves the other serving", async () => {
  await ensureEchoReady();
  // a state dir that does not exist yet: both processes create it at the same time
  const parent = tempStateDir();
  const stateDir = join(parent, "state");
  const procs = [0, 1].map(() =>
    // the same forward name in both: only the session id tells them apart
    startKf(["forward", "svc/echo", "0:80", "--name", "web"], { KF_STATE_DIR: stateDir })
  );
  let loop: RequestLoop | undefined;
  try {
    const sessions = await waitForSessions(stateDir, 2, allReady, "two ready sessions");
    assert.deepEqual(sessions.map((s) => s.pid).sort(), procs.map((p) => p.pid).sort());
    assert.notEqual(sessions[0].id, sessions[1].id);
    assert.equal(Deno.statSync(stateDir).mode! & 0o777, 0o700, "created private");

    const victim = sessions.find((s) => s.pid === procs[0].pid)!;
    const survivor = sessions.find((s) => s.pid === procs[1].pid)!;
    const survivorPort = portOf(survivor, "web");
    loop = new RequestLoop(survivorPort, 20);
    await until(() => loop!.results.length >= 5, WAIT_MS, "requests before the stop");

    const ambiguous = await kf(["stop", "web"], { env: { KF_STATE_DIR: stateDir } });
    assert.equal(ambiguous.code, 1, "a name used in both sessions is ambiguous");
    assert.match(ambiguous.stderr, /Forward name 'web' is used in 2 sessions/);
    assert.match(ambiguous.stderr, new RegExp(`${victim.id}/web`));
    assert.ok(running(victim.pid) && running(survivor.pid), "nothing was stopped");

    const stop = await kf(["stop", victim.id], { env: { KF_STATE_DIR: stateDir } });
    assert.equal(stop.code, 0, stop.stdout + stop.stderr);
    assert.match(
      stop.stdout,
      new RegExp(`^stopped session ${victim.id} \\(pid ${victim.pid}, 1 forward\\)$`, "m"),
    );
    assert.equal((await exitWithin(procs[0], WAIT_MS)).code, 0, "SIGTERM ends a session cleanly");
    assert.ok(await refused(portOf(victim, "web")), "the stopped session's port is closed");

    const count = loop.results.length;
    await until(() => loop!.results.length >= count + 10, WAIT_MS, "requests after the stop");
    await loop.stop();
    assert.deepEqual(loop.failures, [], "the other session kept serving");

    const after = await psJson(stateDir);
    assert.deepEqual(after.sessions.map((s) => [s.id, s.liveness]), [[survivor.id, "live"]]);
    assert.deepEqual(sessionFiles(stateDir), [`${survivor.id}.json`, `${survivor.id}.sock`]);
  } finally {
    await loop?.stop();
    await Promise.all(procs.map((p) => p.stop()));
    await Deno.remove(parent, { recursive: true }).catch(() => {});
  }
});

// ---------------------------------------------------------------------------------------------------
// 4. stopping single forwards

Deno.test("kf stop NAME and kf stop ID/NAME stop one forward; the others keep serving", async () => {
  await ensureEchoReady();
  const stateDir = tempStateDir();
  const ports = { a: freePort(), b: freePort(), c: freePort() };
  const config = writeConfig(stateDir, [
    { name: "web-a", port: ports.a },
    { name: "web-b", port: ports.b },
    { name: "web-c", port: ports.c },
  ]);
  const proc = startKf(["forward", "-f", config], { KF_STATE_DIR: stateDir });
  const loops: RequestLoop[] = [];
  const env = { KF_STATE_DIR: stateDir };
  try {
    const [session] = await waitForSessions(stateDir, 1, allReady, "a session with 3 ready forwards");
    assert.deepEqual(session.forwards.map((f) => [f.name, portOf(session, f.name)]), [
      ["web-a", ports.a],
      ["web-b", ports.b],
      ["web-c", ports.c],
    ]);
    const loopB = new RequestLoop(ports.b, 20);
    const loopC = new RequestLoop(ports.c, 20);
    loops.push(loopB, loopC);
    await until(() => loopB.results.length >= 5 && loopC.results.length >= 5, WAIT_MS, "first requests");

    // by forward name
    const stopA = await kf(["stop", "web-a"], { env });
    assert.equal(stopA.code, 0, stopA.stdout + stopA.stderr);
    assert.equal(stopA.stdout, `stopped forward web-a in session ${session.id}\n`);
    assert.ok(await refused(ports.a), "web-a stopped accepting as soon as kf stop returned");
    let ps = await psJson(stateDir);
    assert.deepEqual(ps.sessions[0].forwards.map((f) => [f.name, f.state === "stopped"]), [
      ["web-a", true],
      ["web-b", false],
      ["web-c", false],
    ]);
    const countB = loopB.results.length;
    await until(() => loopB.results.length >= countB + 10, WAIT_MS, "web-b requests after the stop");
    await loopB.stop();
    assert.deepEqual(loopB.failures, [], "web-b kept serving while web-a stopped");

    // by ID/NAME
    const stopB = await kf(["stop", `${session.id}/web-b`], { env });
    assert.equal(stopB.code, 0, stopB.stdout + stopB.stderr);
    assert.equal(stopB.stdout, `stopped forward web-b in session ${session.id}\n`);
    assert.ok(await refused(ports.b), "web-b stopped accepting");
    ps = await psJson(stateDir);
    assert.deepEqual(ps.sessions[0].forwards.map((f) => [f.name, f.state === "stopped"]), [
      ["web-a", true],
      ["web-b", true],
      ["web-c", false],
    ]);
    const countC = loopC.results.length;
    await until(() => loopC.results.length >= countC + 10, WAIT_MS, "web-c requests after the stops");
    await loopC.stop();
    assert.deepEqual(loopC.failures, [], "web-c kept serving through both stops");
    assert.equal(proc.child.pid, ps.sessions[0].pid);

    // an unknown forward name: exit 1, nothing stopped
    const unknown = await kf(["stop", `${session.id}/nope`], { env });
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /No kf session or forward named/);
    assert.equal((await httpGet(ports.c)).ok, true);

    // the last running forward: the session ends
    const stopC = await kf(["stop", "web-c"], { env });
    assert.equal(stopC.code, 0, stopC.stdout + stopC.stderr);
    assert.equal((await exitWithin(proc, WAIT_MS)).code, 0);
    assert.deepEqual(sessionFiles(stateDir), [], "state file and socket removed");
    assert.ok(await refused(ports.c));
  } finally {
    for (const loop of loops) await loop.stop();
    await proc.stop();
    await Deno.remove(stateDir, { recursive: true }).catch(() => {});
  }
});

Deno.test("kf stop NAME waits out the session's grace period for open connections, and says so", async () => {
  await ensureEchoReady();
  const stateDir = tempStateDir();
  const env = { KF_STATE_DIR: stateDir };
  const ports = { a: freePort(), b: freePort() };
  const config = writeConfig(stateDir, [
    { name: "tcp-a", port: ports.a, remote: 9000 },
    { name: "web-b", port: ports.b },
  ]);
  const proc = startKf(["forward", "-f", config, "--grace", "5s"], env);
  let conn: EchoConn | undefined;
  try {
    await waitForSessions(stateDir, 1, allReady, "a ready session");
    conn = await EchoConn.open(ports.a);
    assert.equal(await conn.roundTrip("hello\n"), "hello\n");
    const started = performance.now();
    const stop = kf(["stop", "tcp-a"], { env });
    // during the grace period the open connection still works, new ones are refused
    await until(() => refused(ports.a), 2_000, "tcp-a refusing new connections");
    assert.equal(await conn.roundTrip("still there\n"), "still there\n");
    const out = await stop;
    const elapsed = performance.now() - started;
    assert.equal(out.code, 0, `kf stop tcp-a after ${elapsed.toFixed(0)} ms: ${out.stdout}${out.stderr}`);
    assert.ok(elapsed >= 4_000, `kf stop returned after the grace period (${elapsed.toFixed(0)} ms)`);
    assert.notEqual(await conn.ended(2_000), "open", "the connection is cut after the grace period");
    assert.equal((await httpGet(ports.b)).ok, true, "web-b still serves");
  } finally {
    conn?.close();
    await proc.stop(8_000);
    await Deno.remove(stateDir, { recursive: true }).catch(() => {});
  }
});

Deno.test("kf stop ID gives open connections the session's grace period before any SIGKILL", async () => {
  await ensureEchoReady();
  const stateDir = tempStateDir();
  const env = { KF_STATE_DIR: stateDir };
  // a grace period longer than kf stop's default 5 s SIGTERM timeout
  const proc = startKf(["forward", "svc/echo", "0:9000", "--name", "tcp", "--grace", "7s"], env);
  let conn: EchoConn | undefined;
  try {
    const [session] = await waitForSessions(stateDir, 1, allReady, "a ready session");
    conn = await EchoConn.open(portOf(session, "tcp", 9000));
    assert.equal(await conn.roundTrip("hello\n"), "hello\n");
    const started = performance.now();
    const out = await kf(["stop", session.id], { env });
    const elapsed = performance.now() - started;
    assert.equal(out.code, 0, out.stdout + out.stderr);
    assert.match(out.stdout, new RegExp(`^stopped session ${session.id} `, "m"), "not killed");
    const status = await exitWithin(proc, WAIT_MS);
    assert.equal(status.code, 0, `a clean exit, not SIGKILL: ${JSON.stringify(status)}`);
    assert.ok(elapsed >= 6_000, `the connection had its grace period (${elapsed.toFixed(0)} ms)`);
    assert.deepEqual(sessionFiles(stateDir), []);
  } finally {
    conn?.close();
    await proc.stop(10_000);
    await Deno.remove(stateDir, { recursive: true }).catch(() => {});
  }
});

// ---------------------------------------------------------------------------------------------------
// 5. --detach

Deno.test("kf forward --detach, kf ps -o json, kf stop ID: a round trip", async () => {
  await ensureEchoReady();
  const stateDir = tempStateDir();
  const env = { KF_STATE_DIR: stateDir };
  let pid: number | undefined;
  try {
    const started = performance.now();
    const out = await kf([
      "forward",
      "--detach",
      "svc/echo",
      "0:80",
      "0:9000",
      "--name",
      "det",
    ], {
      env,
    });
    const returnedAt = performance.now();
    assert.equal(out.code, 0, out.stdout + out.stderr);
    const head = out.stdout.match(/^session ([a-z2-9]{6}) pid (\d+) log (\S+)$/m);
    assert.ok(head, `first line names session, pid and log: ${out.stdout}`);
    const [, id, pidText, logFile] = head;
    pid = Number(pidText);
    const listed = [...out.stdout.matchAll(/^det 127\.0\.0\.1:(\d+) -> svc\/echo:(\d+) (\S+)$/gm)];
    assert.equal(listed.length, 2, `one line per listener: ${out.stdout}`);
    const port80 = Number(listed.find((m) => m[2] === "80")![1]);
    const port9000 = Number(listed.find((m) => m[2] === "9000")![1]);

    // listening already when --detach returned: the first request works, without retrying
    const first = await httpGet(port80);
    assert.equal(first.ok, true, `a request right after --detach returned: ${JSON.stringify(first)}`);
    assert.ok(running(pid), "the detached process runs");
    console.log(`--detach returned after ${(returnedAt - started).toFixed(0)} ms`);
    assert.deepEqual(listed.map((m) => m[3]), ["ready", "ready"], "printed states");

    const ps = await psJson(stateDir);
    assert.equal(ps.sessions.length, 1);
    const session = ps.sessions[0];
    assert.equal(session.id, id);
    assert.equal(session.pid, pid);
    assert.equal(session.liveness, "live");
    assert.equal(session.logFile, logFile);
    assert.deepEqual(session.forwards.map((f) => [f.name, f.state]), [["det", "ready"]]);
    assert.equal(portOf(session, "det", 80), port80);
    assert.equal(portOf(session, "det", 9000), port9000);
    assert.deepEqual(
      sessionFiles(stateDir),
      [`${id}.json`, `${id}.sock`],
      "no other files (report file gone)",
    );

    const stop = await kf(["stop", id], { env });
    assert.equal(stop.code, 0, stop.stdout + stop.stderr);
    assert.match(stop.stdout, new RegExp(`^stopped session ${id} \\(pid ${pid}, 1 forward\\)$`, "m"));
    assert.ok(!running(pid), "the detached process is gone");
    assert.deepEqual(sessionFiles(stateDir), [], "state file and socket removed");
    assert.ok(canBind(port80) && canBind(port9000), "its ports are free");
    assert.deepEqual((await psJson(stateDir)).sessions, []);
    assert.ok(Deno.statSync(logFile).isFile, "its log file stays for reading");
  } finally {
    for (const leftover of pidsMentioning(stateDir)) killQuietly(leftover);
    if (pid) killQuietly(pid);
    await Deno.remove(stateDir, { recursive: true }).catch(() => {});
  }
});

Deno.test("kf forward --detach on a port in use fails with a clear error and leaves nothing running", async () => {
  await ensureEchoReady();
  const stateDir = tempStateDir();
  const env = { KF_STATE_DIR: stateDir };
  const taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (taken.addr as Deno.NetAddr).port;
  try {
    const started = performance.now();
    const out = await kf(["forward", "--detach", "svc/echo", `${port}:80`, "--state-dir", stateDir], { env });
    const elapsed = performance.now() - started;
    assert.notEqual(out.code, 0, out.stdout + out.stderr);
    assert.match(out.stderr, new RegExp(`cannot listen on 127\\.0\\.0\\.1:${port}: address already in use`));
    assert.match(out.stderr, /hint: stop what uses it/, "the forward's own hint");
    assert.match(out.stderr, /log: \S+\.log/, "and where the log is");
    assert.ok(elapsed < WAIT_MS, `failed fast (${elapsed.toFixed(0)} ms)`);
    await until(() => pidsMentioning(stateDir).length === 0, 5_000, "the background process to exit");
    assert.deepEqual((await psJson(stateDir)).sessions, []);
    assert.deepEqual(sessionFiles(stateDir), []);
  } finally {
    taken.close();
    for (const leftover of pidsMentioning(stateDir)) killQuietly(leftover);
    await Deno.remove(stateDir, { recursive: true }).catch(() => {});
  }
});

Deno.test("kf forward --detach where one of two forwards cannot listen: non-zero exit that names the session", async () => {
  await ensureEchoReady();
  const stateDir = tempStateDir();
  const env = { KF_STATE_DIR: stateDir };
  const taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const takenPort = (taken.addr as Deno.NetAddr).port;
  const goodPort = freePort();
  const config = writeConfig(stateDir, [{ name: "bad", port: takenPort }, { name: "good", port: goodPort }]);
  try {
    const out = await kf(["forward", "--detach", "-f", config, "--state-dir", stateDir], { env });
    assert.equal(out.code, 1, out.stdout + out.stderr);
    const id = out.stdout.match(/^session ([a-z2-9]{6}) /m)?.[1];
    assert.ok(id, out.stdout);
    assert.match(out.stderr, /1 forward\(s\) failed: bad: .*address already in use/);
    assert.match(out.stderr, new RegExp(`hint: good still runs in the background: kf stop ${id} to stop it`));
    assert.equal((await httpGet(goodPort)).ok, true, "the good forward serves");

    const table = await kf(["ps"], { env });
    assert.doesNotMatch(table.stdout, /CONTEXT/, `one context, no CONTEXT column:\n${table.stdout}`);
    assert.match(table.stdout, new RegExp(`^${id} .* bad .* failed `, "m"));
    assert.match(table.stdout, new RegExp(`^${id} .* good .* ready `, "m"));
    const stop = await kf(["stop", id], { env });
    assert.equal(stop.code, 0, stop.stdout + stop.stderr);
    assert.deepEqual(pidsMentioning(stateDir), []);
  } finally {
    taken.close();
    for (const leftover of pidsMentioning(stateDir)) killQuietly(leftover);
    await Deno.remove(stateDir, { recursive: true }).catch(() => {});
  }
});

Deno.test("kf forward --detach interrupted before it reported: the session runs on, kf ps lists it cleanly", async () => {
  await ensureEchoReady();
  const stateDir = tempStateDir();
  const env = { KF_STATE_DIR: stateDir };
  const parent = startKf([
    "forward",
    "--detach",
    "svc/echo",
    "0:80",
    "--name",
    "det",
    "--state-dir",
    stateDir,
  ], env);
  try {
    // kill the waiting `kf forward --detach` as soon as its background process exists
    const child = await until(
      () => pidsMentioning(stateDir).find((pid) => pid !== parent.pid),
      WAIT_MS,
      "the background process",
    ) as number;
    parent.child.kill("SIGKILL");
    await exitWithin(parent, WAIT_MS);
    const [session] = await waitForSessions(stateDir, 1, allReady, "the detached session");
    assert.equal(session.pid, child);
    // its start report is never read now: it must not show up as a broken session file
    await sleep(300);
    const ps = await kf(["ps"], { env });
    assert.equal(ps.code, 0);
    assert.equal(ps.stderr, "", "no warnings");
    const stop = await kf(["stop", session.id], { env });
    assert.equal(stop.code, 0, stop.stdout + stop.stderr);
    assert.ok(!running(child));
  } finally {
    await parent.stop();
    for (const leftover of pidsMentioning(stateDir)) killQuietly(leftover);
    await Deno.remove(stateDir, { recursive: true }).catch(() => {});
  }
});

// ---------------------------------------------------------------------------------------------------
// 6. what kf ps shows of a live session

Deno.test("kf ps -o json shows the current pod, state, connection counts and bytes of a live session", async () => {
  await ensureEchoReady();
  const stateDir = tempStateDir();
  const proc = startKf(["forward", "svc/echo", "0:80", "--name", "web"], { KF_STATE_DIR: stateDir });
  try {
    const [session] = await waitForSessions(stateDir, 1, allReady, "a ready session");
    const port = portOf(session, "web");
    const bodies: string[] = [];
    for (let i = 0; i < 5; i++) {
      const result = await httpGet(port);
      assert.equal(result.ok, true, JSON.stringify(result));
      bodies.push(result.body!.trim());
    }
    const [after] = await waitForSessions(
      stateDir,
      1,
      (s) => s.forwards[0]?.totalConnections >= 5 && s.forwards[0]?.openConnections === 0,
      "counters of 5 requests",
    );
    const web = forwardNamed(after, "web");
    assert.equal(web.state, "ready");
    assert.equal(web.totalConnections, 5);
    assert.ok(web.bytesOut > 5 * 30, `request bytes counted (${web.bytesOut})`);
    assert.ok(web.bytesIn > 5 * 30, `response bytes counted (${web.bytesIn})`);
    const ready = await readyPods();
    // the forward sticks to its pod while that pod is ready (other tests may restart the demo meanwhile)
    if (ready.includes(bodies.at(-1)!)) {
      assert.equal(web.pod, bodies.at(-1), `the pod that answered (${bodies.join(", ")})`);
    } else assert.ok(ready.includes(web.pod!), `a real, ready pod: ${web.pod} (ready: ${ready})`);

    const table = await kf(["ps"], { env: { KF_STATE_DIR: stateDir } });
    assert.match(
      table.stdout,
      new RegExp(
        `^${session.id} +${session.pid} .* web +${defaultLocal(port)} .* ${web.pod} +ready +0/5 `,
        "m",
      ),
    );
  } finally {
    await proc.stop();
    await Deno.remove(stateDir, { recursive: true }).catch(() => {});
  }
});

// ---------------------------------------------------------------------------------------------------
// 7. SIGTERM / SIGINT of a foreground session

for (const signal of ["SIGTERM", "SIGINT"] as const) {
  Deno.test(`${signal} of a foreground session: open connections get the grace period, exit 0, state removed`, async () => {
    await ensureEchoReady();
    const stateDir = tempStateDir();
    const proc = startKf(["forward", "svc/echo", "0:80", "0:9000", "--name", "web", "--grace", "3s"], {
      KF_STATE_DIR: stateDir,
    });
    let conn: EchoConn | undefined;
    try {
      const [session] = await waitForSessions(stateDir, 1, allReady, "a ready session");
      conn = await EchoConn.open(portOf(session, "web", 9000));
      assert.equal(await conn.roundTrip("ping\n"), "ping\n");

      const sentAt = performance.now();
      proc.child.kill(signal);
      await until(() => refused(portOf(session, "web", 80)), 2_000, "the listener to close");
      await sleep(1_000);
      assert.equal(await conn.roundTrip("pong\n"), "pong\n", "the open connection works during the grace");
      assert.equal(sessionFiles(stateDir).length, 2, "still recorded while it drains");

      const status = await exitWithin(proc, 10_000);
      const elapsed = performance.now() - sentAt;
      assert.equal(status.code, 0, `exit code after ${signal}; output:\n${proc.output}`);
      assert.ok(elapsed >= 2_500 && elapsed < 6_000, `exited after the 3 s grace (${elapsed.toFixed(0)} ms)`);
      assert.notEqual(await conn.ended(2_000), "open", "the connection was cut at the end of the grace");
      assert.deepEqual(sessionFiles(stateDir), [], "state file and socket removed");
      assert.deepEqual((await psJson(stateDir)).sessions, []);
    } finally {
      conn?.close();
      await proc.stop();
      await Deno.remove(stateDir, { recursive: true }).catch(() => {});
    }
  });

  Deno.test(`${signal} of a foreground session without open connections exits 0 at once`, async () => {
    await ensureEchoReady();
    const stateDir = tempStateDir();
    const proc = startKf(["forward", "svc/echo", "0:80", "--name", "web", "--grace", "10s"], {
      KF_STATE_DIR: stateDir,
    });
    try {
      const [session] = await waitForSessions(stateDir, 1, allReady, "a ready session");
      assert.equal((await httpGet(portOf(session, "web"))).ok, true);
      const sentAt = performance.now();
      proc.child.kill(signal);
      const status = await exitWithin(proc, 10_000);
      const elapsed = performance.now() - sentAt;
      assert.equal(status.code, 0, proc.output);
      assert.ok(elapsed < 2_000, `no connection to wait for: quick exit (${elapsed.toFixed(0)} ms)`);
      assert.deepEqual(sessionFiles(stateDir), []);
    } finally {
      await proc.stop();
      await Deno.remove(stateDir, { recursive: true }).catch(() => {});
    }
  });
}
