import assert from "node:assert/strict";
import { KfError, UsageError } from "../errors.ts";
import { SessionNotFoundError } from "../state/errors.ts";
import { isAlive, processArgv } from "../state/process_identity.ts";
import { writeSessionRecord } from "../state/session_file.ts";
import { forward, killQuietly, recordFor, spawn, tempStateDir, waitFor } from "../state/testdata/helpers.ts";
import type { CommandIO } from "./io.ts";
import { stopCommand } from "./stop.ts";

function capture(): CommandIO & { stdout: string; stderr: string } {
  const io = {
    stdout: "",
    stderr: "",
    out: (text: string) => void (io.stdout += text),
    err: (text: string) => void (io.stderr += text),
  };
  return io;
}

async function runStop(args: string[], io = capture()) {
  await stopCommand(io).exitOverride().parseAsync(args, { from: "user" });
  return io;
}

async function sleeper(): Promise<Deno.ChildProcess> {
  const child = spawn("sleep", ["30"]);
  await waitFor(() => processArgv(child.pid)?.at(-1) === "30");
  return child;
}

Deno.test("kf stop ID stops the session and says what it did", async () => {
  const dir = await tempStateDir();
  const child = await sleeper();
  try {
    await writeSessionRecord(
      dir,
      recordFor(dir, "kstopa", child.pid, { forwards: [forward("a"), forward("b")] }),
    );
    const { stdout } = await runStop(["--state-dir", dir, "kstopa"]);
    assert.equal(stdout, `stopped session kstopa (pid ${child.pid}, 2 forwards)\n`);
    assert.equal((await child.status).signal, "SIGTERM");
  } finally {
    await killQuietly(child);
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("kf stop --all -o json reports every outcome", async () => {
  const dir = await tempStateDir();
  const a = await sleeper();
  const dead = spawn("true", []);
  await dead.status;
  try {
    await writeSessionRecord(dir, recordFor(dir, "kstopa", a.pid));
    await writeSessionRecord(dir, recordFor(dir, "kdeadd", dead.pid, { startTime: "1" }));
    const { stdout } = await runStop(["--state-dir", dir, "--all", "-o", "json", "--timeout", "2"]);
    const { outcomes } = JSON.parse(stdout);
    assert.deepEqual(outcomes.map((o: { session: string; action: string }) => [o.session, o.action]).sort(), [
      ["kdeadd", "removed-dead"],
      ["kstopa", "stopped"],
    ]);
    await a.status;
  } finally {
    await killQuietly(a);
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("kf stop --all with nothing running says so and succeeds", async () => {
  const dir = await tempStateDir();
  try {
    assert.equal((await runStop(["--state-dir", dir, "--all"])).stdout, "No kf sessions running.\n");
    assert.equal(
      (await runStop(["--state-dir", `${dir}/missing`, "--all"])).stdout,
      "No kf sessions running.\n",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("kf stop refuses a PID-reused process, prints why, and exits 1", async () => {
  const dir = await tempStateDir();
  const victim = await sleeper();
  try {
    await writeSessionRecord(dir, recordFor(dir, "kstale", victim.pid, { startTime: "99" }));
    const io = capture();
    const error = await runStop(["--state-dir", dir, "kstale"], io).catch((e) => e);
    assert.ok(error instanceof KfError);
    assert.equal(error.exitCode, 1);
    assert.equal(error.message, "Cannot stop 1 of 1 targets");
    assert.equal(
      io.stdout,
      `refused pid ${victim.pid}: it is now another process (PID reuse); removed the stale state file of session kstale\n`,
    );
    assert.ok(isAlive(victim.pid));
  } finally {
    await killQuietly(victim);
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("kf stop usage errors exit 2; unknown targets exit 1", async () => {
  const dir = await tempStateDir();
  try {
    const usage = (e: unknown) => e instanceof UsageError && e.exitCode === 2;
    await assert.rejects(runStop(["--state-dir", dir]), usage);
    await assert.rejects(runStop(["--state-dir", dir, "--all", "x"]), usage);
    await assert.rejects(runStop(["--state-dir", dir, "--timeout", "soon", "x"]), usage);
    await assert.rejects(runStop(["--state-dir", dir, "--timeout", "-1", "x"]), usage);
    await assert.rejects(runStop(["--state-dir", dir, "-o", "yaml", "x"]), usage);
    await assert.rejects(
      runStop(["--state-dir", dir, "api"]),
      (e: unknown) =>
        e instanceof SessionNotFoundError && e.exitCode === 1 && /no kf sessions are running/.test(e.hint!),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("kf stop as a real process: exit codes 2 and 1 with the message on stderr", async () => {
  const dir = await tempStateDir();
  try {
    const entry = new URL("../state/testdata/ps_entry.ts", import.meta.url).pathname;
    const run = (args: string[]) =>
      new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", entry, "stop", "--state-dir", dir, ...args],
        cwd: new URL("../..", import.meta.url).pathname,
      }).output();
    const usage = await run([]);
    assert.equal(usage.code, 2);
    assert.match(new TextDecoder().decode(usage.stderr), /^Nothing to stop\n {2}hint: /);
    const unknown = await run(["nope"]);
    assert.equal(unknown.code, 1);
    assert.match(new TextDecoder().decode(unknown.stderr), /^No kf session or forward named 'nope'/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
