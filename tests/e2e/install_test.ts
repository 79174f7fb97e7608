/**
 * The install a newcomer does: `npm install -g .` from a fresh checkout (here: a copy of this one without
 * node_modules or dist, into a temporary prefix). npm links the checkout; its prepare script installs the
 * pinned dependencies and builds the bundle. Then kf and the kubectl plugin run from that prefix's bin.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { childEnv, REPO, run, tempStateDir } from "./_harness.ts";

async function trackedFiles(): Promise<string[]> {
  const out = await new Deno.Command("git", {
    args: ["ls-files", "-co", "--exclude-standard", "-z"],
    cwd: REPO,
    stdout: "piped",
    stderr: "null",
  }).output();
  assert.ok(out.success, "git ls-files failed: this test copies the checkout's files");
  return new TextDecoder().decode(out.stdout).split("\0").filter((f) =>
    f && !f.startsWith("node_modules") && !f.startsWith("dist/")
  );
}

async function copyCheckout(into: string): Promise<void> {
  for (const file of await trackedFiles()) {
    const from = join(REPO, file);
    const stat = await Deno.lstat(from).catch(() => undefined);
    if (!stat?.isFile) continue; // deleted in the work tree, or a symlink
    await Deno.mkdir(join(into, file, ".."), { recursive: true });
    await Deno.copyFile(from, join(into, file));
    await Deno.chmod(join(into, file), stat.mode ?? 0o644);
  }
}

Deno.test({
  name: "npm install -g . puts kf and kubectl-kf on PATH; they run the bundle with the pinned Deno",
  // npm install of the pinned dependencies: from npm's cache when warm, else the registry
  sanitizeResources: false,
  fn: async () => {
    const root = await Deno.makeTempDir({ prefix: "kf-install-" });
    try {
      const checkout = join(root, "kf");
      const prefix = join(root, "prefix");
      await copyCheckout(checkout);
      const install = await run(
        "npm",
        ["install", "-g", "--prefix", prefix, "--no-audit", "--no-fund", "."],
        {
          cwd: checkout,
        },
      );
      assert.equal(install.code, 0, `npm install -g . failed:\n${install.stdout}\n${install.stderr}`);
      const bin = join(prefix, "bin");
      const stateDir = tempStateDir();
      const env = { PATH: `${bin}:${childEnv().PATH}`, KF_STATE_DIR: stateDir };
      const inTmp = { env, cwd: root };

      const version = await run("kf", ["--version"], inTmp);
      assert.equal(version.code, 0, version.stderr);
      assert.equal(version.stdout.trim(), "0.1.0");
      assert.equal(version.stderr, "", "the bundle exists, so no fallback to the source");
      const info = await run("kf", ["version", "-o", "json"], inTmp);
      assert.equal(JSON.parse(info.stdout).build, "bundle");
      assert.equal(JSON.parse(info.stdout).deno, "2.9.6");

      const ps = await run("kf", ["ps"], inTmp);
      assert.equal(ps.code, 0, ps.stderr);
      assert.equal(ps.stdout, "No kf sessions running.\n");

      const help = await run("kubectl", ["kf", "--help"], inTmp);
      assert.equal(help.code, 0, help.stderr);
      assert.match(help.stdout, /^Usage: kubectl kf \[options\] \[command\]/);
      assert.match(help.stdout, /forward\|fwd/);

      // kubectl's plugin completion: `kubectl kf st<TAB>` asks kubectl_complete-kf
      const completion = await run("kubectl", ["__complete", "kf", "st"], inTmp);
      assert.equal(completion.code, 0, completion.stderr);
      assert.deepEqual(completion.stdout.trim().split("\n"), ["stop", ":4"]);

      // the plugin really forwards: kubectl kf exec runs curl through a forward to svc/echo
      const exec = await run(
        "kubectl",
        [
          "kf",
          "exec",
          "svc/echo",
          "0:80",
          "--",
          "sh",
          "-c",
          'curl -s --max-time 10 "http://$KF_ECHO_HOST:$KF_ECHO_PORT/"',
        ],
        inTmp,
      );
      assert.equal(exec.code, 0, exec.stderr);
      assert.match(exec.stdout, /^echo-/);

      // and kubectl kf forward runs a session that kf ps lists and kubectl kf stop ends
      const detached = await run("kubectl", ["kf", "forward", "svc/echo", "0:80", "--detach"], inTmp);
      try {
        assert.equal(detached.code, 0, detached.stderr);
        const id = detached.stdout.match(/^session (\w+) /m)?.[1];
        assert.ok(id, detached.stdout);
        const listed = await run("kf", ["ps", "-o", "json"], inTmp);
        const sessions = JSON.parse(listed.stdout).sessions as { id: string; pid: number }[];
        assert.deepEqual(sessions.map((s) => s.id), [id]);
        if (Deno.build.os === "linux") {
          // the goal for one idle forward: <= 60 MB RSS (kf trims its code pages 1 s after settling)
          await new Promise((resolve) => setTimeout(resolve, 4_000));
          const status = await Deno.readTextFile(`/proc/${sessions[0].pid}/status`);
          const rssMib = Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1]) / 1024;
          assert.ok(rssMib <= 60, `idle forward RSS ${rssMib.toFixed(1)} MiB > 60 MiB:\n${status}`);
        }
        const stopped = await run("kubectl", ["kf", "stop", id], inTmp);
        assert.equal(stopped.code, 0, stopped.stderr);
      } finally {
        // a failed assertion must not leave the session running after the test
        await run("kf", ["stop", "--all"], inTmp);
      }
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  },
});
