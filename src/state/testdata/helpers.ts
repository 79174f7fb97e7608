/** Test helpers: temp state dirs, real child processes, records that describe them. */

import type { ForwardStatus } from "../../forward/status.ts";
import { processArgv, processStartTime } from "../process_identity.ts";
import { type SessionRecord, socketPath } from "../session_file.ts";

export async function tempStateDir(): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "kf-state-" });
  await Deno.chmod(dir, 0o700);
  return dir;
}

export function forward(name: string, overrides: Partial<ForwardStatus> = {}): ForwardStatus {
  return {
    name,
    target: `svc/${name}`,
    context: "kind-kf",
    namespace: "default",
    listeners: [{ address: "127.0.0.1", port: 8080, remote: 80 }],
    state: "ready",
    pod: `${name}-5c6d-xyz`,
    openConnections: 0,
    totalConnections: 0,
    bytesIn: 0,
    bytesOut: 0,
    ...overrides,
  };
}

/** A record whose identity matches the running process `pid` (override fields to make it not match). */
export function recordFor(
  dir: string,
  id: string,
  pid: number,
  overrides: Partial<SessionRecord> = {},
): SessionRecord {
  const now = new Date().toISOString();
  return {
    version: 1,
    id,
    pid,
    startTime: processStartTime(pid),
    argv: processArgv(pid) ?? [],
    configFiles: [],
    startedAt: now,
    updatedAt: now,
    controlSocket: socketPath(dir, id),
    forwards: [forward("api")],
    ...overrides,
  };
}

/** Spawns a plain process (sleep, sh) with no stdio. */
export function spawn(cmd: string, args: string[]): Deno.ChildProcess {
  return new Deno.Command(cmd, { args, stdin: "null", stdout: "null", stderr: "null" }).spawn();
}

/** Kills a child if it still runs and reaps it. */
export async function killQuietly(child: Deno.ChildProcess): Promise<void> {
  try {
    child.kill("SIGKILL");
  } catch { /* already exited */ }
  await child.status;
}

/** Polls until check() is true; throws after timeoutMs. */
export async function waitFor(check: () => boolean | Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!(await check())) {
    if (performance.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

export interface FakeSession {
  child: Deno.ChildProcess;
  id: string;
}

/** Runs testdata/fake_session.ts as a real child Deno process; resolves once its session file exists. */
export async function spawnFakeSession(
  dir: string,
  names: string[],
  flag?: "--ignore-term",
): Promise<FakeSession> {
  const script = new URL("./fake_session.ts", import.meta.url).pathname;
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--no-config", script, dir, names.join(","), ...(flag ? [flag] : [])],
    stdin: "null",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  try {
    const timer = setTimeout(() => child.kill("SIGKILL"), 15_000);
    try {
      while (!/ready (\w+)\n/.test(text)) {
        const { value, done } = await reader.read();
        if (done) throw new Error(`fake session exited before it was ready: ${text}`);
        text += value;
      }
    } finally {
      clearTimeout(timer);
    }
  } catch (error) {
    await reader.cancel();
    await killQuietly(child);
    throw error;
  }
  await reader.cancel();
  return { child, id: /ready (\w+)\n/.exec(text)![1] };
}
