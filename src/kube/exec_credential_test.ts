import assert from "node:assert/strict";
import { join } from "node:path";
import { KubeconfigError } from "./errors.ts";
import { ExecCredentialPlugin } from "./exec_credential.ts";

/** A plugin script that logs each run (with its env) and prints `answer`. */
function plugin(dir: string, answer: string, exit = 0): { command: string; runs: () => string[] } {
  const command = join(dir, `plugin-${crypto.randomUUID()}.sh`);
  const log = `${command}.log`;
  Deno.writeTextFileSync(
    command,
    `#!/bin/sh\necho "run TEAM=$TEAM INFO=$KUBERNETES_EXEC_INFO" >> '${log}'\nsleep 0.1\n` +
      `echo 'some diagnostics' >&2\nprintf '%s' '${answer}'\nexit ${exit}\n`,
  );
  Deno.chmodSync(command, 0o755);
  return {
    command,
    runs: () => {
      try {
        return Deno.readTextFileSync(log).trim().split("\n");
      } catch {
        return [];
      }
    },
  };
}

const credential = (status: Record<string, string>, apiVersion = "client.authentication.k8s.io/v1") =>
  JSON.stringify({ apiVersion, kind: "ExecCredential", status });

Deno.test("exec credential: one run for concurrent callers, kept without an expiry until invalidated", async () => {
  const dir = Deno.makeTempDirSync();
  try {
    const { command, runs } = plugin(dir, credential({ token: "t-1" }));
    const exec = new ExecCredentialPlugin("eks-user", {
      command,
      apiVersion: "client.authentication.k8s.io/v1",
      env: [{ name: "TEAM", value: "platform" }],
      interactiveMode: "Never",
      provideClusterInfo: true,
    }, { server: "https://k8s.example:6443" });
    const answers = await Promise.all(Array.from({ length: 10 }, () => exec.credential()));
    assert.deepEqual(answers.map((a) => a.token), Array(10).fill("t-1"));
    assert.equal(runs().length, 1, "ten dials at once, one plugin run");
    assert.match(runs()[0], /TEAM=platform/);
    const info = JSON.parse(runs()[0].slice(runs()[0].indexOf("INFO=") + 5));
    assert.deepEqual(info, {
      apiVersion: "client.authentication.k8s.io/v1",
      kind: "ExecCredential",
      spec: { interactive: false, cluster: { server: "https://k8s.example:6443" } },
    });
    await exec.credential();
    assert.equal(runs().length, 1, "no expiry: kept");
    exec.invalidate();
    await exec.credential();
    assert.equal(runs().length, 2, "after a 401 the plugin runs again");
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("exec credential: kept until shortly before its expirationTimestamp", async () => {
  const dir = Deno.makeTempDirSync();
  try {
    const expires = Date.UTC(2030, 0, 1, 12, 0, 0);
    const { command, runs } = plugin(
      dir,
      credential({ token: "t-2", expirationTimestamp: new Date(expires).toISOString() }),
    );
    let now = expires - 60_000;
    const exec = new ExecCredentialPlugin(
      "gke-user",
      { command, interactiveMode: "Never" },
      undefined,
      () => now,
    );
    await exec.credential();
    now = expires - 30_000;
    await exec.credential();
    assert.equal(runs().length, 1);
    now = expires - 5_000; // inside the margin: a request must not go out with a token about to die
    await exec.credential();
    assert.equal(runs().length, 2);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("exec credential: failures say what happened and what to do", async () => {
  const dir = Deno.makeTempDirSync();
  try {
    const failing = plugin(dir, "", 3);
    await assert.rejects(
      new ExecCredentialPlugin("u", { command: failing.command, interactiveMode: "Never" }).credential(),
      (error: Error) =>
        error instanceof KubeconfigError && /failed \(exit code 3\): some diagnostics/.test(error.message),
    );
    await assert.rejects(
      new ExecCredentialPlugin("u", {
        command: join(dir, "no-such-plugin"),
        installHint: "brew install no-such-plugin",
        interactiveMode: "Never",
      }).credential(),
      (error: KubeconfigError) =>
        /was not found/.test(error.message) && error.hint === "brew install no-such-plugin",
    );
    const garbage = plugin(dir, "not json");
    await assert.rejects(
      new ExecCredentialPlugin("u", { command: garbage.command, interactiveMode: "Never" }).credential(),
      /printed no ExecCredential JSON: 'not json'/,
    );
    const empty = plugin(dir, credential({}));
    await assert.rejects(
      new ExecCredentialPlugin("u", { command: empty.command, interactiveMode: "Never" }).credential(),
      /neither a token nor a client certificate/,
    );
    const old = plugin(dir, credential({ token: "x" }, "client.authentication.k8s.io/v1beta1"));
    await assert.rejects(
      new ExecCredentialPlugin("u", {
        command: old.command,
        apiVersion: "client.authentication.k8s.io/v1",
        interactiveMode: "Never",
      }).credential(),
      /answered with apiVersion client.authentication.k8s.io\/v1beta1/,
    );
    const always = plugin(dir, credential({ token: "x" }));
    if (!Deno.stdin.isTerminal()) {
      await assert.rejects(
        new ExecCredentialPlugin("u", { command: always.command, interactiveMode: "Always" }).credential(),
        /needs a terminal/,
      );
    }
    // a failed run is not kept: the next call tries again
    const flaky = new ExecCredentialPlugin("u", { command: failing.command, interactiveMode: "Never" });
    await assert.rejects(flaky.credential());
    await assert.rejects(flaky.credential());
    assert.equal(failing.runs().length, 3);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("exec credential: a client certificate answer", async () => {
  const dir = Deno.makeTempDirSync();
  try {
    const { command } = plugin(dir, credential({ clientCertificateData: "CERT", clientKeyData: "KEY" }));
    const status = await new ExecCredentialPlugin("u", { command, interactiveMode: "Never" }).credential();
    assert.equal(status.clientCertificateData, "CERT");
    assert.equal(status.clientKeyData, "KEY");
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
