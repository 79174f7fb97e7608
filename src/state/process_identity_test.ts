import assert from "node:assert/strict";
import { identityMatches, isAlive, processArgv, processStartTime } from "./process_identity.ts";
import { killQuietly, spawn, waitFor } from "./testdata/helpers.ts";

const linux = Deno.build.os === "linux";

Deno.test("isAlive() is true for this process and false for an exited child", async () => {
  assert.equal(isAlive(Deno.pid), true);
  const child = spawn("true", []);
  await child.status;
  assert.equal(isAlive(child.pid), false);
  assert.equal(isAlive(0), false);
  assert.equal(isAlive(-1), false);
});

Deno.test("isAlive() counts an unreaped zombie as dead", { ignore: !linux }, async () => {
  // The background sleep outlives the shell's exec, so it ends as a child of `sleep 30`, which never reaps it.
  const out = new Deno.Command("sh", {
    args: ["-c", "sleep 0.1 & echo $!; exec sleep 30"],
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const reader = out.stdout.pipeThrough(new TextDecoderStream()).getReader();
  try {
    const { value } = await reader.read();
    const zombie = Number(value!.trim());
    await waitFor(() => Deno.readTextFileSync(`/proc/${zombie}/stat`).includes(") Z "));
    assert.doesNotThrow(() => Deno.kill(zombie, 0), "kill(0) alone would call it alive");
    assert.equal(isAlive(zombie), false);
  } finally {
    await reader.cancel();
    await killQuietly(out);
  }
});

Deno.test("processStartTime() reads /proc stat field 22 even when comm has spaces and parens", {
  ignore: !linux,
}, async () => {
  const dir = await Deno.makeTempDir();
  const sleep = new Deno.Command("sh", { args: ["-c", "command -v sleep"], stdout: "piped" }).outputSync();
  const weird = `${dir}/a) b (c`;
  await Deno.symlink(new TextDecoder().decode(sleep.stdout).trim(), weird);
  const child = spawn(weird, ["30"]);
  try {
    await waitFor(() => processArgv(child.pid)?.[0] === weird);
    const self = processStartTime(Deno.pid)!;
    const started = processStartTime(child.pid)!;
    assert.match(started, /^\d+$/);
    assert.ok(Number(started) >= Number(self), "the child started after this process");
    assert.equal(processStartTime(child.pid), started, "stable");
    assert.equal(identityMatches({ pid: child.pid, startTime: started, argv: [weird, "30"] }), "live");
  } finally {
    await killQuietly(child);
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("processArgv() returns the real command line", async () => {
  const child = spawn("sleep", ["30"]);
  try {
    await waitFor(() => processArgv(child.pid)?.at(-1) === "30");
    assert.deepEqual(processArgv(child.pid)?.slice(-2).map((a) => a.split("/").pop()), ["sleep", "30"]);
    assert.ok(processArgv(Deno.pid)?.includes("test"), "this deno test process");
  } finally {
    await killQuietly(child);
  }
  assert.equal(processArgv(child.pid), undefined);
  assert.equal(processStartTime(child.pid), undefined);
});

Deno.test("identityMatches() tells live, dead and stale (PID reuse) apart", async (t) => {
  const child = spawn("sleep", ["30"]);
  try {
    await waitFor(() => processArgv(child.pid)?.at(-1) === "30");
    const identity = {
      pid: child.pid,
      startTime: processStartTime(child.pid),
      argv: processArgv(child.pid)!,
    };
    await t.step("same pid, start time and argv: live", () => {
      assert.equal(identityMatches(identity), "live");
    });
    await t.step("a recorded argv that is the tail of the real one: live", () => {
      assert.equal(identityMatches({ ...identity, argv: ["30"] }), "live");
    });
    await t.step("another start time: stale", () => {
      assert.equal(identityMatches({ ...identity, startTime: "1" }), "stale");
    });
    await t.step("another argv: stale", () => {
      assert.equal(identityMatches({ ...identity, argv: ["kf", "forward"] }), "stale");
    });
    await t.step("no start time and no argv, nothing to check: stale, never trusted", () => {
      assert.equal(identityMatches({ pid: child.pid, argv: [] }), "stale");
    });
    await t.step("no process at the pid: dead", async () => {
      await killQuietly(child);
      assert.equal(identityMatches(identity), "dead");
    });
  } finally {
    await killQuietly(child);
  }
});
